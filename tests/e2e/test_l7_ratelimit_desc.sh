#!/usr/bin/env bash
# Local rate limit descriptors from Istio's EnvoyFilter recipe: an HTTP_ROUTE patch on the pod's inbound vhost
# whose route.rate_limits request_headers action makes the descriptor (tier, <x-tier>) and whose per-route
# LocalRateLimit gives descriptor tier=free a bucket of 2 (per minute) beside a default bucket of 100: requests
# with x-tier: free get 2 × 200 then 429 RL, requests without the header or with another value pass under the
# default bucket; `xmesh routes --json` shows the descriptor's bucket and its count.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/l7_reviews_lib.sh
. "$(dirname "$0")/l7_reviews_lib.sh"
# shellcheck source=tests/e2e/ratelimit_lib.sh
. "$(dirname "$0")/ratelimit_lib.sh"
xmt_init "$@"
xml_reviews 1
t="$XMT_TMP"

{
	xml_yaml_reviews 1
	xmr_ratelimit_filter_head "app: reviews"
	cat <<YAML
    - applyTo: HTTP_ROUTE
      match:
        context: SIDECAR_INBOUND
        routeConfiguration:
          vhost:
            name: "inbound|http|$XMT_TARGET"
            route:
              action: ANY
      patch:
        operation: MERGE
        value:
          route:
            rate_limits:
              - actions:
                  - request_headers:
                      header_name: x-tier
                      descriptor_key: tier
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              value:
                stat_prefix: http_local_rate_limiter
                token_bucket:
                  max_tokens: 100
                  tokens_per_fill: 100
                  fill_interval: 60s
                filter_enabled:
                  default_value:
                    numerator: 100
                    denominator: HUNDRED
                filter_enforced:
                  default_value:
                    numerator: 100
                    denominator: HUNDRED
                response_headers_to_add:
                  - append: false
                    header:
                      key: x-local-rate-limit
                      value: 'true'
                descriptors:
                  - entries:
                      - key: tier
                        value: free
                    token_bucket:
                      max_tokens: 2
                      tokens_per_fill: 2
                      fill_interval: 60s
YAML
} | xmt_config_write reviews.yaml
xmt_agent_start --proxy-workers 2

XMT_SUBTEST="descriptor bucket"
got=$(xmr_statuses / 5 -H 'x-tier: free')
[ "$got" = "200 200 429 429 429 " ] || xmt_fail "x-tier: free gets its descriptor's 2 tokens: got $got"
xmr_assert_limited -H 'x-tier: free'

XMT_SUBTEST="default bucket"
got=$(xmr_statuses / 10)
[ "$got" = "$(printf '200 %.0s' {1..10})" ] || xmt_fail "no header: the default bucket of 100: got $got"
got=$(xmr_statuses / 5 -H 'x-tier: paid')
[ "$got" = "200 200 200 200 200 " ] || xmt_fail "x-tier: paid matches no descriptor: got $got"

XMT_SUBTEST="xmesh routes"
xmt_xmesh routes --admin "$XMT_ADMIN" --json >"$t/routes.json" || xmt_fail "xmesh routes --json failed"
python3 - "$t/routes.json" <<'PY' || xmt_fail "xmesh routes --json: $(cat "$t/routes.json")"
import json, sys
rl = json.load(open(sys.argv[1]))["rateLimits"]
assert len(rl) == 2, rl
default = [r for r in rl if "descriptor" not in r][0]
desc = [r for r in rl if "descriptor" in r][0]
assert desc["descriptor"] == [{"key": "tier", "value": "free"}] and desc["maxTokens"] == 2, desc
assert desc["rateLimited"] == 4 and default["rateLimited"] == 0, rl
# always_consume_default_token_bucket: 2 free + 15 others took default tokens (a few may have come back)
assert 83 <= default["tokens"] < 95, default
PY
xmt_pass "descriptor tier=free: 2 then 429 RL; without the header or with another value: the default bucket"
