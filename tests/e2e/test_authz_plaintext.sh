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
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"

SA=10.200.2.11
PB=10.200.2.12

xmx_two_nodes
ip -n "${XMT_P}ext" route add 10.200.2.0/24 via 10.199.0.2
xmx_tx_csum_off ext eth0
xmx_pod nodeb sa "$SA" 10.200.2.1
xmx_pod nodeb pb "$PB" 10.200.2.1
xmx_pod nodeb pc 10.200.2.13 10.200.2.1
xmx_pod nodeb pd 10.200.2.14 10.200.2.1
# pb serves 8081 too: the port its DENY does not name.
xmt_bg srv-pb-8081 pb plain "$XM_SERVER" --id pb --port 8081
xmt_wait_for "$(xmt_bg_log srv-pb-8081)" ' ready$' 5 "${XMT_BG[srv-pb-8081]}" ||
	xmt_fail "xm-server on pb:8081 did not start: $(cat "$(xmt_bg_log srv-pb-8081)")"

pod_yaml() { # NAME IP APP SERVICEACCOUNT
	printf '%s\n' "---" "apiVersion: v1" "kind: Pod" "metadata:" "  name: $1" "  namespace: default" "  labels:" \
		"    app: $3" "spec:" "  nodeName: nodeb" "  serviceAccountName: $4" "status:" "  podIP: $2"
}

# config [allow]: the pods, a DENY of the external host to pb:8080, and with "allow" an ALLOW of sa's port to
# the service account "client" only.
config() {
	{
		pod_yaml sa "$SA" sa server
		pod_yaml pb "$PB" pb server
		pod_yaml pc 10.200.2.13 pc client
		pod_yaml pd 10.200.2.14 pd other
		printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: AuthorizationPolicy" "metadata:" \
			"  name: deny-ext" "  namespace: default" "spec:" "  selector:" "    matchLabels:" "      app: pb" \
			"  action: DENY" "  rules:" "  - from:" "    - source:" "        ipBlocks: [\"10.199.0.100/32\"]" \
			"    to:" "    - operation:" "        ports: [\"8080\"]"
		if [ "${1:-}" = allow ]; then
			printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: AuthorizationPolicy" "metadata:" \
				"  name: only-client" "  namespace: default" "spec:" "  selector:" "    matchLabels:" \
				"      app: sa" "  action: ALLOW" "  rules:" "  - from:" "    - source:" \
				"        principals: [\"cluster.local/ns/default/sa/client\"]"
		fi
	} | xmt_config_write authz.yaml
}

# refused NS ADDR:PORT: one plaintext connect from NS is refused by a reset (ECONNREFUSED, not a timeout).
refused() {
	local out
	out=$(xmt_nsrun "$1" "$XM_CLIENT" refuse --addr "$2" --timeout-ms 2000 2>&1) ||
		xmt_fail "$1 -> $2 was not refused: $out"
}

# accepted NS ADDR:PORT: three plaintext connections from NS reach the server.
accepted() {
	local out
	out=$(xmt_nsrun "$1" "$XM_CLIENT" spread --addr "$2" -n 3 --timeout-ms 2000 2>&1) ||
		xmt_fail "$1 -> $2 was not accepted: $out"
}

scrape() { xmt_nsrun nodeb curl -sS --max-time 10 http://127.0.0.1:15090/metrics; }

# denied POD PORT POLICY: xmesh_authz_plaintext_denied_total of the series (0 when absent).
denied() {
	scrape | awk -v s="xmesh_authz_plaintext_denied_total{namespace=\"default\",pod=\"$1\",port=\"$2\",policy=\"$3\"}" \
		'$1 == s { v = $2 } END { print v + 0 }'
}

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
refused ext "$SA:8080"
refused ext "$SA:8080"
refused pd "$SA:8080"
accepted pc "$SA:8080"
XMT_SUBTEST="the node's own connections pass (host traffic, kubelet probes)"
accepted nodeb "$SA:8080"

XMT_SUBTEST="DENY by ipBlocks and port"
refused ext "$PB:8080"
accepted ext "$PB:8081"
accepted pc "$PB:8080"

XMT_SUBTEST="metrics"
n=$(denied sa 8080 allow-not-matched)
[ "$n" = 3 ] || xmt_fail "denied{pod=sa,port=8080,policy=allow-not-matched} is $n, want 3 (2 external, 1 from pd)"
n=$(denied pb 8080 default/deny-ext)
[ "$n" = 1 ] || xmt_fail "denied{pod=pb,port=8080,policy=default/deny-ext} is $n, want 1"
out=$(scrape | grep '^xmesh_plaintext_rejected_total' || true)
[ -z "$out" ] || xmt_fail "authz denials counted as STRICT rejections: $out"

XMT_SUBTEST="policy removed"
config
start=$(date +%s%3N)
while :; do
	out=$(xmt_nsrun ext "$XM_CLIENT" refuse --addr "$SA:8080" --timeout-ms 500 2>&1) || true
	now=$(date +%s%3N)
	[[ "$out" == *result=connected* ]] && break
	[ $((now - start)) -lt 3000 ] || xmt_fail "$SA:8080 still refused $((now - start)) ms after the ALLOW went: $out"
	sleep 0.05
done
xmt_note "ALLOW removed: the external host accepted after $((now - start)) ms"
[ $((now - start)) -le 1000 ] || xmt_fail "the change took $((now - start)) ms, want <= 1000"
refused ext "$PB:8080"

xmt_pass "plaintext judged by AuthorizationPolicy in the kernel: ALLOW by principal, DENY by ipBlocks, same-node identity, node exempt, counted, changes applied"
