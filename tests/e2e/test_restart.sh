#!/usr/bin/env bash
# SIGTERM leaves the datapath in place and a restarted agent adopts it: 5 established connections are pinged
# every 100 ms and a client connects to the VIP every 10 ms, through stop, 1.5 s without agent, and restart;
# not one ping or connect may fail. The restarted agent attaches nothing twice and applies config changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 1
xmt_config_std b1 b2 b3
xmt_agent_start
progs_before=$(xmt_cg_progs | sort | paste -sd ' ')
[ -n "$progs_before" ] || xmt_fail "no programs attached to $XMT_CG after the agent's ready"

hold_log=$(xmt_bg_log hold)
loop_log=$(xmt_bg_log loop)
xmt_bg hold c1 mesh "$XM_CLIENT" hold --addr "$XMT_VIP:$XMT_PORT" -k 5 --ping-ms 100 --duration-ms 60000
xmt_wait_for "$hold_log" '^holding' 10 "${XMT_BG[hold]}" || xmt_fail "hold did not start: $(cat "$hold_log")"
xmt_bg loop c1 mesh "$XM_CLIENT" spread --addr "$XMT_VIP:$XMT_PORT" -n 1000000 --interval-ms 10 \
	--duration-ms 6000 --trace
sleep 1

XMT_SUBTEST="stop"
t_stop=$(date +%s%3N)
rc=0
xmt_agent_stop || rc=$?
[ "$rc" = 0 ] || xmt_fail "the agent exited with status $rc on SIGTERM, expected 0"
sleep 1.5
progs_down=$(xmt_cg_progs | sort | paste -sd ' ')
[ "$progs_down" = "$progs_before" ] ||
	xmt_fail "programs attached while the agent is down: '$progs_down', before: '$progs_before'"

XMT_SUBTEST="restart"
t_start=$(date +%s%3N)
xmt_agent_start
t_ready=$(date +%s%3N)
progs_after=$(xmt_cg_progs | sort | paste -sd ' ')
[ "$progs_after" = "$progs_before" ] ||
	xmt_fail "programs attached after the restart: '$progs_after', before: '$progs_before' (attached twice?)"

XMT_SUBTEST="connect loop"
rc=0
xmt_wait_for "$loop_log" '^total=' 15 "${XMT_BG[loop]}" || rc=$?
[ "$rc" = 0 ] || xmt_fail "the connect loop did not finish: $(tail -n 3 "$loop_log")"
errors=$(xmt_field "$loop_log" errors)
[ "$errors" = 0 ] || xmt_fail "$errors connects to the VIP failed around the restart:" \
	"$(grep -m 3 '^conn .* !' "$loop_log" | tr '\n' ' ') (stop at $t_stop, start at $t_start)"
[ "$(xmt_field "$loop_log" getpeername_mismatch)" = 0 ] ||
	xmt_fail "getpeername() was not the VIP: $(tail -n 1 "$loop_log")"
down=$(awk -v a="$t_stop" -v b="$t_start" '$1 == "conn" && $2 > a && $2 < b { n++ } END { print n + 0 }' "$loop_log")
[ "$down" -gt 0 ] || xmt_fail "no connects happened while the agent was down"

XMT_SUBTEST="held connections"
xmt_bg_stop hold || xmt_fail "held connections broke: $(tail -n 3 "$hold_log")"
pings=$(xmt_field "$hold_log" pings)

XMT_SUBTEST="config change after restart"
xmt_config_std b1 b2
xmt_settle
out="$XMT_TMP/out"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 60 || true
xmt_assert_spread "$out" 60 20 80 b1 b2
XMT_SUBTEST=""
xmt_note "$(xmt_field "$loop_log" total) connects ($down while the agent was down), $pings pings, 0 failures;" \
	"restart to ready $((t_ready - t_start)) ms"
xmt_pass "connections and the VIP survive an agent restart"
