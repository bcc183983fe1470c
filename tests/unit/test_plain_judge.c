// SPDX-License-Identifier: Apache-2.0
/*
 * The agent's judge of an established plaintext connection (compile/plain_judge.c, authz_plain_judge): what the
 * sweep that closes connections a policy change denies asks. Fixed cases: longest client prefix, the port's
 * entries before port 0's, deny_local for a mesh pod of this node against deny for anyone else, STRICT before
 * the policies, the node's addresses (config InternalIPs and interface addresses) exempt. Agreement with the
 * kernel's lookup over many configurations is in test_authz_plain.c (expect_same).
 */
#include "test_snapshot_of.h"

#include "compile/plain_judge.h"
#include "compile/snapshot.h"

static struct xm_snapshot *snap(const char *text)
{
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };
	struct xm_snapshot *s = snapshot_from_yaml(text, &opts);

	cr_assert_eq(s->authz_plain_err, 0);
	return s;
}

#define POD_ON(node, name, sa, ip)                                                                                     \
	"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " name "\n  namespace: default\n  labels:\n    app: " name \
	"\nspec:\n  nodeName: " node "\n  serviceAccountName: " sa "\nstatus:\n  podIP: " ip "\n"
#define POD(name, sa, ip) POD_ON("n", name, sa, ip)
#define AP(name, spec)                                                                                                 \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " name                   \
	"\n  namespace: default\nspec:\n" spec
#define NODE                                                                                                           \
	"---\napiVersion: v1\nkind: Node\nmetadata: {name: n}\nstatus: {addresses: [{type: InternalIP, address: "      \
	"10.199.0.2}]}\n"

static union xm_addr addr(const char *s, uint8_t *family)
{
	union xm_addr a = { 0 };

	if (inet_pton(AF_INET, s, a.bytes) == 1)
		*family = XM_FAMILY_V4;
	else {
		cr_assert_eq(inet_pton(AF_INET6, s, a.bytes), 1, "%s", s);
		*family = XM_FAMILY_V6;
	}
	return a;
}

static enum plain_verdict judge(const struct plain_rules *r, const char *pod, uint16_t port, const char *client,
				uint32_t *policy)
{
	uint8_t f1, f2;
	union xm_addr p = addr(pod, &f1), c = addr(client, &f2);

	cr_assert_eq(f1, f2);
	return plain_judge(r, f1, &p, port, &c, policy);
}

static struct plain_rules rules_of(const struct xm_snapshot *s)
{
	return (struct plain_rules){ .authz = &s->authz_plain, .mtls = &s->mtls, .local = &s->local };
}

/* A DENY of 10.0.0.0/8 but 10.9.0.0/16, and a DENY of 10.9.1.0/24 on 8080 only. */
Test(plain_judge, longest_prefix_and_port_fallback)
{
	struct xm_snapshot *s =
	    snap(NODE POD("web", "web", "10.1.0.5")
		     AP("deny-wide",
			"  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules:\n  - from:\n    - source:\n"
			"        ipBlocks: [10.0.0.0/8]\n        notIpBlocks: [10.9.0.0/16]\n")
			 AP("deny-port", "  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules:\n  - from:\n"
					 "    - source:\n        ipBlocks: [10.9.1.0/24]\n    to:\n    - operation:\n"
					 "        ports: [\"8080\"]\n"));
	struct plain_rules r = rules_of(s);
	uint32_t policy;

	cr_assert_eq(judge(&r, "10.1.0.5", 80, "10.3.0.1", &policy), PLAIN_DENIED);
	cr_assert_eq(policy, authz_policy_id("default", "deny-wide"));
	/* The /16 hole is longer than the /8: allowed, on any port but 8080 */
	cr_assert_eq(judge(&r, "10.1.0.5", 80, "10.9.0.1", &policy), PLAIN_ALLOWED);
	cr_assert_eq(policy, 0);
	cr_assert_eq(judge(&r, "10.1.0.5", 80, "10.9.1.7", &policy), PLAIN_ALLOWED);
	/* 8080 has entries of its own: the /24 inside the hole is denied there */
	cr_assert_eq(judge(&r, "10.1.0.5", 8080, "10.9.1.7", &policy), PLAIN_DENIED);
	cr_assert_eq(policy, authz_policy_id("default", "deny-port"));
	cr_assert_eq(judge(&r, "10.1.0.5", 8080, "10.9.2.7", &policy), PLAIN_ALLOWED);
	cr_assert_eq(judge(&r, "10.1.0.5", 8080, "10.3.0.1", &policy), PLAIN_DENIED);
	cr_assert_eq(policy, authz_policy_id("default", "deny-wide"));
	/* outside every CIDR, and a pod nothing applies to */
	cr_assert_eq(judge(&r, "10.1.0.5", 80, "192.168.0.1", &policy), PLAIN_ALLOWED);
	cr_assert_eq(judge(&r, "10.1.0.6", 80, "10.3.0.1", &policy), PLAIN_ALLOWED);
	snapshot_put(s);
}

Test(plain_judge, deny_local_for_a_mesh_pod_of_this_node_deny_for_the_same_identity_elsewhere)
{
	struct xm_snapshot *s =
	    snap(NODE POD("web", "web", "10.1.0.5") POD("sleep", "sleep", "10.1.0.9") POD("other", "other", "10.1.0.10")
		     POD_ON("m", "far", "sleep", "10.2.0.9")
			 AP("allow-sleep", "  selector: {matchLabels: {app: web}}\n  rules:\n  - from:\n    - source:\n"
					   "        principals: [cluster.local/ns/default/sa/sleep]\n"));
	struct plain_rules r = rules_of(s);
	uint32_t policy;

	cr_assert_eq(judge(&r, "10.1.0.5", 8080, "10.1.0.9", &policy), PLAIN_ALLOWED);
	cr_assert_eq(judge(&r, "10.1.0.5", 8080, "10.1.0.10", &policy), PLAIN_DENIED);
	cr_assert_eq(policy, XM_AUTHZ_POLICY_NO_ALLOW);
	/* the same service account on another node has no identity in plaintext */
	cr_assert_eq(judge(&r, "10.1.0.5", 8080, "10.2.0.9", &policy), PLAIN_DENIED);
	cr_assert_eq(judge(&r, "10.1.0.5", 8080, "203.0.113.1", &policy), PLAIN_DENIED);
	snapshot_put(s);
}

Test(plain_judge, the_node_is_exempt_by_internal_ip_and_by_interface_address)
{
	struct xm_snapshot *s = snap(NODE POD("web", "web", "10.1.0.5") AP(
	    "allow-none", "  selector: {matchLabels: {app: web}}\n  action: ALLOW\n"
			  "  rules:\n  - from:\n    - source:\n        namespaces: [x]\n"));
	struct plain_rules r = rules_of(s);
	struct xm_local_ip_key br = { .family = XM_FAMILY_V4 };
	uint32_t policy;

	cr_assert_eq(judge(&r, "10.1.0.5", 80, "10.199.0.2", &policy), PLAIN_NODE);
	cr_assert_eq(judge(&r, "10.1.0.5", 80, "10.1.0.1", &policy), PLAIN_DENIED);
	inet_pton(AF_INET, "10.1.0.1", br.addr.bytes);
	r.node_ips = &br;
	r.n_node_ips = 1;
	cr_assert_eq(judge(&r, "10.1.0.5", 80, "10.1.0.1", &policy), PLAIN_NODE);
	snapshot_put(s);
}

Test(plain_judge, strict_before_the_policies_and_same_node_pods_pass_it)
{
	struct xm_snapshot *s = snap(NODE POD("web", "web", "10.1.0.5") POD("sleep", "sleep", "10.1.0.9") POD(
	    "other", "other",
	    "10.1.0.10") "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: s, "
			 "namespace: "
			 "default}\nspec:\n  selector: {matchLabels: {app: web}}\n  mtls: {mode: PERMISSIVE}\n"
			 "  portLevelMtls:\n    9090: {mode: STRICT}\n" AP(
			     "deny-other",
			     "  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules:\n  - from:\n"
			     "    - source:\n        principals: [cluster.local/ns/default/sa/other]\n"));
	struct plain_rules r = rules_of(s);
	struct xm_local_ip_key *pods;
	uint32_t policy;
	long n;

	cr_assert_eq(judge(&r, "10.1.0.5", 9090, "203.0.113.1", &policy), PLAIN_STRICT);
	cr_assert_eq(judge(&r, "10.1.0.5", 9090, "10.1.0.9", &policy), PLAIN_ALLOWED);
	cr_assert_eq(judge(&r, "10.1.0.5", 9090, "10.1.0.10", &policy), PLAIN_DENIED);
	cr_assert_eq(policy, authz_policy_id("default", "deny-other"));
	cr_assert_eq(judge(&r, "10.1.0.5", 8080, "203.0.113.1", &policy), PLAIN_ALLOWED);
	cr_assert_eq(judge(&r, "10.1.0.5", 9090, "10.199.0.2", &policy), PLAIN_NODE);
	/* which pods a sweep visits: web only (the others have neither STRICT nor entries) */
	n = plain_rules_pods(&r, &pods);
	cr_assert_eq(n, 1);
	cr_assert_eq(pods[0].family, XM_FAMILY_V4);
	cr_assert_eq(pods[0].addr.bytes[3], 5);
	free(pods);
	snapshot_put(s);
}

Test(plain_judge, ipv6_longest_prefix)
{
	struct xm_snapshot *s = snap(NODE POD("web", "web", "fd00:1::5") AP(
	    "deny6", "  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules:\n  - from:\n    - source:\n"
		     "        ipBlocks: [\"fd00:9::/32\"]\n        notIpBlocks: [\"fd00:9:1::/48\"]\n"));
	struct plain_rules r = rules_of(s);
	uint32_t policy;

	cr_assert_eq(judge(&r, "fd00:1::5", 80, "fd00:9:2::1", &policy), PLAIN_DENIED);
	cr_assert_eq(policy, authz_policy_id("default", "deny6"));
	cr_assert_eq(judge(&r, "fd00:1::5", 80, "fd00:9:1::1", &policy), PLAIN_ALLOWED);
	cr_assert_eq(judge(&r, "fd00:1::5", 80, "fd00:8::1", &policy), PLAIN_ALLOWED);
	snapshot_put(s);
}

/* A sweep after a change visits only the pods whose entries changed; after a start (no old tables) all. */
Test(plain_judge, changed_pods_are_those_whose_entries_differ)
{
#define DENY_OF(app, cidr)                                                                                             \
	AP("deny-" app, "  selector: {matchLabels: {app: " app "}}\n  action: DENY\n  rules:\n  - from:\n"             \
			"    - source:\n        ipBlocks: [" cidr "]\n")
	struct xm_snapshot *a = snap(NODE POD("web", "web", "10.1.0.5") POD("api", "api", "10.1.0.6")
					 DENY_OF("web", "10.2.0.0/16") DENY_OF("api", "10.3.0.0/16")),
			   *b = snap(NODE POD("web", "web", "10.1.0.5") POD("api", "api", "10.1.0.6")
					 DENY_OF("web", "10.4.0.0/16") DENY_OF("api", "10.3.0.0/16"));
	struct plain_rules ra = rules_of(a), rb = rules_of(b);
	struct xm_local_ip_key *pods;
	long n;

	n = plain_rules_changed_pods(NULL, &rb, &pods);
	cr_assert_eq(n, 2);
	free(pods);
	n = plain_rules_changed_pods(&ra, &rb, &pods);
	cr_assert_eq(n, 1, "only web's entries changed");
	cr_assert_eq(pods[0].addr.bytes[3], 5);
	free(pods);
	n = plain_rules_changed_pods(&rb, &rb, &pods);
	cr_assert_eq(n, 0);
	free(pods);
	snapshot_put(a);
	snapshot_put(b);
#undef DENY_OF
}
