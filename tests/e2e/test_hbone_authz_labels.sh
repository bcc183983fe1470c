#!/usr/bin/env bash
# A pod's label change closes the open HBONE streams that the same AuthorizationPolicies now deny (a selector
# now picks the pod), and only those. Node B's agent (--hbone) serves its STRICT pod sa; an independent client
# (tests/tools/hbone_streams.py: Python ssl + h2) on node A opens one long-lived tunnelled connection as sleep
# and one as other, both allowed by allow-listed (ALLOW principals sleep and other). deny-locked (DENY
# principals */sa/sleep to the pods labelled locked: "yes") picks no pod yet. Then sa is labelled locked: "yes",
# the policies unchanged:
#   sleep's stream is reset (RST_STREAM CONNECT_ERROR) within 2 s of the file's change;
#   other's stream still echoes 64 KiB byte-exact after that, then ends cleanly;
#   xmesh_authz_closed_total{policy="default/deny-locked"} is 1, xmesh_authz_denied_total did not move.
# Topology: test_hbone_authz.sh's.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"
for c in openssl curl; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
xmt_require_py_h2
AUTHZ_CLIENTS="sleep other"
extra_policies() {
	ap deny-locked DENY "  selector:" "    matchLabels:" "      locked: \"yes\"" "  rules:" "  - from:" \
		"    - source:" "        principals: ['*/sa/sleep']"
}
# shellcheck source=tests/e2e/hbone_authz_lib.sh
. "$(dirname "$0")/hbone_authz_lib.sh"

XMT_SUBTEST="two long-lived allowed streams"
two_long_streams
denied_before=$(xmx_scrape nodeb | awk '$1 ~ /^xmesh_authz_denied_total/ { s += $2 } END { print s + 0 }')

XMT_SUBTEST="sa labelled locked: sleep's stream reset within 2 s"
SA_LABEL='locked: "yes"' config | xmt_config_write hbone.yaml
grep -q '^    locked: "yes"$' "$XMT_CONF/hbone.yaml" || xmt_fail "sa not relabelled: $(cat "$XMT_CONF/hbone.yaml")"
touch "$XMT_TMP/changed"
wait "$sleep_pid" || {
	kill "$other_pid" 2>/dev/null
	xmt_fail "sleep's stream after the relabel: $(cat "$XMT_TMP/sleep.out")"
}
xmt_log "$(grep -E '^reset' "$XMT_TMP/sleep.out")"

XMT_SUBTEST="other's stream, still allowed, echoes after the relabel"
touch "$XMT_TMP/after"
wait "$other_pid" || xmt_fail "other's stream after the relabel: $(cat "$XMT_TMP/other.out")"
grep -q '^echo a: 69635 bytes byte-exact' "$XMT_TMP/other.out" || xmt_fail "other: $(cat "$XMT_TMP/other.out")"

XMT_SUBTEST="xmesh_authz_closed_total"
closed=$(xmx_metric nodeb 'xmesh_authz_closed_total{namespace="default",pod="sa",policy="default/deny-locked"}')
[ "$closed" = 1 ] || xmt_fail "streams closed by deny-locked: $closed, want 1"
denied_after=$(xmx_scrape nodeb | awk '$1 ~ /^xmesh_authz_denied_total/ { s += $2 } END { print s + 0 }')
[ "$denied_after" = "$denied_before" ] || xmt_fail "xmesh_authz_denied_total moved: $denied_before -> $denied_after"
grep -q "AuthorizationPolicy re-checked: closed a stream of spiffe://cluster.local/ns/default/sa/sleep to default/sa" \
	"$XMT_AGENT_LOG" || xmt_fail "no log line of the closed stream: $(grep -i authorization "$XMT_AGENT_LOG" | head -n 5)"

xmt_pass "a label change under the same policies resets the open stream they now deny ($(grep -oE 'after [0-9.]+ s' "$XMT_TMP/sleep.out" | head -n 1)), the allowed one echoes on"
