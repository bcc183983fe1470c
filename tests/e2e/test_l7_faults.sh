#!/usr/bin/env bash
# VirtualService fault injection and the route timeout through the agent's proxy, from a client pod dialing the
# service VIP: an abort on 50% of 400 requests within ±10 points (the others reach the backend), a fixed delay
# honoured, a route timeout answering 504 in time while the slow backend is still answering, and the response
# flags FI, DI and UT in istio_requests_total.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/l7_reviews_lib.sh
. "$(dirname "$0")/l7_reviews_lib.sh"
xmt_init "$@"
xml_reviews 1 with-load
t="$XMT_TMP"
vip="http://$XMT_VIP:$XMT_PORT"

{
	xml_yaml_reviews 1
	cat <<'YAML'
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /half}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    rewrite: {uri: /}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /delayed}}]
    fault: {delay: {fixedDelay: 500ms, percent: 100}}
    rewrite: {uri: /}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /slow}}]
    timeout: 400ms
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
YAML
} | xmt_config_write reviews.yaml
xmt_agent_start --proxy-workers 2
# "CODE SECONDS" of one request from the client pod.
timed() { xmt_in_pod c1 curl -sS --max-time 30 -H 'Host: reviews' -o /dev/null -w '%{http_code} %{time_total}\n' "$@"; }

XMT_SUBTEST="abort 50%"
xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --path /half --conns 4 --requests 100 \
	>"$t/half" || xmt_fail "abort load: $(tail -n 3 "$t/half")"
aborted=$(awk '$1 == "status" && $2 == "503" { print $3 }' "$t/half")
passed=$(awk '$1 == "status" && $2 == "200" { print $3 }' "$t/half")
aborted=${aborted:-0} passed=${passed:-0}
[ $((aborted + passed)) = 400 ] || xmt_fail "400 requests, got 503=$aborted 200=$passed: $(tr "\n" " " <"$t/half")"
if [ "$aborted" -lt 160 ] || [ "$aborted" -gt 240 ]; then xmt_fail "50% abort off by more than 10 points: $aborted/400"; fi
xmt_note "abort 50%: $aborted/400 aborted"

XMT_SUBTEST="delay"
read -r code delay_secs < <(timed "$vip/delayed")
[ "$code" = 200 ] || xmt_fail "the delayed request answers 200: $code"
python3 -c "import sys; sys.exit(0 if 0.5 <= float(sys.argv[1]) < 3 else 1)" "$delay_secs" ||
	xmt_fail "a 500 ms delay took ${delay_secs}s"

XMT_SUBTEST="route timeout"
read -r code secs < <(timed "$vip/slow?ms=3000")
[ "$code" = 504 ] || xmt_fail "a 3 s answer under a 400 ms timeout is 504: $code"
python3 -c "import sys; sys.exit(0 if 0.4 <= float(sys.argv[1]) < 2 else 1)" "$secs" ||
	xmt_fail "the 504 came after ${secs}s"
read -r code _ < <(timed "$vip/slow?ms=10")
[ "$code" = 200 ] || xmt_fail "a fast answer on the timed route: $code"

XMT_SUBTEST="response flags"
sleep 1
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"
python3 - "$t/metrics" "$aborted" <<'PY' || xmt_fail "flags: $(grep '^istio_requests_total' "$t/metrics")"
import re, sys
aborted = int(sys.argv[2])
got = {}
for line in open(sys.argv[1]):
    m = re.match(r'^istio_requests_total\{(.*)\} (\S+)$', line)
    if m:
        l = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        key = (l.get("response_code"), l.get("response_flags"))
        got[key] = got.get(key, 0) + float(m.group(2))
assert got.get(("503", "FI")) == aborted, got
assert got.get(("200", "DI")) == 1, got
assert got.get(("504", "UT")) == 1, got
PY
xmt_pass "faults: abort $aborted/400 at 50%, a 500 ms delay honoured (${delay_secs}s), route timeout 504 UT in ${secs}s"
