// SPDX-License-Identifier: Apache-2.0
/*
 * When open HBONE streams are checked again (compile/authz_change.c): the enforced AuthorizationPolicies
 * changed, or what they read of the pods did (labels, namespace, the principal at an address, a pod at an
 * address), while a policy is enforced. What the decision does not read (config order, pod names, nodes) is
 * no change. And the re-check's decision does follow a label change (daemon/hbone_authz.c).
 */
#include "test_snapshot_of.h"

#include "compile/authz_change.h"
#include "compile/snapshot.h"
#include "daemon/hbone_authz.h"

static struct xm_snapshot *snapshot_of(const char *text)
{
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };

	return snapshot_from_yaml(text, &opts);
}

/* Whether the pods of the two configs are the same to a policy decision. */
static bool pods_equal(const char *a, const char *b)
{
	struct xm_snapshot *x = snapshot_of(a), *y = snapshot_of(b);
	bool eq = identities_authz_equal(&x->identities, &y->identities);

	cr_expect_eq(eq, identities_authz_equal(&y->identities, &x->identities), "not symmetric");
	snapshot_put(x);
	snapshot_put(y);
	return eq;
}

/* Whether an apply from config a to config b posts the re-check walk. */
static bool recheck_needed(const char *a, const char *b)
{
	struct xm_snapshot *x = snapshot_of(a), *y = snapshot_of(b);
	bool r = authz_recheck_needed(x, y);

	snapshot_put(x);
	snapshot_put(y);
	return r;
}

#define POD_AT(name, ns, sa, node, ips, labels)                                                                        \
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: " name ", namespace: " ns ", labels: {" labels "}}\n"        \
	"spec: {nodeName: " node ", serviceAccountName: " sa "}\nstatus: {podIPs: [" ips "]}\n"
#define POD(name, ns, sa, ip, labels) POD_AT(name, ns, sa, "n", "{ip: " ip "}", labels)
/* web is a pod of this node, sleep one of another node (its principal matters through Forwarded). */
#define WEB(labels) POD("web", "foo", "web", "10.1.0.5", labels)
#define SLEEP(sa)   POD_AT("sleep", "default", sa, "m", "{ip: 10.2.0.9}", "app: sleep")
#define WEB_LABELS  "app: web, version: v1, tier: front"
#define PODS	    WEB(WEB_LABELS) SLEEP("sleep")

Test(authz_change, the_same_pods_in_another_order_are_equal)
{
	cr_expect(pods_equal(PODS, PODS));
	cr_expect(pods_equal(PODS, SLEEP("sleep") WEB("tier: front, version: v1, app: web")));
	/* what no policy reads: the pod's name and node */
	cr_expect(pods_equal(PODS, POD_AT("web-2", "foo", "web", "m", "{ip: 10.1.0.5}", WEB_LABELS) SLEEP("sleep")));
	cr_expect(pods_equal("", ""));
}

Test(authz_change, any_label_change_differs)
{
	/* a selector may name any label, a version as much as an app */
	cr_expect_not(pods_equal(PODS, WEB("app: web, version: v2, tier: front") SLEEP("sleep")));
	cr_expect_not(pods_equal(PODS, WEB(WEB_LABELS ", locked: yes") SLEEP("sleep")));
	cr_expect_not(pods_equal(PODS, WEB("app: web, version: v1") SLEEP("sleep")));
	cr_expect_not(pods_equal(PODS, WEB("app: web, version: v1, tiers: front") SLEEP("sleep")));
}

Test(authz_change, namespace_principal_and_addresses_differ)
{
	/* the namespace (namespace-wide policies) and with it the principal */
	cr_expect_not(pods_equal(PODS, POD("web", "bar", "web", "10.1.0.5", WEB_LABELS) SLEEP("sleep")));
	/* another node's pod: its principal decides whether its Forwarded address counts */
	cr_expect_not(pods_equal(PODS, WEB(WEB_LABELS) SLEEP("other")));
	/* a pod added, removed, moved, given a second address */
	cr_expect_not(pods_equal(PODS, PODS POD("x", "foo", "x", "10.1.0.6", "app: x")));
	cr_expect_not(pods_equal(PODS, WEB(WEB_LABELS)));
	cr_expect_not(pods_equal(PODS, POD("web", "foo", "web", "10.1.0.7", WEB_LABELS) SLEEP("sleep")));
	cr_expect_not(pods_equal(PODS, POD_AT("web", "foo", "web", "n", "{ip: 10.1.0.5}, {ip: 'fd00::5'}", WEB_LABELS)
					   SLEEP("sleep")));
	/* another pod at the same address, with other labels */
	cr_expect_not(pods_equal(PODS, POD("web-b", "foo", "web", "10.1.0.5", "app: web-b") SLEEP("sleep")));
}

#define AP(ns, name, spec)                                                                                             \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " name                   \
	"\n  namespace: " ns "\nspec:\n" spec
/* DENY sleep to the workloads labelled locked: yes. */
#define DENY_LOCKED                                                                                                    \
	AP("foo", "deny-locked",                                                                                       \
	   "  action: DENY\n  selector:\n    matchLabels:\n      locked: \"yes\"\n"                                    \
	   "  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/default/sa/sleep]\n")
#define AUDIT  AP("foo", "audit", "  action: AUDIT\n  rules:\n  - from:\n    - source:\n        principals: [\"*\"]\n")
#define LOCKED WEB(WEB_LABELS ", locked: \"yes\"") SLEEP("sleep")

Test(authz_change, the_walk_is_posted_for_a_pod_change_only_under_a_policy)
{
	cr_expect(recheck_needed(PODS DENY_LOCKED, LOCKED DENY_LOCKED));
	cr_expect(recheck_needed(PODS DENY_LOCKED, WEB(WEB_LABELS) SLEEP("other") DENY_LOCKED));
	cr_expect_not(
	    recheck_needed(PODS DENY_LOCKED, SLEEP("sleep") WEB("tier: front, app: web, version: v1") DENY_LOCKED));
	/* the policies changed, the pods did not */
	cr_expect(recheck_needed(PODS, PODS DENY_LOCKED));
	/* no policy enforced after the apply: every stream is allowed, nothing to walk */
	cr_expect_not(recheck_needed(PODS, LOCKED));
	cr_expect_not(recheck_needed(PODS DENY_LOCKED, LOCKED));
	/* an AUDIT policy is never enforced */
	cr_expect_not(recheck_needed(PODS AUDIT, LOCKED AUDIT));
}

static struct sockaddr_storage sin4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET, ip, &s->sin_addr), 1);
	return ss;
}

Test(authz_change, the_recheck_denies_the_stream_a_relabelled_pod_no_longer_allows)
{
	struct xm_snapshot *before = snapshot_of(PODS DENY_LOCKED), *after = snapshot_of(LOCKED DENY_LOCKED);
	struct authz_denied closed = { 0 };
	struct sockaddr_storage target = sin4("10.1.0.5", 8080), peer = sin4("10.2.0.9", 40000);
	struct hbone_admit req = { .peer_id = "spiffe://cluster.local/ns/default/sa/sleep",
				   .target = &target,
				   .local = &target,
				   .peer = &peer,
				   .forwarded = "",
				   .baggage = "",
				   .traceparent = "" };

	pthread_mutex_init(&closed.lock, NULL);
	cr_expect(authz_table_equal(&before->authz, &after->authz), "the policies are the same");
	cr_expect_eq(hbone_authz_recheck(before, "cluster.local", &req, &closed), 200);
	cr_expect_eq(hbone_authz_recheck(after, "cluster.local", &req, &closed), 401);
	cr_expect_eq(authz_denied_total(&closed), 1);
	authz_denied_fini(&closed);
	snapshot_put(before);
	snapshot_put(after);
}

/* The scope of an apply from config a to config b, as "all", "-" (nothing) or the addresses it names. */
static void scope_of(const char *a, const char *b, char *out, size_t len)
{
	struct xm_snapshot *x = snapshot_of(a), *y = snapshot_of(b);
	struct authz_recheck_scope sc;
	size_t off = 0;

	cr_assert_eq(authz_recheck_scope(x, y, &sc), 0);
	cr_expect_eq(!authz_recheck_scope_empty(&sc), authz_recheck_needed(x, y), "the scope and the walk agree");
	if (sc.all)
		snprintf(out, len, "all");
	else if (!sc.n)
		snprintf(out, len, "-");
	for (size_t i = 0; !sc.all && i < sc.n && off < len; i++) {
		char ip[INET6_ADDRSTRLEN];

		inet_ntop(sc.addrs[i].family == XM_FAMILY_V4 ? AF_INET : AF_INET6, sc.addrs[i].addr.bytes, ip,
			  sizeof(ip));
		off += (size_t)snprintf(out + off, len - off, "%s%s", i ? " " : "", ip);
	}
	authz_recheck_scope_free(&sc);
	snapshot_put(x);
	snapshot_put(y);
}

#define EXPECT_SCOPE(a, b, want)                                                                                       \
	do {                                                                                                           \
		char got_[256];                                                                                        \
		scope_of(a, b, got_, sizeof(got_));                                                                    \
		cr_expect_str_eq(got_, want);                                                                          \
	} while (0)

Test(authz_change, the_scope_names_the_addresses_whose_identity_changed)
{
	/* the policies changed: every stream */
	EXPECT_SCOPE(PODS, PODS DENY_LOCKED, "all");
	/* a label of web: its address only, not sleep's */
	EXPECT_SCOPE(PODS DENY_LOCKED, LOCKED DENY_LOCKED, "10.1.0.5");
	/* another node's pod's principal: its address (a Forwarded client there) */
	EXPECT_SCOPE(PODS DENY_LOCKED, WEB(WEB_LABELS) SLEEP("other") DENY_LOCKED, "10.2.0.9");
	/* a pod added, and one moved to a new address: the new address, and the old one and the new one */
	EXPECT_SCOPE(PODS DENY_LOCKED, PODS POD("x", "foo", "x", "10.1.0.6", "app: x") DENY_LOCKED, "10.1.0.6");
	EXPECT_SCOPE(PODS DENY_LOCKED, POD("web", "foo", "web", "10.1.0.7", WEB_LABELS) SLEEP("sleep") DENY_LOCKED,
		     "10.1.0.5 10.1.0.7");
	/* two changes at once, in address order; IPv6 after IPv4 */
	EXPECT_SCOPE(PODS DENY_LOCKED,
		     POD_AT("web", "foo", "web", "n", "{ip: 10.1.0.5}, {ip: 'fd00::5'}", WEB_LABELS ", locked: \"yes\"")
			 SLEEP("other") DENY_LOCKED,
		     "10.1.0.5 10.2.0.9 fd00::5");
	/* nothing a decision reads, or no policy enforced: nothing */
	EXPECT_SCOPE(PODS DENY_LOCKED, SLEEP("sleep") WEB("tier: front, app: web, version: v1") DENY_LOCKED, "-");
	EXPECT_SCOPE(PODS DENY_LOCKED, LOCKED, "-");
}

static struct authz_recheck_scope scope_v4(const char *const *ips, size_t n)
{
	struct authz_recheck_scope sc = { .addrs = calloc(n ? n : 1, sizeof(*sc.addrs)), .n = n };

	cr_assert_not_null(sc.addrs);
	for (size_t i = 0; i < n; i++) {
		sc.addrs[i].family = XM_FAMILY_V4;
		cr_assert_eq(inet_pton(AF_INET, ips[i], sc.addrs[i].addr.bytes), 1);
	}
	return sc;
}

Test(authz_change, scopes_merge_in_order_and_all_wins)
{
	static const char *const a_ips[] = { "10.0.0.1", "10.0.0.5" }, *const b_ips[] = { "10.0.0.3", "10.0.0.5" };
	struct authz_recheck_scope a = scope_v4(a_ips, 2), b = scope_v4(b_ips, 2), all = { .all = true };
	union xm_addr x = { 0 };

	cr_assert_eq(authz_recheck_scope_merge(&a, &b), 0);
	cr_assert_eq(a.n, 3, "the union, without the shared address twice");
	for (int last = 0, i = 0; i < 3; i++) {
		int octet = a.addrs[i].addr.bytes[3];

		cr_expect_gt(octet, last, "sorted");
		last = octet;
	}
	inet_pton(AF_INET, "10.0.0.3", x.bytes);
	cr_expect(authz_recheck_scope_has(&a, XM_FAMILY_V4, &x));
	inet_pton(AF_INET, "10.0.0.4", x.bytes);
	cr_expect_not(authz_recheck_scope_has(&a, XM_FAMILY_V4, &x));
	cr_expect_not(authz_recheck_scope_has(&a, XM_FAMILY_V6, &a.addrs[0].addr), "the family counts");
	cr_assert_eq(authz_recheck_scope_merge(&a, &all), 0);
	cr_expect(a.all && authz_recheck_scope_has(&a, XM_FAMILY_V4, &x));
	authz_recheck_scope_free(&a);
	authz_recheck_scope_free(&b);
}

Test(authz_change, the_walk_judges_only_streams_whose_addresses_changed)
{
	static const char *const web[] = { "10.1.0.5" }, *const sleep_ip[] = { "10.2.0.9" };
	struct authz_recheck_scope to_web = scope_v4(web, 1), to_sleep = scope_v4(sleep_ip, 1), all = { .all = true },
				   none = { 0 };
	struct sockaddr_storage target = sin4("10.1.0.5", 8080), other = sin4("10.1.0.8", 8080),
				peer = sin4("10.0.0.2", 40000);
	struct hbone_admit req = { .peer_id = "spiffe://cluster.local/ns/default/sa/sleep",
				   .target = &target,
				   .local = &target,
				   .peer = &peer,
				   .forwarded = "for=\"10.2.0.9:41000\"",
				   .baggage = "",
				   .traceparent = "" };

	cr_expect(hbone_authz_recheck_affected(&to_web, &req), "its target changed");
	cr_expect(hbone_authz_recheck_affected(&to_sleep, &req), "its Forwarded client changed");
	cr_expect(hbone_authz_recheck_affected(&all, &req));
	cr_expect_not(hbone_authz_recheck_affected(&none, &req));
	req.target = req.local = &other;
	cr_expect_not(hbone_authz_recheck_affected(&to_web, &req), "another target, unchanged");
	req.forwarded = "";
	cr_expect_not(hbone_authz_recheck_affected(&to_sleep, &req), "no Forwarded: the client is the node");
	authz_recheck_scope_free(&to_web);
	authz_recheck_scope_free(&to_sleep);
}
