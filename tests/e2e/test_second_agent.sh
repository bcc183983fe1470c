#!/usr/bin/env bash
# A second agent started on the same --bpffs and --admin (with another config) exits non-zero at once,
# naming the running agent's PID, and touches nothing of it: the first agent still answers `xmesh status`,
# its admin socket file is still there, the VIP still reaches only the first agent's backend, and a
# connection held across the second start keeps working. `xmesh cleanup` refuses while the first runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 2 1
xmt_config_std b1
xmt_agent_start
first_log=$XMT_AGENT_LOG
out="$XMT_TMP/out"
# timeout(1) -> nsenter, which execs xmesh: the agent is the wrapper's child.
agent_pid=$(awk '{ print $1 }' "/proc/$XMT_AGENT_PID/task/$XMT_AGENT_PID/children")
[ -n "$agent_pid" ] || xmt_fail "cannot find the agent's PID under its wrapper $XMT_AGENT_PID"

hold_log=$(xmt_bg_log hold)
xmt_bg hold c1 mesh "$XM_CLIENT" hold --addr "$XMT_VIP:$XMT_PORT" -k 2 --ping-ms 100 --duration-ms 8000
xmt_wait_for "$hold_log" '^holding' 10 "${XMT_BG[hold]}" || xmt_fail "hold did not start: $(cat "$hold_log")"

XMT_SUBTEST="second agent"
# Its config would send the VIP to b2 only: written into the live maps, it would move new connections.
mkdir "$XMT_TMP/config2"
xmt_config_std --out "$XMT_TMP/config2/reviews.yaml" b2
second_log="$XMT_TMP/agent-second.log"
rc=0
timeout -k 5 30 nsenter --net="/run/netns/$XMT_NODE" -- \
	"$XMESH" agent --config "$XMT_TMP/config2" --cgroup "$XMT_CG" --bpffs "$XMT_PIN" --node "$XMT_NODE_NAME" \
	--metrics 127.0.0.1:15090 --admin "$XMT_ADMIN" >"$second_log" 2>&1 || rc=$?

XMT_SUBTEST="first agent after the second"
xmt_agent_alive || xmt_fail "the first agent died"
[ -S "$XMT_ADMIN" ] || xmt_fail "the admin socket $XMT_ADMIN is gone"
xmt_xmesh status --admin "$XMT_ADMIN" >"$out" 2>&1 || xmt_fail "xmesh status failed: $(head -n 5 "$out")"
grep -qF "$(xmt_pod_ip b1)" "$out" || xmt_fail "status does not show b1: $(head -c 600 "$out")"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
xmt_assert_spread "$out" 20 100 100 b1
xmt_bg_stop hold || xmt_fail "held connections broke: $(tail -n 3 "$hold_log")"
grep -q "error" "$first_log" && xmt_fail "the first agent logged an error: $(grep error "$first_log" | head -n 3)"

XMT_SUBTEST="second agent's exit"
[ "$rc" != 0 ] || xmt_fail "the second agent exited 0: $(tail -n 5 "$second_log")"
[ "$rc" != 124 ] || xmt_fail "the second agent kept running: $(tail -n 5 "$second_log")"
grep -q "another agent (pid $agent_pid) runs on $XMT_PIN" "$second_log" ||
	xmt_fail "the second agent (exit $rc) did not name the running one (pid $agent_pid): $(tail -n 5 "$second_log")"
! grep -q '\<ready\>' "$second_log" || xmt_fail "the second agent printed ready: $(cat "$second_log")"

XMT_SUBTEST="cleanup while the agent runs"
rc=0
xmt_xmesh cleanup --bpffs "$XMT_PIN" --cgroup "$XMT_CG" >"$out" 2>&1 || rc=$?
[ "$rc" = 1 ] || xmt_fail "xmesh cleanup exited $rc while an agent runs, expected 1: $(cat "$out")"
grep -q "an agent (pid $agent_pid) runs on $XMT_PIN" "$out" || xmt_fail "cleanup did not name the agent: $(cat "$out")"
[ -e "$XMT_PIN/xm_services" ] || xmt_fail "cleanup removed pins while refusing"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 10 || true
xmt_assert_spread "$out" 10 100 100 b1
XMT_SUBTEST=""
xmt_pass "a second agent exits naming the first (pid $agent_pid); the first serves on"
