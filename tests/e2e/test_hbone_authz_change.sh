#!/usr/bin/env bash
# An AuthorizationPolicy change closes the open HBONE streams it denies (ztunnel's PolicyWatcher), and only
# those. Node B's agent (--hbone) serves its STRICT pod sa; an independent client (tests/tools/hbone_streams.py:
# Python ssl + h2) on node A opens one long-lived tunnelled connection as sleep and one as other, both allowed
# by allow-listed (ALLOW principals sleep and other). Then deny-sleep (DENY principals */sa/sleep) is added:
#   sleep's stream is reset (RST_STREAM CONNECT_ERROR) within 2 s of the file's change, and its TCP connection
#     to the pod is gone;
#   other's stream keeps its TCP connection and still echoes 64 KiB byte-exact after that, then ends cleanly;
#   xmesh_authz_closed_total{policy="default/deny-sleep"} is 1, xmesh_authz_denied_total did not move (nothing
#     was refused at CONNECT).
# Topology: test_hbone_authz.sh's.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"
for c in openssl curl ss; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
xmt_require_py_h2
AUTHZ_CLIENTS="sleep other"
extra_policies() { :; }
# shellcheck source=tests/e2e/hbone_authz_lib.sh
. "$(dirname "$0")/hbone_authz_lib.sh"
# TCP connections established to the pod's server (the agent's spliced upstream side).
upstreams() { xmt_nsrun sa ss -Htn state established "( sport = :$XMT_TARGET )" | wc -l; }

XMT_SUBTEST="two long-lived allowed streams"
two_long_streams
n=$(upstreams)
[ "$n" = 2 ] || xmt_fail "upstream connections to sa before the change: $n, want 2"
denied_before=$(denied_total)

XMT_SUBTEST="deny-sleep closes sleep's stream within 2 s"
config with-deny-sleep | xmt_config_write hbone.yaml
sleep_reset change
for _ in $(seq 1 50); do
	[ "$(upstreams)" = 1 ] && break
	sleep 0.1
done
n=$(upstreams)
[ "$n" = 1 ] || xmt_fail "upstream connections to sa after the change: $n, want 1 (other's)"

XMT_SUBTEST="other's stream, still allowed, echoes after the change"
other_echoes change

XMT_SUBTEST="xmesh_authz_closed_total"
closed_by_recheck deny-sleep "$denied_before"

xmt_pass "a policy change resets the open stream it denies ($(grep -oE 'after [0-9.]+ s' "$XMT_TMP/sleep.out" | head -n 1)) and its upstream TCP connection, the allowed one echoes on"
