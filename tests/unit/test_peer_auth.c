// SPDX-License-Identifier: Apache-2.0
/*
 * PeerAuthentication: parsing and Istio's validation (config/parse_peerauthentication.c), the composition of
 * mesh, namespace and workload policies with port-level modes (compile/peer_auth.c) on Istio's documented
 * examples, and the table of local pod ports that the kernel enforces.
 */
#include "test_config.h"

#include "compile/peer_auth.h"
#include "compile/snapshot.h"

#define PA(ns, name, extra)                                                                                            \
	"---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: " name                    \
	"\n  namespace: " ns "\n" extra

Test(peer_auth_parse, fields_of_v1_and_v1beta1)
{
	struct xm_config cfg;
	const struct xm_peer_authentication *pa;

	load_text_clean(PA("foo", "finance",
			   "  creationTimestamp: \"2024-05-01T10:20:30Z\"\nspec:\n  selector:\n"
			   "    matchLabels:\n      app: finance\n  mtls:\n    mode: STRICT\n"
			   "  portLevelMtls:\n    \"9090\":\n      mode: PERMISSIVE\n    8080:\n      mode: DISABLE\n"
			   "    7070: {}\n") "---\napiVersion: security.istio.io/v1beta1\nkind: "
					     "PeerAuthentication\nmetadata:\n  name: default\n"
					     "  namespace: istio-system\nspec: {}\n",
			&cfg);
	cr_assert_eq(cfg.n_peer_auths, 2);
	pa = &cfg.peer_auths[0]; /* sorted: foo/finance, istio-system/default */
	cr_assert_str_eq(pa->ns, "foo");
	cr_assert_eq(pa->mode, XM_MTLS_STRICT);
	cr_assert_eq(pa->n_selector, 1);
	cr_assert_str_eq(pa->selector[0].key, "app");
	cr_assert_eq(pa->created, 1714558830);
	cr_assert_eq(pa->n_ports, 3);
	cr_assert_eq(pa->ports[0].port, 7070);
	cr_assert_eq(pa->ports[0].mode, XM_MTLS_UNSET);
	cr_assert_eq(pa->ports[1].port, 8080);
	cr_assert_eq(pa->ports[1].mode, XM_MTLS_DISABLE);
	cr_assert_eq(pa->ports[2].mode, XM_MTLS_PERMISSIVE);
	cr_assert_eq(cfg.peer_auths[1].mode, XM_MTLS_UNSET);
	cr_assert_eq(cfg.peer_auths[1].created, 0);
	config_free(&cfg);
}

Test(peer_auth_parse, timestamps_with_offsets_and_fractions)
{
	struct xm_config cfg;

	load_text_clean(PA("a", "x", "  creationTimestamp: \"2024-05-01T12:20:30.25+02:00\"\n"), &cfg);
	cr_assert_eq(cfg.peer_auths[0].created, 1714558830);
	config_free(&cfg);
}

/* Istio's ValidatePeerAuthentication and ours, each error at its node. */
static const struct bad_case bad_cases[] = {
	{ PA("foo", "ns-wide", "spec:\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n"), 10, 5,
	  "cannot have port-level mTLS" },
	{ PA("foo", "empty-sel", "spec:\n  selector: {matchLabels: {}}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n"),
	  10, 5, "cannot have port-level mTLS" },
	{ PA("foo", "empty-plm", "spec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls: {}\n"), 9, 18,
	  "at least one element" },
	{ PA("foo", "port0", "spec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    0: {mode: STRICT}\n"),
	  10, 5, "port cannot be 0" },
	{ PA("foo", "portbig", "spec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    65536: {}\n"), 10, 5,
	  "out of range 1-65535" },
	{ PA("foo", "portname", "spec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    http: {}\n"), 10, 5,
	  "is not a port number" },
	{ PA("foo", "mode", "spec:\n  mtls:\n    mode: strict\n"), 9, 11,
	  "is not one of UNSET, DISABLE, PERMISSIVE, STRICT" },
	{ PA("foo", "pmode", "spec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    80: {mode: ON}\n"), 10,
	  16, "spec.portLevelMtls[80].mode" },
	{ PA("foo", "dup",
	     "spec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    80: {}\n    \"80\": {}\n"),
	  11, 5, "given twice" },
	{ PA("foo", "wild", "spec:\n  selector:\n    matchLabels:\n      app: \"fin*\"\n"), 10, 7, "wildcard" },
	{ PA("foo", "ts", "  creationTimestamp: \"2024-13-01\"\n"), 7, 22, "not an RFC 3339 time" },
	{ "apiVersion: security.istio.io/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: old}\n", 1, 13,
	  "not supported for PeerAuthentication" },
};

Test(peer_auth_parse, errors_at_their_node)
{
	expect_bad_cases(bad_cases, sizeof(bad_cases) / sizeof(bad_cases[0]));
}

/* --- composition: Istio's examples (istio.io, reference/config/security/peer_authentication) --- */

#define MESH_STRICT    PA("istio-system", "default", "spec:\n  mtls:\n    mode: STRICT\n")
#define FOO_PERMISSIVE PA("foo", "default", "spec:\n  mtls:\n    mode: PERMISSIVE\n")
#define FOO_FINANCE_STRICT                                                                                             \
	PA("foo", "finance", "spec:\n  selector:\n    matchLabels:\n      app: finance\n  mtls:\n    mode: STRICT\n")
#define FOO_FINANCE_8080_DISABLE                                                                                       \
	PA("foo", "finance",                                                                                           \
	   "spec:\n  selector:\n    matchLabels:\n      app: finance\n  mtls:\n    mode: STRICT\n"                     \
	   "  portLevelMtls:\n    8080:\n      mode: DISABLE\n")
#define FOO_FINANCE_UNSET_8080_DISABLE                                                                                 \
	PA("foo", "finance",                                                                                           \
	   "spec:\n  selector:\n    matchLabels:\n      app: finance\n  mtls:\n    mode: UNSET\n"                      \
	   "  portLevelMtls:\n    8080:\n      mode: DISABLE\n")

struct compose_case {
	const char *name;
	const char *docs[3];
	const char *ns;	 /* the workload's namespace */
	const char *app; /* its label app */
	uint16_t port;
	enum xm_mtls_mode want;
};

static const struct compose_case compose_cases[] = {
	{ "nothing applies: PERMISSIVE", { NULL }, "foo", "finance", 80, XM_MTLS_PERMISSIVE },
	{ "mesh-wide STRICT", { MESH_STRICT }, "foo", "web", 80, XM_MTLS_STRICT },
	{ "namespace PERMISSIVE over mesh STRICT",
	  { MESH_STRICT, FOO_PERMISSIVE },
	  "foo",
	  "web",
	  80,
	  XM_MTLS_PERMISSIVE },
	{ "mesh STRICT in another namespace", { MESH_STRICT, FOO_PERMISSIVE }, "bar", "web", 80, XM_MTLS_STRICT },
	{ "namespace PERMISSIVE, finance STRICT: finance",
	  { FOO_PERMISSIVE, FOO_FINANCE_STRICT },
	  "foo",
	  "finance",
	  80,
	  XM_MTLS_STRICT },
	{ "namespace PERMISSIVE, finance STRICT: others",
	  { FOO_PERMISSIVE, FOO_FINANCE_STRICT },
	  "foo",
	  "web",
	  80,
	  XM_MTLS_PERMISSIVE },
	{ "workload selector of another namespace", { FOO_FINANCE_STRICT }, "bar", "finance", 80, XM_MTLS_PERMISSIVE },
	{ "STRICT but 8080 DISABLE: 8080", { FOO_FINANCE_8080_DISABLE }, "foo", "finance", 8080, XM_MTLS_DISABLE },
	{ "STRICT but 8080 DISABLE: 9080", { FOO_FINANCE_8080_DISABLE }, "foo", "finance", 9080, XM_MTLS_STRICT },
	{ "UNSET inherits the namespace: 9080",
	  { FOO_PERMISSIVE, FOO_FINANCE_UNSET_8080_DISABLE },
	  "foo",
	  "finance",
	  9080,
	  XM_MTLS_PERMISSIVE },
	{ "UNSET inherits the mesh: 9080",
	  { MESH_STRICT, FOO_FINANCE_UNSET_8080_DISABLE },
	  "foo",
	  "finance",
	  9080,
	  XM_MTLS_STRICT },
	{ "UNSET with 8080 DISABLE: 8080",
	  { MESH_STRICT, FOO_FINANCE_UNSET_8080_DISABLE },
	  "foo",
	  "finance",
	  8080,
	  XM_MTLS_DISABLE },
	{ "namespace UNSET inherits the mesh",
	  { MESH_STRICT, PA("foo", "default", "spec:\n  mtls:\n    mode: UNSET\n") },
	  "foo",
	  "web",
	  80,
	  XM_MTLS_STRICT },
	{ "mesh UNSET is PERMISSIVE",
	  { PA("istio-system", "default", "spec: {}\n") },
	  "foo",
	  "web",
	  80,
	  XM_MTLS_PERMISSIVE },
	{ "a port UNSET takes the workload's",
	  { PA("foo", "w",
	       "spec:\n  selector: {matchLabels: {app: web}}\n  mtls: {mode: DISABLE}\n"
	       "  portLevelMtls:\n    80: {mode: UNSET}\n    81: {mode: STRICT}\n") },
	  "foo",
	  "web",
	  80,
	  XM_MTLS_DISABLE },
	{ "a selector in the root namespace selects nothing",
	  { PA("istio-system", "sel", "spec:\n  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n") },
	  "istio-system",
	  "web",
	  80,
	  XM_MTLS_PERMISSIVE },
	{ "the oldest namespace policy wins",
	  { PA("foo", "b-new", "  creationTimestamp: \"2024-02-01T00:00:00Z\"\nspec:\n  mtls: {mode: STRICT}\n"),
	    PA("foo", "a-old", "  creationTimestamp: \"2024-01-01T00:00:00Z\"\nspec:\n  mtls: {mode: DISABLE}\n") },
	  "foo",
	  "web",
	  80,
	  XM_MTLS_DISABLE },
	{ "the oldest workload policy wins, with its ports",
	  { PA("foo", "a-new",
	       "  creationTimestamp: \"2024-02-01T00:00:00Z\"\nspec:\n  selector: {matchLabels: {app: web}}\n"
	       "  mtls: {mode: STRICT}\n"),
	    PA("foo", "z-old",
	       "  creationTimestamp: \"2024-01-01T00:00:00Z\"\nspec:\n  selector: {matchLabels: {app: web}}\n"
	       "  mtls: {mode: STRICT}\n  portLevelMtls:\n    80: {mode: PERMISSIVE}\n") },
	  "foo",
	  "web",
	  80,
	  XM_MTLS_PERMISSIVE },
	{ "equal times: name.namespace order",
	  { PA("foo", "b", "spec:\n  mtls: {mode: STRICT}\n"), PA("foo", "a", "spec:\n  mtls: {mode: DISABLE}\n") },
	  "foo",
	  "web",
	  80,
	  XM_MTLS_DISABLE },
};

Test(peer_auth_compose, istio_examples)
{
	for (size_t i = 0; i < sizeof(compose_cases) / sizeof(compose_cases[0]); i++) {
		const struct compose_case *c = &compose_cases[i];
		char text[4096] = "";
		struct xm_label label = { .key = "app" };
		struct xm_pa_effective e;
		struct xm_config cfg;

		for (int d = 0; d < 3 && c->docs[d]; d++)
			strncat(text, c->docs[d], sizeof(text) - strlen(text) - 1);
		load_text_clean(text, &cfg);
		snprintf(label.value, sizeof(label.value), "%s", c->app);
		peer_auth_resolve(&cfg, NULL, c->ns, &label, 1, &e);
		cr_expect_eq(peer_auth_port_mode(&e, c->port), c->want, "%s: got %s, want %s", c->name,
			     peer_auth_mode_name(peer_auth_port_mode(&e, c->port)), peer_auth_mode_name(c->want));
		config_free(&cfg);
	}
}

Test(peer_auth_compose, root_namespace_flag)
{
	struct xm_config cfg;
	struct xm_pa_effective e;

	load_text_clean(PA("mesh-root", "default", "spec:\n  mtls: {mode: STRICT}\n"), &cfg);
	peer_auth_resolve(&cfg, "mesh-root", "foo", NULL, 0, &e);
	cr_assert_eq(e.mode, XM_MTLS_STRICT);
	cr_assert_not_null(e.mesh);
	peer_auth_resolve(&cfg, NULL, "foo", NULL, 0, &e);
	cr_assert_eq(e.mode, XM_MTLS_PERMISSIVE, "istio-system is the default root namespace");
	config_free(&cfg);
}

/* --- the kernel's table --- */

static const char *const pods =
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: fin-1, namespace: foo, labels: {app: finance}}\n"
    "spec: {nodeName: node-a}\nstatus:\n  podIPs: [{ip: 10.200.1.11}, {ip: \"fd00:200:1::11\"}]\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: foo, labels: {app: web}}\n"
    "spec: {nodeName: node-a}\nstatus: {podIP: 10.200.1.12}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: fin-2, namespace: foo, labels: {app: finance}}\n"
    "spec: {nodeName: node-b}\nstatus: {podIP: 10.200.2.11}\n";

static struct xm_mtls_key key(const char *ip, uint16_t port)
{
	struct xm_mtls_key k;

	memset(&k, 0, sizeof(k));
	k.family = strchr(ip, ':') ? XM_FAMILY_V6 : XM_FAMILY_V4;
	cr_assert_eq(inet_pton(k.family == XM_FAMILY_V6 ? AF_INET6 : AF_INET, ip, k.addr.bytes), 1);
	k.port = port;
	return k;
}

static void assert_entry(const struct xm_mtls_table *t, const char *ip, uint16_t port, int mode, int flags)
{
	struct xm_mtls_key k = key(ip, port);
	const struct xm_mtls_entry *e = mtls_table_find(t, &k);

	cr_assert_not_null(e, "no entry for %s port %u", ip, port);
	cr_assert_eq(e->val.mode, mode, "%s port %u: mode %u, want %d", ip, port, e->val.mode, mode);
	cr_assert_eq(e->val.flags, flags, "%s port %u: flags %u, want %d", ip, port, e->val.flags, flags);
}

Test(peer_auth_table, local_pods_with_strict_ports_only)
{
	char text[4096];
	struct xm_mtls_table t;
	struct xm_config cfg;

	snprintf(text, sizeof(text), "%s%s%s", pods, FOO_PERMISSIVE, FOO_FINANCE_8080_DISABLE);
	load_text_clean(text, &cfg);
	cr_assert_eq(mtls_table_build(&cfg, "node-a", NULL, &t), 0);
	/* fin-1's two addresses, each with the workload entry and 8080; web-1 is PERMISSIVE: no entry; fin-2 is
	 * on another node. */
	cr_assert_eq(t.n, 4);
	assert_entry(&t, "10.200.1.11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_entry(&t, "10.200.1.11", 8080, XM_MTLS_MODE_DISABLE, 0);
	assert_entry(&t, "fd00:200:1::11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_entry(&t, "fd00:200:1::11", 8080, XM_MTLS_MODE_DISABLE, 0);
	mtls_table_free(&t);
	cr_assert_eq(mtls_table_build(&cfg, NULL, NULL, &t), 0);
	cr_assert_eq(t.n, 0, "without --node nothing is local");
	config_free(&cfg);
}

Test(peer_auth_table, a_strict_port_under_a_permissive_workload)
{
	char text[4096];
	struct xm_mtls_table t;
	struct xm_config cfg;
	struct xm_snapshot *s;
	struct xm_compile_opts o = { .node_name = "node-a", .root_namespace = "mesh-root" };
	int err;

	snprintf(text, sizeof(text), "%s%s", pods,
		 PA("foo", "web",
		    "spec:\n  selector: {matchLabels: {app: web}}\n  portLevelMtls:\n    9000: {mode: STRICT}\n"));
	load_text_clean(text, &cfg);
	cr_assert_eq(mtls_table_build(&cfg, "node-a", NULL, &t), 0);
	cr_assert_eq(t.n, 2);
	assert_entry(&t, "10.200.1.12", 0, XM_MTLS_MODE_PERMISSIVE, XM_MTLS_F_ANY_STRICT);
	assert_entry(&t, "10.200.1.12", 9000, XM_MTLS_MODE_STRICT, 0);
	mtls_table_free(&t);
	/* The snapshot carries the same table. */
	s = snapshot_build(&cfg, &o, &err);
	cr_assert_not_null(s);
	cr_assert_eq(s->mtls.n, 2);
	snapshot_put(s);
	config_free(&cfg);
}

/* --- the tunnel client's view: pods of other nodes --- */

Test(peer_auth_table, remote_pods_every_mode)
{
	char text[4096];
	struct xm_mtls_table t;
	struct xm_config cfg;

	snprintf(text, sizeof(text), "%s%s%s", pods, FOO_PERMISSIVE, FOO_FINANCE_8080_DISABLE);
	load_text_clean(text, &cfg);
	/* From node-b: fin-1 (two addresses, STRICT with 8080 DISABLE) and web-1 (PERMISSIVE: an entry too, it
	 * is tunnelled); fin-2 is local. */
	cr_assert_eq(mtls_remote_build(&cfg, "node-b", NULL, &t), 0);
	cr_assert_eq(t.n, 5);
	assert_entry(&t, "10.200.1.11", 0, XM_MTLS_MODE_STRICT, 0);
	assert_entry(&t, "10.200.1.11", 8080, XM_MTLS_MODE_DISABLE, 0);
	assert_entry(&t, "fd00:200:1::11", 0, XM_MTLS_MODE_STRICT, 0);
	assert_entry(&t, "fd00:200:1::11", 8080, XM_MTLS_MODE_DISABLE, 0);
	assert_entry(&t, "10.200.1.12", 0, XM_MTLS_MODE_PERMISSIVE, 0);
	mtls_table_free(&t);
	/* From node-a: only fin-2. */
	cr_assert_eq(mtls_remote_build(&cfg, "node-a", NULL, &t), 0);
	cr_assert_eq(t.n, 2);
	assert_entry(&t, "10.200.2.11", 0, XM_MTLS_MODE_STRICT, 0);
	assert_entry(&t, "10.200.2.11", 8080, XM_MTLS_MODE_DISABLE, 0);
	mtls_table_free(&t);
	config_free(&cfg);
}

Test(peer_auth_table, remote_pods_without_any_policy_are_permissive)
{
	struct xm_mtls_table t;
	struct xm_config cfg;

	load_text_clean(pods, &cfg);
	cr_assert_eq(mtls_remote_build(&cfg, "node-a", NULL, &t), 0);
	cr_assert_eq(t.n, 1);
	assert_entry(&t, "10.200.2.11", 0, XM_MTLS_MODE_PERMISSIVE, 0);
	mtls_table_free(&t);
	config_free(&cfg);
}

/* The agent's decision for its own upstreams must be the connect hook's: port-level first, then the pod's. */
static bool tunnelled(const struct xm_mtls_table *t, const char *ip, uint16_t port)
{
	struct xm_mtls_key k = key(ip, port);

	return mtls_remote_tunnelled(t, &k.addr, k.family, port);
}

Test(peer_auth_table, remote_tunnelled_decision)
{
	char text[4096];
	struct xm_mtls_table t;
	struct xm_config cfg;

	snprintf(text, sizeof(text), "%s%s%s", pods, FOO_PERMISSIVE, FOO_FINANCE_8080_DISABLE);
	load_text_clean(text, &cfg);
	cr_assert_eq(mtls_remote_build(&cfg, "node-b", NULL, &t), 0);
	cr_assert(tunnelled(&t, "10.200.1.11", 9090), "STRICT pod, a port without its own mode");
	cr_assert_not(tunnelled(&t, "10.200.1.11", 8080), "its DISABLE port");
	cr_assert_not(tunnelled(&t, "10.200.1.11", 15008), "HBONE itself is never tunnelled");
	cr_assert(tunnelled(&t, "10.200.1.12", 80), "PERMISSIVE: auto-mTLS");
	cr_assert_not(tunnelled(&t, "10.200.2.11", 80), "a pod of this node");
	cr_assert_not(tunnelled(&t, "10.9.9.9", 80), "no pod");
	mtls_table_free(&t);
	config_free(&cfg);
}
