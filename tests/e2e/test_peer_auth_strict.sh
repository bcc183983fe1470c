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
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"

SA=10.200.2.11
PB=10.200.2.12
MARK=$((0x584d0015)) # XM_MTLS_AGENT_MARK (include/xmesh/mtls.h)

xmx_two_nodes
ip -n "${XMT_P}ext" route add 10.200.2.0/24 via 10.199.0.2
# Node A gets a pod of its own: a mesh pod of another node, whose plaintext must take the tunnel.
ip -n "${XMT_P}nodea" link add br0 type bridge
ip -n "${XMT_P}nodea" addr add 10.200.1.1/24 dev br0
ip -n "${XMT_P}nodea" link set br0 up
ip -n "${XMT_P}nodea" route add 10.200.2.0/24 via 10.199.0.2
ip -n "${XMT_P}nodeb" route add 10.200.1.0/24 via 10.199.0.1
# The external host's frames cross a "wire": full checksums (node A's pod's SYNs cross veths only and keep CHECKSUM_PARTIAL, so
# both kinds of reset are exercised).
xmx_tx_csum_off ext eth0
xmx_pod nodeb sa "$SA" 10.200.2.1
xmx_pod nodeb pb "$PB" 10.200.2.1
xmx_pod nodeb pc 10.200.2.13 10.200.2.1
xmx_pod nodea pa 10.200.1.11 10.200.1.1

pod_yaml() { # NAME IP APP
	printf '%s\n' "---" "apiVersion: v1" "kind: Pod" "metadata:" "  name: $1" "  namespace: default" "  labels:" \
		"    app: $3" "spec:" "  nodeName: nodeb" "status:" "  podIP: $2"
}

# config MODE: the mesh-wide policy PERMISSIVE, pod sa's workload policy MODE.
config() {
	{
		pod_yaml sa "$SA" sa
		pod_yaml pb "$PB" pb
		pod_yaml pc 10.200.2.13 pc
		pod_yaml pa 10.200.1.11 pa | sed 's/nodeName: nodeb/nodeName: nodea/'
		printf '%s\n' "---" "apiVersion: security.istio.io/v1beta1" "kind: PeerAuthentication" "metadata:" \
			"  name: default" "  namespace: istio-system" "spec:" "  mtls:" "    mode: PERMISSIVE"
		printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: PeerAuthentication" "metadata:" \
			"  name: sa-strict" "  namespace: default" "spec:" "  selector:" "    matchLabels:" "      app: sa" \
			"  mtls:" "    mode: $1"
	} | xmt_config_write peer-auth.yaml
}

# refused NS ADDR: one plaintext connect from NS is refused by a reset (ECONNREFUSED, not a timeout).
refused() {
	local out
	out=$(xmt_nsrun "$1" "$XM_CLIENT" refuse --addr "$2:8080" --timeout-ms 2000 2>&1) ||
		xmt_fail "$1 -> $2:8080 was not refused: $out"
	xmt_log "$1 -> $2:8080: $out"
}

# accepted NS ADDR: three plaintext connections from NS reach the server.
accepted() {
	local out
	out=$(xmt_nsrun "$1" "$XM_CLIENT" spread --addr "$2:8080" -n 3 --timeout-ms 2000 2>&1) ||
		xmt_fail "$1 -> $2:8080 was not accepted: $out"
}

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

scrape() { xmt_nsrun nodeb curl -sS --max-time 10 http://127.0.0.1:15090/metrics; }

# rejected POD PORT: the value of xmesh_plaintext_rejected_total for the pod's port (0 when absent).
rejected() {
	scrape | awk -v s="xmesh_plaintext_rejected_total{pod=\"$1\",namespace=\"default\",port=\"$2\"}" \
		'$1 == s { v = $2 } END { print v + 0 }'
}

# wait_mode ADDR refused|accepted: polls the external host's connect every 50 ms; prints the milliseconds.
wait_mode() {
	local start now out rc
	start=$(date +%s%3N)
	while :; do
		rc=0
		out=$(xmt_nsrun ext "$XM_CLIENT" refuse --addr "$1:8080" --timeout-ms 500 2>&1) || rc=$?
		now=$(date +%s%3N)
		if { [ "$2" = refused ] && [ "$rc" = 0 ]; } || { [ "$2" = accepted ] && [[ "$out" == *result=connected* ]]; }; then
			echo $((now - start))
			return 0
		fi
		[ $((now - start)) -lt 3000 ] || xmt_fail "$1:8080 still not $2 after $((now - start)) ms: $out"
		sleep 0.05
	done
}

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
ms=$(wait_mode "$SA" accepted)
xmt_note "STRICT -> PERMISSIVE applied in ${ms} ms"
[ "$ms" -le 1000 ] || xmt_fail "PERMISSIVE took ${ms} ms, want <= 1000"
config STRICT
ms=$(wait_mode "$SA" refused)
xmt_note "PERMISSIVE -> STRICT applied in ${ms} ms"
[ "$ms" -le 1000 ] || xmt_fail "STRICT took ${ms} ms, want <= 1000"

xmt_pass "STRICT refused and counted, PERMISSIVE accepted, the node's own connections accepted, same-node mesh pod accepted, mode changes applied"
