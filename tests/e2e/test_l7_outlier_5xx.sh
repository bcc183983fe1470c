#!/usr/bin/env bash
# Outlier detection from HTTP responses behind the L7 proxy: the proxy reports upstream statuses (batched) into
# the same kernel state the socket LB and XDP use. reviews: b3 answers every request 500; with
# consecutive5xxErrors 3 at most 3 requests get its 500 before none of the next 60 does, the agent logs the
# ejection as consecutive_5xx and the kernel state (xmesh status) shows it ejected. ratings: b6 answers 503;
# consecutiveGatewayErrors 2 ejects it as consecutive_gateway after at most 2 of them.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/outlier_lib.sh
. "$(dirname "$0")/outlier_lib.sh"
xmt_init "$@"
if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi
RATINGS_VIP=10.96.0.11
xmt_node_create
for i in 1 2 3 4 5 6; do xmt_pod_add "b$i" $((10 + i)); done
xmt_pod_add c1 101
for b in b1 b2 b4 b5; do xmt_http_server "$b"; done
xmt_http_server b3 b3 --fail-status 500
xmt_http_server b6 b6 --fail-status 503
out="$XMT_TMP/out"
{
	xmt_yaml_node
	xmt_yaml_service --name reviews --vip "$XMT_VIP" --port-name http
	xmt_yaml_slice --service reviews --port-name http "$(xmt_pod_ip b1)" "$(xmt_pod_ip b2)" "$(xmt_pod_ip b3)"
	xmt_yaml_service --name ratings --vip "$RATINGS_VIP" --port-name http
	xmt_yaml_slice --service ratings --port-name http "$(xmt_pod_ip b4)" "$(xmt_pod_ip b5)" "$(xmt_pod_ip b6)"
	cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutiveGatewayErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}
YAML
} | xmt_config_write services.yaml
xmt_agent_start --proxy-workers 1

# load VIP HOST N: N requests on one keep-alive connection through the proxy; the summary in $out.
load() {
	xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$1:$XMT_PORT" --host "$2" --path / --conns 1 --requests "$3" \
		>"$out" 2>&1 || true
	grep -q '^ok=' "$out" || xmt_fail "xm-http-load printed no summary: $(cat "$out")"
}
status_count() { awk -v s="$1" '$1 == "status" && $2 == s { n = $3 } END { print n + 0 }' "$out"; }

XMT_SUBTEST="b3 answers 500"
load "$XMT_VIP" reviews 60
failed=$(status_count 500)
((failed >= 1)) || xmt_fail "no request reached the failing backend: $(cat "$out")"
((failed <= 3)) || xmt_fail "$failed requests got 500 before b3 was ejected; consecutive5xxErrors is 3"
load "$XMT_VIP" reviews 60
[ "$(status_count 200)" = 60 ] || xmt_fail "after the ejection, not all 60 requests answered 200: $(cat "$out")"
[ "$(xmt_id_count "$out" b3)" = 0 ] || xmt_fail "b3 still picked after its ejection: $(xmt_ids "$out")"
grep -q "outlier: ejected .*$(xmt_pod_ip b3).*consecutive_5xx" "$XMT_AGENT_LOG" ||
	xmt_fail "the agent logged no 5xx ejection of b3: $(grep -i outlier "$XMT_AGENT_LOG" | tail -n 5)"
[ "$(xmt_ejected_count)" = 1 ] || xmt_fail "the kernel state shows $(xmt_ejected_count) ejected endpoints, want 1"
xmt_xmesh status --admin "$XMT_ADMIN" | grep "$(xmt_pod_ip b3)" | grep 'EJECTED' >/dev/null ||
	xmt_fail "xmesh status (the socket LB's state) does not show b3 ejected: $(xmt_xmesh status --admin "$XMT_ADMIN")"

XMT_SUBTEST="b6 answers 503"
load "$RATINGS_VIP" ratings 60
gw=$(status_count 503)
((gw >= 1)) || xmt_fail "no request reached the failing backend: $(cat "$out")"
((gw <= 2)) || xmt_fail "$gw requests got 503 before b6 was ejected; consecutiveGatewayErrors is 2"
load "$RATINGS_VIP" ratings 60
[ "$(status_count 200)" = 60 ] || xmt_fail "after the ejection, not all 60 requests answered 200: $(cat "$out")"
grep -q "outlier: ejected .*$(xmt_pod_ip b6).*consecutive_gateway" "$XMT_AGENT_LOG" ||
	xmt_fail "the agent logged no gateway ejection of b6: $(grep -i outlier "$XMT_AGENT_LOG" | tail -n 5)"
[ "$(xmt_ejected_count)" = 2 ] || xmt_fail "the kernel state shows $(xmt_ejected_count) ejected endpoints, want 2"
XMT_SUBTEST=""
xmt_note "5xx: b3 cost $failed requests (threshold 3); gateway: b6 cost $gw requests (threshold 2)"
xmt_pass "L7 outlier ejection from HTTP 5xx and gateway errors, seen by the kernel's shared state"
