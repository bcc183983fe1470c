#!/usr/bin/env bash
# The test bed itself, without the agent: pods reach each other directly over the node's bridge on both
# families, the tools do what the other tests rely on, mesh commands run inside the child cgroup, and a VIP
# is unreachable without the mesh (the node has no route out). A failure here is the bed's, not the agent's.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
XMT_NEEDS_AGENT=0
xmt_init "$@"
xmt_topology 3 1

out="$XMT_TMP/out"
cg=$(xmt_in_pod c1 grep "^0::" /proc/self/cgroup)
[ "$cg" = "0::/${XMT_CG#"$XMT_CGROOT"/}" ] || xmt_fail "a pod command runs in cgroup '$cg', expected $XMT_CG"

xmt_client c1 "$out" spread --addr "$(xmt_pod_ip b2):$XMT_TARGET" -n 50 ||
	xmt_fail "direct TCP to b2 failed: $(cat "$out" "$out.err")"
xmt_assert_spread "$out" 50 100 100 b2

xmt_client c1 "$out" spread --addr "[$(xmt_pod_ip6 b3)]:$XMT_TARGET" -n 20 ||
	xmt_fail "direct TCP over IPv6 to b3 failed: $(cat "$out" "$out.err")"
xmt_assert_spread "$out" 20 100 100 b3

xmt_client c1 "$out" udp --addr "$(xmt_pod_ip b1):$XMT_TARGET" -n 20 ||
	xmt_fail "direct UDP to b1 failed: $(cat "$out" "$out.err")"
[ "$(xmt_id_count "$out" b1)" = 20 ] || xmt_fail "UDP replies: $(xmt_ids "$out"), expected b1=20"

xmt_client c1 "$out" udp --connect --addr "[$(xmt_pod_ip6 b1)]:$XMT_TARGET" -n 5 ||
	xmt_fail "direct connected UDP over IPv6 failed: $(cat "$out" "$out.err")"

# A closed port answers with a reset: the tool reports ECONNREFUSED, as the refuse test expects of the mesh.
xmt_client c1 "$out" refuse --addr "$(xmt_pod_ip b1):9" || xmt_fail "closed port: $(cat "$out" "$out.err")"
refused_ms=$(xmt_field "$out" elapsed_ms)

# Without the mesh the VIP goes nowhere: no route out of the pod.
xmt_client c1 "$out" refuse --addr "$XMT_VIP:$XMT_PORT" --timeout-ms 1000 || true
[ "$(xmt_field "$out" result)" = ENETUNREACH ] || xmt_fail "VIP without the mesh: $(cat "$out"), expected ENETUNREACH"

# Held connections with pings, ended early by SIGTERM.
xmt_bg hold c1 mesh "$XM_CLIENT" hold --addr "$(xmt_pod_ip b2):$XMT_TARGET" -k 20 --ping-ms 100 --duration-ms 20000
xmt_wait_for "$(xmt_bg_log hold)" '^holding' 10 "${XMT_BG[hold]}" || xmt_fail "hold did not start: $(cat "$(xmt_bg_log hold)")"
sleep 1
xmt_bg_stop hold || xmt_fail "held connections failed: $(cat "$(xmt_bg_log hold)")"
pings=$(xmt_field "$(xmt_bg_log hold)" pings)
if [ "$(xmt_field "$(xmt_bg_log hold)" held)" != 20 ] || [ "$pings" -lt 100 ]; then
	xmt_fail "hold: $(tail -n 1 "$(xmt_bg_log hold)"), expected held=20 and >=100 pings"
fi

xmt_note "refused in ${refused_ms} ms, $pings pings on 20 held connections"
xmt_pass "pods, tools and cgroup work without the agent"
