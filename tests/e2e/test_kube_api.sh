#!/usr/bin/env bash
# shellcheck disable=SC2317 # the check functions are called through kapi_wait_until
# The agent fed by a Kubernetes API server (tests/tools/kube-apiserver.py over TLS with a bearer token, via
# --kubeconfig): connections spread over the listed endpoints; an Istio kind served only as v1beta1 is found; an
# invalid Service is rejected alone (logged with its namespace/name, counted in xmesh_config_rejected_objects)
# while the rest applies, and so is a DestinationRule whose Service went (an error involving other objects)
# until the Service is back; an EndpointSlice change applies within 1 s; a deleted Service stops being balanced;
# after the server expires every watch (ERROR 410, or HTTP 410 at a watch's reopening) the agent relists and
# later changes arrive; a stream cut mid-event and a stalled stream are reopened; a wrong token is reported
# clearly (401) and retried until it works again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kube_lib.sh"
xmt_init "$@"
command -v python3 >/dev/null || xmt_skip "python3 not installed"
command -v openssl >/dev/null || xmt_skip "openssl not installed"
xmt_topology 3 1
kapi_start --bookmark-interval 0.5 --istio-version v1beta1

kapi_service reviews "$XMT_VIP" | kapi_put services
kapi_slice reviews b1 b2 b3 | kapi_put endpointslices
# An Istio kind served as v1beta1 only (the agent tries v1 first).
printf '{"metadata":{"name":"reviews","namespace":"default"},"spec":{"host":"reviews","trafficPolicy":{"loadBalancer":{"simple":"ROUND_ROBIN"}}}}\n' |
	kapi_put destinationrules
# Watched, not enforced yet: served as v1beta1 too, listed and counted, never rejected.
printf '{"metadata":{"name":"allow-all","namespace":"default"},"spec":{"action":"ALLOW","rules":[{}]}}\n' |
	kapi_put authorizationpolicies
# Port 99999: invalid; the other objects apply all the same.
kapi_service bad 10.96.0.99 99999 | kapi_put services

xmt_agent_start --kubeconfig "$XMT_TMP/kubeconfig" --kube-watch-timeout 2s --kube-backoff-max 500ms

out="$XMT_TMP/out"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 300 || true
xmt_assert_spread "$out" 300 20 47 b1 b2 b3
grep -q 'Service default/bad rejected' "$XMT_AGENT_LOG" ||
	xmt_fail "the invalid Service was not reported with its namespace/name: $(grep -m 3 kubernetes "$XMT_AGENT_LOG")"
rejected=$(xmt_nsrun node curl -sS --max-time 5 http://127.0.0.1:15090/metrics | awk '$1 == "xmesh_config_rejected_objects" { print $2 }')
[ "$rejected" = 1 ] || xmt_fail "xmesh_config_rejected_objects is '$rejected', expected 1"
[ "$(kapi_status_field Service synced)" = True ] || xmt_fail "status: Service not synced"
[ "$(kapi_status_field DestinationRule version)" = v1beta1 ] || xmt_fail "status: DestinationRule not watched as v1beta1"
[ "$(kapi_status_field DestinationRule objects)" = 1 ] || xmt_fail "status: the DestinationRule was not listed"
[ "$(kapi_status_field DestinationRule rejected)" = 0 ] || xmt_fail "status: the DestinationRule was rejected"
[ "$(kapi_status_field AuthorizationPolicy version)" = v1beta1 ] || xmt_fail "status: AuthorizationPolicy not watched as v1beta1"
[ "$(kapi_status_field AuthorizationPolicy objects)" = 1 ] || xmt_fail "status: the AuthorizationPolicy was not listed"

# b3 leaves the EndpointSlice: within 1 s no connection reaches it.
b3_gone() {
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 30 || true
	[ "$(xmt_field "$out" ok)" = 30 ] && [ "$(xmt_id_count "$out" b3)" = 0 ]
}
t0=$(date +%s%3N)
kapi_slice reviews b1 b2 | kapi_put endpointslices
kapi_wait_until 3 b3_gone || xmt_fail "b3 still balanced 3 s after it left the EndpointSlice: $(xmt_ids "$out")"
t_slice=$(($(date +%s%3N) - t0))
[ "$t_slice" -le 1000 ] || xmt_fail "the EndpointSlice change took ${t_slice} ms to apply (> 1000 ms)"

# Every watch expires (410): the agent relists every kind and later changes arrive.
lists_before=$(kapi_stat "list endpointslices")
kapi_ctl expire >/dev/null
only_b1() {
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
	[ "$(xmt_field "$out" ok)" = 20 ] && [ "$(xmt_id_count "$out" b1)" = 20 ]
}
kapi_wait_until 5 kapi_stat_above "list endpointslices" "$lists_before" ||
	xmt_fail "no relist of endpointslices after the watches expired"
kapi_slice reviews b1 | kapi_put endpointslices
kapi_wait_until 2 only_b1 || xmt_fail "a change after the relist did not arrive: $(xmt_ids "$out")"
# The relist brought the same objects: none was parsed again (the invalid one would be logged again).
n=$(grep -c 'Service default/bad rejected' "$XMT_AGENT_LOG")
[ "$n" = 1 ] || xmt_fail "the unchanged invalid Service was parsed again at the relist ($n reports)"
relists=$(kapi_status_field EndpointSlice relists)
[ "$relists" -ge 2 ] || xmt_fail "status counts $relists relists of EndpointSlice, expected >= 2"

# The same expiry answered as HTTP 410 when a cut watch is reopened from its old resourceVersion: relist too.
lists_before=$(kapi_stat "list endpointslices")
kapi_ctl "expire?http=1" >/dev/null
kapi_wait_until 5 kapi_stat_above "list endpointslices" "$lists_before" ||
	xmt_fail "no relist of endpointslices after an HTTP 410: $(kapi_stats)"
[ "$(kapi_stat "410 endpointslices")" -ge 1 ] || xmt_fail "the watch was not reopened from the expired version: $(kapi_stats)"

# A stream cut in the middle of an event: reopened, later changes arrive.
reconnects=$(kapi_status_field EndpointSlice reconnects)
kapi_ctl cut >/dev/null
kapi_slice reviews b2 | kapi_put endpointslices
only_b2() {
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
	[ "$(xmt_field "$out" ok)" = 20 ] && [ "$(xmt_id_count "$out" b2)" = 20 ]
}
kapi_wait_until 3 only_b2 || xmt_fail "a change after a cut stream did not arrive: $(xmt_ids "$out")"
[ "$(kapi_status_field EndpointSlice reconnects)" -gt "$reconnects" ] || xmt_fail "the cut stream counted no reconnect"
grep -q 'ended in the middle of an event\|transfer closed' "$XMT_AGENT_LOG" ||
	xmt_fail "the cut stream was not logged: $(grep -m 3 'kubernetes: endpointslices' "$XMT_AGENT_LOG")"

# A stalled stream (no byte, no bookmark): reopened after --kube-watch-timeout (2 s).
watches=$(kapi_stat "watch endpointslices")
kapi_ctl stall >/dev/null
kapi_wait_until 5 kapi_stat_above "watch endpointslices" "$watches" ||
	xmt_fail "the stalled watch was not reopened within 5 s"
grep -q 'no data for 2 s' "$XMT_AGENT_LOG" || xmt_fail "the stall was not logged"

# A deleted Service is no longer balanced.
kapi_delete services default reviews
svc_gone() {
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 5 --timeout-ms 200 || true
	[ "$(xmt_field "$out" ok)" = 0 ]
}
kapi_wait_until 2 svc_gone || xmt_fail "the deleted Service is still balanced: $(xmt_ids "$out")"
# Its DestinationRule now matches no Service: that rule alone is left out, and said so.
grep -q 'DestinationRule/default/reviews rejected (the other objects apply): .*matches no Service' "$XMT_AGENT_LOG" ||
	xmt_fail "the DestinationRule left without its Service was not reported: $(grep -m 3 'rejected' "$XMT_AGENT_LOG")"

# A wrong token: reported as 401 with what was sent, retried; the right one again: changes arrive.
kapi_ctl "token?value=rotated-elsewhere" >/dev/null
kapi_ctl cut >/dev/null
kapi_wait_until 5 grep -q 'HTTP 401 Unauthorized: the API server refused the credentials' "$XMT_AGENT_LOG" ||
	xmt_fail "the wrong token was not reported: $(grep -m 3 'kubernetes' "$XMT_AGENT_LOG" | tail -n 3)"
n401=$(kapi_stat "401 endpointslices")
sleep 1
[ "$(kapi_stat "401 endpointslices")" -gt "$n401" ] || xmt_fail "the agent did not retry after the 401"
kapi_ctl "token?value=$KAPI_TOKEN" >/dev/null
kapi_service reviews "$XMT_VIP" | kapi_put services
kapi_slice reviews b3 | kapi_put endpointslices
only_b3() {
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
	[ "$(xmt_field "$out" ok)" = 20 ] && [ "$(xmt_id_count "$out" b3)" = 20 ]
}
kapi_wait_until 4 only_b3 || xmt_fail "changes did not arrive after the token was right again: $(xmt_ids "$out")"
grep -q 'DestinationRule/default/reviews applies again' "$XMT_AGENT_LOG" ||
	xmt_fail "the DestinationRule did not apply again once its Service was back"
# Logged when the reason changes, not at every retry: about once per watched kind.
n_kinds=$(xmt_xmesh status --admin "$XMT_ADMIN" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["kubernetes"]["kinds"]))')
[ "$(grep -c 'HTTP 401' "$XMT_AGENT_LOG")" -le "$n_kinds" ] || xmt_fail "the 401 was logged at every retry (a log storm)"

xmt_note "EndpointSlice change applied in ${t_slice} ms; relists=$(kapi_status_field EndpointSlice relists)" \
	"reconnects=$(kapi_status_field EndpointSlice reconnects)"
xmt_pass "the agent follows the API server through relists, cut and stalled streams and a wrong token"
