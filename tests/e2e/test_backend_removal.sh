#!/usr/bin/env bash
# Removing a backend from the YAML (atomic rewrite: temp file + mv) takes effect within 1 s, and adding it
# back too: a client connects every 5 ms throughout, timestamping which backend each connect reached.
# After the rename plus 1 s no connect reaches the removed backend, and no connect fails at any time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 1
xmt_config_std --lb ROUND_ROBIN b1 b2 b3
xmt_agent_start

trace=$(xmt_bg_log trace)
xmt_bg trace c1 mesh "$XM_CLIENT" spread --addr "$XMT_VIP:$XMT_PORT" -n 1000000 --interval-ms 5 \
	--duration-ms 7000 --trace
sleep 1.5

# The new files are complete before the clock starts; only the renames are timed.
stage="$XMT_TMP/reviews.yaml"
xmt_config_std --out "$stage.without-b3" --lb ROUND_ROBIN b1 b2
xmt_config_std --out "$stage.with-b3" --lb ROUND_ROBIN b1 b2 b3

t_rm=$(date +%s%3N)
mv "$stage.without-b3" "$XMT_CONF/reviews.yaml"
sleep 2.5
t_add=$(date +%s%3N)
mv "$stage.with-b3" "$XMT_CONF/reviews.yaml"
rc=0
xmt_wait_for "$trace" '^total=' 15 "${XMT_BG[trace]}" || rc=$?
[ "$rc" = 0 ] || xmt_fail "the connect loop did not finish: $(tail -n 3 "$trace")"

errors=$(xmt_field "$trace" errors)
[ "$errors" = 0 ] || xmt_fail "$errors connects failed during the changes: $(grep -m 3 '^conn .* !' "$trace" | tr '\n' ' ')"
[ "$(xmt_field "$trace" getpeername_mismatch)" = 0 ] || xmt_fail "getpeername() was not the VIP: $(tail -n 1 "$trace")"

# Timeline of b3 around the two changes.
read -r before last_b3 after_1s first_back <<<"$(awk -v rm="$t_rm" -v add="$t_add" '
	$1 == "conn" && $3 == "b3" && $2 < rm { before++ }
	$1 == "conn" && $3 == "b3" && $2 >= rm && $2 < add { last = $2 - rm; if ($2 >= rm + 1000) late++ }
	$1 == "conn" && $3 == "b3" && $2 >= add && !back { back = $2 - add }
	END { printf "%d %s %d %s\n", before, (last == "" ? "none" : last), late, (back == "" ? "never" : back) }' "$trace")"
[ "$before" -gt 0 ] || xmt_fail "b3 got no connections before its removal (the loop did not run?)"
[ "$after_1s" = 0 ] || xmt_fail "$after_1s connects reached removed b3 more than 1 s after the rename (last at +${last_b3} ms)"
[ "$first_back" != never ] || xmt_fail "b3 got no connections in the 2.5 s after it was added back"
[ "$first_back" -le 1000 ] || xmt_fail "b3 came back only ${first_back} ms after it was added (> 1000 ms)"
xmt_note "removed: last connect to b3 at +${last_b3} ms; re-added: first at +${first_back} ms;" \
	"$(xmt_field "$trace" total) connects, 0 errors"
xmt_pass "backend removal applies within 1 s"
