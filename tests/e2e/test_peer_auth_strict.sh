#!/usr/bin/env bash
# PeerAuthentication STRICT enforced in the kernel (bpf/peer_auth.bpf.c at TC egress of the pods' veths):
# the external host's plaintext connection to a STRICT pod port is refused (a reset: ECONNREFUSED at once) and
# counted in xmesh_plaintext_rejected_total; a PERMISSIVE pod accepts it; the node's own connections (the
# agent's tunnel termination with its SO_MARK, and unmarked ones such as the kubelet's probes) are accepted, as
# Istio ambient lets host traffic bypass ztunnel; a mesh pod of the same node gets through (same-node traffic stays on the sockmap
# path) and a pod of the other node does not (it must use the tunnel); changing the mode applies within 1 s.
#
# The two-node topology (xdp_lib.sh), the agent on node B:
#               l2: br0
#        a0 │            b0 │               e0 │
#   nodea up0 10.199.0.1   nodeb up0 10.199.0.2   ext eth0 10.199.0.100 (10.200.2.0/24 via 10.199.0.2)
#   br0 10.200.1.1         br0 10.200.2.1 ── sa .11 (app=sa, STRICT), pb .12 (app=pb), pc .13 (a mesh client)
#    └─ pa .11 (a mesh pod of node A)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
# shellcheck source=tests/e2e/plaintext_lib.sh
. "$(dirname "$0")/plaintext_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"

SA=10.200.2.11
PB=10.200.2.12
MARK=$((0x584d0015)) # XM_MTLS_AGENT_MARK (include/xmesh/mtls.h)

# Node A gets a pod bridge too: a mesh pod of another node, whose plaintext must take the tunnel. The external
# host's frames have full checksums, node A's pod's SYNs cross veths only and keep CHECKSUM_PARTIAL: both kinds
# of reset are exercised.
xmp_two_nodes_ext pods-on-a
xmp_nodeb_pods sa="$SA" pb="$PB" pc=10.200.2.13
xmx_pod nodea pa 10.200.1.11 10.200.1.1

# config MODE: the mesh-wide policy PERMISSIVE, pod sa's workload policy MODE.
config() {
	{
		xmx_yaml_pod sa "$SA" nodeb
		xmx_yaml_pod pb "$PB" nodeb
		xmx_yaml_pod pc 10.200.2.13 nodeb
		xmx_yaml_pod pa 10.200.1.11 nodea
		printf '%s\n' "---" "apiVersion: security.istio.io/v1beta1" "kind: PeerAuthentication" "metadata:" \
			"  name: default" "  namespace: istio-system" "spec:" "  mtls:" "    mode: PERMISSIVE"
		printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: PeerAuthentication" "metadata:" \
			"  name: sa-strict" "  namespace: default" "spec:" "  selector:" "    matchLabels:" "      app: sa" \
			"  mtls:" "    mode: $1"
	} | xmt_config_write peer-auth.yaml
}

# refused NS ADDR / accepted NS ADDR: plaintext to ADDR:8080 from NS is refused by a reset / reaches the server.
refused() { xmp_refused "$1" "$2:8080"; }
accepted() { xmp_accepted "$1" "$2:8080"; }

# marked ADDR: a connection from the node's namespace with the agent's SO_MARK; prints the server's id.
marked() {
	xmt_nsrun nodeb python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
if int(sys.argv[2]):
    s.setsockopt(socket.SOL_SOCKET, 36, int(sys.argv[2]))  # SO_MARK
s.settimeout(2)
try:
    s.connect((sys.argv[1], 8080))
    print(s.recv(64).decode().strip())
except OSError as e:
    print("error", e.errno)
' "$1" "$2"
}

# rejected POD PORT: the value of xmesh_plaintext_rejected_total for the pod's port (0 when absent).
rejected() { xmx_metric nodeb "xmesh_plaintext_rejected_total{pod=\"$1\",namespace=\"default\",port=\"$2\"}"; }

config STRICT
xmx_agent b nodeb nodeb up0

XMT_SUBTEST="xmesh maps"
out=$(xmt_xmesh maps xm_mtls_policy --bpffs "$XMT_PIN-b")
grep -q "address=$SA port=0 family=4 mode=STRICT any_strict=true" <<<"$out" ||
	xmt_fail "xm_mtls_policy lacks sa's STRICT entry: $out"
! grep -q "address=$PB" <<<"$out" || xmt_fail "xm_mtls_policy has the PERMISSIVE pod: $out"
XMT_SUBTEST="xmesh status"
out=$(xmx_status b)
# The pods' three veths; not the uplink up0 (--iface).
grep -q "peerauthentication: 1 pod port entries with STRICT, 0 AuthorizationPolicy entries for plaintext, TC egress on 3 veth(s)" <<<"$out" ||
	xmt_fail "status: $(grep -i peerauth <<<"$out")"

XMT_SUBTEST="STRICT refuses the external host"
refused ext "$SA"
refused ext "$SA"
XMT_SUBTEST="PERMISSIVE accepts the external host"
accepted ext "$PB"

XMT_SUBTEST="the node's own connections"
got=$(marked "$SA" "$MARK")
[ "$got" = sa ] || xmt_fail "a connection with the agent's mark was not accepted: $got"
got=$(marked "$SA" 0)
[ "$got" = sa ] || xmt_fail "an unmarked connection from the node (a kubelet probe) was not accepted: $got"
got=$(marked "$SA" $((MARK ^ 1)))
[ "$got" = sa ] || xmt_fail "a connection from the node with another mark was not accepted: $got"

XMT_SUBTEST="same-node mesh pod"
accepted pc "$SA"
XMT_SUBTEST="a mesh pod of another node, in plaintext"
refused pa "$SA"
accepted pa "$PB"

XMT_SUBTEST="metrics"
n=$(rejected sa 8080)
[ "$n" = 3 ] ||
	xmt_fail "xmesh_plaintext_rejected_total{pod=sa,port=8080} is $n, want 3 (2 external, 1 from node A's pod)"
[ "$(rejected pb 8080)" = 0 ] || xmt_fail "the PERMISSIVE pod has rejections"
out=$(xmt_xmesh maps xm_mtls_rejected --bpffs "$XMT_PIN-b")
grep -q "address=$SA port=8080 family=4 syns=3 fragments=0" <<<"$out" || xmt_fail "xm_mtls_rejected: $out"

XMT_SUBTEST="mode changes"
config PERMISSIVE
ms=$(xmp_wait_ext "$SA:8080" accepted)
xmt_note "STRICT -> PERMISSIVE applied in ${ms} ms"
[ "$ms" -le 1000 ] || xmt_fail "PERMISSIVE took ${ms} ms, want <= 1000"
config STRICT
ms=$(xmp_wait_ext "$SA:8080" refused)
xmt_note "PERMISSIVE -> STRICT applied in ${ms} ms"
[ "$ms" -le 1000 ] || xmt_fail "STRICT took ${ms} ms, want <= 1000"

xmt_pass "STRICT refused and counted, PERMISSIVE accepted, the node's own connections accepted, same-node mesh pod accepted, mode changes applied"
