#!/usr/bin/env bash
# shellcheck disable=SC2317 # the check functions are called through kapi_wait_until
# `xmesh agent --kubernetes`: the in-cluster configuration (KUBERNETES_SERVICE_HOST/_PORT, the service
# account's token and ca.crt; XMESH_SERVICEACCOUNT_DIR points at the test's copy). Lists follow `continue`
# over pages (the server gives 2 items a page), and an expired continue (HTTP 410) starts the list again; the
# Istio kinds are not served (CRDs absent): skipped with one log line each, shown as "not served", the rest
# applies; a rotated token is read again at the next request; a kind RBAC forbids (403) is reported with its
# name and retried while the others apply. Then a kubeconfig with inline CA and client certificate/key (no
# token) authenticates by the certificate.
# A kubeconfig with insecure-skip-tls-verify is refused without --insecure, with a message that says so.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kube_lib.sh"
xmt_init "$@"
command -v python3 >/dev/null || xmt_skip "python3 not installed"
command -v openssl >/dev/null || xmt_skip "openssl not installed"
xmt_topology 3 1
kapi_start --no-istio --max-page 2 --client-ca "$XMT_TMP/kapi/ca.crt"

# Five Services a page of two at a time: reviews, and four others with VIPs of their own.
{
	printf '['
	kapi_service reviews "$XMT_VIP"
	for i in 1 2 3 4; do printf ','; kapi_service "other$i" "10.96.1.$i"; done
	printf ']'
} | kapi_put services
kapi_slice reviews b1 b2 b3 | kapi_put endpointslices

sa="$XMT_TMP/sa"
mkdir -p "$sa"
cp "$XMT_TMP/kapi/ca.crt" "$sa/ca.crt"
printf '%s\n' "$KAPI_TOKEN" >"$sa/token"
export XMESH_SERVICEACCOUNT_DIR="$sa" KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$KAPI_PORT

# insecure-skip-tls-verify without --insecure: refused before anything starts.
sed 's|    certificate-authority: kapi/ca.crt|    insecure-skip-tls-verify: true|' "$XMT_TMP/kubeconfig" >"$XMT_TMP/insecure.kubeconfig"
rc=0
xmt_xmesh agent --kubeconfig "$XMT_TMP/insecure.kubeconfig" --cgroup "$XMT_CG" --bpffs "$XMT_PIN" \
	--admin "$XMT_TMP/unused.sock" >"$XMT_TMP/insecure.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || xmt_fail "an insecure kubeconfig was accepted without --insecure"
grep -q 'insecure-skip-tls-verify.*refused without --insecure' "$XMT_TMP/insecure.out" ||
	xmt_fail "the refusal does not say why: $(cat "$XMT_TMP/insecure.out")"

# The first list's continue token expires (HTTP 410): the list starts again from the first page.
kapi_ctl "expire-continue?resource=services" >/dev/null
xmt_agent_start --kubernetes --kube-backoff-max 300ms

out="$XMT_TMP/out"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 300 || true
xmt_assert_spread "$out" 300 20 47 b1 b2 b3
[ "$(kapi_stat "list services")" -ge 3 ] || xmt_fail "5 Services in pages of 2 took $(kapi_stat "list services") list requests"
[ "$(kapi_stat "410 services")" = 1 ] || xmt_fail "the expired continue was not asked for: $(kapi_stats)"
[ "$(kapi_stat "list services")" -ge 5 ] || xmt_fail "the list did not start again after the expired continue: $(kapi_stats)"
[ "$(kapi_status_field Service objects)" = 5 ] || xmt_fail "status: $(kapi_status_field Service objects) Services, expected 5"
for k in DestinationRule VirtualService EnvoyFilter PeerAuthentication AuthorizationPolicy RequestAuthentication; do
	[ "$(kapi_status_field "$k" served)" = False ] || xmt_fail "status: $k is not shown as not served"
done
n=$(grep -c 'is not served (CRD not installed?)' "$XMT_AGENT_LOG")
[ "$n" = 6 ] || xmt_fail "expected one 'not served' line per Istio kind, got $n"
xmt_xmesh status --admin "$XMT_ADMIN" | grep 'Service .* synced' >/dev/null || xmt_fail "xmesh status shows no synced Service"

# The token rotates: the server takes only the new one, the agent reads the file again at its next request.
kapi_ctl "token?value=rotated-2" >/dev/null
printf 'rotated-2\n' >"$sa/token.new"
mv "$sa/token.new" "$sa/token"
kapi_ctl cut >/dev/null
kapi_slice reviews b2 | kapi_put endpointslices
only_b2() {
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
	[ "$(xmt_field "$out" ok)" = 20 ] && [ "$(xmt_id_count "$out" b2)" = 20 ]
}
kapi_wait_until 3 only_b2 || xmt_fail "a change after the token rotated did not arrive: $(xmt_ids "$out")"
[ "$(kapi_stat "401 endpointslices")" = 0 ] || xmt_fail "the rotated token was not used: $(kapi_stats)"
# RBAC refuses one kind: reported as 403 with the resource named, retried; the other kinds keep working.
kapi_ctl "forbid?resource=pods" >/dev/null
kapi_ctl cut >/dev/null
kapi_wait_until 5 grep -q 'pods: watch: HTTP 403 Forbidden: the account may not list/watch pods (RBAC)' "$XMT_AGENT_LOG" ||
	xmt_fail "the 403 was not reported: $(grep -m 3 'kubernetes: pods' "$XMT_AGENT_LOG")"
kapi_slice reviews b3 | kapi_put endpointslices
only_b3() {
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
	[ "$(xmt_field "$out" ok)" = 20 ] && [ "$(xmt_id_count "$out" b3)" = 20 ]
}
kapi_wait_until 3 only_b3 || xmt_fail "other kinds stopped applying while pods were forbidden: $(xmt_ids "$out")"
xmt_xmesh status --admin "$XMT_ADMIN" | grep '^  Pod .*last error: watch: HTTP 403' >/dev/null ||
	xmt_fail "xmesh status does not show the Pod watch's 403: $(xmt_xmesh status --admin "$XMT_ADMIN" | grep Pod)"
# A kubeconfig with everything inline (certificate-authority-data, client-certificate-data, client-key-data)
# and no token: the agent authenticates with the client certificate.
xmt_agent_stop
b64() { base64 -w0 "$1"; }
cat >"$XMT_TMP/cert.kubeconfig" <<KC
{"apiVersion": "v1", "kind": "Config", "current-context": "c",
 "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:$KAPI_PORT",
   "certificate-authority-data": "$(b64 "$XMT_TMP/kapi/ca.crt")"}}],
 "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
 "users": [{"name": "u", "user": {"client-certificate-data": "$(b64 "$XMT_TMP/kapi/client.crt")",
   "client-key-data": "$(b64 "$XMT_TMP/kapi/client.key")"}}]}
KC
kapi_ctl "forbid" >/dev/null
kapi_ctl "token?value=no-token-works-now" >/dev/null
unset KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT XMESH_SERVICEACCOUNT_DIR
xmt_agent_start --kubeconfig "$XMT_TMP/cert.kubeconfig"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
xmt_assert_spread "$out" 20 100 100 b3
[ "$(kapi_status_field Pod synced)" = True ] || xmt_fail "status: Pod not synced with the client certificate"
xmt_pass "in-cluster config: paged lists, absent CRDs skipped, a rotated token read again"
