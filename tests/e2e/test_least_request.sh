#!/usr/bin/env bash
# LEAST_REQUEST (the default) avoids a busy backend. 50 connections are held open to b1 (the only backend at
# first), then b2 and b3 join; of 300 new connections b1, with 50 open against 0, must get clearly fewer
# (<= 20%; power-of-two-choices gives ~11% when both picks may be the same backend, 0% otherwise) and b2, b3
# each >= 30%. Once the held connections close, b1 gets its share again (the counts go down on close).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 1
xmt_config_std --lb LEAST_REQUEST b1
xmt_agent_start

hold_log=$(xmt_bg_log hold)
xmt_bg hold c1 mesh "$XM_CLIENT" hold --addr "$XMT_VIP:$XMT_PORT" -k 50 --ping-ms 200 --duration-ms 60000
xmt_wait_for "$hold_log" '^holding' 20 "${XMT_BG[hold]}" || xmt_fail "hold did not start: $(cat "$hold_log")"
[ "$(xmt_id_count "$hold_log" b1)" = 50 ] ||
	xmt_fail "held connections: $(xmt_ids "$hold_log") $(tail -n 1 "$hold_log"), expected b1=50"

xmt_config_std --lb LEAST_REQUEST b1 b2 b3
xmt_settle
out="$XMT_TMP/out"
XMT_SUBTEST="50 held on b1"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 300 || true
xmt_log "with 50 held on b1: $(xmt_ids "$out")"
xmt_assert_spread "$out" 300 0 100 b1 b2 b3
xmt_assert_spread "$out" 300 0 20 b1
xmt_assert_spread "$out" 300 30 100 b2 b3
busy=$(xmt_ids "$out")

XMT_SUBTEST="held connections"
xmt_bg_stop hold || xmt_fail "held connections broke while the config changed: $(tail -n 3 "$hold_log")"

XMT_SUBTEST="after release"
sleep 0.5
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 300 || true
xmt_assert_spread "$out" 300 20 47 b1 b2 b3
XMT_SUBTEST=""
xmt_note "50 held on b1: $busy; after release: $(xmt_ids "$out")"
xmt_pass "least request avoids the loaded backend"
