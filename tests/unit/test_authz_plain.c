// SPDX-License-Identifier: Apache-2.0
/*
 * AuthorizationPolicy for plaintext connections (compile/authz_plain.c): the table the kernel's LPM trie gets,
 * checked against authz_evaluate itself. The oracle emulates the kernel's lookup (longest client prefix among
 * the entries of the pod address and port; none: port 0; none: allowed; deny_local for a local pod through its
 * own veth) and compares it, for every local pod address, named and unnamed ports and many client addresses
 * (each CIDR's edges and neighbours, random ones, every pod with and without its identity), with the decision
 * authz_evaluate takes for the same connection.
 */
#include "test_config.h"

#include <time.h>

#include "compile/authz_plain.h"
#include "compile/snapshot.h"
#include "core/strbuf.h"
#include "metrics/authz_denied.h"

#define AP(ns, name, spec)                                                                                             \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " name                   \
	"\n  namespace: " ns "\nspec:\n" spec
#define POD_ON(node, name, ns, sa, ips)                                                                                \
	"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " name "\n  namespace: " ns "\n  labels:\n    app: " name  \
	"\nspec:\n  nodeName: " node "\n  serviceAccountName: " sa "\nstatus:\n  podIPs: " ips "\n"
/* A pod of this node ("n") with one address. */
#define POD(name, ns, sa, ip) POD_ON("n", name, ns, sa, "[{ip: \"" ip "\"}]")

/* The agent's --trust-domain of the snapshot under test (NULL: cluster.local). */
static const char *trust_domain;

static struct xm_snapshot *snapshot_of(const char *text)
{
	struct xm_config cfg;
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251, .trust_domain = trust_domain };
	struct xm_snapshot *s;
	int err;

	load_text_clean(text, &cfg);
	s = snapshot_build(&cfg, &opts, &err);
	config_free(&cfg);
	cr_assert_not_null(s);
	cr_assert_eq(s->authz_plain_err, 0);
	return s;
}

static struct xm_ip ip_of(const char *s)
{
	struct xm_ip ip;
	uint8_t bits;

	cr_assert_eq(authz_cidr_parse(s, &ip, &bits), 0, "%s", s);
	return ip;
}

static size_t addr_len(uint8_t family)
{
	return family == XM_FAMILY_V4 ? 4 : 16;
}

/* --- the kernel, emulated --- */

/* The longest prefix first: an exact lookup of the key the trie would match at each client prefix length. */
static const struct xm_authz_plain_entry *lpm(const struct xm_authz_plain_table *t, uint16_t port,
					      const struct xm_ip *dst, const struct xm_ip *src)
{
	unsigned full = dst->family == XM_FAMILY_V4 ? 32 : 128;

	if (src->family != dst->family)
		return NULL;
	for (unsigned bits = full + 1; bits-- > 0;) {
		struct xm_authz_plain_key k = { .prefixlen = XM_AUTHZ_PLAIN_FIXED_BITS + bits,
						.family = dst->family,
						.port = port };
		const struct xm_authz_plain_entry *e;

		memcpy(k.dst.bytes, dst->bytes, addr_len(dst->family));
		for (unsigned i = 0; i < bits; i++)
			k.src.bytes[i / 8] |= (uint8_t)(src->bytes[i / 8] & (0x80 >> (i % 8)));
		e = authz_plain_find(t, &k);
		if (e)
			return e;
	}
	return NULL;
}

/* What the TC program decides: deny (and the policy id to count) for a SYN from src to dst:port. */
static bool kernel_denies(const struct xm_authz_plain_table *t, uint16_t port, const struct xm_ip *dst,
			  const struct xm_ip *src, bool from_own_veth, uint32_t *policy)
{
	const struct xm_authz_plain_entry *e = lpm(t, port, dst, src);

	if (!e)
		e = lpm(t, 0, dst, src);
	if (!e)
		return false;
	*policy = from_own_veth ? e->val.policy_local : e->val.policy;
	return from_own_veth ? e->val.deny_local : e->val.deny;
}

static bool local_pod(const struct xm_identity *id)
{
	return id->wl && !strcmp(id->wl->node, "n");
}

/* --- the oracle --- */

struct probes {
	struct xm_ip *src;
	size_t n, cap;
	uint16_t ports[64];
	size_t n_ports;
};

static void probe_add(struct probes *p, const struct xm_ip *ip)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 64;
		p->src = realloc(p->src, p->cap * sizeof(*p->src));
		cr_assert_not_null(p->src);
	}
	p->src[p->n++] = *ip;
}

/* ip + delta (-1 or +1), wrapping. */
static struct xm_ip ip_step(struct xm_ip ip, int delta)
{
	for (size_t i = addr_len(ip.family); i-- > 0;) {
		ip.bytes[i] = (uint8_t)(ip.bytes[i] + delta);
		if (ip.bytes[i] != (delta > 0 ? 0x00 : 0xff))
			break;
	}
	return ip;
}

static void cidr_probes(struct probes *p, const struct xm_authz_match *m)
{
	struct xm_ip first = m->ip, last = m->ip;
	size_t len = addr_len(m->ip.family);

	for (unsigned i = 0; i < len; i++) {
		unsigned keep = m->bits <= i * 8 ? 0 : m->bits >= i * 8 + 8 ? 8 : m->bits - i * 8;
		uint8_t mask = (uint8_t)(0xff00 >> keep);

		first.bytes[i] &= mask;
		last.bytes[i] = (uint8_t)(first.bytes[i] | ~mask);
	}
	probe_add(p, &first);
	probe_add(p, &last);
	struct xm_ip around[] = { ip_step(first, -1), ip_step(first, 1), ip_step(last, -1), ip_step(last, 1) };

	for (size_t i = 0; i < 4; i++)
		probe_add(p, &around[i]);
	for (int r = 0; r < 8; r++) { /* random addresses inside */
		struct xm_ip x = first;

		for (unsigned i = 0; i < len; i++)
			x.bytes[i] = (uint8_t)(first.bytes[i] | (rand() & (first.bytes[i] ^ last.bytes[i])));
		probe_add(p, &x);
	}
}

static void port_probe(struct probes *p, uint16_t port)
{
	for (size_t i = 0; i < p->n_ports; i++)
		if (p->ports[i] == port)
			return;
	cr_assert_lt(p->n_ports, 64);
	p->ports[p->n_ports++] = port;
}

/* Every CIDR's edges, neighbours and insides, every named port, unnamed ports, random and pod addresses. */
static void probes_of(const struct xm_snapshot *s, struct probes *p)
{
	memset(p, 0, sizeof(*p));
	srand(7);
	for (size_t i = 0; i < s->authz.n; i++) {
		const struct xm_authz_policy *pol = &s->authz.items[i];

		for (size_t r = 0; r < pol->n_rules; r++)
			for (size_t c = 0; c < pol->rules[r].n_clauses; c++)
				for (size_t a = 0; a < pol->rules[r].clauses[c].n_alts; a++) {
					const struct xm_authz_alt *alt = &pol->rules[r].clauses[c].alts[a];

					for (size_t k = 0; k < alt->n_conds; k++)
						for (size_t v = 0; v < alt->conds[k].n_values; v++) {
							const struct xm_authz_match *m = &alt->conds[k].match[v];

							if (m->kind == XM_AUTHZ_CIDR)
								cidr_probes(p, m);
							else if (m->kind == XM_AUTHZ_PORT)
								port_probe(p, m->port);
						}
				}
	}
	port_probe(p, 1);
	port_probe(p, 4242);
	port_probe(p, 65535);
	for (int r = 0; r < 64; r++) {
		struct xm_ip x = { .family = r % 2 ? XM_FAMILY_V6 : XM_FAMILY_V4 };

		for (size_t i = 0; i < addr_len(x.family); i++)
			x.bytes[i] = (uint8_t)rand();
		if (r % 4 == 0) /* near the pods and policies of these tests */
			x.bytes[0] = x.family == XM_FAMILY_V4 ? 10 : 0xfd;
		probe_add(p, &x);
	}
	for (size_t i = 0; i < s->identities.n; i++) {
		struct xm_ip x = { .family = s->identities.items[i].family };

		memcpy(x.bytes, s->identities.items[i].addr.bytes, addr_len(x.family));
		probe_add(p, &x);
	}
}

static void expect_same(const struct xm_snapshot *s, const struct xm_workload *wl, const struct xm_ip *dst,
			uint16_t port, const struct xm_ip *src, const char *peer_id, size_t *compared)
{
	struct xm_authz_request req = {
		.peer_id = peer_id, .trust_domain = trust_domain, .src = src, .dst = dst, .dport = port
	};
	struct xm_authz_verdict v;
	uint32_t policy = 0xdeadbeef;
	bool denied;
	char a[64], b[64];

	authz_evaluate(&s->authz, wl->ns, wl->labels, wl->n_labels, &req, &v);
	denied = kernel_denies(&s->authz_plain, port, dst, src, peer_id != NULL, &policy);
	{ /* the agent's judge (what the sweep of established connections asks) answers as the kernel */
		union xm_addr da = { 0 }, sa = { 0 };
		uint32_t judged_policy = 0xdeadbeef;
		bool judged;

		memcpy(da.bytes, dst->bytes, addr_len(dst->family));
		memcpy(sa.bytes, src->bytes, addr_len(src->family));
		judged =
		    authz_plain_judge(&s->authz_plain, dst->family, &da, port, &sa, peer_id != NULL, &judged_policy);
		cr_assert_eq(judged, denied, "authz_plain_judge disagrees with the kernel's lookup at port %u", port);
		if (denied)
			cr_assert_eq(judged_policy, policy, "authz_plain_judge names another policy");
	}
	inet_ntop(dst->family == XM_FAMILY_V4 ? AF_INET : AF_INET6, dst->bytes, a, sizeof(a));
	inet_ntop(src->family == XM_FAMILY_V4 ? AF_INET : AF_INET6, src->bytes, b, sizeof(b));
	cr_assert_eq(denied, !v.allowed, "%s port %u from %s (%s): kernel %s, authz_evaluate %s", a, port, b,
		     peer_id ? peer_id : "no identity", denied ? "denies" : "allows", v.allowed ? "allows" : "denies");
	if (denied)
		cr_assert_eq(policy,
			     v.policy ? authz_policy_id(v.policy->ns, v.policy->name) : XM_AUTHZ_POLICY_NO_ALLOW,
			     "%s port %u from %s: policy", a, port, b);
	(*compared)++;
}

static void expect_sorted_unique(const struct xm_authz_plain_table *t)
{
	for (size_t i = 1; i < t->n; i++)
		cr_assert_lt(memcmp(&t->items[i - 1].key, &t->items[i].key, sizeof(t->items[i].key)), 0,
			     "entries %zu and %zu out of order or equal", i - 1, i);
	for (size_t i = 0; i < t->n; i++) {
		const struct xm_authz_plain_entry *e = &t->items[i];
		unsigned bits = e->key.prefixlen - XM_AUTHZ_PLAIN_FIXED_BITS;

		cr_assert_leq(bits, e->key.family == XM_FAMILY_V4 ? 32u : 128u);
		cr_assert_eq(authz_plain_find(t, &e->key), e);
	}
}

/* The kernel's answer equals authz_evaluate's for every probe; returns how many were compared. */
static size_t oracle(const struct xm_snapshot *s)
{
	struct probes p;
	size_t compared = 0;

	expect_sorted_unique(&s->authz_plain);
	probes_of(s, &p);
	for (size_t d = 0; d < s->identities.n; d++) {
		const struct xm_identity *dst = &s->identities.items[d];
		struct xm_ip dip = { .family = dst->family };

		if (!local_pod(dst))
			continue;
		memcpy(dip.bytes, dst->addr.bytes, addr_len(dip.family));
		for (size_t k = 0; k < p.n_ports; k++)
			for (size_t i = 0; i < p.n; i++) {
				const struct xm_identity *who;
				union xm_addr a = { 0 };

				if (p.src[i].family != dip.family)
					continue;
				expect_same(s, dst->wl, &dip, p.ports[k], &p.src[i], NULL, &compared);
				memcpy(a.bytes, p.src[i].bytes, addr_len(dip.family));
				who = identities_find(&s->identities, &a, dip.family);
				if (who && local_pod(who))
					expect_same(s, dst->wl, &dip, p.ports[k], &p.src[i], who->principal, &compared);
			}
	}
	free(p.src);
	cr_log_info("oracle: %zu decisions compared, %zu entries", compared, s->authz_plain.n);
	cr_assert_gt(compared, 0);
	return compared;
}

/* Whether the table has entries for the pod address ip. */
static size_t entries_of(const struct xm_snapshot *s, const char *ip)
{
	struct xm_ip x = ip_of(ip);
	size_t n = 0;

	for (size_t i = 0; i < s->authz_plain.n; i++)
		n += s->authz_plain.items[i].key.family == x.family &&
		     !memcmp(s->authz_plain.items[i].key.dst.bytes, x.bytes, addr_len(x.family));
	return n;
}

static bool denies(const struct xm_snapshot *s, const char *dst, uint16_t port, const char *src, bool own_veth,
		   uint32_t *policy)
{
	struct xm_ip d = ip_of(dst), c = ip_of(src);

	return kernel_denies(&s->authz_plain, port, &d, &c, own_veth, policy);
}

/* --- cases --- */

#define SLEEP_ONLY "  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/default/sa/sleep]\n"

Test(authz_plain, allow_by_principal_denies_plaintext_but_from_that_pod)
{
	struct xm_snapshot *s = snapshot_of(
	    POD("web", "foo", "web", "10.1.0.5") POD("sleep", "default", "sleep", "10.1.0.9")
		POD("other", "default", "other", "10.1.0.10") POD_ON("m", "far", "default", "sleep", "[{ip: 10.2.0.9}]")
		    AP("foo", "allow-sleep", SLEEP_ONLY));
	uint32_t policy = 1;

	oracle(s);
	cr_expect_eq(entries_of(s, "10.1.0.9"), 0, "no policy applies to sleep");
	cr_expect_eq(entries_of(s, "10.1.0.10"), 0);
	cr_expect_gt(entries_of(s, "10.1.0.5"), 0);
	/* plaintext carries no principal: the remote sleep pod and everyone else are refused */
	cr_expect(denies(s, "10.1.0.5", 8080, "10.2.0.9", false, &policy));
	cr_expect_eq(policy, XM_AUTHZ_POLICY_NO_ALLOW);
	cr_expect(denies(s, "10.1.0.5", 8080, "192.0.2.1", false, &policy));
	cr_expect(denies(s, "10.1.0.5", 8080, "10.1.0.10", true, &policy));
	/* the local sleep pod is known through its veth, not when its address comes from elsewhere */
	cr_expect_not(denies(s, "10.1.0.5", 8080, "10.1.0.9", true, &policy));
	cr_expect(denies(s, "10.1.0.5", 8080, "10.1.0.9", false, &policy));
	snapshot_put(s);
}

Test(authz_plain, a_local_pod_of_another_trust_domain_matches_cluster_local_principals)
{
	struct xm_snapshot *s;
	uint32_t policy = 1;

	trust_domain = "td.example";
	s = snapshot_of(POD("web", "foo", "web", "10.1.0.5") POD("sleep", "default", "sleep", "10.1.0.9")
			    AP("foo", "allow-sleep", SLEEP_ONLY));
	oracle(s);
	cr_expect_str_eq(s->identities.items[0].principal, "spiffe://td.example/ns/foo/sa/web");
	cr_expect_not(denies(s, "10.1.0.5", 80, "10.1.0.9", true, &policy), "cluster.local/... names td.example's");
	cr_expect(denies(s, "10.1.0.5", 80, "10.1.0.9", false, &policy));
	snapshot_put(s);
}

Test(authz_plain, nested_ip_blocks)
{
	struct xm_snapshot *s = snapshot_of(
	    POD("web", "foo", "web", "10.1.0.5") POD("a", "default", "a", "10.1.2.7")
		POD("b", "default", "b", "10.1.3.4") POD("c", "default", "c", "10.7.0.1")
		    AP("foo", "deny-ten",
		       "  action: DENY\n  rules:\n  - from:\n    - source:\n        ipBlocks: "
		       "[10.0.0.0/8]\n        notIpBlocks: [10.1.0.0/16]\n")
			AP("foo", "allow-ten-one",
			   "  rules:\n  - from:\n    - source:\n        ipBlocks: [10.1.0.0/16]\n        notIpBlocks: "
			   "[10.1.2.0/24]\n  - from:\n    - source:\n        ipBlocks: [10.1.2.7]\n        namespaces: "
			   "[default]\n"));
	uint32_t policy = 1, deny_ten = authz_policy_id("foo", "deny-ten");

	oracle(s);
	cr_expect_not(denies(s, "10.1.0.5", 80, "10.1.3.4", false, &policy));
	cr_expect(denies(s, "10.1.0.5", 80, "10.1.2.4", false, &policy));
	cr_expect_eq(policy, XM_AUTHZ_POLICY_NO_ALLOW);
	cr_expect(denies(s, "10.1.0.5", 80, "10.200.0.1", false, &policy));
	cr_expect_eq(policy, deny_ten);
	cr_expect(denies(s, "10.1.0.5", 80, "10.7.0.1", true, &policy));
	cr_expect_eq(policy, deny_ten);
	cr_expect(denies(s, "10.1.0.5", 80, "192.168.1.1", false, &policy));
	cr_expect_eq(policy, XM_AUTHZ_POLICY_NO_ALLOW);
	/* 10.1.2.7/32 is both an ipBlock and a local pod: one entry, allowed with the pod's identity only */
	cr_expect(denies(s, "10.1.0.5", 80, "10.1.2.7", false, &policy));
	cr_expect_not(denies(s, "10.1.0.5", 80, "10.1.2.7", true, &policy));
	snapshot_put(s);
}

Test(authz_plain, ports_and_not_ports)
{
	struct xm_snapshot *s = snapshot_of(
	    POD("web", "foo", "web", "10.1.0.5") POD("sleep", "foo", "sleep", "10.1.0.9")
		AP("foo", "web-ports", "  rules:\n  - to:\n    - operation:\n        ports: [\"80\", \"443\"]\n")
		    AP("foo", "deny-lan",
		       "  action: DENY\n  rules:\n  - from:\n    - source:\n        ipBlocks: "
		       "[192.168.0.0/16]\n    to:\n    - operation:\n        notPorts: [\"80\"]\n"));
	uint32_t policy = 1;

	oracle(s);
	cr_expect_not(denies(s, "10.1.0.5", 80, "192.168.3.3", false, &policy));
	cr_expect_not(denies(s, "10.1.0.5", 443, "10.9.9.9", false, &policy));
	cr_expect(denies(s, "10.1.0.5", 443, "192.168.3.3", false, &policy));
	cr_expect_eq(policy, authz_policy_id("foo", "deny-lan"));
	cr_expect(denies(s, "10.1.0.5", 8080, "10.9.9.9", false, &policy));
	cr_expect_eq(policy, XM_AUTHZ_POLICY_NO_ALLOW);
	cr_expect(denies(s, "10.1.0.5", 8080, "192.168.3.3", false, &policy));
	cr_expect_eq(policy, authz_policy_id("foo", "deny-lan"));
	snapshot_put(s);
}

Test(authz_plain, ipv6_and_dual_stack)
{
	struct xm_snapshot *s =
	    snapshot_of(POD_ON("n", "web", "foo", "web", "[{ip: 10.1.0.5}, {ip: \"fd00::5\"}]")
			    POD_ON("n", "sleep", "foo", "sleep", "[{ip: 10.1.0.9}, {ip: \"fd00::9\"}]")
				AP("foo", "deny-v6",
				   "  action: DENY\n  rules:\n  - from:\n    - source:\n        ipBlocks: "
				   "[\"fd00:1::/64\"]\n        notIpBlocks: [\"fd00:1::/120\"]\n")
				    AP("foo", "allow-some",
				       "  rules:\n  - from:\n    - source:\n        ipBlocks: [\"fd00::/16\", "
				       "10.0.0.0/8]\n    - source:\n        principals: "
				       "[cluster.local/ns/foo/sa/sleep]\n"));
	uint32_t policy = 1;

	oracle(s);
	cr_expect(denies(s, "fd00::5", 80, "fd00:1::1:0", false, &policy));
	cr_expect_eq(policy, authz_policy_id("foo", "deny-v6"));
	cr_expect_not(denies(s, "fd00::5", 80, "fd00:1::ff", false, &policy));
	cr_expect(denies(s, "fd00::5", 80, "2001:db8::1", false, &policy));
	cr_expect_eq(policy, XM_AUTHZ_POLICY_NO_ALLOW);
	cr_expect_not(denies(s, "10.1.0.5", 80, "10.200.0.1", false, &policy));
	cr_expect(denies(s, "10.1.0.5", 80, "192.0.2.1", false, &policy));
	snapshot_put(s);
}

Test(authz_plain, namespace_wide_and_selector_policies_each_on_their_pods)
{
	struct xm_snapshot *s =
	    snapshot_of(POD("web", "foo", "web", "10.1.0.5") POD("db", "bar", "db", "10.1.0.6")
			    POD("cache", "bar", "cache", "10.1.0.7")
				AP("foo", "from-foo", "  rules:\n  - from:\n    - source:\n        namespaces: [foo]\n")
				    AP("bar", "db-deny",
				       "  selector:\n    matchLabels:\n      app: db\n  action: DENY\n  rules:\n"
				       "  - from:\n    - source:\n        ipBlocks: [10.9.0.0/16]\n"));
	uint32_t policy = 1;

	oracle(s);
	cr_expect_eq(entries_of(s, "10.1.0.7"), 0, "no policy applies to cache");
	cr_expect_gt(entries_of(s, "10.1.0.5"), 0);
	cr_expect_gt(entries_of(s, "10.1.0.6"), 0);
	cr_expect_not(denies(s, "10.1.0.5", 80, "10.1.0.5", true, &policy),
		      "web (foo) reaches itself with its identity");
	cr_expect(denies(s, "10.1.0.5", 80, "10.1.0.5", false, &policy), "not without it");
	cr_expect(denies(s, "10.1.0.5", 80, "10.1.0.6", true, &policy));
	cr_expect(denies(s, "10.1.0.6", 80, "10.9.1.1", false, &policy));
	cr_expect_eq(policy, authz_policy_id("bar", "db-deny"));
	cr_expect_not(denies(s, "10.1.0.6", 80, "10.8.1.1", false, &policy));
	snapshot_put(s);
}

Test(authz_plain, allow_everything_and_no_policy_leave_no_entries)
{
	struct xm_snapshot *all = snapshot_of(POD("web", "foo", "web", "10.1.0.5") POD(
	    "sleep", "foo", "sleep", "10.1.0.9") AP("foo", "allow-all", "  rules:\n  - {}\n"));
	struct xm_snapshot *none = snapshot_of(POD("web", "foo", "web", "10.1.0.5"));
	struct xm_snapshot *remote =
	    snapshot_of(POD_ON("m", "web", "foo", "web", "[{ip: 10.1.0.5}]") AP("foo", "allow-sleep", SLEEP_ONLY));

	oracle(all);
	cr_expect_eq(all->authz_plain.n, 0, "a rule that matches everything denies nothing: pruned");
	cr_expect_eq(none->authz_plain.n, 0);
	cr_expect_eq(remote->authz_plain.n, 0, "pods of another node are theirs");
	snapshot_put(all);
	snapshot_put(none);
	snapshot_put(remote);
}

Test(authz_plain, a_port_class_like_port_zero_is_left_to_it)
{
	/* port 9090 is named, but only by a rule that cannot match plaintext: it answers as every other port */
	struct xm_snapshot *s = snapshot_of(POD("web", "foo", "web", "10.1.0.5") AP(
	    "foo", "p",
	    "  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.0/8]\n"
	    "  - from:\n    - source:\n        principals: [cluster.local/ns/x/sa/y]\n    to:\n"
	    "    - operation:\n        ports: [\"9090\"]\n"));

	oracle(s);
	for (size_t i = 0; i < s->authz_plain.n; i++)
		cr_expect_eq(s->authz_plain.items[i].key.port, 0);
	cr_expect_eq(s->authz_plain.n, 2, "/0 and 10.0.0.0/8 at port 0");
	snapshot_put(s);
}

Test(authz_plain, policy_ids_are_stable_and_named)
{
	struct xm_snapshot *s =
	    snapshot_of(POD("web", "foo", "web", "10.1.0.5") AP(
		"foo", "deny", "  action: DENY\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.9.0.0/16]\n")
			    AP("foo", "allow", "  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.0/8]\n"));
	char buf[128];
	size_t named = 0;

	cr_expect_eq(authz_policy_id("foo", "deny"), 0x3161201au, "FNV-1a 32 of \"foo/deny\"");
	cr_expect_eq(authz_policy_id("foo", "deny"), authz_policy_id("foo", "deny"));
	cr_expect_neq(authz_policy_id("foo", "deny"), authz_policy_id("foo", "allow"));
	cr_expect_neq(authz_policy_id("", ""), 0);
	for (size_t i = 0; i < s->authz_plain.n; i++) {
		const struct xm_authz_plain_entry *e = &s->authz_plain.items[i];

		if (!e->val.deny)
			continue;
		const char *name = authz_plain_policy_name(&s->authz, e->val.policy, buf, sizeof(buf));

		cr_assert_not_null(name, "policy %u", e->val.policy);
		cr_expect(!strcmp(name, "foo/deny") || !strcmp(name, AUTHZ_DENIED_NO_ALLOW), "%s", name);
		named++;
	}
	cr_expect_gt(named, 0);
	cr_expect_str_eq(authz_plain_policy_name(&s->authz, authz_policy_id("foo", "deny"), buf, sizeof(buf)),
			 "foo/deny");
	cr_expect_str_eq(authz_plain_policy_name(&s->authz, XM_AUTHZ_POLICY_NO_ALLOW, buf, sizeof(buf)),
			 "allow-not-matched");
	cr_expect_null(authz_plain_policy_name(&s->authz, authz_policy_id("foo", "allow"), buf, sizeof(buf)),
		       "an ALLOW policy never denies by name");
	cr_expect_null(authz_plain_policy_name(&s->authz, authz_policy_id("foo", "gone"), buf, sizeof(buf)));
	snapshot_put(s);
}

/* n pods "pI" in namespace foo on node "n", then the policies. */
static char *many_pods(size_t n, const char *policies)
{
	struct strbuf sb = { 0 };

	for (size_t i = 0; i < n; i++)
		sb_printf(&sb,
			  "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p%zu\n  namespace: foo\n  labels:\n"
			  "    app: a%zu\nspec:\n  nodeName: n\n  serviceAccountName: sa%zu\nstatus:\n  podIP: "
			  "10.%zu.%zu.%zu\n",
			  i, i % 10, i % 7, 1 + i / 65536, (i / 256) % 256, i % 256);
	sb_printf(&sb, "%s", policies);
	cr_assert_not_null(sb.buf);
	return sb.buf;
}

Test(authz_plain, build_time_100_pods_10_policies_5_cidrs)
{
	struct strbuf pol = { 0 };
	struct xm_config cfg;
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };
	struct xm_snapshot *s;
	struct xm_authz_plain_table t;
	struct timespec a, b;
	int err;
	double ms;
	const char *cidrs[] = { "10.0.0.0/8", "10.0.0.0/16", "10.0.0.0/26", "192.168.0.0/16", "172.16.0.0/12" };

	for (int i = 0; i < 10; i++)
		sb_printf(&pol,
			  AP("foo", "%s%d",
			     "%s  rules:\n  - from:\n    - source:\n        %s: [\"%s\"]\n"
			     "    - source:\n        principals: [cluster.local/ns/foo/sa/sa%d]\n"
			     "    to:\n    - operation:\n        ports: [\"%d\"]\n"),
			  i % 3 ? "allow" : "deny", i, i % 3 ? "" : "  action: DENY\n",
			  i % 2 ? "ipBlocks" : "notIpBlocks", cidrs[i % 5], i % 7, 8000 + i % 4);
	char *text = many_pods(100, pol.buf);

	sb_free(&pol);
	load_text_clean(text, &cfg);
	free(text);
	s = snapshot_build(&cfg, &opts, &err);
	config_free(&cfg);
	cr_assert_not_null(s);
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_eq(authz_plain_build(&s->identities, &s->authz, "n", NULL, &t), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	fprintf(stderr, "authz_plain: 100 local pods, 10 policies, 5 CIDRs, 4 ports: %zu entries in %.1f ms\n", t.n,
		ms);
	cr_expect_lt(ms, 2000.0);
	cr_expect_eq(t.n, s->authz_plain.n);
	authz_plain_free(&t);
	oracle(s);
	snapshot_put(s);
}

Test(authz_plain, too_many_entries_is_e2big_and_the_snapshot_still_builds)
{
	/* every pod's identity changes every pod's answer: 301 entries for each of 300 pod addresses */
	char *text =
	    many_pods(300, AP("foo", "from-foo", "  rules:\n  - from:\n    - source:\n        namespaces: [foo]\n"));
	struct xm_config cfg;
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };
	struct xm_snapshot *s;
	struct xm_authz_plain_table t = { 0 };
	int err;

	load_text_clean(text, &cfg);
	free(text);
	s = snapshot_build(&cfg, &opts, &err);
	config_free(&cfg);
	cr_assert_not_null(s);
	cr_expect_eq(s->authz_plain_err, -E2BIG);
	cr_expect_eq(s->authz_plain.n, 0);
	cr_expect_eq(authz_plain_build(&s->identities, &s->authz, "n", NULL, &t), -E2BIG);
	cr_expect_eq(t.n, 0);
	cr_expect_null(t.items);
	snapshot_put(s);
}

/* --- random policies: the oracle on what nobody wrote by hand --- */

static const char *const random_conds[] = {
	"ipBlocks: [10.0.0.0/8]",
	"ipBlocks: [10.1.0.0/16, \"fd00::/64\"]",
	"ipBlocks: [10.1.0.8/29]",
	"ipBlocks: [10.1.0.5]",
	"ipBlocks: [0.0.0.0/1, \"fd00::5\"]",
	"notIpBlocks: [10.1.0.0/24]",
	"notIpBlocks: [10.1.2.0/24, \"fd00::/120\"]",
	"notIpBlocks: [192.168.0.0/16, \"fd00::/8\"]",
	"principals: [cluster.local/ns/foo/sa/a]",
	"principals: [\"cluster.local/ns/bar/*\"]",
	"notPrincipals: [\"*\"]",
	"namespaces: [foo]",
	"notNamespaces: [bar]",
	"serviceAccounts: [b]",
};
static const char *const random_to[] = {
	"",
	"    to:\n    - operation:\n        ports: [\"80\"]\n",
	"    to:\n    - operation:\n        notPorts: [\"80\", \"443\"]\n",
	"    to:\n    - operation:\n        ports: [\"443\", \"8080\"]\n",
};

static void random_policy(struct strbuf *sb, int i)
{
	const char *ns = rand() % 2 ? "foo" : "bar";

	sb_printf(sb,
		  "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: r%d\n"
		  "  namespace: %s\nspec:\n",
		  i, rand() % 5 ? ns : "istio-system");
	if (rand() % 3 == 0)
		sb_printf(sb, "  selector:\n    matchLabels:\n      app: p%d\n", rand() % 6);
	if (rand() % 2)
		sb_printf(sb, "  action: DENY\n");
	sb_printf(sb, "  rules:\n");
	for (int r = 0, nr = 1 + rand() % 2; r < nr; r++) {
		sb_printf(sb, "  - from:\n");
		for (int f = 0, nf = 1 + rand() % 2; f < nf; f++) {
			int a = rand() % 14, b = rand() % 14;

			sb_printf(sb, "    - source:\n        %s\n", random_conds[a]);
			/* a second condition on another attribute (one key once per source) */
			if (rand() % 2 && strncmp(random_conds[a], random_conds[b], 4) &&
			    strncmp(random_conds[a] + 3, random_conds[b], 4) &&
			    strncmp(random_conds[a], random_conds[b] + 3, 4))
				sb_printf(sb, "        %s\n", random_conds[b]);
		}
		sb_printf(sb, "%s", random_to[rand() % 4]);
	}
}

Test(authz_plain, random_policies_agree_with_authz_evaluate)
{
	size_t compared = 0, entries = 0;

	for (int round = 0; round < 40; round++) {
		struct strbuf sb = { 0 };
		struct xm_snapshot *s;

		srand(1000 + round);
		sb_printf(&sb, "%s",
			  POD_ON("n", "p0", "foo", "a", "[{ip: 10.1.0.5}, {ip: \"fd00::5\"}]")
			      POD_ON("n", "p1", "foo", "b", "[{ip: 10.1.0.9}]")
				  POD_ON("n", "p2", "bar", "a", "[{ip: 10.1.0.10}]")
				      POD_ON("n", "p3", "bar", "c", "[{ip: 10.1.2.3}, {ip: \"fd00::1:3\"}]")
					  POD_ON("n", "p4", "foo", "a", "[{ip: \"fd00::7\"}]")
					      POD_ON("m", "p5", "bar", "b", "[{ip: 10.1.0.11}, {ip: \"fd00::11\"}]"));
		for (int i = 0, n = 1 + rand() % 5; i < n; i++)
			random_policy(&sb, i);
		s = snapshot_of(sb.buf);
		sb_free(&sb);
		compared += oracle(s);
		entries += s->authz_plain.n;
		snapshot_put(s);
	}
	fprintf(stderr, "authz_plain: 40 random configs, %zu decisions compared, %zu entries\n", compared, entries);
}
