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
denied_before=$(denied_total)

XMT_SUBTEST="sa labelled locked: sleep's stream reset within 2 s"
SA_LABEL='locked: "yes"' config | xmt_config_write hbone.yaml
grep -q '^    locked: "yes"$' "$XMT_CONF/hbone.yaml" || xmt_fail "sa not relabelled: $(cat "$XMT_CONF/hbone.yaml")"
sleep_reset relabel

XMT_SUBTEST="other's stream, still allowed, echoes after the relabel"
other_echoes relabel

XMT_SUBTEST="xmesh_authz_closed_total"
closed_by_recheck deny-locked "$denied_before"

xmt_pass "a label change under the same policies resets the open stream they now deny ($(grep -oE 'after [0-9.]+ s' "$XMT_TMP/sleep.out" | head -n 1)), the allowed one echoes on"
