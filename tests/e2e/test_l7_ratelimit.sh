#!/usr/bin/env bash
# Local rate limiting from Istio's EnvoyFilter recipe (envoy.filters.http.local_ratelimit, max_tokens 4,
# tokens_per_fill 4, fill_interval 2s) on the backend pod selected by its labels, through the agent's proxy from
# a client pod: the first 4 requests 200, then 429 "local_rate_limited" with the configured header until tokens
# come back, then 200 again; the pod not selected is not limited; the bucket (its counts) outlives an unrelated
# apply;
# istio_requests_total{response_code="429",response_flags="RL"} counts the 429s; `xmesh routes` shows the limit.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/l7_reviews_lib.sh
. "$(dirname "$0")/l7_reviews_lib.sh"
# shellcheck source=tests/e2e/ratelimit_lib.sh
. "$(dirname "$0")/ratelimit_lib.sh"
xmt_init "$@"
xml_reviews 2
t="$XMT_TMP"

{
	xml_yaml_reviews 2
	cat <<'YAML'
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /v2}}]
    rewrite: {uri: /}
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
YAML
	xmr_ratelimit_filter_head "app: reviews" "version: v1"
	cat <<'YAML'
              token_bucket:
                max_tokens: 4
                tokens_per_fill: 4
                fill_interval: 2s
              filter_enabled:
                runtime_key: local_rate_limit_enabled
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              filter_enforced:
                runtime_key: local_rate_limit_enforced
                default_value:
                  numerator: 100
                  denominator: HUNDRED
              response_headers_to_add:
                - append: false
                  header:
                    key: x-local-rate-limit
                    value: 'true'
YAML
} | xmt_config_write reviews.yaml
xmt_agent_start --proxy-workers 2

XMT_SUBTEST="burst"
t0=$(date +%s%N)
got=$(xmr_statuses / 6)
ms=$((($(date +%s%N) - t0) / 1000000))
# A token comes back every 0.5 s: a burst slower than that (a loaded machine) would see a fifth 200.
[ "$got" = "200 200 200 200 429 429 " ] || xmt_fail "4 tokens then 429: got $got in ${ms} ms"

XMT_SUBTEST="429 answer"
xmr_assert_limited
[ "$(cat "$t/body")" = local_rate_limited ] || xmt_fail "Envoy's body local_rate_limited: $(cat "$t/body")"

XMT_SUBTEST="pod not selected"
got=$(xmr_statuses /v2 10)
[ "$got" = "$(printf '200 %.0s' {1..10})" ] || xmt_fail "v2 is not limited: got $got"

XMT_SUBTEST="refill"
sleep 2.2
t0=$(date +%s%N)
got=$(xmr_statuses / 6)
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$got" = "200 200 200 200 429 429 " ] || xmt_fail "full again after the fill interval: got $got in ${ms} ms"

XMT_SUBTEST="apply"
# An unrelated change (a Service more) is applied: the limit keeps its bucket, the same object with its counts
# (a new bucket would start full and count 0). Its tokens are not compared: they come back at 2 per second
# while the apply runs.
xmt_yaml_service --name other --vip 10.96.0.99 --port-name http | xmt_config_write other.yaml
xmt_wait_for "$XMT_AGENT_LOG" 'config applied .*generation 2' 5 || xmt_fail "the second config was not applied"
xmt_xmesh routes --admin "$XMT_ADMIN" --json >"$t/routes.json" || xmt_fail "xmesh routes --json failed"
python3 - "$t/routes.json" <<'PY' || xmt_fail "xmesh routes --json after the apply: $(cat "$t/routes.json")"
import json, sys
rl = json.load(open(sys.argv[1]))["rateLimits"]
assert len(rl) == 1 and rl[0]["pod"] == "default/b1" and rl[0]["maxTokens"] == 4, rl
assert rl[0]["rateLimited"] == 5 and rl[0]["notEnforced"] == 0, rl
PY

XMT_SUBTEST="xmesh routes"
xmt_xmesh routes --admin "$XMT_ADMIN" >"$t/routes" || xmt_fail "xmesh routes: $(cat "$t/routes")"
grep -q "inbound istio-system/filter-local-ratelimit-svc pod default/b1 port $XMT_TARGET: 4 tokens, 4 per 2000ms" \
	"$t/routes" || xmt_fail "the limit in xmesh routes: $(cat "$t/routes")"

XMT_SUBTEST="metrics"
sleep 1
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"
python3 - "$t/metrics" <<'PY' || xmt_fail "RL: $(grep -E '^(istio_requests_total|xmesh_l7_rate)' "$t/metrics")"
import re, sys
got, limited = {}, None
for line in open(sys.argv[1]):
    m = re.match(r'^istio_requests_total\{(.*)\} (\S+)$', line)
    if m:
        l = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        key = (l.get("response_code"), l.get("response_flags"))
        got[key] = got.get(key, 0) + float(m.group(2))
    m = re.match(r'^xmesh_l7_rate_limited_total (\S+)$', line)
    if m:
        limited = float(m.group(1))
# 2 + 1 + 2 answered 429 locally
assert got.get(("429", "RL")) == 5, got
assert limited == 5, limited
assert got.get(("200", "-")) == 18, got
PY
xmt_note "burst of 6 in ${ms} ms"
xmt_pass "rate limit: 4 admitted then 429 RL with x-local-rate-limit, refilled after 2 s, v2 unlimited, bucket kept over an apply"
