#!/usr/bin/env bash
# The agent's metrics listener (--metrics 127.0.0.1:15090 in the node namespace): /healthz/ready answers
# 200 once the agent is ready; GET /metrics is Prometheus text that `promtool check metrics` accepts, with
# xmesh_build_info, xmesh_config_applies_total{result} following the applies (a broken file counts as
# rejected) and the socket LB's per-CPU counters following real connections through a VIP.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
command -v curl >/dev/null || xmt_skip "curl not installed (scripts/install-deps.sh)"
command -v promtool >/dev/null || xmt_skip "promtool not installed (scripts/install-deps.sh)"
xmt_topology 2 1
xmt_config_std b1 b2
xmt_agent_start

url=http://127.0.0.1:15090
out="$XMT_TMP/out"
scrape="$XMT_TMP/metrics.txt"

# http_code PATH [CURL ARGS...]: the status code of one request from inside the node namespace.
http_code() {
	local path=$1
	shift
	xmt_nsrun node curl -sS -o "$out" -w '%{http_code}' --max-time 5 "$@" "$url$path" 2>"$out.err" || true
}

# value SERIES: the sample value of SERIES (name{labels} exactly as exposed) in the last scrape, or "".
value() { awk -v s="$1" '$1 == s { print $2 }' "$scrape"; }

do_scrape() {
	local code
	code=$(http_code /metrics -D "$XMT_TMP/headers")
	[ "$code" = 200 ] || xmt_fail "GET /metrics answered '$code': $(cat "$out.err" "$out" | head -c 300)"
	cp "$out" "$scrape"
}

XMT_SUBTEST=readiness
code=$(http_code /healthz/ready)
[ "$code" = 200 ] || xmt_fail "GET /healthz/ready answered '$code', want 200: $(cat "$out.err" "$out")"
grep -qx ready "$out" || xmt_fail "GET /healthz/ready body: $(head -c 100 "$out")"

XMT_SUBTEST=scrape
n=40
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n "$n" || true
xmt_assert_spread "$out" "$n" 20 80 b1 b2
do_scrape
grep -qi '^content-type: text/plain; version=0.0.4' "$XMT_TMP/headers" ||
	xmt_fail "content type: $(grep -i '^content-type' "$XMT_TMP/headers")"
grep -qE '^xmesh_build_info\{version="[^"]+"\} 1$' "$scrape" || xmt_fail "no xmesh_build_info: $(head -c 400 "$scrape")"
ok=$(value 'xmesh_config_applies_total{result="ok"}')
[ "${ok:-0}" -ge 1 ] || xmt_fail "xmesh_config_applies_total{result=\"ok\"} is '$ok' after the first apply"
tcp=$(value 'xmesh_sock_lb_connects_total{protocol="tcp"}')
[ "${tcp:-0}" -ge "$n" ] || xmt_fail "xmesh_sock_lb_connects_total{protocol=\"tcp\"} is '$tcp' after $n connects"
xmt_note "tcp connects counted: $tcp"

XMT_SUBTEST=promtool
rc=0
promtool check metrics <"$scrape" >"$out" 2>&1 || rc=$?
if [ "$rc" != 0 ] || [ -s "$out" ]; then
	xmt_fail "promtool check metrics exited $rc: $(head -c 600 "$out")"
fi
xmt_note "promtool: clean ($(grep -c '^# TYPE' "$scrape") families)"

XMT_SUBTEST="rejected apply"
printf 'kind: Service\napiVersion: v1\nmetadata: {name: broken, namespace: default}\nspec: {clusterIP: nope}\n' |
	xmt_config_write broken.yaml
deadline=$(($(date +%s) + 5))
while :; do
	do_scrape
	rejected=$(value 'xmesh_config_applies_total{result="rejected"}')
	[ "${rejected:-0}" -ge 1 ] && break
	[ "$(date +%s)" -lt "$deadline" ] || xmt_fail "a broken file was not counted as rejected: '$rejected'"
	sleep 0.2
done
xmt_config_rm broken.yaml

XMT_SUBTEST=errors
[ "$(http_code /nope)" = 404 ] || xmt_fail "GET /nope: want 404"
[ "$(http_code /metrics -X POST -d x)" = 405 ] || xmt_fail "POST /metrics: want 405"
[ "$(http_code /metrics -I)" = 200 ] || xmt_fail "HEAD /metrics: want 200"
xmt_agent_alive || xmt_fail "the agent died"
XMT_SUBTEST=""
xmt_pass "ready, scrape with build info, applies and socket-LB counters${tcp:+ ($tcp connects)}, promtool"
