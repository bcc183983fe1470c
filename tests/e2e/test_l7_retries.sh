#!/usr/bin/env bash
# VirtualService retries through the agent's proxy (docs/l7.md "Retries"), from a client pod dialing service VIPs:
# reviews has two good and two failing endpoints (503) and retryOn 5xx: 100 requests all answer 200. details (one
# backend that logs each request with its x-envoy-attempt-count): retryOn 5xx leaves a 404 alone (one request at
# the backend), and a 503 is tried 4 times (attempts 3) with the jittered backoff between tries within
# [0,25), [0,50) and [0,100) ms, then answered as the upstream's 503 with response_flags URX. slow: a backend
# that answers after 3 s and a fast one, perTryTimeout 300ms: every request answers 200 in well under 3 s.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
for c in curl python3; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi
DETAILS_VIP=10.96.0.11
SLOW_VIP=10.96.0.12
xmt_node_create
for i in 1 2 3 4 5 6 7; do xmt_pod_add "b$i" $((10 + i)); done
xmt_pod_add c1 101
xmt_http_server b1
xmt_http_server b2
xmt_http_server b3 b3 --fail-status 503
xmt_http_server b4 b4 --fail-status 503
xmt_http_server b5 b5 --log-requests
xmt_http_server b6 b6 --delay-ms 3000
xmt_http_server b7
t="$XMT_TMP"

{
	xmt_yaml_node
	xmt_yaml_service --name reviews --vip "$XMT_VIP" --port-name http
	xmt_yaml_slice --service reviews --port-name http \
		"$(xmt_pod_ip b1)" "$(xmt_pod_ip b2)" "$(xmt_pod_ip b3)" "$(xmt_pod_ip b4)"
	xmt_yaml_service --name details --vip "$DETAILS_VIP" --port-name http
	xmt_yaml_slice --service details --port-name http "$(xmt_pod_ip b5)"
	xmt_yaml_service --name slow --vip "$SLOW_VIP" --port-name http
	xmt_yaml_slice --service slow --port-name http "$(xmt_pod_ip b6)" "$(xmt_pod_ip b7)"
	cat <<'YAML'
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: slow, namespace: default}
spec:
  host: slow
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: default}
spec:
  hosts: [details]
  http:
  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: details}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: slow, namespace: default}
spec:
  hosts: [slow]
  http:
  - retries: {attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}
    route: [{destination: {host: slow}}]
YAML
} | xmt_config_write services.yaml
xmt_agent_start --proxy-workers 2
# "CODE SECONDS" of one request from the client pod.
timed() {
	xmt_in_pod c1 curl -sS --max-time 30 -H "Host: $1" -o /dev/null -w '%{http_code} %{time_total}\n' \
		"http://$2:$XMT_PORT$3"
}
b5_log=$(xmt_bg_log http-b5)

XMT_SUBTEST="two failing endpoints of four"
xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --path / --conns 4 --requests 25 \
	>"$t/reviews" || xmt_fail "load: $(tail -n 3 "$t/reviews")"
ok=$(awk '$1 == "status" && $2 == "200" { print $3 }' "$t/reviews")
[ "${ok:-0}" = 100 ] || xmt_fail "100 requests over 2 good and 2 failing endpoints, $ok answered 200: $(tr "\n" " " <"$t/reviews")"

XMT_SUBTEST="a 404 is not retried under 5xx"
read -r code _ < <(timed details "$DETAILS_VIP" /status/404)
[ "$code" = 404 ] || xmt_fail "GET /status/404: $code"
sleep 0.2
n=$(grep -c ' /status/404 ' "$b5_log" || true)
[ "$n" = 1 ] || xmt_fail "the backend saw /status/404 $n times, want 1: $(grep '^request' "$b5_log")"

XMT_SUBTEST="retries exhausted, with backoff"
read -r code _ < <(timed details "$DETAILS_VIP" /status/503)
[ "$code" = 503 ] || xmt_fail "GET /status/503 after the retries: $code"
sleep 0.2
grep ' /status/503 ' "$b5_log" >"$t/tries" || true
python3 - "$t/tries" <<'PY' || xmt_fail "tries at the backend: $(cat "$t/tries")"
import sys
rows = [line.split() for line in open(sys.argv[1])]
assert len(rows) == 4, f"{len(rows)} tries, want 4 (attempts: 3)"
assert [r[4] for r in rows] == ["attempt=1", "attempt=2", "attempt=3", "attempt=4"], rows
at = [int(r[1]) for r in rows]
gaps = [b - a for a, b in zip(at, at[1:])]
# Envoy's fully jittered backoff at 25 ms: retry n waits in [0, 25 * 2^(n-1)); 40 ms of slack for the round
# trip and a shared machine.
for n, g in enumerate(gaps, 1):
    assert 0 <= g < 25 * 2 ** (n - 1) + 40, f"gap {n}: {g} ms ({gaps})"
print("gaps", gaps)
PY
gaps=$(python3 -c 'import sys; r=[int(l.split()[1]) for l in open(sys.argv[1])]; print(",".join(str(b-a) for a,b in zip(r,r[1:])))' "$t/tries")
xmt_note "backoff gaps between the 4 tries: ${gaps} ms"

XMT_SUBTEST="per-try timeout"
for i in 1 2 3 4 5 6; do
	read -r code secs < <(timed slow "$SLOW_VIP" /)
	[ "$code" = 200 ] || xmt_fail "request $i to slow: $code"
	python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1.5 else 1)" "$secs" ||
		xmt_fail "request $i took ${secs}s: the 300 ms per-try timeout did not move it on"
done

XMT_SUBTEST="metrics"
sleep 1
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"
python3 - "$t/metrics" <<'PY' || xmt_fail "metrics: $(grep -E '^(istio_requests_total|xmesh_l7_upstream_retr)' "$t/metrics")"
import re, sys
got, retries = {}, None
for line in open(sys.argv[1]):
    m = re.match(r'^istio_requests_total\{(.*)\} (\S+)$', line)
    if m:
        l = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        key = (l.get("destination_service_name"), l.get("response_code"), l.get("response_flags"))
        got[key] = got.get(key, 0) + float(m.group(2))
    m = re.match(r'^xmesh_l7_upstream_retries_total (\S+)$', line)
    if m:
        retries = float(m.group(1))
assert got.get(("details", "503", "URX")) == 1, got
assert got.get(("details", "404", "-")) == 1, got
assert got.get(("reviews", "200", "-")) == 100, got
assert not any(k[0] == "reviews" and k[1] != "200" for k in got), got
assert got.get(("slow", "200", "-")) == 6, got
# reviews: about half the first tries hit a failing endpoint; details: 3; slow: about half of 6.
assert retries is not None and retries >= 3 + 20, retries
PY
xmt_pass "retries: 100/100 answered 200 over 2 failing endpoints of 4, a 404 not retried, 503 URX after 4 tries (gaps ${gaps} ms), per-try timeout"
