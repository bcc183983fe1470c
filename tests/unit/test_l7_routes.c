// SPDX-License-Identifier: Apache-2.0
/*
 * The compiled L7 route table (l7/routes.h) over tests/unit/fixtures/config/vs/mesh.yaml: services and
 * vhosts, host selection, every match field, first match wins, weighted picks, subsets and their policy,
 * the compiled actions, RE2-only regexes and the `xmesh routes` rendering.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "compile/snapshot.h"
#include "core/strbuf.h"
#include "l7/regex.h"
#include "l7/routes.h"
#include "test_config.h"

static struct xm_snapshot *snap;
static const struct l7_route_table *t;

static void setup(void)
{
	const char *paths[] = { fixture("vs/mesh.yaml") };
	struct xm_compile_opts opts = { .node_name = NULL, .maglev_size = 251 };
	struct xm_config cfg = { 0 };
	int err;

	load_clean(paths, 1, &cfg);
	snap = snapshot_build(&cfg, &opts, &err);
	cr_assert_not_null(snap, "snapshot_build: %d", err);
	config_free(&cfg); /* the table must not point into the config */
	t = &snap->routes;
}

static void teardown(void)
{
	snapshot_put(snap);
}

TestSuite(l7_routes, .init = setup, .fini = teardown);

static struct xm_svc_key key_of(const char *vip, uint16_t port)
{
	struct xm_svc_key k;
	bool v6 = strchr(vip, ':') != NULL;

	memset(&k, 0, sizeof(k));
	k.family = v6 ? XM_FAMILY_V6 : XM_FAMILY_V4;
	cr_assert_eq(inet_pton(v6 ? AF_INET6 : AF_INET, vip, k.vip.bytes), 1);
	k.port = htons(port);
	k.proto = XM_PROTO_TCP;
	return k;
}

static const struct l7_service *service(const char *vip, uint16_t port)
{
	struct xm_svc_key k = key_of(vip, port);

	return l7_service_find(t, &k);
}

static struct h1_str str(const char *s)
{
	return (struct h1_str){ s, s ? (uint32_t)strlen(s) : 0 };
}

static const struct xm_workload *workload(const char *ns, const char *pod)
{
	for (size_t i = 0; i < snap->identities.n_workloads; i++)
		if (!strcmp(snap->identities.workloads[i].ns, ns) && !strcmp(snap->identities.workloads[i].pod, pod))
			return &snap->identities.workloads[i];
	cr_assert_fail("no workload %s/%s", ns, pod);
	return NULL;
}

static const struct l7_cluster *cluster(const char *name)
{
	for (size_t i = 0; i < t->n_clusters; i++)
		if (!strcmp(t->clusters[i].name, name))
			return &t->clusters[i];
	cr_assert_fail("no cluster %s", name);
	return NULL;
}

/* A request: "GET", "/path?query", Host, headers as "name: value" strings (up to 4). */
struct req {
	struct h1_header headers[4];
	struct l7_request_view v;
};

static void request(struct req *r, const char *method, const char *target, const char *host, const char *const *hdrs,
		    size_t n_hdrs)
{
	const char *q = strchr(target, '?');

	memset(r, 0, sizeof(*r));
	r->v.method = str(method);
	r->v.path = (struct h1_str){ target, q ? (uint32_t)(q - target) : (uint32_t)strlen(target) };
	r->v.query = q ? str(q + 1) : (struct h1_str){ "", 0 };
	r->v.host = str(host);
	r->v.port = 9080;
	for (size_t i = 0; i < n_hdrs; i++) {
		const char *colon = strchr(hdrs[i], ':');

		r->headers[i].name = (struct h1_str){ hdrs[i], (uint32_t)(colon - hdrs[i]) };
		r->headers[i].value = str(colon + 2);
	}
	r->v.headers = r->headers;
	r->v.n_headers = (uint32_t)n_hdrs;
}

/* The name of the route that rq selects on the service vip:9080, "" for a nameless one, "NR" for none. */
static const char *route_name(const char *vip, const struct l7_request_view *rq)
{
	const struct l7_service *svc = service(vip, 9080);
	const struct l7_route *r;

	cr_assert_not_null(svc, "%s:9080 is not an HTTP service", vip);
	r = l7_route_select(t, svc, rq);
	return r ? r->name : "NR";
}

Test(l7_routes, http_service_ports_and_their_vhosts)
{
	const struct l7_service *v4 = service("10.96.0.10", 9080), *v6 = service("fd00:96::10", 9080);

	cr_expect_eq(t->n_services, 4, "reviews (IPv4, IPv6), ratings, productpage:9080");
	cr_assert_not_null(v4);
	cr_assert_not_null(v6);
	cr_expect_eq(v4->vhost, v6->vhost, "both families of a Service reach one vhost");
	cr_expect_str_eq(v4->vhost->name, "reviews.default.svc.cluster.local:9080");
	cr_expect_not_null(service("10.96.0.11", 9080), "ratings: HTTP because a VirtualService routes it");
	cr_expect_null(service("10.96.0.12", 9080), "details: tcp-main stays at L4");
	cr_expect_not_null(service("10.96.0.13", 9080));
	cr_expect_null(service("10.96.0.13", 15020), "metrics: no protocol said, no VirtualService");
	cr_expect_eq(t->n_vhosts, 4, "reviews, ratings, *.example.com, productpage's default");
	cr_expect(v4->svc->flags & XM_SVC_F_L7);
	cr_expect_eq(service("10.96.0.13", 9080)->vhost->n_routes, 1, "a Service without VirtualService: one route");
	cr_expect_str_eq(service("10.96.0.13", 9080)->vhost->routes[0].dests[0].cluster->name,
			 "outbound|9080||productpage.shop.svc.cluster.local");
}

Test(l7_routes, host_selection_table)
{
	static const struct {
		const char *host, *source_ns;
		uint16_t port;
		const char *want; /* vhost name, NULL for none */
	} cases[] = {
		{ "reviews", "default", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "reviews:9080", "default", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "REVIEWS", "default", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "reviews.default", "shop", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "reviews.default.svc", "shop", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "reviews.default.svc.cluster.local", "shop", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "Reviews.Default.Svc.Cluster.Local.:9080", "shop", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "10.96.0.10", "shop", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "10.96.0.10:9080", "shop", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "[fd00:96::10]:9080", "shop", 9080, "reviews.default.svc.cluster.local:9080" },
		{ "reviews", "shop", 9080, NULL }, /* a short name is the client's namespace's */
		{ "ratings", "default", 9080, "ratings.default.svc.cluster.local:9080" },
		{ "productpage", "shop", 9080, "productpage.shop.svc.cluster.local:9080" },
		{ "productpage.shop:9080", "default", 9080, "productpage.shop.svc.cluster.local:9080" },
		{ "productpage.shop", "default", 15020, NULL }, /* not an HTTP port */
		{ "api.example.com", "default", 9080, "*.example.com:9080" },
		{ "a.b.EXAMPLE.com", "default", 9080, "*.example.com:9080" },
		{ "example.com", "default", 9080, NULL },
		{ "unknown.host", "default", 9080, NULL },
		{ "", "default", 9080, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct l7_vhost *v = l7_vhost_for_host(t, cases[i].port, str(cases[i].host), cases[i].source_ns);

		if (!cases[i].want)
			cr_expect_null(v, "Host \"%s\" from %s on %u: got %s", cases[i].host, cases[i].source_ns,
				       cases[i].port, v ? v->name : "");
		else
			cr_expect(v && !strcmp(v->name, cases[i].want), "Host \"%s\" from %s on %u: got %s, want %s",
				  cases[i].host, cases[i].source_ns, cases[i].port, v ? v->name : "(none)",
				  cases[i].want);
	}
}

Test(l7_routes, headers_and_uri_prefix_first_match_wins)
{
	static const char *const jason[] = { "end-user: jason" };
	static const char *const jason_upper[] = { "END-USER: jason" };
	static const char *const not_jason[] = { "end-user: Jason" };
	struct req r;

	request(&r, "GET", "/api/reviews/1", "reviews", jason, 1);
	cr_expect_str_eq(route_name("10.96.0.10", &r.v), "jason");
	request(&r, "GET", "/api/reviews/1", "reviews", jason_upper, 1);
	cr_expect_str_eq(route_name("10.96.0.10", &r.v), "jason", "header names are case-insensitive");
	request(&r, "GET", "/api/reviews/1", "reviews", not_jason, 1);
	cr_expect_str_eq(route_name("10.96.0.10", &r.v), "canary", "values are case-sensitive");
	request(&r, "GET", "/API/reviews/1", "reviews", jason, 1);
	cr_expect_str_eq(route_name("10.96.0.10", &r.v), "canary", "prefix without ignoreUriCase");
	request(&r, "GET", "/api", "reviews", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.10", &r.v), "canary", "the header is required");
	request(&r, "GET", "/api", "no.such.host", jason, 1);
	cr_expect_str_eq(route_name("fd00:96::10", &r.v), "jason", "an unknown Host falls back to the dialed VIP");
}

Test(l7_routes, regex_ignore_uri_case_method_scheme_authority_query)
{
	struct req r;

	request(&r, "GET", "/RATINGS/12", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "by-id", "regex with ignoreUriCase");
	request(&r, "GET", "/ratings/12?x=1", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "by-id", "the query is not part of the uri");
	request(&r, "GET", "/ratings/12a", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "", "a regex matches the whole path");
	request(&r, "GET", "/x/ratings/12", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "", "anchored at the start too");
	request(&r, "DELETE", "/x", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "deny-delete");
	request(&r, "PATCH", "/x", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "deny-delete", "the second match block (ORed)");
	request(&r, "delete", "/x", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "", "methods are case-sensitive");
	request(&r, "GET", "/x?a=2&debug=1", "ratings:9080", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "debug");
	request(&r, "GET", "/x?debug=12", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "", "exact query value");
	request(&r, "GET", "/x?debug", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "");
	request(&r, "GET", "/x?debug=1", "10.96.0.11", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "", "authority prefix \"ratings\" is not met");
}

Test(l7_routes, source_labels_namespace_port_and_without_headers)
{
	static const char *const internal[] = { "X-Internal: yes" };
	static const char *const other[] = { "x-other: yes" };
	struct req r;

	request(&r, "GET", "/x", "ratings", NULL, 0);
	r.v.source = workload("shop", "productpage-0");
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "from-shop");
	request(&r, "GET", "/x", "ratings", other, 1);
	r.v.source = workload("shop", "productpage-0");
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "from-shop", "another header does not matter");
	request(&r, "GET", "/x", "ratings", internal, 1);
	r.v.source = workload("shop", "productpage-0");
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "", "withoutHeaders: present means no match");
	request(&r, "GET", "/x", "ratings", NULL, 0);
	r.v.source = workload("default", "reviews-v1-0");
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "", "sourceLabels app=productpage not met");
	request(&r, "GET", "/x", "ratings", NULL, 0);
	cr_expect_str_eq(route_name("10.96.0.11", &r.v), "", "an unknown client has no labels");
	request(&r, "GET", "/x", "ratings.default", NULL, 0);
	r.v.source = workload("shop", "productpage-0");
	r.v.port = 9081;
	cr_expect_null(l7_route_select(t, NULL, &r.v), "no vhost on 9081, no dialed service");
}

Test(l7_routes, weighted_pick_distribution)
{
	const struct l7_route *canary = &service("10.96.0.10", 9080)->vhost->routes[1];
	size_t to_v1 = 0, to_v3 = 0;

	cr_assert_str_eq(canary->name, "canary");
	cr_assert_eq(canary->n_dests, 2);
	for (uint32_t r = 0; r < 100; r++) {
		const struct l7_destination *d = l7_route_pick_destination(canary, r);

		cr_assert_not_null(d);
		to_v1 += d->cluster == cluster("outbound|9080|v1|reviews.default.svc.cluster.local");
		to_v3 += d->cluster == cluster("outbound|9080|v3|reviews.default.svc.cluster.local");
	}
	cr_expect_eq(to_v1, 80);
	cr_expect_eq(to_v3, 20);
	cr_expect_eq(l7_route_pick_destination(canary, 79)->weight, 80);
	cr_expect_eq(l7_route_pick_destination(canary, 80)->weight, 20);
	cr_expect_eq(service("10.96.0.10", 9080)->vhost->routes[0].dests[0].weight, 100,
		     "a lone destination takes everything");
}

Test(l7_routes, subsets_filter_endpoints_and_merge_policy)
{
	const struct l7_cluster *v1 = cluster("outbound|9080|v1|reviews.default.svc.cluster.local");
	const struct l7_cluster *v2 = cluster("outbound|9080|v2|reviews.default.svc.cluster.local");
	const struct l7_cluster *v3 = cluster("outbound|9080|v3|reviews.default.svc.cluster.local");
	char addr[64];

	cr_assert_eq(v1->n_endpoints, 1);
	inet_ntop(AF_INET, &v1->endpoints[0]->addr.v4, addr, sizeof(addr));
	cr_expect_str_eq(addr, "10.200.1.1");
	cr_assert_not_null(v1->endpoint_wl[0]);
	cr_expect_str_eq(v1->endpoint_wl[0]->pod, "reviews-v1-0");
	cr_expect_str_eq(v1->endpoint_wl[0]->version, "v1");
	cr_expect_eq(v2->n_endpoints, 1, "reviews-v2-1 is not ready");
	cr_expect_eq(v3->n_endpoints, 1, "no targetRef: the pod is found by its address");
	cr_expect_str_eq(v3->endpoint_wl[0]->pod, "reviews-v3-0");
	cr_expect_eq(v1->policy.lb.simple, XM_DR_LB_ROUND_ROBIN, "the DestinationRule's");
	cr_expect_eq(v2->policy.lb.simple, XM_DR_LB_RANDOM, "the subset's overrides it");
	cr_expect_str_eq(v1->subset, "v1");
	cr_expect_str_eq(v1->svc_name, "reviews");
	cr_expect_str_eq(v1->svc_ns, "default");
	cr_expect_str_eq(v1->host_fqdn, "reviews.default.svc.cluster.local");
	cr_expect_eq(v1->port, 9080);
	cr_expect_eq(v1->svc, service("10.96.0.10", 9080)->svc, "the IPv4 entry of a dual-stack Service");
	cr_expect_eq(cluster("outbound|9080||ratings.default.svc.cluster.local")->n_endpoints, 1);
}

Test(l7_routes, actions_compiled)
{
	const struct l7_vhost *v = service("10.96.0.11", 9080)->vhost;
	const struct l7_route *r;

	cr_assert_eq(v->n_routes, 5);
	r = &v->routes[0];
	cr_expect_eq(r->action, L7_ACTION_ROUTE);
	cr_expect_str_eq(r->rewrite_uri, "/v2/ratings");
	cr_expect_str_eq(r->rewrite_authority, "ratings-v2");
	cr_assert_not_null(r->mirror);
	cr_expect_str_eq(r->mirror->name, "outbound|9080|v1|reviews.default.svc.cluster.local");
	cr_expect_float_eq(r->mirror_percent, 25.5, 1e-9);
	cr_expect_str_eq(r->vs_ns, "default");
	cr_expect_str_eq(r->vs_name, "ratings");
	cr_expect_eq(r->loc.line, 131);
	cr_expect_eq(r->loc.col, 5);
	cr_expect(r->loc.file && strstr(r->loc.file, "vs/mesh.yaml"), "the location outlives the config");
	r = &v->routes[1];
	cr_expect_eq(r->action, L7_ACTION_DIRECT_RESPONSE);
	cr_expect_eq(r->direct_status, 403);
	cr_expect_eq(r->direct_body_len, 6);
	cr_expect_eq(memcmp(r->direct_body, "denied", 6), 0);
	cr_expect_eq(r->n_dests, 0);
	r = &v->routes[2];
	cr_expect_eq(r->action, L7_ACTION_REDIRECT);
	cr_expect_eq(r->redirect_code, 302);
	cr_expect_str_eq(r->redirect_uri, "/debug");
	cr_expect_str_eq(r->redirect_authority, "debug.example.com");
	cr_expect_str_eq(r->redirect_scheme, "https");
	cr_expect_eq(r->redirect_port, 8443);
	r = &v->routes[3];
	cr_expect_float_eq(r->mirror_percent, 10, 1e-9);
	cr_expect_str_eq(r->mirror->name, "outbound|9080||ratings.default.svc.cluster.local");
	r = &v->routes[4];
	cr_expect_str_eq(r->name, "");
	cr_assert_eq(r->headers.n_req_set, 1);
	cr_expect_str_eq(r->headers.req_set[0].value, "last");
	cr_assert_eq(r->headers.n_req_add, 1);
	cr_assert_eq(r->headers.n_req_remove, 1);
	cr_expect_str_eq(r->headers.req_remove[0], "x-debug");
	cr_assert_eq(r->headers.n_resp_set, 1);
	cr_assert_eq(r->headers.n_resp_remove, 1);
	r = &service("10.96.0.10", 9080)->vhost->routes[1];
	cr_expect_eq(r->timeout_ms, 2500);
	cr_assert_eq(r->dests[0].headers.n_req_set, 1);
	cr_expect_str_eq(r->dests[0].headers.req_set[0].name, "x-canary");
	cr_expect_eq(r->mirror, NULL);
}

Test(l7_routes, re2_syntax_only)
{
	static const char *const accepted[] = {
		"a+b*",	   "(?i)abc", "(?P<n>x)",	"(?<n>x)", "(?:ab)+", "[[:alpha:]]+", "\\d{2,5}",
		"a{1000}", "a{2,}",   "\\pL\\p{Greek}", "x*?y+?",  "[\\]a-]", "\\Q(*)\\E",    "a|b|",
		"\\.\\*",  "{",	      "x{a}",
	};
	static const char *const refused[] = {
		"(a)\\1",  "(?=a)",	"(?!a)",   "(?<=a)b", "(?<!a)b",  "(?>a)",     "a*+",
		"a++",	   "a?+",	"a{2}+",   "(?R)",    "(a)(?1)",  "(?(1)a|b)", "\\C",
		"a{1001}", "a{1,1001}", "(?x)a b", "a\\Kb",   "(*SKIP)a", "(?|a)",     "(?#c)a",
		"\\Z",	   "\\G",	"[\\h]",   "(",	      "[a-",	  "*a",	       "\\",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
		cr_expect_eq(l7_regex_check(accepted[i], err, sizeof(err)), 0, "%s refused: %s", accepted[i], err);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_expect_eq(l7_regex_check(refused[i], err, sizeof(err)), -EINVAL, "%s accepted", refused[i]);
}

Test(l7_routes, regexes_match_whole_strings)
{
	char err[256];
	struct l7_regex *re = l7_regex_compile("ab|cd", false, err, sizeof(err));
	struct l7_regex *ci = l7_regex_compile("/api/[a-z]+", true, err, sizeof(err));

	cr_assert_not_null(re, "%s", err);
	cr_assert_not_null(ci, "%s", err);
	cr_expect(l7_regex_match(re, "ab", 2));
	cr_expect(l7_regex_match(re, "cd", 2), "alternation is anchored as a whole");
	cr_expect(!l7_regex_match(re, "abc", 3));
	cr_expect(!l7_regex_match(re, "xab", 3));
	cr_expect(!l7_regex_match(re, "abcd", 2 + 2));
	cr_expect(l7_regex_match(re, "abXX", 2), "the length given is the string");
	cr_expect(l7_regex_match(ci, "/API/Users", 10));
	cr_expect(!l7_regex_match(ci, "/API/Users/1", 12));
	cr_expect(!l7_regex_match(re, "\xff\xfe", 2), "invalid UTF-8 does not match, and does not fail");
	l7_regex_free(re);
	l7_regex_free(ci);
}

Test(l7_routes, rendering_text_and_json)
{
	struct strbuf out = { 0 };

	l7_routes_render(t, false, &out);
	cr_assert_not_null(out.buf);
	cr_expect(strstr(out.buf, "10.96.0.10:9080/TCP default/reviews\n"), "%s", out.buf);
	cr_expect(strstr(out.buf, "[fd00:96::10]:9080/TCP default/reviews\n"));
	cr_expect(strstr(out.buf, "  vhost reviews.default.svc.cluster.local:9080 domains "
				  "reviews.default.svc.cluster.local, 10.96.0.10, fd00:96::10\n"));
	cr_expect(strstr(out.buf, "    route jason (virtualservice default/reviews, "));
	cr_expect(strstr(out.buf, "      match: uri prefix \"/api\" header[end-user] exact \"jason\"\n"));
	cr_expect(
	    strstr(out.buf, "      -> outbound|9080|v1|reviews.default.svc.cluster.local weight 80 (1 endpoints)\n"));
	cr_expect(
	    strstr(out.buf, "      redirect 302 scheme https authority debug.example.com port 8443 uri /debug\n"));
	cr_expect(strstr(out.buf, "      direct response 403 (6 bytes)\n"));
	cr_expect(strstr(out.buf, "      mirror outbound|9080|v1|reviews.default.svc.cluster.local 25.5%\n"));
	cr_expect(strstr(out.buf, "      timeout 2500ms\n"));
	cr_expect(
	    strstr(out.buf,
		   "10.96.0.13:9080/TCP shop/productpage\n  vhost productpage.shop.svc.cluster.local:9080 "
		   "domains productpage.shop.svc.cluster.local, 10.96.0.13\n    route default\n      match: any\n"),
	    "the default route");
	sb_free(&out);
	memset(&out, 0, sizeof(out));
	l7_routes_render(t, true, &out);
	cr_assert_not_null(out.buf);
	cr_expect_eq(
	    strncmp(out.buf, "{\"services\":[{\"vip\":\"10.96.0.10:9080/TCP\",\"service\":\"default/reviews\"", 68), 0,
	    "%s", out.buf);
	cr_expect(strstr(
	    out.buf, "\"match\":[{\"uri\":{\"prefix\":\"/api\"},\"headers\":{\"end-user\":{\"exact\":\"jason\"}}}]"));
	cr_expect(strstr(out.buf,
			 "\"destinations\":[{\"cluster\":\"outbound|9080|v1|reviews.default.svc.cluster.local\","
			 "\"weight\":80,\"endpoints\":1}"));
	cr_expect(strstr(out.buf, "\"withoutHeaders\":{\"x-internal\":{}},\"port\":9080,\"sourceLabels\":{\"app\":"
				  "\"productpage\"},\"sourceNamespace\":\"shop\""));
	cr_expect(strstr(out.buf, "\"virtual_service\":\"default/ratings\""));
	cr_expect(strstr(out.buf, "\"redirect\":{\"code\":302,\"uri\":\"/debug\""));
	cr_expect(strstr(out.buf, "\"rewrite\":{\"uri\":\"/v2/ratings\",\"authority\":\"ratings-v2\"}"));
	cr_expect_eq(out.buf[out.len - 1], '\n');
	sb_free(&out);
}

Test(l7_routes, an_empty_table_renders)
{
	struct l7_route_table empty = { 0 };
	struct strbuf out = { 0 };

	l7_routes_render(&empty, false, &out);
	cr_expect_str_eq(out.buf, "no HTTP service ports\n");
	sb_free(&out);
	memset(&out, 0, sizeof(out));
	l7_routes_render(&empty, true, &out);
	cr_expect_str_eq(out.buf, "{\"services\":[]}\n");
	sb_free(&out);
	l7_routes_free(&empty);
}

/* A table of its own: text is a whole config; the suite's table is replaced. */
static void build_text(const char *text)
{
	struct xm_compile_opts opts = { .maglev_size = 251 };
	struct xm_config cfg = { 0 };
	char *path = temp_yaml(text);
	const char *paths[] = { path };
	int err;

	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	snapshot_put(snap);
	snap = snapshot_build(&cfg, &opts, &err);
	cr_assert_not_null(snap, "snapshot_build: %d", err);
	config_free(&cfg);
	t = &snap->routes;
}

#define VS(name, hosts, dest)                                                                                          \
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: " name "}\n"                  \
	"spec:\n  hosts: " hosts "\n  http:\n  - name: " name "\n    route: [{destination: {host: " dest "}}]\n"

Test(l7_routes, wildcards_longest_suffix_then_star_and_first_claim_wins)
{
	static const struct {
		const char *host, *want_route;
	} cases[] = {
		{ "x.b.example.com", "deep" },
		{ "X.B.Example.Com:80", "deep" },
		{ "b.example.com", "shallow" },
		{ "x.example.com", "shallow" },
		{ "example.com", "any" },
		{ "other.org", "any" },
		{ "a", "a-first" },
		{ "a.default.svc.cluster.local", "a-first" },
		{ "b", "default" },
		{ "10.96.0.2", "default" },
	};

	build_text("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  clusterIP: 10.96.0.1\n"
		   "  ports: [{name: http, port: 80}]\n"
		   "---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec:\n  clusterIP: 10.96.0.2\n"
		   "  ports: [{name: http, port: 80}]\n" VS("any", "[\"*\"]", "a")
		       VS("deep", "[\"*.b.example.com\"]", "a") VS("shallow", "[\"*.example.com\"]", "a")
			   VS("a-first", "[a]", "a") VS("a-second", "[a.default]", "b"));
	cr_expect_eq(t->n_vhosts, 5, "any, deep, shallow, a-first, b's default; a-second lost its only host");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct req r;

		request(&r, "GET", "/", cases[i].host, NULL, 0);
		r.v.port = 80;
		/* Dialed b's VIP: short names are read in b's namespace (the client is unknown). */
		const struct l7_route *route = l7_route_select(t, service("10.96.0.2", 80), &r.v);

		cr_expect(route && !strcmp(route->name, cases[i].want_route), "Host %s: route %s, want %s",
			  cases[i].host, route ? route->name : "(none)", cases[i].want_route);
	}
}
