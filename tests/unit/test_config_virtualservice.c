// SPDX-License-Identifier: Apache-2.0
/*
 * VirtualService config: every field parsed (v1, v1beta1, v1alpha3), every error and warning at its exact
 * file:line:col, and Istio's protocol selection of Service ports.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/model.h"
#include "test_config.h"

static struct xm_config cfg;
static struct xm_diags diags;

static void teardown(void)
{
	diags_free(&diags);
	config_free(&cfg);
}

TestSuite(config_virtualservice, .fini = teardown);

static const struct xm_virtual_service *vs_named(const char *ns, const char *name)
{
	for (size_t i = 0; i < cfg.n_virtual_services; i++)
		if (!strcmp(cfg.virtual_services[i].ns, ns) && !strcmp(cfg.virtual_services[i].name, name))
			return &cfg.virtual_services[i];
	cr_assert_fail("no virtualservice %s/%s", ns, name);
	return NULL;
}

static void load_mesh(void)
{
	const char *paths[] = { fixture("vs/mesh.yaml") };

	load_clean(paths, 1, &cfg);
}

static void load_with(const char *name, int want)
{
	char rel[64];
	const char *paths[1];

	snprintf(rel, sizeof(rel), "vs/%s", name);
	paths[0] = fixture(rel);
	cr_assert_eq(config_load(paths, 1, &cfg, &diags), want);
}

Test(config_virtualservice, all_three_api_versions_are_read)
{
	load_mesh();
	cr_assert_eq(cfg.n_virtual_services, 3);
	cr_expect_eq(vs_named("default", "reviews")->n_http, 2, "networking.istio.io/v1");
	cr_expect_eq(vs_named("default", "ratings")->n_http, 5, "networking.istio.io/v1alpha3");
	cr_expect_eq(vs_named("default", "wild")->n_http, 1, "networking.istio.io/v1beta1");
}

Test(config_virtualservice, hosts_gateways_matches_and_weighted_routes)
{
	const struct xm_virtual_service *vs;
	const struct xm_http_route *r;

	load_mesh();
	vs = vs_named("default", "reviews");
	cr_assert_eq(vs->n_hosts, 1);
	cr_expect_str_eq(vs->hosts[0], "reviews");
	cr_expect_eq(vs->host_locs[0].line, 103);
	cr_expect_eq(vs->host_locs[0].col, 11);
	cr_expect(vs->mesh, "no gateways: the mesh");
	r = &vs->http[0];
	cr_expect_str_eq(r->name, "jason");
	cr_assert_eq(r->n_matches, 1);
	cr_assert_eq(r->matches[0].n_headers, 1);
	cr_expect_str_eq(r->matches[0].headers[0].name, "end-user", "header names are lowercased");
	cr_expect_eq(r->matches[0].headers[0].m.kind, XM_MATCH_EXACT);
	cr_expect_str_eq(r->matches[0].headers[0].m.value, "jason");
	cr_expect_eq(r->matches[0].uri.kind, XM_MATCH_PREFIX);
	cr_expect_str_eq(r->matches[0].uri.value, "/api");
	cr_assert_eq(r->n_route, 1);
	cr_expect_str_eq(r->route[0].dest.host, "reviews");
	cr_expect_str_eq(r->route[0].dest.subset, "v2");
	cr_expect(!r->route[0].weight_set);
	r = &vs->http[1];
	cr_assert_eq(r->n_route, 2);
	cr_expect_eq(r->n_matches, 0);
	cr_expect_eq(r->route[0].weight, 80);
	cr_expect_eq(r->route[1].weight, 20);
	cr_expect_str_eq(r->route[1].dest.host, "reviews.default.svc.cluster.local");
	cr_expect_eq(r->route[1].dest.port, 9080);
	cr_assert_eq(r->route[0].headers.n_req_set, 1);
	cr_expect_str_eq(r->route[0].headers.req_set[0].name, "x-canary");
	cr_expect_str_eq(r->route[0].headers.req_set[0].value, "no");
	cr_expect_eq(r->timeout_ms, 2500);
}

Test(config_virtualservice, rewrite_mirror_direct_response_redirect_headers)
{
	const struct xm_virtual_service *vs;
	const struct xm_http_route *r;
	const struct xm_http_match *m;

	load_mesh();
	vs = vs_named("default", "ratings");
	cr_expect(vs->mesh, "gateways: [mesh]");
	r = &vs->http[0];
	cr_expect_eq(r->matches[0].uri.kind, XM_MATCH_REGEX);
	cr_expect_str_eq(r->matches[0].uri.value, "/ratings/[0-9]+");
	cr_expect(r->matches[0].ignore_uri_case);
	cr_expect_str_eq(r->rewrite_uri, "/v2/ratings");
	cr_expect_str_eq(r->rewrite_authority, "ratings-v2");
	cr_expect(r->has_mirror);
	cr_expect_str_eq(r->mirror.host, "reviews");
	cr_expect_str_eq(r->mirror.subset, "v1");
	cr_expect_float_eq(r->mirror_percent, 25.5, 1e-9);
	r = &vs->http[1];
	cr_assert_eq(r->n_matches, 2, "match blocks are ORed");
	cr_expect_eq(r->matches[0].method.kind, XM_MATCH_EXACT);
	cr_expect_eq(r->matches[1].method.kind, XM_MATCH_REGEX);
	cr_expect_eq(r->matches[1].scheme.kind, XM_MATCH_EXACT);
	cr_expect(r->has_direct_response);
	cr_expect_eq(r->direct_status, 403);
	cr_expect_str_eq(r->direct_body, "denied");
	r = &vs->http[2];
	cr_assert_eq(r->matches[0].n_query_params, 1);
	cr_expect_str_eq(r->matches[0].query_params[0].name, "debug");
	cr_expect_str_eq(r->matches[0].query_params[0].m.value, "1");
	cr_expect_eq(r->matches[0].authority.kind, XM_MATCH_PREFIX);
	cr_expect(r->has_redirect);
	cr_expect_str_eq(r->redirect_uri, "/debug");
	cr_expect_str_eq(r->redirect_authority, "debug.example.com");
	cr_expect_str_eq(r->redirect_scheme, "https");
	cr_expect_eq(r->redirect_port, 8443);
	cr_expect_eq(r->redirect_code, 302);
	r = &vs->http[3];
	m = &r->matches[0];
	cr_expect_str_eq(m->name, "shop-clients");
	cr_assert_eq(m->n_without_headers, 1);
	cr_expect_str_eq(m->without_headers[0].name, "x-internal");
	cr_expect_eq(m->without_headers[0].m.kind, XM_MATCH_NONE, "{}: presence");
	cr_assert_eq(m->n_source_labels, 1);
	cr_expect_str_eq(m->source_labels[0].key, "app");
	cr_expect_str_eq(m->source_labels[0].value, "productpage");
	cr_expect_str_eq(m->source_namespace, "shop");
	cr_expect_eq(m->port, 9080);
	cr_expect_float_eq(r->mirror_percent, 10, 1e-9, "legacy mirror_percent");
	r = &vs->http[4];
	cr_expect_eq(r->name, NULL);
	cr_assert_eq(r->headers.n_req_set, 1);
	cr_assert_eq(r->headers.n_req_add, 1);
	cr_assert_eq(r->headers.n_req_remove, 1);
	cr_assert_eq(r->headers.n_resp_set, 1);
	cr_assert_eq(r->headers.n_resp_remove, 1);
	cr_expect_str_eq(r->headers.req_add[0].name, "x-trace");
	cr_expect_str_eq(r->headers.req_remove[0], "x-debug");
	cr_expect_str_eq(r->headers.resp_set[0].value, "no-store");
	cr_expect_str_eq(r->headers.resp_remove[0], "server");
	cr_expect_float_eq(vs->http[0].mirror_percent, 25.5, 1e-9);
}

static const struct xm_service_port *port_of(const char *ns, const char *name, uint16_t port)
{
	const struct xm_service *svc = config_find_service(&cfg, ns, name);

	cr_assert_not_null(svc, "service %s/%s", ns, name);
	for (size_t i = 0; i < svc->n_ports; i++)
		if (svc->ports[i].port == port)
			return &svc->ports[i];
	cr_assert_fail("service %s/%s has no port %u", ns, name, port);
	return NULL;
}

Test(config_virtualservice, protocol_selection_of_the_mesh)
{
	load_with("mesh.yaml", 0);
	cr_expect_eq(diags.n, 1);
	find_diag(&diags, "vs/mesh.yaml", 181, 28,
		  "virtualservice default/wild: host \"details\": ", "service default/details has no HTTP port");
	cr_expect(port_of("default", "reviews", 9080)->http, "port name http");
	cr_expect(port_of("default", "ratings", 9080)->http, "a VirtualService with http routes names it");
	cr_expect(!port_of("default", "details", 9080)->http, "tcp-main says TCP, even though a VS names it");
	cr_expect(port_of("shop", "productpage", 9080)->http, "appProtocol HTTP (case-insensitive)");
	cr_expect(!port_of("shop", "productpage", 15020)->http, "neither says: TCP");
	cr_expect_str_eq(port_of("shop", "productpage", 9080)->app_protocol, "HTTP");
}

Test(config_virtualservice, protocol_selection_table)
{
	static const struct {
		const char *name, *app_protocol;
		enum xm_port_protocol want;
	} cases[] = {
		{ "http", "", XM_PORT_PROTO_HTTP },
		{ "http-web", "", XM_PORT_PROTO_HTTP },
		{ "HTTP-web", "", XM_PORT_PROTO_HTTP },
		{ "httpx", "", XM_PORT_PROTO_UNKNOWN },
		{ "web", "", XM_PORT_PROTO_UNKNOWN },
		{ "", "", XM_PORT_PROTO_UNKNOWN },
		{ "http2", "", XM_PORT_PROTO_HTTP2 },
		{ "http2-api", "", XM_PORT_PROTO_HTTP2 },
		{ "grpc", "", XM_PORT_PROTO_HTTP2 },
		{ "grpc-web", "", XM_PORT_PROTO_HTTP2 },
		{ "grpc-api", "", XM_PORT_PROTO_HTTP2 },
		{ "tcp", "", XM_PORT_PROTO_OTHER },
		{ "tcp-db", "", XM_PORT_PROTO_OTHER },
		{ "https", "", XM_PORT_PROTO_OTHER },
		{ "tls-x", "", XM_PORT_PROTO_OTHER },
		{ "mongo", "", XM_PORT_PROTO_OTHER },
		{ "redis", "", XM_PORT_PROTO_OTHER },
		{ "web", "http", XM_PORT_PROTO_HTTP },
		{ "web", "Http", XM_PORT_PROTO_HTTP },
		{ "http", "tcp", XM_PORT_PROTO_OTHER },
		{ "http", "kubernetes.io/h2c", XM_PORT_PROTO_HTTP2 },
		{ "web", "http2", XM_PORT_PROTO_HTTP2 },
		{ "web", "grpc", XM_PORT_PROTO_HTTP2 },
		{ "web", "example.com/custom", XM_PORT_PROTO_OTHER },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xm_service_port sp = { 0 };

		snprintf(sp.name, sizeof(sp.name), "%s", cases[i].name);
		snprintf(sp.app_protocol, sizeof(sp.app_protocol), "%s", cases[i].app_protocol);
		cr_expect_eq(config_port_protocol(&sp), cases[i].want, "name \"%s\" appProtocol \"%s\": %d, want %d",
			     cases[i].name, cases[i].app_protocol, config_port_protocol(&sp), cases[i].want);
	}
}

Test(config_virtualservice, errors_at_file_line_col)
{
	const char *f = "vs/errors.yaml";

	load_with("errors.yaml", -EINVAL);
	find_diag(&diags, f, 24, 20, "virtualservice default/broken: spec.http[0].match[0].uri.regex: bad regex: ",
		  "a backreference at offset 3 is not RE2 syntax");
	find_diag(&diags, f, 26, 22, "spec.http[0].match[1].headers[\"x-a\"].regex: bad regex: ",
		  "a lookahead (?= or (?! at offset 0 is not RE2 syntax");
	find_diag(&diags, f, 28, 20,
		  "spec.http[0].match[2].queryParams[\"q\"].regex: bad regex: ", "unterminated character class");
	find_diag(&diags, f, 30, 5, "spec.http[0].route: ", "the weights sum to 90, not 100");
	find_diag(&diags, f, 30, 44, "spec.http[0].route[0].destination: ",
		  "unknown subset \"v2\" (no DestinationRule subset of that name for host \"reviews\")");
	find_diag(&diags, f, 36, 15, "spec.http[1]: ", "route and redirect cannot both be given");
	find_diag(&diags, f, 37, 39, "spec.http[2].redirect.redirectCode 200 ", "is not a redirect (3xx) code");
	find_diag(&diags, f, 38, 21, "spec.http[2]: ", "redirect and directResponse cannot both be given");
	find_diag(&diags, f, 38, 30, "spec.http[2].directResponse.status 700 ", "out of range 200-599");
	find_diag(&diags, f, 39, 5, "spec.http[3]: ", "one of route, redirect or directResponse is required");
	find_diag(&diags, f, 40, 32, "spec.http[3].match[0].uri: ", "only one of exact, prefix, regex");
	find_diag(&diags, f, 42, 5, "spec.http[4].route: ", "the weights sum to 50, not 100");
	find_diag(&diags, f, 45, 20, "spec.http[5].route[0].destination: ", "service default/reviews has no port 80");
	find_diag(&diags, f, 46, 14, "spec.http[5].timeout \"soon\" ", "is not a valid duration");
	find_diag(&diags, f, 52, 3, "virtualservice default/nohosts: ", "spec.hosts is required");
	cr_expect_eq(n_errors(&diags), 15);
	cr_expect_eq(diags.n, 15, "and no warning");
}

Test(config_virtualservice, warnings_never_silence_and_do_not_fail)
{
	const char *f = "vs/warnings.yaml";
	const struct xm_diag *d;

	load_with("warnings.yaml", 0);
	cr_expect_eq(n_errors(&diags), 0);
	cr_expect_eq(diags.n, 14);
	for (size_t i = 0; i < diags.n; i++)
		cr_expect(diags.items[i].warning, "%s", diags.items[i].msg);
	d = find_diag(&diags, f, 8, 41,
		      "service default/reviews: port 9081: ", "HTTP/2 is not supported yet: served at L4");
	cr_expect(d->warning);
	find_diag(&diags, f, 9, 5, "port 9082: ", "HTTP/2 is not supported yet");
	find_diag(&diags, f, 10, 42, "port 9083: ", "HTTP/2 is not supported yet");
	find_diag(&diags, f, 11, 5, "port 9084: ", "HTTP/2 is not supported yet");
	find_diag(&diags, f, 18, 20, "virtualservice default/a-first: ",
		  "gateway \"istio-system/ingress\" is not served by xmesh: ignored");
	find_diag(&diags, f, 23, 14, "spec.http[0].mirrors ", "is not supported yet");
	find_diag(&diags, f, 24, 17, "spec.http[0].corsPolicy ", "is not supported yet");
	find_diag(&diags, f, 25, 15, "spec.http[1].delegate ", "is not supported yet");
	find_diag(&diags, f, 27, 3, "spec.tcp routes ", "are not supported yet");
	find_diag(&diags, f, 29, 3, "spec.tls routes ", "are not supported yet");
	find_diag(&diags, f, 36, 11, "virtualservice default/b-second: host \"reviews.default.svc.cluster.local\" ",
		  "is also claimed by virtualservice default/a-first");
	find_diag(&diags, f, 39, 27, "destination host \"nowhere\" names no known Service",
		  "its requests get 503 (UH)");
	find_diag(&diags, f, 46, 13, "virtualservice default/c-gateway-only: ", "does not name \"mesh\"");
	find_diag(&diags, f, 46, 14, "virtualservice default/c-gateway-only: ", "is not served by xmesh");
	cr_expect(!port_of("default", "reviews", 9081)->http, "h2c is served at L4 for now");
	cr_expect(!port_of("default", "reviews", 9082)->http);
	cr_expect(port_of("default", "reviews", 9080)->http);
	cr_expect(!vs_named("default", "c-gateway-only")->mesh);
}

Test(config_virtualservice, host_forms_resolve_to_services)
{
	load_mesh();
	cr_expect_eq(config_host_service(&cfg, "reviews", "default"), config_find_service(&cfg, "default", "reviews"));
	cr_expect_eq(config_host_service(&cfg, "reviews.default", "shop"),
		     config_find_service(&cfg, "default", "reviews"));
	cr_expect_eq(config_host_service(&cfg, "reviews.default.svc", "shop"),
		     config_find_service(&cfg, "default", "reviews"));
	cr_expect_eq(config_host_service(&cfg, "productpage.shop.svc.cluster.local", "default"),
		     config_find_service(&cfg, "shop", "productpage"));
	cr_expect_null(config_host_service(&cfg, "reviews", "shop"), "a short name is read in the given namespace");
	cr_expect_null(config_host_service(&cfg, "*.example.com", "default"));
	cr_expect_null(config_host_service(&cfg, "reviews.default.svc.example.com", "default"));
}

Test(config_virtualservice, warnings_stay_warnings_through_the_parse_cache)
{
	struct xm_config_cache *cache = config_cache_new();
	const char *paths[] = { fixture("vs/warnings.yaml") };

	cr_assert_not_null(cache);
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(config_load_cached(cache, paths, 1, &cfg, &diags), 0, "round %d", round);
		cr_expect_eq(diags.n, 14, "round %d", round);
		cr_expect_eq(n_errors(&diags), 0, "round %d: a cached file's warnings are still warnings", round);
		cr_expect(port_of("default", "reviews", 9080)->http);
		cr_expect_eq(vs_named("default", "a-first")->n_http, 2);
		diags_free(&diags);
		config_free(&cfg);
	}
	config_cache_free(cache);
}

Test(config_virtualservice, fault_injection_percentages_default_to_100)
{
	const char *paths[] = { fixture("vs/faults.yaml") };
	const struct xm_virtual_service *vs;

	load_clean(paths, 1, &cfg);
	vs = vs_named("default", "ratings");
	cr_assert_eq(vs->n_http, 3);
	cr_expect(vs->http[0].fault.has_delay);
	cr_expect_eq(vs->http[0].fault.delay_ms, 7000);
	cr_expect_float_eq(vs->http[0].fault.delay_percent, 0.1, 1e-9);
	cr_expect(vs->http[0].fault.has_abort);
	cr_expect_eq(vs->http[0].fault.abort_status, 500);
	cr_expect_float_eq(vs->http[0].fault.abort_percent, 12.5, 1e-9);
	cr_expect_eq(vs->http[0].timeout_ms, 10000);
	cr_expect_eq(vs->http[1].fault.delay_ms, 250);
	cr_expect_float_eq(vs->http[1].fault.delay_percent, 30, 1e-9, "the deprecated integer percent");
	cr_expect_not(vs->http[1].fault.has_abort);
	cr_expect_eq(vs->http[2].fault.abort_status, 418);
	cr_expect_float_eq(vs->http[2].fault.abort_percent, 100, 1e-9, "absent percentage: every request");
	cr_expect_not(vs->http[2].fault.has_delay);
}

Test(config_virtualservice, fault_errors_at_file_line_col)
{
	const char *f = "vs/fault_errors.yaml";

	load_with("fault_errors.yaml", -EINVAL);
	find_diag(&diags, f, 15, 33, "spec.http[0].fault.abort.httpStatus 700 ", "out of range 200-599");
	find_diag(&diags, f, 17, 33, "spec.http[1].fault.delay.fixedDelay \"-1s\" ", "is not a valid duration");
	find_diag(&diags, f, 19, 57, "spec.http[2].fault.delay.percentage.value: ", "expected a number from 0 to 100");
	find_diag(&diags, f, 21, 12, "spec.http[3].fault: ", "one of delay or abort is required");
	find_diag(&diags, f, 23, 47, "spec.http[4].fault.abort.percent -5 ", "out of range 0-100");
	find_diag(&diags, f, 25, 20, "spec.http[5].fault.delay.fixedDelay ", "is required");
	cr_expect_eq(n_errors(&diags), 6);
}
