# shellcheck shell=bash
# Local rate limiting as test_l7_ratelimit.sh and test_l7_ratelimit_desc.sh drive it: the EnvoyFilter that
# inserts envoy.filters.http.local_ratelimit (Istio's recipe) and the client pod c1's requests to Service
# reviews through the agent's proxy. One copy, so both tests configure and judge the limit the same way.
# Sourced after lib.sh and xmt_init, with the Service reviews of l7_reviews_lib.sh.

# xmr_ratelimit_filter_head LABEL...: the EnvoyFilter filter-local-ratelimit-svc (istio-system) of the pods with
# the labels ("key: value" each), up to its HTTP_FILTER patch's "stat_prefix:" line; the test appends the rest
# (the filter's token bucket, or more patches).
xmr_ratelimit_filter_head() {
	local l
	printf '%s\n' "---" "apiVersion: networking.istio.io/v1alpha3" "kind: EnvoyFilter" "metadata:" \
		"  name: filter-local-ratelimit-svc" "  namespace: istio-system" "spec:" "  workloadSelector:" "    labels:"
	for l in "$@"; do echo "      $l"; done
	cat <<'YAML'
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_INBOUND
        listener:
          filterChain:
            filter:
              name: "envoy.filters.network.http_connection_manager"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
YAML
}

# xmr_statuses PATH N [CURL_ARGS...]: the status of each of N requests from c1 to reviews' PATH on one
# keep-alive connection (a burst well inside the time a token takes to come back), as "200 200 429 ".
xmr_statuses() {
	local path=$1 n=$2 i args=()
	shift 2
	for ((i = 0; i < n; i++)); do args+=(-o /dev/null "http://$XMT_VIP:$XMT_PORT$path"); done
	xmt_in_pod c1 curl -sS --max-time 10 -H 'Host: reviews' "$@" -w '%{http_code} ' "${args[@]}"
}

# xmr_assert_limited [CURL_ARGS...]: one more request from c1 is answered 429 with the configured header
# x-local-rate-limit: true; its head and body stay in $XMT_TMP/head and $XMT_TMP/body.
xmr_assert_limited() {
	xmt_in_pod c1 curl -sS --max-time 10 -H 'Host: reviews' "$@" -D "$XMT_TMP/head" -o "$XMT_TMP/body" \
		"http://$XMT_VIP:$XMT_PORT/" || true
	grep -q '^HTTP/1.1 429' "$XMT_TMP/head" || xmt_fail "429 expected: $(cat "$XMT_TMP/head")"
	grep -qi '^x-local-rate-limit: true' "$XMT_TMP/head" || xmt_fail "the configured header: $(cat "$XMT_TMP/head")"
}
