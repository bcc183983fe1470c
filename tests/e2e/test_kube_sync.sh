#!/usr/bin/env bash
# shellcheck disable=SC2317 # the check functions are called through kapi_wait_until
# The start's wait for the first lists (--kube-sync-wait) and the security.istio.io kinds watched but not
# enforced yet. RBAC forbids Services at the start, so their first list cannot finish: during the wait the admin
# socket answers — `xmesh status` says the agent is starting and shows each kind's state (Service not synced
# with its 403, AuthorizationPolicy synced with its object, RequestAuthentication not served) —, a reload is
# refused, and nothing is applied. Once Services are allowed the wait ends and the config applies; the
# AuthorizationPolicy is counted and deleted like any object and never fails a build. RequestAuthentication (its
# CRD absent: 404) is logged once, asked for again (--kube-absent-retry 1s), and listed once served. A Service
# from a --config file applies beside the API's. Watches the server ends are reopened at once. SIGTERM during
# the wait stops the agent at once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kube_lib.sh"
xmt_init "$@"
command -v python3 >/dev/null || xmt_skip "python3 not installed"
command -v openssl >/dev/null || xmt_skip "openssl not installed"
xmt_topology 3 1
# Watches end after 1.5 s (the server's cap of timeoutSeconds).
kapi_start --absent requestauthentications --max-watch 1.5

kapi_service reviews "$XMT_VIP" | kapi_put services
kapi_slice reviews b1 b2 b3 | kapi_put endpointslices
printf '{"metadata":{"name":"allow-all","namespace":"default"},"spec":{"action":"ALLOW","rules":[{}]}}\n' |
	kapi_put authorizationpolicies
printf '{"metadata":{"name":"jwt","namespace":"default"},"spec":{"jwtRules":[{"issuer":"https://issuer.example"}]}}\n' |
	kapi_put requestauthentications
kapi_ctl "forbid?resource=services" >/dev/null
# --config beside the API: a Service only in a file.
{
	xmt_yaml_service --name ratings --vip 10.96.7.7
	xmt_yaml_slice --service ratings "$(xmt_pod_ip b1)"
} | xmt_config_write ratings.yaml

# As xmt_agent_start, without waiting for "ready": the start is what is looked at.
start_agent() {
	XMT_AGENT_N=$((XMT_AGENT_N + 1))
	XMT_AGENT_LOG="$XMT_TMP/agent-$XMT_AGENT_N.log"
	timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/$XMT_NODE" -- \
		"$XMESH" agent --config "$XMT_CONF" --cgroup "$XMT_CG" --bpffs "$XMT_PIN" --node "$XMT_NODE_NAME" \
		--metrics 127.0.0.1:15090 --admin "$XMT_ADMIN" --state-dir "$XMT_TMP/agent-state" \
		--kubeconfig "$XMT_TMP/kubeconfig" --kube-sync-wait 25s --kube-backoff-max 300ms --kube-absent-retry 1s \
		>"$XMT_AGENT_LOG" 2>&1 &
	XMT_AGENT_PID=$!
}
start_agent

status_starting() { xmt_xmesh status --admin "$XMT_ADMIN" 2>/dev/null | grep '^agent: starting: waiting for the first lists' >/dev/null; }
kapi_wait_until 10 status_starting ||
	xmt_fail "xmesh status did not answer during the wait for the first lists: $(tail -n 5 "$XMT_AGENT_LOG")"
st="$XMT_TMP/status.txt"
kinds_shown() {
	xmt_xmesh status --admin "$XMT_ADMIN" >"$st" &&
		grep '^  Service .*not synced.*HTTP 403' "$st" >/dev/null &&
		grep '^  AuthorizationPolicy .* synced *objects 1, rejected 0' "$st" >/dev/null &&
		grep '^  RequestAuthentication .*not served' "$st" >/dev/null
}
kapi_wait_until 5 kinds_shown ||
	xmt_fail "status during the wait: Service not unsynced by its 403, AuthorizationPolicy not listed or RequestAuthentication not shown as not served: $(cat "$st")"
[ "$(xmt_xmesh status --admin "$XMT_ADMIN" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["agent"]["state"], d["config"]["generation"])')" = "syncing 0" ] ||
	xmt_fail "status json during the wait: $(xmt_xmesh status --admin "$XMT_ADMIN" --json)"
reload=$(python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"reload\n")
print(s.makefile().read().strip())' "$XMT_ADMIN")
case $reload in
"error: the agent is starting"*) ;;
*) xmt_fail "a reload during the wait answered: $reload" ;;
esac
! grep 'config applied\|\<ready\>' "$XMT_AGENT_LOG" >/dev/null || xmt_fail "a config applied during the wait"

# Services allowed: their list completes, the wait ends, the start's build applies everything.
kapi_ctl forbid >/dev/null
xmt_wait_for "$XMT_AGENT_LOG" '\<ready\>' 10 "$XMT_AGENT_PID" || xmt_fail "no 'ready' after Services were allowed"
grep 'kubernetes: every kind listed' "$XMT_AGENT_LOG" >/dev/null || xmt_fail "the wait did not end on the lists"
out="$XMT_TMP/out"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 300 || true
xmt_assert_spread "$out" 300 20 47 b1 b2 b3
xmt_client c1 "$out" spread --addr "10.96.7.7:$XMT_PORT" -n 20 || true
[ "$(xmt_id_count "$out" b1)" = 20 ] || xmt_fail "the Service from the --config file is not balanced: $(xmt_ids "$out")"
xmt_xmesh status --admin "$XMT_ADMIN" | grep '^agent: ready' >/dev/null || xmt_fail "status still says starting"

# AuthorizationPolicy: cached and counted, never rejected, never in the way of a build.
[ "$(kapi_status_field AuthorizationPolicy objects)" = 1 ] || xmt_fail "status: AuthorizationPolicy objects"
rejected=$(xmt_nsrun node curl -sS --max-time 5 http://127.0.0.1:15090/metrics | awk '$1 == "xmesh_config_rejected_objects" { print $2 }')
[ "$rejected" = 0 ] || xmt_fail "xmesh_config_rejected_objects is '$rejected', expected 0"
kapi_delete authorizationpolicies default allow-all
ap_gone() { [ "$(kapi_status_field AuthorizationPolicy objects)" = 0 ]; }
kapi_wait_until 3 ap_gone || xmt_fail "the deleted AuthorizationPolicy is still counted"
kapi_slice reviews b2 | kapi_put endpointslices
only_b2() {
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
	[ "$(xmt_field "$out" ok)" = 20 ] && [ "$(xmt_id_count "$out" b2)" = 20 ]
}
kapi_wait_until 3 only_b2 || xmt_fail "a change after the AuthorizationPolicy events did not apply: $(xmt_ids "$out")"
! grep 'config rejected' "$XMT_AGENT_LOG" >/dev/null || xmt_fail "a build failed: $(grep -m 1 'config rejected' "$XMT_AGENT_LOG")"

# RequestAuthentication: 404 asked again every second, one log line; served once its CRD is installed.
asked() { [ "$(kapi_stat "404 requestauthentications")" -ge 6 ]; }
kapi_wait_until 8 asked || xmt_fail "RequestAuthentication was not asked for again: $(kapi_stats)"
n=$(grep -c 'requestauthentications.security.istio.io is not served (CRD not installed?)' "$XMT_AGENT_LOG")
[ "$n" = 1 ] || xmt_fail "expected one 'not served' line for RequestAuthentication, got $n"
kapi_ctl "serve?resource=requestauthentications" >/dev/null
ra_listed() { [ "$(kapi_status_field RequestAuthentication synced)" = True ] && [ "$(kapi_status_field RequestAuthentication objects)" = 1 ]; }
kapi_wait_until 4 ra_listed || xmt_fail "RequestAuthentication not listed after its CRD appeared: $(xmt_xmesh status --admin "$XMT_ADMIN")"
[ "$(kapi_status_field RequestAuthentication version)" = v1 ] || xmt_fail "RequestAuthentication not watched as v1"
# Watches the server ended (timeoutSeconds) were reopened at once from their version, not counted as failures.
[ "$(kapi_stat "watch endpointslices")" -ge 4 ] || xmt_fail "the watches the server ended were not reopened: $(kapi_stats)"
[ "$(kapi_status_field EndpointSlice reconnects)" = 0 ] || xmt_fail "a watch the server ended counted as a reconnect"
[ "$(kapi_status_field EndpointSlice relists)" = 1 ] || xmt_fail "a watch the server ended led to a relist"
grep 'kubernetes: requestauthentications.security.istio.io is served now (security.istio.io/v1)' "$XMT_AGENT_LOG" >/dev/null ||
	xmt_fail "the kind's arrival was not logged"
xmt_agent_stop || xmt_fail "the agent did not exit cleanly"

# SIGTERM during the wait stops the agent at once (the wait runs the loop, which reads the signal).
kapi_ctl "forbid?resource=services" >/dev/null
start_agent
kapi_wait_until 10 status_starting || xmt_fail "the second agent's status did not answer during the wait"
t0=$(date +%s%3N)
xmt_agent_stop || xmt_fail "SIGTERM during the wait: the agent did not exit cleanly: $(tail -n 3 "$XMT_AGENT_LOG")"
t_stop=$(($(date +%s%3N) - t0))
[ "$t_stop" -le 2000 ] || xmt_fail "SIGTERM during the wait took ${t_stop} ms to stop the agent"
grep 'signal 15: stopping' "$XMT_AGENT_LOG" >/dev/null || xmt_fail "no stop logged: $(tail -n 3 "$XMT_AGENT_LOG")"
! grep 'config applied' "$XMT_AGENT_LOG" >/dev/null || xmt_fail "a config applied after SIGTERM during the wait"
xmt_pass "status answers during the wait for the first lists; AuthorizationPolicy and RequestAuthentication watched, a 404 retried"
