#!/usr/bin/env bash
# maxEjectionPercent caps ejections: 4 backends, 3 die, maxEjectionPercent 50 → exactly 2 ejected, and
# connections keep reaching the survivor plus the one dead backend the cap keeps in rotation.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/outlier_lib.sh"
xmt_init "$@"
xmt_topology 4 1
xmt_outlier_config 2 30s 50 b1 b2 b3 b4
xmt_agent_start
out="$XMT_TMP/out"
for b in b2 b3 b4; do xmt_bg_stop "srv-$b" || true; done
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 100 || true
n=$(xmt_ejected_count)
[ "$n" = 2 ] || xmt_fail "$n endpoints ejected, want exactly 2 (maxEjectionPercent 50 of 4)"
ok=$(xmt_field "$out" ok)
((ok > 0)) || xmt_fail "no connection succeeded"
xmt_note "3 of 4 dead, maxEjectionPercent 50: $n ejected; $ok of 100 connects succeeded"
xmt_pass "ejection cap"
