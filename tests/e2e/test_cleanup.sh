#!/usr/bin/env bash
# Inspection and removal. While the agent runs: every contract map is pinned under --bpffs, links under
# links/, and `bpftool map dump pinned DIR/xm_backends` prints named fields (BTF). After SIGTERM the
# programs stay attached; `xmesh cleanup --bpffs DIR --cgroup DIR` then removes pins and links, the child
# cgroup has no program left (bpftool cgroup tree), and the VIP is no longer translated. A second cleanup
# finds nothing: it exits 1 and says so.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 1 1
xmt_config_std b1
xmt_agent_start
out="$XMT_TMP/out"

XMT_SUBTEST="pins"
for m in xm_services xm_backends xm_slots xm_backend_conns xm_maglev xm_sock_state xm_udp_revnat xm_sock_stats; do
	[ -e "$XMT_PIN/$m" ] || xmt_fail "map $m is not pinned at $XMT_PIN/$m (pinned: $(find "$XMT_PIN" -maxdepth 1 -printf '%f ' 2>/dev/null))"
done
nlinks=$({ find "$XMT_PIN/links" -mindepth 1 2>/dev/null || true; } | wc -l)
[ "$nlinks" -gt 0 ] || xmt_fail "no links pinned under $XMT_PIN/links"

XMT_SUBTEST="BTF"
bpftool map dump pinned "$XMT_PIN/xm_backends" >"$out" 2>&1 || xmt_fail "bpftool map dump failed: $(cat "$out")"
for f in addr port family; do
	grep -q "\"$f\"" "$out" || xmt_fail "bpftool dump of xm_backends has no named field \"$f\": $(head -c 400 "$out")"
done
grep -q '"v4"' "$out" || xmt_fail "xm_backends' address union shows no v4 member: $(head -c 400 "$out")"

XMT_SUBTEST="stop"
progs=$(xmt_cg_progs | sort | paste -sd ' ')
[ -n "$progs" ] || xmt_fail "no programs attached to the child cgroup"
xmt_agent_stop || xmt_fail "the agent exited non-zero on SIGTERM"
[ "$(xmt_cg_progs | sort | paste -sd ' ')" = "$progs" ] || xmt_fail "SIGTERM detached programs"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 10 || xmt_fail "VIP dead without the agent: $(tail -n 1 "$out")"

XMT_SUBTEST="cleanup"
rc=0
xmt_xmesh cleanup --bpffs "$XMT_PIN" --cgroup "$XMT_CG" >"$out" 2>&1 || rc=$?
[ "$rc" = 0 ] || xmt_fail "xmesh cleanup exited $rc: $(cat "$out")"
left=$({ find "$XMT_PIN" -mindepth 1 2>/dev/null || true; } | head -n 5 | paste -sd ' ')
[ -z "$left" ] || xmt_fail "pins left after cleanup: $left"
tree=$({ bpftool cgroup tree "$XMT_CG" 2>&1 || true; } | awk '$1 ~ /^[0-9]+$/' | paste -sd ';')
[ -z "$tree" ] || xmt_fail "programs still attached under $XMT_CG: $tree"
xmt_client c1 "$out" refuse --addr "$XMT_VIP:$XMT_PORT" --timeout-ms 1000 || true
[ "$(xmt_field "$out" result)" = ENETUNREACH ] ||
	xmt_fail "after cleanup a connect to the VIP gave $(xmt_field "$out" result), expected ENETUNREACH (no translation)"

XMT_SUBTEST="cleanup again"
rc=0
xmt_xmesh cleanup --bpffs "$XMT_PIN" --cgroup "$XMT_CG" >"$out" 2>&1 || rc=$?
[ "$rc" = 1 ] || xmt_fail "a second cleanup exited $rc, expected 1 (nothing left to remove): $(cat "$out")"
grep -q "nothing to remove: no xmesh pins under $XMT_PIN" "$out" ||
	xmt_fail "a second cleanup did not say that nothing was there: $(cat "$out")"
XMT_SUBTEST=""
xmt_note "$nlinks links, programs: $progs; second cleanup exit $rc"
xmt_pass "pins with BTF; cleanup removes everything"
