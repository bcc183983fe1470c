#!/usr/bin/env bash
# Outlier detection behind the L7 proxy: HTTP service ports are served by the agent's proxy, whose upstream
# connects sockops never sees, so the proxy reports them itself. One of 3 xm-http backends dies: with
# consecutive5xxErrors 3 (local-origin failures count toward it, unsplit) at most 3 requests get 503 UF, then
# none of the next 60; the agent logs the ejection and status shows it. The backend comes back: after
# baseEjectionTime it is picked again and answers. Retries are off (attempts: 0) so that each refused connect is
# seen by a client.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/outlier_lib.sh
. "$(dirname "$0")/outlier_lib.sh"
xmt_init "$@"
if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi
xmt_node_create
for b in b1 b2 b3; do xmt_pod_add "$b" $((10 + ${b#b})); done
xmt_pod_add c1 101
for b in b1 b2 b3; do xmt_http_server "$b"; done
out="$XMT_TMP/out"
{
	xmt_yaml_node
	xmt_yaml_service --name reviews --vip "$XMT_VIP" --port-name http
	xmt_yaml_slice --service reviews --port-name http "$(xmt_pod_ip b1)" "$(xmt_pod_ip b2)" "$(xmt_pod_ip b3)"
	cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 50}
---
# Istio's default retry policy would retry each refused connect on another endpoint (no request would see the
# dead one): this test is about the ejection threshold, so retries are off.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: reviews}}]
YAML
} | xmt_config_write reviews.yaml
xmt_agent_start --proxy-workers 1

# load N: N requests on one keep-alive connection through the proxy; the summary in $out.
load() {
	xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --path / --conns 1 --requests "$1" \
		>"$out" 2>&1 || true
	grep -q '^ok=' "$out" || xmt_fail "xm-http-load printed no summary: $(cat "$out")"
}
status_count() { awk -v s="$1" '$1 == "status" && $2 == s { n = $3 } END { print n + 0 }' "$out"; }

XMT_SUBTEST="all healthy"
load 30
[ "$(status_count 200)" = 30 ] || xmt_fail "not all 30 requests answered 200: $(cat "$out")"
for b in b1 b2 b3; do
	(($(xmt_id_count "$out" "$b") >= 5)) || xmt_fail "$b served too few of 30 requests: $(xmt_ids "$out")"
done

XMT_SUBTEST="b3 dead"
xmt_bg_stop http-b3 || true
load 60
failed=$(status_count 503)
((failed >= 1)) || xmt_fail "no request reached the dead backend: $(cat "$out")"
((failed <= 3)) || xmt_fail "$failed requests got 503 before the dead backend was ejected; threshold is 3"
load 60
[ "$(status_count 200)" = 60 ] || xmt_fail "after the ejection, not all 60 requests answered 200: $(cat "$out")"
grep -q 'outlier: ejected .*local_origin' "$XMT_AGENT_LOG" ||
	xmt_fail "the agent logged no ejection: $(grep -i outlier "$XMT_AGENT_LOG" | tail -n 5)"
[ "$(xmt_ejected_count)" = 1 ] || xmt_fail "status shows $(xmt_ejected_count) ejected endpoints, want 1"
xmt_xmesh status --admin "$XMT_ADMIN" | grep 'EJECTED' >/dev/null || xmt_fail "xmesh status does not show the ejection"

XMT_SUBTEST="b3 back"
xmt_http_server b3
sleep 3.8 # baseEjectionTime 3s (first ejection), plus the agent's 500 ms sweep
load 60
[ "$(status_count 200)" = 60 ] || xmt_fail "with b3 back, not all 60 requests answered 200: $(cat "$out")"
(($(xmt_id_count "$out" b3) >= 10)) || xmt_fail "b3 gets no requests after its ejection ended: $(xmt_ids "$out")"
XMT_SUBTEST=""
xmt_note "dead backend cost $failed requests (503 UF; threshold 3); back after 3 s: $(xmt_ids "$out")"
xmt_pass "L7 outlier ejection of a refusing endpoint and its return"
