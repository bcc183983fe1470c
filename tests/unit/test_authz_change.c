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
