// SPDX-License-Identifier: Apache-2.0
/*
 * AuthorizationPolicy: parsing and Istio's validation (config/parse_authorizationpolicy.c), the snapshot's copy,
 * and the evaluation of a CONNECT (compile/authz.c) on Istio's documented examples (istio.io, reference/config/
 * security/authorization-policy and the authorization tasks) and ztunnel's matching (src/rbac.rs), and the HBONE
 * server's check (daemon/hbone_authz.c): which client address the policies see, the denial counter.
 */
#include "test_config.h"

#include "compile/authz.h"
#include "compile/snapshot.h"
#include "config/authz_policy.h"
#include "core/strbuf.h"
#include "daemon/hbone_authz.h"
#include "metrics/registry.h"

#define AP(ns, name, spec)                                                                                             \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " name                   \
	"\n  namespace: " ns "\nspec:\n" spec

/* --- parsing --- */

Test(authz_parse, rules_as_clauses_of_alternatives)
{
	struct xm_config cfg;
	const struct xm_authz_policy *p;
	const struct xm_authz_rule *r;

	load_text_clean(AP("foo", "httpbin",
			   "  selector:\n    matchLabels:\n      app: httpbin\n  action: ALLOW\n  rules:\n"
			   "  - from:\n    - source:\n        principals: [\"cluster.local/ns/default/sa/sleep\"]\n"
			   "    - source:\n        namespaces: [test]\n        notIpBlocks: [\"10.0.0.0/8\"]\n"
			   "    to:\n    - operation:\n        ports: [\"8080\"]\n"
			   "    when:\n    - key: source.namespace\n      values: [a]\n      notValues: [b]\n"
			   "  - from:\n    - source:\n        serviceAccounts: [sleep, \"other/x\"]\n"),
			&cfg);
	cr_assert_eq(cfg.n_authz_policies, 1);
	p = &cfg.authz_policies[0];
	cr_assert_str_eq(p->ns, "foo");
	cr_assert_eq(p->action, XM_AUTHZ_ALLOW);
	cr_assert_eq(p->n_selector, 1);
	cr_assert_eq(p->n_rules, 2);
	r = &p->rules[0];
	cr_assert_not(r->never);
	cr_assert_eq(r->n_clauses, 3); /* from, to, one when */
	cr_assert_eq(r->clauses[0].n_alts, 2);
	cr_assert_eq(r->clauses[0].alts[1].n_conds, 2);
	cr_assert_eq(r->clauses[0].alts[1].conds[1].attr, XM_AUTHZ_SOURCE_IP);
	cr_assert(r->clauses[0].alts[1].conds[1].negated);
	cr_assert_eq(r->clauses[1].alts[0].conds[0].attr, XM_AUTHZ_DEST_PORT);
	cr_assert_eq(r->clauses[2].alts[0].n_conds, 2);
	/* serviceAccounts without a namespace are the policy's */
	cr_assert_str_eq(p->rules[1].clauses[0].alts[0].conds[0].values[0], "foo/sleep");
	cr_assert_str_eq(p->rules[1].clauses[0].alts[0].conds[0].values[1], "other/x");
	config_free(&cfg);
}

Test(authz_parse, http_attributes_audit_and_target_refs_are_warnings)
{
	struct xm_config cfg;
	struct xm_diags d = { 0 };
	char *path =
	    temp_yaml(AP("foo", "a", "  rules:\n  - to:\n    - operation:\n        methods: [GET]\n")
			  AP("foo", "d",
			     "  action: DENY\n  rules:\n  - from:\n    - source:\n"
			     "        principals: [x]\n    to:\n    - operation:\n"
			     "        paths: [\"/admin\"]\n") AP("foo", "audit", "  action: AUDIT\n  rules: [{}]\n")
			      AP("foo", "waypoint", "  targetRefs:\n  - kind: Service\n    name: s\n"));
	const char *paths[] = { path };
	const char *file = strrchr(path, '/') + 1;
	struct xm_authz_table t;

	cr_assert_eq(config_load(paths, 1, &cfg, &d), 0);
	cr_assert_eq(n_errors(&d), 0);
	find_diag(&d, file, 11, 18, "HTTP attributes (methods)", "never matches");
	find_diag(&d, file, 26, 16, "HTTP attributes (paths)", "enforced without them");
	find_diag(&d, file, 34, 11, "AUDIT", "not enforced");
	find_diag(&d, file, 44, 3, "targetRef", "does not apply");
	cr_assert_eq(cfg.n_authz_policies, 4);
	cr_assert(cfg.authz_policies[0].rules[0].never); /* foo/a */
	cr_assert(cfg.authz_policies[3].targeted);	 /* foo/waypoint */
	/* foo/d keeps its from and the to without paths: an alternative with no condition */
	cr_assert_not(cfg.authz_policies[2].rules[0].never);
	cr_assert_eq(cfg.authz_policies[2].rules[0].n_clauses, 2);
	cr_assert_eq(cfg.authz_policies[2].rules[0].clauses[1].alts[0].n_conds, 0);
	/* The snapshot keeps ALLOW and DENY only (a, d), copied. */
	cr_assert_eq(authz_table_build(&cfg, NULL, &t), 0);
	cr_assert_eq(t.n, 2);
	cr_assert_str_eq(t.root_ns, "istio-system");
	config_free(&cfg);
	cr_assert_str_eq(t.items[1].name, "d");
	cr_assert_str_eq(t.items[1].rules[0].clauses[0].alts[0].conds[0].values[0], "x");
	authz_table_free(&t);
	diags_free(&d);
	unlink(path);
	free(path);
}

static const struct bad_case bad_cases[] = {
	{ AP("foo", "custom", "  action: CUSTOM\n  provider: {name: ext}\n"), 8, 11, "CUSTOM is not supported" },
	{ AP("foo", "act", "  action: deny\n"), 8, 11, "is not one of ALLOW, DENY, AUDIT, CUSTOM" },
	{ AP("foo", "ip", "  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/33\"]\n"), 11, 20,
	  "is not an IP address or CIDR" },
	{ AP("foo", "port", "  rules:\n  - to:\n    - operation:\n        ports: [\"http\"]\n"), 11, 17,
	  "is not a port" },
	{ AP("foo", "star", "  rules:\n  - from:\n    - source:\n        principals: [\"a*b\"]\n"), 11, 22,
	  "only allowed alone, as a prefix or as a suffix" },
	{ AP("foo", "nosrc", "  rules:\n  - from:\n    - {}\n"), 10, 7, "from[0].source must not be nil" },
	{ AP("foo", "emptysrc", "  rules:\n  - from:\n    - source: {}\n"), 10, 15, "source must not be empty" },
	{ AP("foo", "emptyop", "  rules:\n  - to:\n    - operation: {}\n"), 10, 18, "operation must not be empty" },
	{ AP("foo", "key", "  rules:\n  - when:\n    - key: source.color\n      values: [red]\n"), 10, 12,
	  "unknown attribute" },
	{ AP("foo", "novalues", "  rules:\n  - when:\n    - key: source.ip\n"), 10, 7,
	  "at least one of values or notValues" },
	{ AP("foo", "dport", "  rules:\n  - when:\n    - key: destination.port\n      values: [\"99999\"]\n"), 11, 16,
	  "is not a port" },
	{ AP("foo", "wild", "  selector:\n    matchLabels:\n      app: \"a*\"\n"), 10, 7, "wildcard" },
	{ AP("foo", "both", "  selector:\n    matchLabels: {app: a}\n  targetRef: {kind: Service, name: s}\n"), 10, 14,
	  "cannot both be set" },
	{ "apiVersion: security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: old}\n", 1, 13,
	  "not supported for AuthorizationPolicy" },
};

Test(authz_parse, errors_at_their_node)
{
	expect_bad_cases(bad_cases, sizeof(bad_cases) / sizeof(bad_cases[0]));
}

Test(authz_parse, cidrs)
{
	struct xm_ip a, ip;
	uint8_t bits;

	cr_assert_eq(authz_cidr_parse("10.1.0.0/16", &a, &bits), 0);
	cr_assert_eq(bits, 16);
	cr_assert_eq(authz_cidr_parse("10.1.2.3", &ip, &bits), 0);
	cr_assert_eq(bits, 32);
	cr_assert(authz_cidr_contains(&a, 16, &ip));
	cr_assert_eq(authz_cidr_parse("10.2.0.1", &ip, &bits), 0);
	cr_assert_not(authz_cidr_contains(&a, 16, &ip));
	cr_assert_eq(authz_cidr_parse("fd00::/63", &a, &bits), 0);
	cr_assert_eq(authz_cidr_parse("fd00:0:0:1::5", &ip, &bits), 0);
	cr_assert(authz_cidr_contains(&a, 63, &ip));
	cr_assert_eq(authz_cidr_parse("fd00:0:0:2::5", &ip, &bits), 0);
	cr_assert_not(authz_cidr_contains(&a, 63, &ip));
	cr_assert_eq(authz_cidr_parse("0.0.0.0/0", &a, &bits), 0);
	cr_assert(!authz_cidr_contains(&a, 0, &ip)); /* families differ */
	cr_assert_neq(authz_cidr_parse("10.0.0.0/08", &a, &bits), 0);
	cr_assert_neq(authz_cidr_parse("10.0.0/8", &a, &bits), 0);
	cr_assert_neq(authz_cidr_parse("/8", &a, &bits), 0);
	cr_assert_neq(authz_cidr_parse("fd00::/129", &a, &bits), 0);
}

/* --- evaluation --- */

struct eval_case {
	const char *name;
	const char *policies;
	const char *ns;	     /* the destination workload's namespace */
	const char *app;     /* its label app ("" none) */
	const char *peer;    /* the client's SPIFFE ID (NULL: none) */
	const char *src;     /* its address */
	const char *dst;     /* the target pod */
	uint16_t port;	     /* the target port */
	bool allowed;	     /* the verdict */
	const char *deny_by; /* denied: the DENY policy "ns/name", or NULL when no ALLOW matched */
};

#define SLEEP	 "spiffe://cluster.local/ns/default/sa/sleep"
#define FOO_SA_A "spiffe://cluster.local/ns/foo/sa/a"
#define TEST_X	 "spiffe://cluster.local/ns/test/sa/x"

/* Istio's examples, reduced to their L4 parts. */
#define ALLOW_NOTHING AP("foo", "allow-nothing", "  {}\n")
#define DENY_ALL      AP("foo", "deny-all", "  action: DENY\n  rules: [{}]\n")
#define ALLOW_ALL     AP("foo", "allow-all", "  rules: [{}]\n")
#define HTTPBIN_ALLOW                                                                                                  \
	AP("foo", "httpbin",                                                                                           \
	   "  selector:\n    matchLabels:\n      app: httpbin\n  action: ALLOW\n  rules:\n  - from:\n"                 \
	   "    - source:\n        principals: [\"cluster.local/ns/default/sa/sleep\"]\n"                              \
	   "    - source:\n        namespaces: [test]\n    to:\n    - operation:\n        ports: [\"8000\"]\n")
#define DENY_NOT_FOO                                                                                                   \
	AP("foo", "deny-not-foo", "  action: DENY\n  rules:\n  - from:\n    - source:\n        notNamespaces: [foo]\n")
#define DENY_SLEEP                                                                                                     \
	AP("foo", "deny-sleep",                                                                                        \
	   "  action: DENY\n  rules:\n  - from:\n    - source:\n        principals: [\"*/sa/sleep\"]\n")
#define MESH_DENY_9000                                                                                                 \
	AP("istio-system", "no-9000",                                                                                  \
	   "  action: DENY\n  rules:\n  - to:\n    - operation:\n        ports: [\"9000\"]\n")
#define ALLOW_IPS                                                                                                      \
	AP("foo", "ips",                                                                                               \
	   "  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.1.0.0/16\", \"fd00::/64\"]\n"                  \
	   "        notIpBlocks: [\"10.1.9.0/24\"]\n")
#define ALLOW_WHEN                                                                                                     \
	AP("foo", "when",                                                                                              \
	   "  rules:\n  - when:\n    - key: source.principal\n      values: [\"cluster.local/ns/default/*\"]\n"        \
	   "    - key: destination.port\n      notValues: [\"22\"]\n")
#define ALLOW_L7 AP("foo", "l7", "  rules:\n  - to:\n    - operation:\n        methods: [GET]\n")
#define DENY_L7                                                                                                        \
	AP("foo", "l7-deny",                                                                                           \
	   "  action: DENY\n  rules:\n  - from:\n    - source:\n        principals: [\"*/sa/sleep\"]\n"                \
	   "    to:\n    - operation:\n        methods: [POST]\n")
#define ALLOW_SA	     AP("foo", "sa", "  rules:\n  - from:\n    - source:\n        serviceAccounts: [a]\n")
#define ALLOW_NOT_PRINCIPALS AP("foo", "not-p", "  rules:\n  - from:\n    - source:\n        notPrincipals: [\"*\"]\n")
#define ALLOW_DST_IP                                                                                                   \
	AP("foo", "dst", "  rules:\n  - when:\n    - key: destination.ip\n      values: [\"10.2.0.7/32\"]\n")

static const struct eval_case eval_cases[] = {
	{ "no policy: allowed", "", "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, true, NULL },
	{ "allow-nothing denies all", ALLOW_NOTHING, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, false, NULL },
	{ "allow-nothing is the namespace's only", ALLOW_NOTHING, "bar", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, true,
	  NULL },
	{ "deny-all", DENY_ALL, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, false, "foo/deny-all" },
	{ "deny-all wins over allow-all", ALLOW_ALL DENY_ALL, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, false,
	  "foo/deny-all" },
	{ "allow-all", ALLOW_ALL ALLOW_NOTHING, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, true, NULL },
	{ "httpbin: sleep to 8000", HTTPBIN_ALLOW, "foo", "httpbin", SLEEP, "10.1.0.1", "10.2.0.7", 8000, true, NULL },
	{ "httpbin: namespace test", HTTPBIN_ALLOW, "foo", "httpbin", TEST_X, "10.1.0.1", "10.2.0.7", 8000, true,
	  NULL },
	{ "httpbin: other port", HTTPBIN_ALLOW, "foo", "httpbin", SLEEP, "10.1.0.1", "10.2.0.7", 8001, false, NULL },
	{ "httpbin: other principal", HTTPBIN_ALLOW, "foo", "httpbin", FOO_SA_A, "10.1.0.1", "10.2.0.7", 8000, false,
	  NULL },
	{ "httpbin: not selected", HTTPBIN_ALLOW, "foo", "web", FOO_SA_A, "10.1.0.1", "10.2.0.7", 8000, true, NULL },
	{ "httpbin: no identity", HTTPBIN_ALLOW, "foo", "httpbin", NULL, "10.1.0.1", "10.2.0.7", 8000, false, NULL },
	{ "deny not from foo: from default", DENY_NOT_FOO, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, false,
	  "foo/deny-not-foo" },
	{ "deny not from foo: from foo", DENY_NOT_FOO, "foo", "", FOO_SA_A, "10.1.0.1", "10.2.0.7", 80, true, NULL },
	{ "deny not from foo: no identity", DENY_NOT_FOO, "foo", "", NULL, "10.1.0.1", "10.2.0.7", 80, false,
	  "foo/deny-not-foo" },
	{ "DENY before a matching ALLOW", HTTPBIN_ALLOW DENY_SLEEP, "foo", "httpbin", SLEEP, "10.1.0.1", "10.2.0.7",
	  8000, false, "foo/deny-sleep" },
	{ "DENY not matching, ALLOW matching", HTTPBIN_ALLOW DENY_SLEEP, "foo", "httpbin", TEST_X, "10.1.0.1",
	  "10.2.0.7", 8000, true, NULL },
	{ "root namespace DENY applies everywhere", MESH_DENY_9000, "bar", "", SLEEP, "10.1.0.1", "10.2.0.7", 9000,
	  false, "istio-system/no-9000" },
	{ "root namespace DENY other port", MESH_DENY_9000, "bar", "", SLEEP, "10.1.0.1", "10.2.0.7", 9001, true,
	  NULL },
	{ "ipBlocks", ALLOW_IPS, "foo", "", SLEEP, "10.1.3.4", "10.2.0.7", 80, true, NULL },
	{ "notIpBlocks", ALLOW_IPS, "foo", "", SLEEP, "10.1.9.4", "10.2.0.7", 80, false, NULL },
	{ "ipBlocks outside", ALLOW_IPS, "foo", "", SLEEP, "10.3.0.1", "10.2.0.7", 80, false, NULL },
	{ "ipBlocks IPv6", ALLOW_IPS, "foo", "", SLEEP, "fd00::9", "fd00:1::7", 80, true, NULL },
	{ "when: principal prefix and port", ALLOW_WHEN, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, true, NULL },
	{ "when: notValues port", ALLOW_WHEN, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 22, false, NULL },
	{ "when: principal prefix other ns", ALLOW_WHEN, "foo", "", FOO_SA_A, "10.1.0.1", "10.2.0.7", 80, false, NULL },
	{ "ALLOW with HTTP attributes never matches", ALLOW_L7, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, false,
	  NULL },
	{ "DENY with HTTP attributes is enforced without them", DENY_L7, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80,
	  false, "foo/l7-deny" },
	{ "DENY with HTTP attributes, other principal", DENY_L7, "foo", "", FOO_SA_A, "10.1.0.1", "10.2.0.7", 80, true,
	  NULL },
	{ "serviceAccounts of the policy's namespace", ALLOW_SA, "foo", "", FOO_SA_A, "10.1.0.1", "10.2.0.7", 80, true,
	  NULL },
	{ "serviceAccounts other namespace", ALLOW_SA, "foo", "", "spiffe://cluster.local/ns/bar/sa/a", "10.1.0.1",
	  "10.2.0.7", 80, false, NULL },
	{ "notPrincipals *: only without identity", ALLOW_NOT_PRINCIPALS, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80,
	  false, NULL },
	{ "notPrincipals *: no identity", ALLOW_NOT_PRINCIPALS, "foo", "", NULL, "10.1.0.1", "10.2.0.7", 80, true,
	  NULL },
	{ "destination.ip", ALLOW_DST_IP, "foo", "", SLEEP, "10.1.0.1", "10.2.0.7", 80, true, NULL },
	{ "destination.ip other", ALLOW_DST_IP, "foo", "", SLEEP, "10.1.0.1", "10.2.0.8", 80, false, NULL },
};

static void parse_ip(const char *s, struct xm_ip *ip)
{
	uint8_t bits;

	cr_assert_eq(authz_cidr_parse(s, ip, &bits), 0, "%s", s);
}

static void run_case(const struct eval_case *c, const char *trust_domain)
{
	struct xm_config cfg;
	struct xm_authz_table t;
	struct xm_authz_verdict v;
	struct xm_label app = { .key = "app" };
	struct xm_ip src, dst;
	struct xm_authz_request req = { .peer_id = c->peer, .trust_domain = trust_domain, .dport = c->port };
	char name[64 + XM_NAME_MAX + 1];

	cr_log_info("case: %s", c->name);
	if (c->policies[0])
		load_text_clean(c->policies, &cfg);
	else
		memset(&cfg, 0, sizeof(cfg));
	cr_assert_eq(authz_table_build(&cfg, NULL, &t), 0);
	config_free(&cfg); /* the table is a copy */
	snprintf(app.value, sizeof(app.value), "%s", c->app);
	parse_ip(c->src, &src);
	parse_ip(c->dst, &dst);
	req.src = &src;
	req.dst = &dst;
	authz_evaluate(&t, c->ns, &app, c->app[0] ? 1 : 0, &req, &v);
	cr_expect_eq(v.allowed, c->allowed, "%s: allowed %d", c->name, v.allowed);
	if (v.policy)
		snprintf(name, sizeof(name), "%s/%s", v.policy->ns, v.policy->name);
	if (c->deny_by)
		cr_expect(v.policy && !strcmp(name, c->deny_by), "%s: denied by %s", c->name,
			  v.policy ? name : "(no ALLOW matched)");
	else
		cr_expect_null(v.policy, "%s: denied by %s", c->name, v.policy ? name : "");
	authz_table_free(&t);
}

Test(authz_eval, istio_examples)
{
	for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++)
		run_case(&eval_cases[i], "cluster.local");
}

/* A principal written with Istio's default trust domain names the agent's own (--trust-domain). */
Test(authz_eval, cluster_local_names_the_agents_trust_domain)
{
	static const struct eval_case alias[] = {
		{ "alias", HTTPBIN_ALLOW, "foo", "httpbin", "spiffe://example.org/ns/default/sa/sleep", "10.1.0.1",
		  "10.2.0.7", 8000, true, NULL },
		{ "exact td",
		  AP("foo", "td",
		     "  rules:\n  - from:\n    - source:\n        principals: "
		     "[\"example.org/ns/default/sa/sleep\"]\n"),
		  "foo", "", "spiffe://example.org/ns/default/sa/sleep", "10.1.0.1", "10.2.0.7", 80, true, NULL },
		{ "other td",
		  AP("foo", "td",
		     "  rules:\n  - from:\n    - source:\n        principals: "
		     "[\"other.org/ns/default/sa/sleep\"]\n"),
		  "foo", "", "spiffe://example.org/ns/default/sa/sleep", "10.1.0.1", "10.2.0.7", 80, false, NULL },
	};

	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
		run_case(&alias[i], "example.org");
}

/* ztunnel's StringMatch table (src/rbac.rs string_match), through namespaces. */
Test(authz_eval, string_match)
{
	static const struct {
		const char *pattern, *ns;
		bool match;
	} cases[] = {
		{ "foo", "foo", true },	     { "foo", "not", false },	 { "foo*", "foobar", true },
		{ "foo*", "notfoo", false }, { "*foo", "barfoo", true }, { "*foo", "foonot", false },
		{ "*", "x", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *vals[1] = { (char *)cases[i].pattern };
		struct xm_authz_cond cond = { .attr = XM_AUTHZ_NAMESPACE, .values = vals, .n_values = 1 };
		struct xm_authz_alt alt = { .conds = &cond, .n_conds = 1 };
		struct xm_authz_clause cl = { .alts = &alt, .n_alts = 1 };
		struct xm_authz_rule r = { .clauses = &cl, .n_clauses = 1 };
		struct xm_authz_policy p = { .rules = &r, .n_rules = 1 };
		char peer[128];
		struct xm_authz_request req = { .peer_id = peer };

		snprintf(peer, sizeof(peer), "spiffe://cluster.local/ns/%s/sa/s", cases[i].ns);
		cr_expect_eq(authz_policy_matches(&p, &req), cases[i].match, "%s vs %s", cases[i].pattern, cases[i].ns);
	}
}

/* --- the HBONE server's check (daemon/hbone_authz.c): which client address the policies see --- */

static struct sockaddr_storage sin4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET, ip, &s->sin_addr), 1);
	return ss;
}

#define POD(name, ns, sa, ip)                                                                                          \
	"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " name "\n  namespace: " ns "\n  labels:\n    app: " name  \
	"\nspec:\n  nodeName: n\n  serviceAccountName: " sa "\nstatus:\n  podIP: " ip "\n"

Test(authz_hbone, the_forwarded_address_counts_when_its_pod_is_the_peer)
{
	struct xm_config cfg;
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };
	struct xm_snapshot *s;
	struct authz_denied d = { 0 };
	struct sockaddr_storage target = sin4("10.1.0.5", 8080), node = sin4("10.99.0.1", 40000),
				sleep_pod = sin4("10.2.0.9", 40000);
	struct hbone_admit req = { .target = &target, .local = &target, .baggage = "", .traceparent = "" };
	struct xm_scrape *sc;
	struct strbuf text = { 0 };
	int err;

	load_text_clean(
	    POD("web", "foo", "web", "10.1.0.5") POD("sleep", "default", "sleep", "10.2.0.9")
		POD("other", "default", "other", "10.2.0.10")
		    AP("foo", "from-sleep-ip", "  rules:\n  - from:\n    - source:\n        ipBlocks: [10.2.0.9]\n"),
	    &cfg);
	s = snapshot_build(&cfg, &opts, &err);
	config_free(&cfg);
	cr_assert_not_null(s);
	pthread_mutex_init(&d.lock, NULL);

	/* the source node connects from its own address; Forwarded names the client pod, which is the peer */
	req.peer_id = "spiffe://cluster.local/ns/default/sa/sleep";
	req.peer = &node;
	req.forwarded = "for=\"10.2.0.9:51000\"";
	cr_expect_eq(hbone_authz_check(s, "cluster.local", &req, &d), 200);
	/* another identity claiming sleep's address: the connection's address is used, and denied */
	req.peer_id = "spiffe://cluster.local/ns/default/sa/other";
	cr_expect_eq(hbone_authz_check(s, "cluster.local", &req, &d), 401);
	/* no Forwarded: the connection's address */
	req.peer_id = "spiffe://cluster.local/ns/default/sa/sleep";
	req.forwarded = "";
	cr_expect_eq(hbone_authz_check(s, "cluster.local", &req, &d), 401);
	req.peer = &sleep_pod;
	cr_expect_eq(hbone_authz_check(s, "cluster.local", &req, &d), 200);
	/* a malformed Forwarded is ignored whole */
	req.peer = &node;
	req.forwarded = "for=\"10.2.0.9:51000";
	cr_expect_eq(hbone_authz_check(s, "cluster.local", &req, &d), 401);

	cr_expect_eq(authz_denied_total(&d), 3);
	sc = scrape_new();
	cr_assert_not_null(sc);
	authz_denied_collect(&d, sc);
	scrape_render(sc, &text);
	cr_expect(text.buf &&
		      strstr(text.buf, "xmesh_authz_denied_total{namespace=\"foo\",pod=\"web\",policy=\"allow-not-"
				       "matched\"} 3\n"),
		  "%s", text.buf ? text.buf : "");
	sb_free(&text);
	scrape_free(sc);
	authz_denied_fini(&d);
	snapshot_put(s);
}

/* --- a policy change (hbone_server_recheck's decision, daemon/hbone_authz.c) --- */

static struct xm_snapshot *snapshot_of(const char *text)
{
	struct xm_config cfg;
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };
	struct xm_snapshot *s;
	int err;

	load_text_clean(text, &cfg);
	s = snapshot_build(&cfg, &opts, &err);
	config_free(&cfg);
	cr_assert_not_null(s);
	return s;
}

#define PODS	   POD("web", "foo", "web", "10.1.0.5") POD("sleep", "default", "sleep", "10.2.0.9")
#define FROM_SLEEP "  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/default/sa/sleep]\n"

Test(authz_recheck, the_table_differs_exactly_when_an_enforced_policy_does)
{
	struct xm_snapshot *a = snapshot_of(PODS AP("foo", "allow", FROM_SLEEP));
	struct xm_snapshot *same = snapshot_of(PODS POD("x", "foo", "x", "10.1.0.6") AP("foo", "allow", FROM_SLEEP));
	struct xm_snapshot *value = snapshot_of(
	    PODS AP("foo", "allow",
		    "  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/default/sa/x]\n"));
	struct xm_snapshot *action = snapshot_of(PODS AP("foo", "allow", "  action: DENY\n" FROM_SLEEP));
	struct xm_snapshot *more = snapshot_of(PODS AP("foo", "allow", FROM_SLEEP) AP("foo", "b", FROM_SLEEP));
	struct xm_snapshot *audit =
	    snapshot_of(PODS AP("foo", "allow", FROM_SLEEP) AP("foo", "b", "  action: AUDIT\n" FROM_SLEEP));

	/* a pod more is no policy change; an AUDIT policy is never enforced */
	cr_expect(authz_table_equal(&a->authz, &same->authz));
	cr_expect(authz_table_equal(&a->authz, &audit->authz));
	cr_expect_not(authz_table_equal(&a->authz, &value->authz));
	cr_expect_not(authz_table_equal(&a->authz, &action->authz));
	cr_expect_not(authz_table_equal(&a->authz, &more->authz));
	cr_expect_not(authz_table_equal(&more->authz, &a->authz));
	snapshot_put(a);
	snapshot_put(same);
	snapshot_put(value);
	snapshot_put(action);
	snapshot_put(more);
	snapshot_put(audit);
}

Test(authz_recheck, a_stream_denied_after_a_change_counts_as_closed)
{
	struct xm_snapshot *before = snapshot_of(PODS AP("foo", "allow", FROM_SLEEP));
	struct xm_snapshot *after =
	    snapshot_of(PODS AP("foo", "allow", FROM_SLEEP) AP("foo", "no-sleep", "  action: DENY\n" FROM_SLEEP));
	struct xm_snapshot *gone = snapshot_of(POD("sleep", "default", "sleep", "10.2.0.9")
						   AP("foo", "no-sleep", "  action: DENY\n" FROM_SLEEP));
	struct authz_denied denied = { 0 }, closed = { 0 };
	struct sockaddr_storage target = sin4("10.1.0.5", 8080), peer = sin4("10.2.0.9", 40000);
	struct hbone_admit req = { .peer_id = "spiffe://cluster.local/ns/default/sa/sleep",
				   .target = &target,
				   .local = &target,
				   .peer = &peer,
				   .forwarded = "",
				   .baggage = "",
				   .traceparent = "" };
	struct xm_scrape *sc;
	struct strbuf text = { 0 };

	pthread_mutex_init(&denied.lock, NULL);
	pthread_mutex_init(&closed.lock, NULL);
	cr_expect_eq(hbone_authz_check(before, "cluster.local", &req, &denied), 200);
	cr_expect_eq(hbone_authz_recheck(before, "cluster.local", &req, &closed), 200);
	cr_expect_eq(hbone_authz_recheck(after, "cluster.local", &req, &closed), 401);
	/* the destination pod left the node: no policy decision, the stream stays (admit would say 401) */
	cr_expect_eq(hbone_authz_recheck(gone, "cluster.local", &req, &closed), 200);
	cr_expect_eq(hbone_authz_check(gone, "cluster.local", &req, &denied), 401);
	cr_expect_eq(authz_denied_total(&closed), 1);
	cr_expect_eq(authz_denied_total(&denied), 0);

	sc = scrape_new();
	cr_assert_not_null(sc);
	authz_closed_collect(&closed, sc);
	authz_denied_collect(&denied, sc);
	scrape_render(sc, &text);
	cr_expect(text.buf && strstr(text.buf, "xmesh_authz_closed_total{namespace=\"foo\",pod=\"web\",policy=\"foo/"
					       "no-sleep\"} 1\n"),
		  "%s", text.buf ? text.buf : "");
	cr_expect(text.buf && !strstr(text.buf, "xmesh_authz_denied_total{"), "%s", text.buf ? text.buf : "");
	sb_free(&text);
	scrape_free(sc);
	authz_denied_fini(&denied);
	authz_denied_fini(&closed);
	snapshot_put(before);
	snapshot_put(after);
	snapshot_put(gone);
}

/* --- values pre-parsed at build (authz_match_compile): what the per-CONNECT check compares --- */

Test(authz_compile, each_value_parsed_once_by_its_attribute)
{
	struct xm_authz_match m;
	struct xm_ip v4 = { .family = 4, .bytes = { 10, 1, 0, 0 } };

	authz_match_compile(XM_AUTHZ_PRINCIPAL, "*", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_ANY);
	authz_match_compile(XM_AUTHZ_PRINCIPAL, "*/sa/admin", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_SUFFIX);
	cr_expect_eq(m.len, 9);
	cr_expect(!strncmp(m.s, "/sa/admin", m.len));
	authz_match_compile(XM_AUTHZ_NAMESPACE, "prod*", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_PREFIX);
	cr_expect_eq(m.len, 4);
	authz_match_compile(XM_AUTHZ_NAMESPACE, "", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_EXACT);
	cr_expect_eq(m.len, 0);
	/* serviceAccounts compare as written: a '*' there is no wildcard */
	authz_match_compile(XM_AUTHZ_SERVICE_ACCOUNT, "ns/*", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_EXACT);
	cr_expect_eq(m.len, 4);
	authz_match_compile(XM_AUTHZ_SOURCE_IP, "10.1.2.3/16", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_CIDR);
	cr_expect_eq(m.bits, 16);
	cr_expect(authz_cidr_contains(&m.ip, m.bits, &v4));
	authz_match_compile(XM_AUTHZ_DEST_IP, "fd00::/64", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_CIDR);
	cr_expect_eq(m.ip.family, 6);
	cr_expect_not(authz_cidr_contains(&m.ip, m.bits, &v4));
	authz_match_compile(XM_AUTHZ_DEST_PORT, "8080", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_PORT);
	cr_expect_eq(m.port, 8080);
	/* what cannot match never does */
	authz_match_compile(XM_AUTHZ_DEST_PORT, "65536", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_NEVER);
	authz_match_compile(XM_AUTHZ_SOURCE_IP, "10.0.0.0/33", &m);
	cr_expect_eq(m.kind, XM_AUTHZ_NEVER);
}

/* The snapshot's copy (compiled at build) and the config's policy (compiled per use) decide alike. */
Test(authz_compile, the_table_decides_as_the_config_policy)
{
	static const char *const peers[] = { "spiffe://cluster.local/ns/default/sa/sleep",
					     "spiffe://example.org/ns/prod/sa/admin",
					     "spiffe://cluster.local/ns/x/sa/y", "", "spiffe://cluster.local/other" };
	static const char *const srcs[] = { "10.2.0.9", "10.9.1.1", "fd00::5" };
	static const uint16_t ports[] = { 8080, 9090, 443 };
	struct xm_config cfg;
	struct xm_authz_table t;
	size_t checked = 0;

	load_text_clean(
	    AP("foo", "a",
	       "  rules:\n  - from:\n    - source:\n        principals: [\"*/sa/admin\", \"cluster.local/ns/def*\"]\n"
	       "    - source:\n        ipBlocks: [10.9.0.0/16, \"fd00::/64\"]\n        notNamespaces: [x]\n"
	       "    to:\n    - operation:\n        ports: [\"9090\", \"443\"]\n"
	       "  - from:\n    - source:\n        serviceAccounts: [sleep, prod/admin]\n"
	       "    when:\n    - key: destination.ip\n      values: [10.1.0.0/16]\n")
		AP("foo", "b",
		   "  action: DENY\n  rules:\n  - from:\n    - source:\n        notPrincipals: [\"*\"]\n"
		   "  - to:\n    - operation:\n        notPorts: [\"8080\", \"9090\"]\n"),
	    &cfg);
	cr_assert_eq(authz_table_build(&cfg, NULL, &t), 0);
	cr_assert_eq(t.n, 2);
	for (size_t p = 0; p < t.n; p++)
		for (size_t a = 0; a < sizeof(peers) / sizeof(peers[0]); a++)
			for (size_t s = 0; s < sizeof(srcs) / sizeof(srcs[0]); s++)
				for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++) {
					struct xm_ip src, dst;
					uint8_t bits;
					struct xm_authz_request req = { .peer_id = peers[a],
									.trust_domain = "example.org",
									.src = &src,
									.dst = &dst,
									.dport = ports[k] };

					cr_assert_eq(authz_cidr_parse(srcs[s], &src, &bits), 0);
					cr_assert_eq(authz_cidr_parse("10.1.0.5", &dst, &bits), 0);
					cr_expect_eq(authz_policy_matches(&t.items[p], &req),
						     authz_policy_matches(&cfg.authz_policies[p], &req),
						     "policy %zu peer %s src %s port %u", p, peers[a], srcs[s],
						     ports[k]);
					checked++;
				}
	cr_expect_eq(checked, 90);
	authz_table_free(&t);
	config_free(&cfg);
}
