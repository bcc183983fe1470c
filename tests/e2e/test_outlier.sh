#!/usr/bin/env bash
# Outlier ejection in the kernel: one of 3 backends dies. With consecutive5xxErrors 3, at most 3 connects
# fail (refused SYNs seen by sockops), then none of the next 300; the agent logs the ejection and status
# shows it. The backend comes back: after baseEjectionTime the agent's sweep ends the ejection (no traffic
# needed) and it receives connections again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/outlier_lib.sh"
xmt_init "$@"
xmt_topology 3 1
xmt_outlier_config 3 2s 10 b1 b2 b3
xmt_agent_start
out="$XMT_TMP/out"

XMT_SUBTEST="all healthy"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 30 || true
xmt_assert_spread "$out" 30 30 37 b1 b2 b3

XMT_SUBTEST="b3 killed"
xmt_bg_stop "srv-b3" || true
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 30 || true
failed=$(xmt_field "$out" errors)
[ -n "$failed" ] || xmt_fail "no summary: $(cat "$out.err" "$out")"
((failed <= 3)) || xmt_fail "$failed connects failed before the dead backend was ejected; threshold is 3"
((failed >= 1)) || xmt_fail "no connect reached the dead backend (spread: $(xmt_ids "$out"))"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 300 || true
xmt_assert_spread "$out" 300 40 60 b1 b2
grep -q 'outlier: ejected' "$XMT_AGENT_LOG" || xmt_fail "the agent logged no ejection: $(tail -n 5 "$XMT_AGENT_LOG")"
[ "$(xmt_ejected_count)" = 1 ] || xmt_fail "status shows $(xmt_ejected_count) ejected endpoints, want 1"
xmt_xmesh status --admin "$XMT_ADMIN" | grep 'EJECTED' >/dev/null || xmt_fail "xmesh status does not show the ejection"

XMT_SUBTEST="b3 back"
xmt_server b3
sleep 2.8 # baseEjectionTime 2s (first ejection), plus the agent's 500 ms sweep
# No connection has selected it since: the agent's sweep ended the ejection on its own.
grep -q 'outlier: .* returned' "$XMT_AGENT_LOG" || xmt_fail "the agent logged no return without traffic"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 300 || true
xmt_assert_spread "$out" 300 25 42 b1 b2 b3
XMT_SUBTEST=""
xmt_note "dead backend cost $failed failed connects (threshold 3); back after 2 s: $(xmt_ids "$out")"
xmt_pass "outlier ejection and return"
