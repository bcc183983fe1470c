#!/usr/bin/env bash
# DestinationRule connectionPool circuit breaking through the agent's proxy (2 workers), from a client pod dialing
# service VIPs served by slow xm-http backends: with tcp.maxConnections 1 and http1MaxPendingRequests 1, a burst of
# 8 slow requests gets 2 or 3 answers (one connection per worker by Envoy's progress rule, one pending request) and
# 503 UO at once for the rest; http2MaxRequests 2 (set in portLevelSettings, over a top-level 100) lets exactly 2 of
# 6 through across both workers; tcp.maxConnectionDuration 1s makes the proxy open a new upstream connection each
# second under steady load and close the pooled one once it is that old; istio_requests_total carries
# response_flags="UO" and xmesh_l7_overflow_total counts the overflows by kind.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
for c in curl python3 ss; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi
xmt_node_create
xmt_pod_add b1 11
xmt_pod_add b2 12
xmt_pod_add c1 101
xmt_http_server b1
xmt_http_server b2
t="$XMT_TMP"

{
	xmt_yaml_node
	xmt_yaml_pod b1 app=reviews
	xmt_yaml_pod b2 app=details
	xmt_yaml_pod c1 app=productpage
	xmt_yaml_service --name reviews --vip 10.96.0.10 --port-name http
	xmt_yaml_slice --service reviews --port-name http "$(xmt_pod_ip b1)"
	xmt_yaml_service --name ratings --vip 10.96.0.11 --port-name http
	xmt_yaml_slice --service ratings --port-name http "$(xmt_pod_ip b1)"
	xmt_yaml_service --name details --vip 10.96.0.12 --port-name http
	xmt_yaml_slice --service details --port-name http "$(xmt_pod_ip b2)"
	cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 100}}
    portLevelSettings:
    - port: {number: $XMT_PORT}
      connectionPool: {http: {http2MaxRequests: 2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  trafficPolicy:
    connectionPool: {tcp: {maxConnectionDuration: 1s}}
YAML
} | xmt_config_write cb.yaml
xmt_agent_start --proxy-workers 2

# burst NAME VIP N PATH: N concurrent requests from the client pod; "$t/NAME" gets one "CODE SECONDS" line each,
# and $t/NAME.body.I the bodies.
burst() {
	local name=$1 vip=$2 n=$3 path=$4 i pids=()
	for ((i = 0; i < n; i++)); do
		xmt_in_pod c1 curl -sS --max-time 20 -o "$t/$name.body.$i" -w '%{http_code} %{time_total}\n' \
			"http://$vip:$XMT_PORT$path" >"$t/$name.$i" 2>&1 &
		pids+=("$!")
	done
	wait "${pids[@]}" || true
	cat "$t/$name".[0-9]* >"$t/$name"
}
# count FILE CODE: how many lines of FILE have status CODE.
count() { awk -v c="$2" '$1 == c { n++ } END { print n + 0 }' "$1"; }
# slowest FILE CODE / fastest FILE CODE: the longest / shortest time of the requests answered CODE.
slowest() { awk -v c="$2" '$1 == c && $2 > m { m = $2 } END { print m + 0 }' "$1"; }
fastest() { awk -v c="$2" 'BEGIN { m = 1e9 } $1 == c && $2 < m { m = $2 } END { print m + 0 }' "$1"; }
lt() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }

XMT_SUBTEST="maxConnections 1, http1MaxPendingRequests 1"
burst pending 10.96.0.10 8 "/slow?ms=1500"
ok=$(count "$t/pending" 200) uo=$(count "$t/pending" 503)
ok1=$ok
[ $((ok + uo)) = 8 ] || xmt_fail "8 answers of 200 or 503: $(tr '\n' ' ' <"$t/pending")"
if [ "$ok" -lt 2 ] || [ "$ok" -gt 3 ]; then xmt_fail "2 or 3 admitted (a connection per worker, 1 pending): $ok"; fi
lt "$(slowest "$t/pending" 503)" 0.5 || xmt_fail "the overflows are answered at once: $(tr '\n' ' ' <"$t/pending")"
lt 1.4 "$(fastest "$t/pending" 200)" || xmt_fail "the admitted ones waited for the backend: $(tr '\n' ' ' <"$t/pending")"
lt 2.9 "$(slowest "$t/pending" 200)" || xmt_fail "the pending one waited for the first to finish: $(tr '\n' ' ' <"$t/pending")"
grep -l '^upstream connect error or disconnect/reset before headers. reset reason: overflow$' "$t"/pending.body.* \
	>/dev/null || xmt_fail "Envoy's overflow body: $(cat "$t"/pending.body.* | sort | uniq -c)"
xmt_note "pending: $ok admitted, $uo overflowed"

XMT_SUBTEST="http2MaxRequests 2 (portLevelSettings)"
burst requests 10.96.0.11 6 "/slow?ms=1500"
ok=$(count "$t/requests" 200) uo2=$(count "$t/requests" 503)
[ "$ok" = 2 ] && [ "$uo2" = 4 ] || xmt_fail "2 admitted and 4 overflowed of 6: $(tr '\n' ' ' <"$t/requests")"
lt "$(slowest "$t/requests" 503)" 0.5 || xmt_fail "the overflows are answered at once: $(tr '\n' ' ' <"$t/requests")"
# Once they are done, the limit admits again.
code=$(xmt_in_pod c1 curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://10.96.0.11:$XMT_PORT/")
[ "$code" = 200 ] || xmt_fail "after the burst a request is admitted: $code"

XMT_SUBTEST="maxConnectionDuration 1s"
xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "10.96.0.12:$XMT_PORT" --host details --conns 1 --requests 12 \
	--interval-ms 250 >"$t/duration" || xmt_fail "duration load: $(tail -n 3 "$t/duration")"
grep -q '^status 200 12$' "$t/duration" || xmt_fail "12 answers: $(tr '\n' ' ' <"$t/duration")"
# Established connections at the backend (the proxy's upstream ones), before and after the age limit.
conns() { xmt_in_pod b2 ss -Htn state established "( sport = :$XMT_TARGET )" | wc -l; }
open_now=$(conns)
sleep 1.3
open_later=$(conns)
[ "$open_later" = 0 ] || xmt_fail "the pooled connection is closed once 1s old: $open_later still open"
xmt_bg_stop http-b2 || true
accepted=$(sed -n 's/.*accepted=\([0-9]*\).*/\1/p' "$(xmt_bg_log http-b2)")
# 12 requests over ~3 s: a connection serves at most 1 s of them, so at least 3.
if [ -z "$accepted" ] || [ "$accepted" -lt 3 ] || [ "$accepted" -gt 6 ]; then
	xmt_fail "3 to 6 upstream connections for 3 s of requests under a 1 s maxConnectionDuration: ${accepted:-none}"
fi

XMT_SUBTEST="metrics"
sleep 1
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"
python3 - "$t/metrics" "$uo" "$uo2" <<'PY' || xmt_fail "metrics: $(grep -E '^(istio_requests_total|xmesh_l7_overflow)' "$t/metrics")"
import re, sys
uo, uo2 = int(sys.argv[2]), int(sys.argv[3])
flags, over = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r'^istio_requests_total\{(.*)\} (\S+)$', line)
    if m:
        l = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        key = (l.get("destination_service_name"), l.get("response_code"), l.get("response_flags"))
        flags[key] = flags.get(key, 0) + float(m.group(2))
    m = re.match(r'^xmesh_l7_overflow_total\{kind="(\w+)"\} (\S+)$', line)
    if m:
        over[m.group(1)] = float(m.group(2))
assert flags.get(("reviews", "503", "UO")) == uo, flags
assert flags.get(("ratings", "503", "UO")) == uo2, flags
assert over.get("pending") == uo, over
assert over.get("requests") == uo2, over
assert over.get("connections", 0) >= 1, over
PY
xmt_pass "circuit breaking: pending burst $ok1/8 admitted ($uo UO), http2MaxRequests 2 of 6, maxConnectionDuration: $accepted connections (open $open_now then $open_later)"
