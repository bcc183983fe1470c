#!/usr/bin/env bash
# Outlier state is per Service port, whatever address the client used (issue #14; Envoy keeps it per cluster):
# reviews has ClusterIP 10.96.0.10 and externalIP 10.97.0.10, port 80 (http). b3 answers every request 500.
# An external host's connections to the externalIP (XDP on up0, no proxy) reach b3 at first; the L7 proxy
# then ejects b3 through the ClusterIP (consecutive5xxErrors 3), and from then on none of the external
# host's connections to the externalIP reaches it either: both entries show it ejected in xmesh status.
#
#   ext 10.199.0.100 ── eth0 ═ up0 ── node 10.199.0.1 (XDP + TC on up0, L7 proxy) ── b1..b3 .11-.13, c1 .101
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/outlier_lib.sh
. "$(dirname "$0")/outlier_lib.sh"
xmt_init "$@"
if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi
xmt_require_kernel "program_type xdp" "program_type sched_cls" "map_type lru_hash"
EXT_IP=10.97.0.10
xmt_node_create
for i in 1 2 3; do xmt_pod_add "b$i" $((10 + i)); done
xmt_pod_add c1 101
xmt_http_server b1
xmt_http_server b2
xmt_http_server b3 b3 --fail-status 500
# The external host on the node's uplink, routing the external VIPs through the node.
xmt_netns_add ext
ip -n "$XMT_NODE" link add up0 type veth peer name eth0 netns "${XMT_P}ext"
ip -n "$XMT_NODE" addr add 10.199.0.1/24 dev up0
ip -n "$XMT_NODE" link set up0 up
ip -n "${XMT_P}ext" addr add 10.199.0.100/24 dev eth0
ip -n "${XMT_P}ext" link set eth0 up
ip -n "${XMT_P}ext" route add 10.97.0.0/16 via 10.199.0.1
xmt_nsrun node sysctl -qw net.ipv4.ip_forward=1 >/dev/null
for i in 1 2 3; do ip -n "${XMT_P}b$i" route add default via "$XMT_SUBNET.1"; done # replies to the external host
{
	xmt_yaml_node
	xmt_yaml_service --name reviews --vip "$XMT_VIP" --port-name http |
		sed "s/^  sessionAffinity: None\$/  sessionAffinity: None\n  externalIPs:\n  - $EXT_IP/"
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
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}
YAML
} | xmt_config_write services.yaml
xmt_agent_start --proxy-workers 1 --iface up0
out="$XMT_TMP/out"

# ext_load N: N connections with one request each from the external host to the externalIP (XDP, no proxy).
ext_load() {
	xmt_nsrun ext "$XM_HTTP_LOAD" --addr "$EXT_IP:$XMT_PORT" --host reviews --path / --conns "$1" --requests 1 \
		>"$out" 2>&1 || true
	grep -q '^ok=' "$out" || xmt_fail "xm-http-load (external) printed no summary: $(cat "$out")"
}
# mesh_load N: N requests on one keep-alive connection from c1 to the ClusterIP, through the L7 proxy.
mesh_load() {
	xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --path / --conns 1 --requests "$1" \
		>"$out" 2>&1 || true
	grep -q '^ok=' "$out" || xmt_fail "xm-http-load printed no summary: $(cat "$out")"
}
status_count() { awk -v s="$1" '$1 == "status" && $2 == s { n = $3 } END { print n + 0 }' "$out"; }

XMT_SUBTEST="before the ejection"
ext_load 30
before=$(xmt_ids "$out")
(($(xmt_id_count "$out" b3) >= 1)) || xmt_fail "no external connection reached b3 before its ejection: $(cat "$out")"
[ "$(xmt_ejected_count)" = 0 ] || xmt_fail "an endpoint is ejected before any L7 report"

XMT_SUBTEST="ejected through the ClusterIP"
mesh_load 60
failed=$(status_count 500)
((failed >= 1 && failed <= 3)) || xmt_fail "$failed requests got 500 through the proxy; want 1-3: $(cat "$out")"
grep -q "outlier: ejected .*$(xmt_pod_ip b3).*consecutive_5xx" "$XMT_AGENT_LOG" ||
	xmt_fail "the agent logged no 5xx ejection of b3: $(grep -i outlier "$XMT_AGENT_LOG" | tail -n 5)"
# Both entries of the port (ClusterIP and externalIP) read the one state.
[ "$(xmt_ejected_count)" = 2 ] ||
	xmt_fail "xmesh status shows $(xmt_ejected_count) ejected entries, want 2 (b3 under both VIPs of the port): $(xmt_xmesh status --admin "$XMT_ADMIN" | grep -E 'EJECT|:80')"

m=$(nsenter --net="/run/netns/$XMT_NODE" -- curl -sf --max-time 5 http://127.0.0.1:15090/metrics) ||
	xmt_fail "GET /metrics failed"
series=$(grep -c "^xmesh_endpoint_ejected{.*endpoint=\"$(xmt_pod_ip b3):$XMT_TARGET\"}" <<<"$m" || true)
if [ "$series" != 1 ] || ! grep -q "^xmesh_endpoint_ejected{.*endpoint=\"$(xmt_pod_ip b3):$XMT_TARGET\"} 1\$" <<<"$m"; then
	xmt_fail "want one xmesh_endpoint_ejected series of b3 at 1 (one per service port): $(grep '^xmesh_endpoint_ejected' <<<"$m")"
fi

XMT_SUBTEST="external traffic after the ejection"
ext_load 30
after=$(xmt_ids "$out")
[ "$(xmt_field "$out" ok)" = 30 ] || xmt_fail "not all 30 external connections answered: $(cat "$out")"
[ "$(xmt_id_count "$out" b3)" = 0 ] || xmt_fail "XDP still sent external connections to the ejected b3: $after"
[ "$(status_count 500)" = 0 ] || xmt_fail "external clients still got 500s: $(cat "$out")"
XMT_SUBTEST=""
xmt_note "external before: $before; proxy: b3 cost $failed requests (threshold 3); external after: $after"
xmt_pass "an endpoint ejected through the ClusterIP by the L7 proxy is skipped by XDP for the externalIP"
