// SPDX-License-Identifier: Apache-2.0
/*
 * Local rate limit descriptors (Envoy's route rate_limits actions + LocalRateLimit.descriptors): the recipe
 * parsed, errors and warnings with positions, and which buckets a request consumes (a descriptor's when the
 * request's generated entries equal it, the default one always, as always_consume_default_token_bucket).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "config/envoy_filter.h"
#include "http/h1.h"
#include "l7/ratelimit.h"
#include "l7/routes.h"
#include "test_config.h"

#define SEC 1000000000ull

static struct h1_str S(const char *s) {
	return (struct h1_str){ s, (uint32_t)strlen(s) };
}

/* GET path with one optional header "name: value". */
static struct h1_request
request(const char *path, const char *name, const char *value)
{
	struct h1_request r = { .method = S("GET"), .target = S(path), .path = S(path), .host = S("productpage") };

	if (name) {
		r.headers[0] = (struct h1_header){ S(name), S(value) };
		r.n_headers = 1;
	}
	return r;
}

Test(ratelimit_desc, the_recipe_with_descriptors_parses)
{
	const char *paths[] = { fixture("ratelimit/mesh.yaml"), fixture("ratelimit/recipe_descriptors.yaml") };
	struct xm_config cfg = { 0 };
	const struct xm_ef_ratelimit *l;
	struct xm_diags d = { 0 };

	cr_assert_eq(config_load(paths, 2, &cfg, &d), 0);
	if (d.n)
		dump_diags(&d);
	cr_assert_eq(d.n, 0);
	cr_assert_eq(cfg.n_envoy_filters, 1);
	cr_assert_eq(cfg.envoy_filters[0].n_limits, 1);
	l = &cfg.envoy_filters[0].limits[0];
	cr_assert(l->route);
	cr_assert(l->rl.always_consume_default);
	cr_assert_eq(l->n_policies, 2);
	cr_assert_eq(l->policies[0].n_actions, 1);
	cr_assert_eq(l->policies[0].actions[0].kind, XM_RLA_REQUEST_HEADERS);
	cr_assert_str_eq(l->policies[0].actions[0].value, "x-tier", "header names are lowercased");
	cr_assert_str_eq(l->policies[0].actions[0].key, "tier");
	cr_assert_not(l->policies[0].actions[0].skip_if_absent);
	cr_assert_eq(l->policies[1].n_actions, 2);
	cr_assert_str_eq(l->policies[1].actions[0].key, "generic_key", "Envoy's default descriptor_key");
	cr_assert_str_eq(l->policies[1].actions[1].key, "header_match", "Envoy's default descriptor_key");
	cr_assert(l->policies[1].actions[1].expect_match);
	cr_assert_eq(l->policies[1].actions[1].n_headers, 1);
	cr_assert_str_eq(l->policies[1].actions[1].headers[0].name, ":path");
	cr_assert_eq(l->policies[1].actions[1].headers[0].kind, XM_RLH_PREFIX);
	cr_assert_eq(l->rl.n_descriptors, 2);
	cr_assert_eq(l->rl.descriptors[0].n_entries, 1);
	cr_assert_str_eq(l->rl.descriptors[0].entries[0].key, "tier");
	cr_assert_str_eq(l->rl.descriptors[0].entries[0].value, "free");
	cr_assert_eq(l->rl.descriptors[0].max_tokens, 1);
	cr_assert_eq(l->rl.descriptors[0].fill_interval_ms, 60000);
	cr_assert_eq(l->rl.descriptors[1].n_entries, 2);
	cr_assert_eq(l->rl.descriptors[1].tokens_per_fill, 1, "tokens_per_fill defaults to 1");
	diags_free(&d);
	config_free(&cfg);
}

Test(ratelimit_desc, errors_and_warnings_have_positions)
{
	const char *paths[] = { fixture("ratelimit/descriptor_errors.yaml") };
	struct xm_config cfg = { 0 };
	struct xm_diags d = { 0 };

	cr_assert_eq(config_load(paths, 1, &cfg, &d), -EINVAL);
	cr_assert(
	    find_diag(&d, "descriptor_errors.yaml", 17, 24, "remote_address is not supported", "ignored")->warning);
	find_diag(&d, "descriptor_errors.yaml", 18, 55, "\"bad header\"", "not a header name");
	cr_assert(
	    find_diag(&d, "descriptor_errors.yaml", 19, 86, "safe_regex_match is not supported", "ignored")->warning);
	find_diag(&d, "descriptor_errors.yaml", 27, 25, "value is required", "dynamic");
	find_diag(&d, "descriptor_errors.yaml", 30, 60, "not a multiple", "fill timer");
	find_diag(&d, "descriptor_errors.yaml", 33, 15, "descriptors[3] duplicates", "descriptors[2]");
	cr_assert_eq(n_errors(&d), 4);
	diags_free(&d);
	config_free(&cfg);
}

Test(ratelimit_desc, filter_level_descriptors_are_a_warning)
{
	const char *paths[] = { fixture("ratelimit/warnings.yaml") };
	struct xm_config cfg = { 0 };
	struct xm_diags d = { 0 };

	config_load(paths, 1, &cfg, &d);
	cr_assert(
	    find_diag(&d, "warnings.yaml", 52, 11, "descriptors are applied by xmesh only in an HTTP_ROUTE", "ignored")
		->warning);
	diags_free(&d);
	config_free(&cfg);
}

static struct xm_snapshot *build_path(const char *path)
{
	const char *paths[] = { fixture("ratelimit/mesh.yaml"), path };
	struct xm_compile_opts opts = { .maglev_size = 251 };
	struct xm_config cfg = { 0 };
	struct xm_snapshot *snap;
	int err;

	load_clean(paths, 2, &cfg);
	snap = snapshot_build(&cfg, &opts, &err);
	cr_assert_not_null(snap, "snapshot_build: %d", err);
	config_free(&cfg);
	return snap;
}

static struct xm_snapshot *build_recipe(void)
{
	return build_path(fixture("ratelimit/recipe_descriptors.yaml"));
}

static const struct l7_ratelimit *pod_limit(const struct l7_route_table *t)
{
	for (size_t i = 0; i < t->n_clusters; i++)
		if (!strcmp(t->clusters[i].name, "outbound|9080||productpage.default.svc.cluster.local")) {
			cr_assert_not_null(t->clusters[i].endpoint_rl);
			cr_assert_not_null(t->clusters[i].endpoint_rl[0]);
			return t->clusters[i].endpoint_rl[0];
		}
	cr_assert_fail("no productpage cluster");
	return NULL;
}

Test(ratelimit_desc, the_header_value_takes_its_descriptors_bucket_others_the_default)
{
	struct xm_snapshot *snap = build_recipe();
	const struct l7_route_table *t = &snap->routes;
	const struct l7_ratelimit *rl = pod_limit(t), *free_tier, *api;
	struct h1_request free_req = request("/", "X-Tier", "free"), paid = request("/", "x-tier", "paid");
	struct h1_request none = request("/", NULL, NULL), api_req = request("/api/v1", NULL, NULL);
	uint64_t t0 = l7_ratelimit_clock_ns() + SEC; /* after the buckets' creation */

	cr_assert_eq(rl->n_descs, 2);
	/* Envoy's order: the slowest fill rate first (1 per 120 s before 1 per 60 s) */
	api = rl->descs[0];
	free_tier = rl->descs[1];
	cr_assert_str_eq(free_tier->kv[0], "tier");
	cr_assert_str_eq(free_tier->kv[1], "free");
	cr_assert_eq(api->n_entries, 2);
	cr_assert_eq(t->n_ratelimits, 2 * 3, "two pods, each a default bucket and two descriptor buckets");
	cr_assert_neq(free_tier->bucket, rl->bucket);
	/* x-tier: free → the 1-token descriptor bucket (and the default one, always_consume_default) */
	cr_assert_null(l7_ratelimit_take(rl, &free_req, t0));
	cr_assert_eq(l7_ratelimit_take(rl, &free_req, t0), free_tier, "the descriptor's bucket is empty");
	cr_assert_float_eq(l7_bucket_tokens(rl->bucket, rl, t0), 99.0, 1e-6,
			   "the denied request took no default token");
	/* another value, or no header: the default bucket only */
	for (int i = 0; i < 10; i++) {
		cr_assert_null(l7_ratelimit_take(rl, &paid, t0));
		cr_assert_null(l7_ratelimit_take(rl, &none, t0));
	}
	cr_assert_float_eq(l7_bucket_tokens(rl->bucket, rl, t0), 79.0, 1e-6);
	cr_assert_float_eq(l7_bucket_tokens(free_tier->bucket, free_tier, t0), 0.0, 1e-6);
	/* generic_key + header_value_match(:path prefix /api/) → the two-entry descriptor */
	cr_assert_null(l7_ratelimit_take(rl, &api_req, t0));
	cr_assert_null(l7_ratelimit_take(rl, &api_req, t0));
	cr_assert_eq(l7_ratelimit_take(rl, &api_req, t0), api);
	/* 60 s later the free tier has its token back */
	cr_assert_null(l7_ratelimit_take(rl, &free_req, t0 + 60 * SEC));
	snapshot_put(snap);
}

Test(ratelimit_desc, the_default_bucket_limits_matched_requests_too)
{
	struct xm_snapshot *snap = build_recipe();
	const struct l7_ratelimit *rl = pod_limit(&snap->routes);
	struct h1_request none = request("/", NULL, NULL), free_req = request("/", "x-tier", "free");
	uint64_t t0 = l7_ratelimit_clock_ns() + SEC;
	int admitted = 0;

	/* 100 tokens (the last one may be a rounding away: the bucket is a time in floating point) */
	for (int i = 0; i < 101; i++)
		admitted += l7_ratelimit_take(rl, &none, t0) == NULL;
	cr_assert(admitted == 100 || admitted == 99, "%d admitted", admitted);
	cr_assert_eq(l7_ratelimit_take(rl, &none, t0), rl);
	cr_assert_eq(l7_ratelimit_take(rl, &free_req, t0), rl, "the descriptor had a token, the default none");
	snapshot_put(snap);
}

Test(ratelimit_desc, skip_if_absent_expect_match_false_and_no_default_consumption)
{
	char *path = temp_yaml(
	    "apiVersion: networking.istio.io/v1alpha3\n"
	    "kind: EnvoyFilter\n"
	    "metadata: {name: actions, namespace: default}\n"
	    "spec:\n"
	    "  workloadSelector: {labels: {app: productpage}}\n"
	    "  configPatches:\n"
	    "  - applyTo: HTTP_FILTER\n"
	    "    patch: {operation: INSERT_BEFORE, value: {name: envoy.filters.http.local_ratelimit, typed_config: "
	    "{\"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, "
	    "stat_prefix: rl}}}\n"
	    "  - applyTo: HTTP_ROUTE\n"
	    "    match: {routeConfiguration: {vhost: {name: \"inbound|http|9080\"}}}\n"
	    "    patch:\n"
	    "      operation: MERGE\n"
	    "      value:\n"
	    "        route:\n"
	    "          rate_limits:\n"
	    "          - actions:\n"
	    "            - request_headers: {header_name: x-user, descriptor_key: user, skip_if_absent: true}\n"
	    "            - generic_key: {descriptor_value: g}\n"
	    "          - actions:\n"
	    "            - header_value_match: {descriptor_value: nonget, expect_match: false, headers: [{name: "
	    "\":method\", string_match: {exact: GET}}]}\n"
	    "        typed_per_filter_config:\n"
	    "          envoy.filters.http.local_ratelimit:\n"
	    "            \"@type\": "
	    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit\n"
	    "            stat_prefix: rl\n"
	    "            filter_enabled: {default_value: {numerator: 100}}\n"
	    "            filter_enforced: {default_value: {numerator: 100}}\n"
	    "            always_consume_default_token_bucket: false\n"
	    "            token_bucket: {max_tokens: 1, fill_interval: 60s}\n"
	    "            descriptors:\n"
	    "            - entries: [{key: generic_key, value: g}]\n"
	    "              token_bucket: {max_tokens: 1, fill_interval: 60s}\n"
	    "            - entries: [{key: user, value: u1}, {key: generic_key, value: g}]\n"
	    "              token_bucket: {max_tokens: 1, fill_interval: 60s}\n"
	    "            - entries: [{key: header_match, value: nonget}]\n"
	    "              token_bucket: {max_tokens: 1, fill_interval: 60s}\n");
	struct xm_snapshot *snap = build_path(path);
	const struct l7_ratelimit *rl = pod_limit(&snap->routes);
	struct h1_request anon = request("/", NULL, NULL), u1 = request("/", "x-user", "u1");
	struct h1_request post = request("/", "x-user", "u2"), other = request("/", "x-user", "u2");
	uint64_t t0 = l7_ratelimit_clock_ns() + SEC;

	post.method = S("POST");
	cr_assert_eq(rl->n_descs, 3);
	cr_assert_not(rl->always_consume_default);
	/* no x-user: skip_if_absent drops the entry, (generic_key, g) is left → the first descriptor */
	cr_assert_null(l7_ratelimit_take(rl, &anon, t0));
	cr_assert_not_null(l7_ratelimit_take(rl, &anon, t0));
	cr_assert_str_eq(l7_ratelimit_take(rl, &anon, t0)->kv[1], "g");
	/* x-user: u1 → (user, u1), (generic_key, g): the two-entry descriptor, not the one-entry one */
	cr_assert_null(l7_ratelimit_take(rl, &u1, t0));
	cr_assert_eq(l7_ratelimit_take(rl, &u1, t0)->n_entries, 2);
	/* POST: the method does not match GET and expect_match is false → (header_match, nonget) */
	cr_assert_null(l7_ratelimit_take(rl, &post, t0));
	cr_assert_str_eq(l7_ratelimit_take(rl, &post, t0)->kv[1], "nonget");
	/* GET with x-user: u2 matches no descriptor: the default bucket, untouched so far (not always consumed) */
	cr_assert_null(l7_ratelimit_take(rl, &other, t0));
	cr_assert_eq(l7_ratelimit_take(rl, &other, t0), rl);
	snapshot_put(snap);
	unlink(path);
	free(path);
}
