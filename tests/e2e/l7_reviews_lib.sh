# shellcheck shell=bash
# The single-node L7 fixture of the proxy tests (test_l7_faults.sh, test_l7_metrics.sh, test_l7_tracing.sh,
# test_l7_ratelimit*.sh): Service reviews (app=reviews, backends b1..bN with xm-http) and the client pod c1
# (app=productpage), through the agent's proxy. One copy, so the tests build and declare it the same way.
# Sourced after lib.sh, before or after xmt_init.

# xml_reviews N [with-load]: the node, Service reviews' backends b1..bN (pod indexes 11.., each serving
# xm-http) and the client pod c1 (101); skips without curl, python3, xm-http (or xm-http-load with-load).
xml_reviews() {
	local c i
	for c in curl python3; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
	if [ "${2:-}" = with-load ]; then
		if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi
	elif [ ! -x "$XM_HTTP" ]; then
		xmt_skip "xm-http not built (make tools)"
	fi
	xmt_node_create
	for ((i = 1; i <= $1; i++)); do xmt_pod_add "b$i" $((10 + i)); done
	xmt_pod_add c1 101
	for ((i = 1; i <= $1; i++)); do xmt_http_server "b$i"; done
}

# xml_yaml_reviews N: the Node, pods b1..bN (app=reviews, version=vI), c1 (app=productpage), the Service
# reviews (http) and its EndpointSlice of b1..bN.
xml_yaml_reviews() {
	local i ips=()
	xmt_yaml_node
	for ((i = 1; i <= $1; i++)); do xmt_yaml_pod "b$i" app=reviews "version=v$i"; done
	xmt_yaml_pod c1 app=productpage version=v1
	xmt_yaml_service --name reviews --vip "$XMT_VIP" --port-name http
	for ((i = 1; i <= $1; i++)); do ips+=("$(xmt_pod_ip "b$i")"); done
	xmt_yaml_slice --service reviews --port-name http "${ips[@]}"
}
