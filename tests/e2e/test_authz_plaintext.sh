#!/usr/bin/env bash
# AuthorizationPolicy for plaintext connections, enforced in the kernel (bpf/peer_auth.bpf.c at TC egress of
# the pods' veths, table xm_authz_plain compiled by the agent): under PERMISSIVE, a client without a peer
# identity is judged as ztunnel's inbound passthrough judges it. An ALLOW policy by principal refuses the
# external host (a reset) and a same-node mesh pod of another service account, and accepts the same-node
# pod whose identity it names; a DENY by ipBlocks refuses the external host on its port only; the node's own
# connections pass (host traffic, kubelet probes); counted per pod, port and policy; a policy removed applies
# within 1 s.
#
# The two-node topology (xdp_lib.sh), the agent on node B only:
#               l2: br0
#        a0 │            b0 │               e0 │
#   nodea up0 10.199.0.1   nodeb up0 10.199.0.2   ext eth0 10.199.0.100 (10.200.2.0/24 via 10.199.0.2)
#                          br0 10.200.2.1 ── sa .11 (app=sa), pb .12 (app=pb), pc .13 (sa client), pd .14 (sa other)
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

xmp_two_nodes_ext
xmp_nodeb_pods sa="$SA" pb="$PB" pc=10.200.2.13 pd=10.200.2.14
# pb serves 8081 too: the port its DENY does not name.
xmt_bg srv-pb-8081 pb plain "$XM_SERVER" --id pb --port 8081
xmt_wait_for "$(xmt_bg_log srv-pb-8081)" ' ready$' 5 "${XMT_BG[srv-pb-8081]}" ||
	xmt_fail "xm-server on pb:8081 did not start: $(cat "$(xmt_bg_log srv-pb-8081)")"

# config [allow]: the pods, a DENY of the external host to pb:8080, and with "allow" an ALLOW of sa's port to
# the service account "client" only.
config() {
	{
		xmx_yaml_pod sa "$SA" nodeb server
		xmx_yaml_pod pb "$PB" nodeb server
		xmx_yaml_pod pc 10.200.2.13 nodeb client
		xmx_yaml_pod pd 10.200.2.14 nodeb other
		xmp_policy deny-ext pb DENY 'ipBlocks: ["10.199.0.100/32"]' 8080
		[ "${1:-}" != allow ] || xmp_policy only-client sa ALLOW 'principals: ["cluster.local/ns/default/sa/client"]'
	} | xmt_config_write authz.yaml
}

# denied POD PORT POLICY: xmesh_authz_plaintext_denied_total of the series (0 when absent).
denied() { xmx_metric nodeb "xmesh_authz_plaintext_denied_total{namespace=\"default\",pod=\"$1\",port=\"$2\",policy=\"$3\"}"; }

config allow
xmx_agent b nodeb nodeb up0

XMT_SUBTEST="xmesh maps and status"
out=$(xmt_xmesh maps xm_authz_plain --bpffs "$XMT_PIN-b")
grep "pod=$SA port=0 family=4 client=0.0.0.0/0 deny=true" <<<"$out" >/dev/null ||
	xmt_fail "xm_authz_plain lacks sa's entry denying clients without identity: $out"
grep "pod=$SA port=0 family=4 client=10.200.2.13/32 deny=true policy=0 deny_local=false" <<<"$out" >/dev/null ||
	xmt_fail "xm_authz_plain lacks pc's entry (allowed by its identity from its veth): $out"
out=$(xmx_status b)
grep "AuthorizationPolicy entries for plaintext, TC egress on 4 veth(s)" <<<"$out" >/dev/null ||
	xmt_fail "status: $(grep -i peerauth <<<"$out")"

XMT_SUBTEST="ALLOW by principal"
xmp_refused ext "$SA:8080"
xmp_refused ext "$SA:8080"
xmp_refused pd "$SA:8080"
xmp_accepted pc "$SA:8080"
XMT_SUBTEST="the node's own connections pass (host traffic, kubelet probes)"
xmp_accepted nodeb "$SA:8080"

XMT_SUBTEST="DENY by ipBlocks and port"
xmp_refused ext "$PB:8080"
xmp_accepted ext "$PB:8081"
xmp_accepted pc "$PB:8080"

XMT_SUBTEST="metrics"
n=$(denied sa 8080 allow-not-matched)
[ "$n" = 3 ] || xmt_fail "denied{pod=sa,port=8080,policy=allow-not-matched} is $n, want 3 (2 external, 1 from pd)"
n=$(denied pb 8080 default/deny-ext)
[ "$n" = 1 ] || xmt_fail "denied{pod=pb,port=8080,policy=default/deny-ext} is $n, want 1"
out=$(xmx_scrape nodeb | grep '^xmesh_plaintext_rejected_total' || true)
[ -z "$out" ] || xmt_fail "authz denials counted as STRICT rejections: $out"

XMT_SUBTEST="policy removed"
config
ms=$(xmp_wait_ext "$SA:8080" accepted)
xmt_note "ALLOW removed: the external host accepted after $ms ms"
[ "$ms" -le 1000 ] || xmt_fail "the change took $ms ms, want <= 1000"
xmp_refused ext "$PB:8080"

xmt_pass "plaintext judged by AuthorizationPolicy in the kernel: ALLOW by principal, DENY by ipBlocks, same-node identity, node exempt, counted, changes applied"
