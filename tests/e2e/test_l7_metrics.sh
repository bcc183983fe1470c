#!/usr/bin/env bash
# Istio request metrics and the access log equal the traffic sent through the agent's proxy: a known number of
# requests per status code from a labelled client pod, counted in istio_requests_total with the source and
# destination workload labels, in the histograms' counts and sums of body bytes, and as one access-log line each;
# promtool finds nothing but Istio's own millisecond name in the scrape, when it is installed.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/l7_reviews_lib.sh
. "$(dirname "$0")/l7_reviews_lib.sh"
xmt_init "$@"
xml_reviews 1 with-load
t="$XMT_TMP"

{
	xml_yaml_reviews 1
} | xmt_config_write reviews.yaml
xmt_agent_start --proxy-workers 2 --access-log "$t/access.log" --access-log-format json

XMT_SUBTEST="traffic"
xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --path /bytes/1000 --conns 3 --requests 10 \
	>"$t/ok" || xmt_fail "200s: $(tail -n 2 "$t/ok")"
xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --path /status/503 --conns 1 --requests 7 \
	>"$t/bad" || xmt_fail "503s: $(tail -n 2 "$t/bad")"
sleep 1
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"

XMT_SUBTEST="istio_requests_total"
python3 - "$t/metrics" <<'PY' || xmt_fail "request metrics: $(grep '^istio_requests_total' "$t/metrics")"
import re, sys
series = {}
for line in open(sys.argv[1]):
    m = re.match(r'^(istio_[a-z_]+)\{(.*)\} (\S+)$', line)
    if m:
        labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        series.setdefault(m.group(1), []).append((labels, float(m.group(3))))
def total(name, **want):
    return sum(v for l, v in series.get(name, []) if all(l.get(k) == w for k, w in want.items()))
common = dict(reporter="source", source_workload="productpage", source_app="productpage", destination_workload="reviews",
              destination_app="reviews", destination_service_name="reviews", request_protocol="http")
assert total("istio_requests_total", response_code="200", **common) == 30, "200s"
assert total("istio_requests_total", response_code="503", **common) == 7, "503s"
assert total("istio_response_bytes_count", response_code="200", **common) == 30, "response_bytes count"
# Istio's response size is the wire size: 1000 body bytes plus the head, for each of the 30.
s = total("istio_response_bytes_sum", response_code="200", **common)
assert 30 * 1000 < s < 30 * 2000, "response_bytes sum %s" % s
assert total("istio_request_duration_milliseconds_count", **common) == 37, "duration count"
PY

XMT_SUBTEST="access log"
[ "$(wc -l <"$t/access.log")" = 37 ] || xmt_fail "$(wc -l <"$t/access.log") access-log lines for 37 requests"
python3 - "$t/access.log" <<'PY' || xmt_fail "access log: $(head -n 2 "$t/access.log")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
codes = sorted(str(l.get("response_code", l.get("status"))) for l in lines)
assert codes.count("200") == 30 and codes.count("503") == 7, codes
PY

XMT_SUBTEST="promtool"
# Istio's own name istio_request_duration_milliseconds draws promtool's base-unit lint; nothing else may.
if command -v promtool >/dev/null; then
	promtool check metrics <"$t/metrics" >"$t/promtool" 2>&1 || true
	if grep -v 'istio_request_duration_milliseconds use base unit "seconds"' "$t/promtool" | grep . >/dev/null; then
		xmt_fail "promtool: $(head -n 5 "$t/promtool")"
	fi
fi
xmt_pass "request metrics and access log equal 37 requests (30 x 200, 7 x 503)"
