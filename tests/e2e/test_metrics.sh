#!/usr/bin/env bash
# Metrics on the agent's listener: /healthz/ready answers 200; after 20 connections through the VIP that
# each send 5 bytes and get the backend's id line back, istio_tcp_connections_opened/closed_total count
# 20 for the client's workload → reviews, with Istio's labels; the scrape passes promtool when present.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 2 1
{
	xmt_yaml_service --name reviews --vip "$XMT_VIP"
	xmt_yaml_slice --service reviews "$(xmt_pod_ip b1)" "$(xmt_pod_ip b2)"
	xmt_yaml_pod c1 app=productpage
	xmt_yaml_pod b1 app=reviews
	xmt_yaml_pod b2 app=reviews
} | xmt_config_write reviews.yaml
xmt_agent_start
scrape() { nsenter --net="/run/netns/$XMT_NODE" -- curl -sf --max-time 5 "http://127.0.0.1:15090$1"; }

XMT_SUBTEST="ready"
[ "$(scrape /healthz/ready)" != "" ] || xmt_fail "/healthz/ready did not answer 200"

XMT_SUBTEST="tcp metrics"
out="$XMT_TMP/out"
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 20 || true
xmt_assert_spread "$out" 20 0 100 b1 b2
m="$XMT_TMP/metrics"
for _ in $(seq 1 50); do
	scrape /metrics >"$m" || xmt_fail "GET /metrics failed"
	grep -q '^istio_tcp_connections_closed_total{.*} 20$' "$m" && break
	sleep 0.1
done
sel='reporter="source",source_workload="productpage",source_workload_namespace="default"'
grep -q "^istio_tcp_connections_opened_total{$sel.*destination_service=\"reviews.default.svc.cluster.local\"" "$m" ||
	xmt_fail "no opened series for productpage → reviews: $(grep istio_tcp_connections_opened "$m" | head -3)"
opened=$(grep "^istio_tcp_connections_opened_total{$sel" "$m" | awk '{ s += $NF } END { print s + 0 }')
closed=$(grep "^istio_tcp_connections_closed_total{$sel" "$m" | awk '{ s += $NF } END { print s + 0 }')
[ "$opened" = 20 ] || xmt_fail "istio_tcp_connections_opened_total = $opened, want 20"
[ "$closed" = 20 ] || xmt_fail "istio_tcp_connections_closed_total = $closed, want 20"
# Each backend greets with "<id>\n" (3 bytes) and the client sends nothing: Istio counts the response as
# sent bytes and the request as received bytes, for either reporter.
sent=$(grep "^istio_tcp_sent_bytes_total{$sel" "$m" | awk '{ s += $NF } END { print s + 0 }')
received=$(grep "^istio_tcp_received_bytes_total{$sel" "$m" | awk '{ s += $NF } END { print s + 0 }')
[ "$sent" = 60 ] || xmt_fail "istio_tcp_sent_bytes_total = $sent, want 60 (20 greetings of 3 bytes)"
[ "$received" = 0 ] || xmt_fail "istio_tcp_received_bytes_total = $received, want 0 (the client sent nothing)"
grep -q 'destination_workload="reviews"' "$m" || xmt_fail "destination_workload label missing"
grep -q '^xmesh_build_info{' "$m" || xmt_fail "xmesh_build_info missing"
grep -q '^xmesh_config_applies_total{result="ok"} 1$' "$m" || xmt_fail "xmesh_config_applies_total{ok} is not 1"
if command -v promtool >/dev/null; then
	promtool check metrics <"$m" >"$XMT_TMP/promtool" 2>&1 || xmt_fail "promtool: $(head -n 5 "$XMT_TMP/promtool")"
fi
XMT_SUBTEST=""
xmt_note "opened=$opened closed=$closed sent=$sent received=$received for productpage -> reviews; promtool $(command -v promtool >/dev/null && echo clean || echo absent)"
xmt_pass "metrics"
