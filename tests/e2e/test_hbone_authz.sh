#!/usr/bin/env bash
# AuthorizationPolicy in the HBONE server (agent --hbone): node B's agent checks each CONNECT to its STRICT pod
# sa (label app: sa) against the policies, with an independent client (tests/tools/hbone_streams.py: Python ssl +
# h2) on node A holding certificates of the agent's root for three service accounts: sleep, other, stranger.
#   allow-listed (ALLOW, selector app: sa): principals sleep and other
#   deny-other   (DENY, namespace default):  principals */sa/other; and port 9999 for anyone
# sleep gets 200; other 401 though an ALLOW lists it (DENY first); stranger 401 (no ALLOW rule matches); on one
# TLS connection of sleep, a stream to port 9999 gets 401 while the open stream to 8080 keeps echoing; then
# deny-sleep is added and a new stream on the same connection gets 401 within 1 s of the file's change, while
# the open stream to 8080, now denied, is reset (RST_STREAM CONNECT_ERROR) within 2 s.
# xmesh_authz_denied_total counts each denial by pod and policy, xmesh_authz_closed_total the reset stream.
# Topology: test_hbone_server.sh's.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"
for c in openssl curl; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
xmt_require_py_h2
AUTHZ_CLIENTS="sleep other stranger"
extra_policies() {
	ap deny-other DENY "  rules:" "  - from:" "    - source:" "        principals: ['*/sa/other']" \
		"  - to:" "    - operation:" "        ports: ['9999']"
}
# shellcheck source=tests/e2e/hbone_authz_lib.sh
. "$(dirname "$0")/hbone_authz_lib.sh"
denied() { xmx_metric nodeb "xmesh_authz_denied_total{namespace=\"default\",pod=\"sa\",policy=\"$1\"}"; }

XMT_SUBTEST="200: an allowed principal"
out=$(streams sleep "open:a:$SA:8080:200" "echo:a:65536" "close:a") || xmt_fail "sleep: $out"

XMT_SUBTEST="401: DENY before a matching ALLOW"
out=$(streams other "open:a:$SA:8080:401") || xmt_fail "other: $out"

XMT_SUBTEST="401: no ALLOW rule matches"
out=$(streams stranger "open:a:$SA:8080:401") || xmt_fail "stranger: $out"

XMT_SUBTEST="a denied stream leaves the other streams of its TLS connection alone; a policy change within 1 s"
rm -f "$XMT_TMP/changed"
streams sleep "open:a:$SA:8080:200" "echo:a:4096" "open:b:$SA:9999:401" "echo:a:4096" "open:c:$SA:8080:200" \
	"echo:c:1024" "close:c" "wait:$XMT_TMP/changed" "until:d:$SA:8080:401:1.0" "reset:a:0xa:2.0" \
	>"$XMT_TMP/streams.out" 2>&1 &
spid=$!
xmt_wait_for "$XMT_TMP/streams.out" '^close c: ended' 10 "$spid" || {
	kill "$spid" 2>/dev/null
	xmt_fail "before the change: $(cat "$XMT_TMP/streams.out")"
}
config with-deny-sleep | xmt_config_write hbone.yaml
touch "$XMT_TMP/changed"
wait "$spid" || xmt_fail "one TLS connection of sleep: $(cat "$XMT_TMP/streams.out")"
xmt_log "$(grep -E '^(until|reset)' "$XMT_TMP/streams.out")"

XMT_SUBTEST="xmesh_authz_denied_total"
[ "$(denied default/deny-other)" = 2 ] || xmt_fail "deny-other denials: $(denied default/deny-other), want 2 (other, port 9999)"
[ "$(denied allow-not-matched)" = 1 ] || xmt_fail "allow-not-matched denials: $(denied allow-not-matched), want 1"
[ "$(denied default/deny-sleep)" = 1 ] || xmt_fail "deny-sleep denials: $(denied default/deny-sleep), want 1"
# Stream a, and any stream of `until` that got its 200 just before the change and was still ending when the
# re-check ran (test_hbone_authz_change.sh counts exactly).
closed=$(xmx_metric nodeb 'xmesh_authz_closed_total{namespace="default",pod="sa",policy="default/deny-sleep"}')
[ "$closed" -ge 1 ] || xmt_fail "streams closed by deny-sleep: $closed, want at least 1 (stream a)"
dn=$(xmx_metric nodeb 'xmesh_hbone_streams_refused_total{reason="denied"}')
[ "$dn" = 4 ] || xmt_fail "streams refused denied: $dn, want 4"
grep -q "AuthorizationPolicy denied spiffe://cluster.local/ns/default/sa/other to default/sa port 8080" "$XMT_AGENT_LOG" ||
	xmt_fail "no log line of the first denial: $(grep -i authorization "$XMT_AGENT_LOG" | head -n 5)"

xmt_pass "AuthorizationPolicy on HBONE: 200 allowed, 401 for DENY (before ALLOW) and for no matching ALLOW, a denied stream beside a live one, a change applied within $(grep -oE 'after [0-9.]+ s' "$XMT_TMP/streams.out" | head -n 1 | cut -d" " -f2) s"
