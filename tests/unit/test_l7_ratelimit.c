// SPDX-License-Identifier: Apache-2.0
/*
 * Local rate limits from EnvoyFilters: Istio's published recipes parsed as they are, errors and warnings with
 * their positions, the token bucket (Envoy's AtomicTokenBucket) on an injected clock, the compiled limits in
 * the route table (per destination pod, per client pod, per route port), their rendering, and buckets that
 * carry over an apply (fixtures in tests/unit/fixtures/config/ratelimit/).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "compile/snapshot.h"
#include "config/envoy_filter.h"
#include "core/strbuf.h"
#include "l7/ratelimit.h"
#include "l7/routes.h"
#include "test_config.h"

#define SEC 1000000000ull

static const struct xm_envoy_filter *filter(const struct xm_config *cfg, const char *ns, const char *name)
{
	for (size_t i = 0; i < cfg->n_envoy_filters; i++)
		if (!strcmp(cfg->envoy_filters[i].ns, ns) && !strcmp(cfg->envoy_filters[i].name, name))
			return &cfg->envoy_filters[i];
	cr_assert_fail("no envoyfilter %s/%s", ns, name);
	return NULL;
}

/* Loads the paths and requires no diagnostic at all (not even a warning). */
static void load_silent(const char *const *paths, size_t n, struct xm_config *cfg)
{
	struct xm_diags d = { 0 };
	int r = config_load(paths, n, cfg, &d);

	if (d.n)
		dump_diags(&d);
	cr_assert_eq(r, 0);
	cr_assert_eq(d.n, 0, "%zu diagnostics", d.n);
	diags_free(&d);
}

Test(ratelimit_config, istio_docs_filter_recipe_as_published)
{
	const char *paths[] = { fixture("ratelimit/mesh.yaml"), fixture("ratelimit/recipe_filter.yaml") };
	struct xm_config cfg = { 0 };
	const struct xm_envoy_filter *ef;
	const struct xm_ef_ratelimit *l;

	load_silent(paths, 2, &cfg);
	ef = filter(&cfg, "istio-system", "filter-local-ratelimit-svc");
	cr_assert(ef->has_selector);
	cr_assert_eq(ef->n_labels, 1);
	cr_assert_str_eq(ef->labels[0].key, "app");
	cr_assert_str_eq(ef->labels[0].value, "productpage");
	cr_assert(ef->inserts_filter);
	cr_assert_eq(ef->n_limits, 1);
	l = &ef->limits[0];
	cr_assert_eq(l->context, XM_EF_SIDECAR_INBOUND);
	cr_assert_not(l->route);
	cr_assert_eq(l->port, 0);
	cr_assert_eq(l->rl.max_tokens, 4);
	cr_assert_eq(l->rl.tokens_per_fill, 4);
	cr_assert_eq(l->rl.fill_interval_ms, 60000);
	cr_assert_eq(l->rl.enabled_ppm, 1000000);
	cr_assert_eq(l->rl.enforced_ppm, 1000000);
	cr_assert_eq(l->rl.status, 429);
	cr_assert_eq(l->rl.n_headers, 1);
	cr_assert_str_eq(l->rl.headers[0].name, "x-local-rate-limit");
	cr_assert_str_eq(l->rl.headers[0].value, "true");
	cr_assert_not(l->rl.headers[0].append);
	cr_assert_eq(l->loc.line, 12);
	config_free(&cfg);
}

Test(ratelimit_config, istio_docs_route_recipe_as_published)
{
	const char *paths[] = { fixture("ratelimit/mesh.yaml"), fixture("ratelimit/recipe_route.yaml") };
	struct xm_config cfg = { 0 };
	const struct xm_envoy_filter *ef;
	const struct xm_ef_ratelimit *l;

	load_silent(paths, 2, &cfg);
	ef = filter(&cfg, "istio-system", "filter-local-ratelimit-svc");
	cr_assert(ef->inserts_filter);
	/* The HTTP_FILTER patch has no token bucket: it inserts the filter, the HTTP_ROUTE patch limits. */
	cr_assert_eq(ef->n_limits, 1);
	l = &ef->limits[0];
	cr_assert(l->route);
	cr_assert_eq(l->patch, 1);
	cr_assert_eq(l->port, 9080);
	cr_assert_eq(l->context, XM_EF_SIDECAR_INBOUND);
	cr_assert_eq(l->rl.max_tokens, 4);
	cr_assert_eq(l->rl.fill_interval_ms, 60000);
	cr_assert_eq(l->rl.n_headers, 1);
	config_free(&cfg);
}

Test(ratelimit_config, envoy_typed_config_and_defaults)
{
	const char *paths[] = { fixture("ratelimit/mesh.yaml"), fixture("ratelimit/envoy_typed.yaml") };
	struct xm_config cfg = { 0 };
	const struct xm_envoy_filter *ef;

	load_silent(paths, 2, &cfg);
	ef = filter(&cfg, "default", "ratings-out");
	cr_assert_eq(ef->n_limits, 1);
	cr_assert_eq(ef->limits[0].context, XM_EF_SIDECAR_OUTBOUND);
	cr_assert_eq(ef->limits[0].rl.status, 503);
	cr_assert_eq(ef->limits[0].rl.max_tokens, 10000);
	cr_assert_eq(ef->limits[0].rl.tokens_per_fill, 1000);
	cr_assert_eq(ef->limits[0].rl.enforced_ppm, 500000);
	ef = filter(&cfg, "default", "reviews-in");
	cr_assert_eq(ef->n_limits, 1);
	cr_assert_eq(ef->limits[0].port, 8080);
	cr_assert_eq(ef->limits[0].rl.tokens_per_fill, 1, "tokens_per_fill defaults to 1");
	cr_assert_eq(ef->limits[0].rl.fill_interval_ms, 500);
	cr_assert_eq(ef->limits[0].rl.enabled_ppm, 1000000, "the denominator defaults to HUNDRED");
	config_free(&cfg);
}

Test(ratelimit_config, errors_have_positions)
{
	const char *paths[] = { fixture("ratelimit/errors.yaml") };
	struct xm_config cfg = { 0 };
	struct xm_diags d = { 0 };

	cr_assert_eq(config_load(paths, 1, &cfg, &d), -EINVAL);
	find_diag(&d, "errors.yaml", 14, 38, "max_tokens -4", "out of range");
	find_diag(&d, "errors.yaml", 14, 59, "tokens_per_fill 0", "out of range");
	find_diag(&d, "errors.yaml", 14, 77, "fill_interval \"10ms\"", "below Envoy's minimum of 50ms");
	find_diag(&d, "errors.yaml", 27, 11, "stat_prefix is required", NULL);
	find_diag(&d, "errors.yaml", 41, 15, "token_bucket is required in typed_per_filter_config", NULL);
	find_diag(&d, "errors.yaml", 43, 31, "not a valid header name", NULL);
	find_diag(&d, "errors.yaml", 44, 44, "must not contain CR or LF", NULL);
	find_diag(&d, "errors.yaml", 59, 25, "fill_interval is required", NULL);
	find_diag(&d, "errors.yaml", 60, 73, "denominator \"PERCENT\"", "HUNDRED, TEN_THOUSAND, MILLION");
	cr_assert_eq(n_errors(&d), 9);
	diags_free(&d);
	config_free(&cfg);
}

Test(ratelimit_config, what_is_not_honoured_is_a_warning_with_its_position)
{
	const char *paths[] = { fixture("ratelimit/warnings.yaml") };
	struct xm_config cfg = { 0 };
	struct xm_diags d = { 0 };
	const struct xm_diag *x;

	config_load(paths, 1, &cfg, &d);
	x = find_diag(&d, "warnings.yaml", 14, 15, "envoy.filters.http.lua", "patch ignored");
	cr_assert(x->warning);
	cr_assert(find_diag(&d, "warnings.yaml", 18, 14, "applyTo \"CLUSTER\"", "patch ignored")->warning);
	cr_assert(find_diag(&d, "warnings.yaml", 27, 3, "spec.priority", "ignored")->warning);
	cr_assert(find_diag(&d, "warnings.yaml", 33, 16, "context GATEWAY", "patch ignored")->warning);
	cr_assert(
	    find_diag(&d, "warnings.yaml", 51, 11, "request_headers_to_add_when_not_enforced", "ignored")->warning);
	cr_assert(find_diag(&d, "warnings.yaml", 52, 11, "descriptors are applied by xmesh only", "ignored")->warning);
	cr_assert(find_diag(&d, "warnings.yaml", 57, 16, "SIDECAR_OUTBOUND", "patch ignored")->warning);
	cr_assert(find_diag(&d, "warnings.yaml", 71, 23, "not an inbound vhost", "patch ignored")->warning);
	/* EnvoyFilter is served as v1alpha3 only */
	find_diag(&d, "warnings.yaml", 76, 13, "not supported for EnvoyFilter", NULL);
	cr_assert_eq(n_errors(&d), 1);
	/* What was honoured stays: the inbound filter-level limit of gateway-and-extras. */
	cr_assert_eq(filter(&cfg, "default", "gateway-and-extras")->n_limits, 1);
	cr_assert_eq(filter(&cfg, "default", "gateway-and-extras")->limits[0].rl.max_tokens, 5);
	cr_assert_eq(filter(&cfg, "default", "lua")->n_limits, 0);
	diags_free(&d);
	config_free(&cfg);
}

Test(ratelimit_config, a_route_limit_without_the_filter_is_a_warning)
{
	char *path =
	    temp_yaml("apiVersion: networking.istio.io/v1alpha3\n"
		      "kind: EnvoyFilter\n"
		      "metadata: {name: route-only, namespace: default}\n"
		      "spec:\n"
		      "  configPatches:\n"
		      "  - applyTo: HTTP_ROUTE\n"
		      "    match:\n"
		      "      routeConfiguration: {vhost: {name: \"inbound|http|9080\"}}\n"
		      "    patch:\n"
		      "      operation: MERGE\n"
		      "      value:\n"
		      "        typed_per_filter_config:\n"
		      "          envoy.filters.http.local_ratelimit:\n"
		      "            \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit."
		      "v3.LocalRateLimit\n"
		      "            stat_prefix: rl\n"
		      "            token_bucket: {max_tokens: 1, fill_interval: 1s}\n");
	const char *paths[] = { path };
	struct xm_config cfg = { 0 };
	struct xm_diags d = { 0 };

	cr_assert_eq(config_load(paths, 1, &cfg, &d), 0);
	cr_assert(find_diag(&d, path, 6, 5, "has no effect", "no HTTP_FILTER patch")->warning);
	diags_free(&d);
	config_free(&cfg);
	unlink(path);
	free(path);
}

/* --- the bucket --- */

static struct l7_ratelimit limit(uint32_t max, uint32_t per_fill, uint64_t interval_ms)
{
	return (struct l7_ratelimit){ .max_tokens = max,
				      .tokens_per_fill = per_fill,
				      .fill_interval_ns = interval_ms * 1000000ull };
}

Test(ratelimit_bucket, starts_full_then_refills_at_tokens_per_fill_per_interval)
{
	struct l7_ratelimit rl = limit(4, 4, 2000);
	struct l7_shared *b = l7_shared_new("t");
	uint64_t t0 = 1000 * SEC;

	l7_bucket_init(b, &rl, t0);
	cr_assert_float_eq(l7_bucket_tokens(b, &rl, t0), 4.0, 1e-9);
	for (int i = 0; i < 4; i++)
		cr_assert(l7_bucket_take(b, &rl, t0 + (uint64_t)i * 1000), "token %d", i);
	cr_assert_not(l7_bucket_take(b, &rl, t0 + 10000));
	/* 2 tokens/s: none before 0.5 s, one at 0.5 s */
	cr_assert_not(l7_bucket_take(b, &rl, t0 + SEC / 2 - SEC / 100));
	cr_assert(l7_bucket_take(b, &rl, t0 + SEC / 2 + SEC / 1000));
	cr_assert_not(l7_bucket_take(b, &rl, t0 + SEC / 2 + SEC / 500));
	/* a whole interval later the bucket is full again, and never fuller than max_tokens */
	cr_assert_float_eq(l7_bucket_tokens(b, &rl, t0 + 10 * SEC), 4.0, 1e-9);
	for (int i = 0; i < 4; i++)
		cr_assert(l7_bucket_take(b, &rl, t0 + 10 * SEC));
	cr_assert_not(l7_bucket_take(b, &rl, t0 + 10 * SEC));
	l7_shared_put(b);
}

Test(ratelimit_bucket, the_istio_docs_limit_admits_4_per_minute)
{
	struct l7_ratelimit rl = limit(4, 4, 60000);
	struct l7_shared *b = l7_shared_new("t");
	uint64_t t0 = 5 * SEC;
	int admitted = 0;

	l7_bucket_init(b, &rl, t0);
	/* the docs' check: 5 requests a second apart, 200 200 200 200 429 */
	for (int i = 0; i < 5; i++)
		admitted += l7_bucket_take(b, &rl, t0 + (uint64_t)i * SEC);
	cr_assert_eq(admitted, 4);
	/* one request a minute goes through in the long run: 15 s per token */
	cr_assert_not(l7_bucket_take(b, &rl, t0 + 14 * SEC));
	cr_assert(l7_bucket_take(b, &rl, t0 + 16 * SEC));
	l7_shared_put(b);
}

Test(ratelimit_bucket, a_clock_before_the_epoch_counts_as_the_epoch)
{
	struct l7_ratelimit rl = limit(1, 1, 1000);
	struct l7_shared *b = l7_shared_new("t");

	l7_bucket_init(b, &rl, 10 * SEC);
	cr_assert(l7_bucket_take(b, &rl, 9 * SEC));
	cr_assert_not(l7_bucket_take(b, &rl, 9 * SEC));
	l7_shared_put(b);
}

/* --- the compiled table --- */

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

static struct xm_snapshot *build(const char *extra)
{
	return build_path(fixture(extra));
}

static const struct l7_cluster *cluster(const struct l7_route_table *t, const char *name)
{
	for (size_t i = 0; i < t->n_clusters; i++)
		if (!strcmp(t->clusters[i].name, name))
			return &t->clusters[i];
	cr_assert_fail("no cluster %s", name);
	return NULL;
}

Test(ratelimit_routes, each_selected_pod_has_its_own_bucket)
{
	struct xm_snapshot *snap = build("ratelimit/recipe_filter.yaml");
	const struct l7_route_table *t = &snap->routes;
	const struct l7_cluster *pp = cluster(t, "outbound|9080||productpage.default.svc.cluster.local");
	const struct l7_cluster *rv = cluster(t, "outbound|9080||reviews.default.svc.cluster.local");

	cr_assert_eq(pp->n_endpoints, 2);
	cr_assert_not_null(pp->endpoint_rl);
	cr_assert_not_null(pp->endpoint_rl[0]);
	cr_assert_not_null(pp->endpoint_rl[1]);
	cr_assert_neq(pp->endpoint_rl[0], pp->endpoint_rl[1]);
	cr_assert_neq(pp->endpoint_rl[0]->bucket, pp->endpoint_rl[1]->bucket);
	cr_assert_str_eq(pp->endpoint_rl[0]->filter, "istio-system/filter-local-ratelimit-svc");
	cr_assert_eq(pp->endpoint_rl[0]->role, L7_RL_INBOUND);
	cr_assert_str_eq(pp->endpoint_rl[0]->extra, "x-local-rate-limit: true\r\n");
	cr_assert_eq(pp->endpoint_rl[0]->status, 429);
	cr_assert_null(rv->endpoint_rl, "reviews is not selected");
	cr_assert_eq(t->n_ratelimits, 2);
	cr_assert_eq(t->n_rl_clients, 0);
	snapshot_put(snap);
}

Test(ratelimit_routes, route_limits_by_pod_port_and_client_limits)
{
	struct xm_snapshot *snap = build("ratelimit/envoy_typed.yaml");
	const struct l7_route_table *t = &snap->routes;
	const struct l7_cluster *rv = cluster(t, "outbound|9080||reviews.default.svc.cluster.local");
	const struct l7_cluster *pp = cluster(t, "outbound|9080||productpage.default.svc.cluster.local");
	struct strbuf out = { 0 };

	/* reviews' pod listens on 8080: the per-route limit of vhost inbound|http|8080 applies */
	cr_assert_not_null(rv->endpoint_rl);
	cr_assert(rv->endpoint_rl[0]->per_route);
	cr_assert_eq(rv->endpoint_rl[0]->max_tokens, 2);
	cr_assert_eq(rv->endpoint_rl[0]->port, 8080);
	cr_assert_null(pp->endpoint_rl);
	/* ratings' outbound limit, per client pod */
	cr_assert_eq(t->n_rl_clients, 1);
	cr_assert_str_eq(t->rl_clients[0].wl->pod, "ratings-v1-0");
	cr_assert_eq(t->rl_clients[0].rl->role, L7_RL_OUTBOUND);
	cr_assert_eq(t->rl_clients[0].rl->enforced_ppm, 500000);
	l7_routes_render(t, false, &out);
	cr_assert(strstr(out.buf, "rate limits (EnvoyFilter envoy.filters.http.local_ratelimit)"), "%s", out.buf);
	cr_assert(strstr(out.buf,
			 "inbound default/reviews-in pod default/reviews-v1-0 port 8080 (per route): 2 tokens, "
			 "1 per 500ms, enabled 100% enforced 100%, status 429"),
		  "%s", out.buf);
	cr_assert(strstr(out.buf, "endpoint outbound|9080||reviews.default.svc.cluster.local 10.200.2.3:8080"), "%s",
		  out.buf);
	cr_assert(strstr(out.buf, "outbound default/ratings-out pod default/ratings-v1-0"), "%s", out.buf);
	sb_free(&out);
	memset(&out, 0, sizeof(out));
	l7_routes_render(t, true, &out);
	cr_assert(strstr(out.buf, ",\"rateLimits\":[{\"envoyFilter\":"), "%s", out.buf);
	cr_assert(strstr(out.buf, "\"pod\":\"default/reviews-v1-0\",\"direction\":\"inbound\",\"perRoute\":true,"
				  "\"port\":8080,\"maxTokens\":2,\"tokensPerFill\":1,\"fillIntervalMs\":500"),
		  "%s", out.buf);
	cr_assert(strstr(out.buf, "\"endpoints\":[{\"cluster\":\"outbound|9080||reviews.default.svc.cluster.local\","
				  "\"address\":\"10.200.2.3\",\"port\":8080}]"),
		  "%s", out.buf);
	sb_free(&out);
	snapshot_put(snap);
}

Test(ratelimit_routes, a_bucket_survives_an_unrelated_apply)
{
	struct xm_snapshot *a = build("ratelimit/recipe_filter.yaml");
	struct xm_snapshot *b = build("ratelimit/recipe_filter.yaml");
	struct l7_shared_registry *r = l7_shared_registry_new();
	struct l7_route_table *ta = &a->routes, *tb = &b->routes;
	const struct l7_ratelimit *rl;
	uint64_t now = l7_ratelimit_clock_ns();

	for (size_t i = 0; i < ta->n_ratelimits; i++)
		l7_shared_adopt(r, &ta->ratelimits[i]->bucket);
	rl = ta->ratelimits[0];
	for (int i = 0; i < 4; i++)
		cr_assert(l7_bucket_take(rl->bucket, rl, now));
	/* the next table (as l7_proxy_apply adopts it): same key, same bucket, still empty */
	for (size_t i = 0; i < tb->n_ratelimits; i++)
		l7_shared_adopt(r, &tb->ratelimits[i]->bucket);
	cr_assert_eq(tb->ratelimits[0]->bucket, ta->ratelimits[0]->bucket);
	cr_assert_not(l7_bucket_take(tb->ratelimits[0]->bucket, tb->ratelimits[0], now));
	snapshot_put(a);
	l7_shared_sweep(r);
	cr_assert_eq(l7_shared_registered(r), 2);
	snapshot_put(b);
	l7_shared_sweep(r);
	cr_assert_eq(l7_shared_registered(r), 0);
	l7_shared_registry_free(r);
}

/* A filter-level limit of max_tokens n, in namespace ns, selecting labels sel ("" for no selector). */
static void filter_yaml(FILE *f, const char *ns, const char *name, const char *sel, int n)
{
	fprintf(f,
		"---\napiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\n"
		"metadata: {name: %s, namespace: %s}\nspec:\n%s"
		"  configPatches:\n  - applyTo: HTTP_FILTER\n    patch:\n      operation: INSERT_BEFORE\n"
		"      value:\n        name: envoy.filters.http.local_ratelimit\n        typed_config:\n"
		"          \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3."
		"LocalRateLimit\n          stat_prefix: rl\n"
		"          token_bucket: {max_tokens: %d, fill_interval: 1s}\n",
		name, ns, sel, n);
}

Test(ratelimit_routes, namespace_scope_and_root_namespace_first)
{
	char *path = strdup("/tmp/xmesh-rl-test-XXXXXX.yaml");
	struct xm_snapshot *snap;
	const struct l7_route_table *t;
	const struct l7_cluster *pp, *rv;
	FILE *f;
	int fd = mkstemps(path, 5);

	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	/* in another namespace: selects nothing of default */
	filter_yaml(f, "shop", "elsewhere", "  workloadSelector: {labels: {app: productpage}}\n", 1);
	/* no selector in default: every pod of default, but the root namespace's comes first for productpage */
	filter_yaml(f, "default", "a-all", "", 2);
	filter_yaml(f, "istio-system", "z-root", "  workloadSelector: {labels: {app: productpage}}\n", 3);
	fclose(f);
	snap = build_path(path);
	t = &snap->routes;
	pp = cluster(t, "outbound|9080||productpage.default.svc.cluster.local");
	rv = cluster(t, "outbound|9080||reviews.default.svc.cluster.local");
	cr_assert_str_eq(pp->endpoint_rl[0]->filter, "istio-system/z-root");
	cr_assert_eq(pp->endpoint_rl[0]->max_tokens, 3);
	cr_assert_str_eq(rv->endpoint_rl[0]->filter, "default/a-all");
	/* context absent: the outbound listeners of default's pods get it too (ratings is a client only) */
	cr_assert_eq(t->n_rl_clients, 4);
	snapshot_put(snap);
	unlink(path);
	free(path);
}
