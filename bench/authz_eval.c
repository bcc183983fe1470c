// SPDX-License-Identifier: Apache-2.0
/*
 * The per-CONNECT cost of AuthorizationPolicy (compile/authz.c authz_evaluate): N policies that all apply to the
 * destination workload (namespace-wide ALLOW) and none of which matches, so every rule and value is compared, the
 * worst case. Each policy: rule 1 `from` three principals (exact, prefix*, *suffix), three ipBlocks and two
 * namespaces, none the peer's; rule 2 `from` the peer's principal, `to` three ports that are not the target's,
 * `when destination.ip` two CIDRs. The request: spiffe://cluster.local/ns/default/sa/sleep from 10.2.0.9 to
 * 10.1.0.5:8080. Prints ns per CONNECT for each N.
 *
 * Only uses the table API (authz_table_build, authz_evaluate), so the same file builds against an earlier
 * compile/authz.c for a same-run before/after (docs/mtls.md "Cost"). No root, no BPF.
 *
 *   build/bench/authz_eval [--policies 4,100] [--iters 200000] [--rounds 5]
 */
#define BENCH_NAME "authz_eval"
#include <arpa/inet.h>
#include <stdint.h>
#include <time.h>

#include "bench_util.h"
#include "compile/authz.h"

static struct xm_authz_cond cond(enum xm_authz_attr attr, size_t n, const char *const *values)
{
	struct xm_authz_cond c = { .attr = attr, .n_values = n, .values = calloc(n, sizeof(char *)) };

	if (!c.values)
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		if (!(c.values[i] = strdup(values[i])))
			die("out of memory");
	return c;
}

static void *dup_of(const void *src, size_t size)
{
	void *p = malloc(size);

	if (!p)
		die("out of memory");
	return memcpy(p, src, size);
}

static void policy(struct xm_authz_policy *p, size_t i)
{
	static const char *const principals[] = { "cluster.local/ns/other/sa/x", "cluster.local/ns/prod/*",
						  "*/sa/admin" };
	static const char *const blocks[] = { "10.9.0.0/16", "192.168.1.0/24", "fd00::/64" };
	static const char *const namespaces[] = { "prod", "staging*" };
	static const char *const me[] = { "cluster.local/ns/default/sa/sleep" };
	static const char *const ports[] = { "9090", "9091", "443" };
	static const char *const dsts[] = { "10.1.0.0/16", "10.3.0.0/16" };
	struct xm_authz_cond r1[] = { cond(XM_AUTHZ_PRINCIPAL, 3, principals), cond(XM_AUTHZ_SOURCE_IP, 3, blocks),
				      cond(XM_AUTHZ_NAMESPACE, 2, namespaces) };
	struct xm_authz_alt r1_alts[3];
	struct xm_authz_cond from2 = cond(XM_AUTHZ_PRINCIPAL, 1, me), to2 = cond(XM_AUTHZ_DEST_PORT, 3, ports),
			     when2 = cond(XM_AUTHZ_DEST_IP, 2, dsts);
	struct xm_authz_clause r1_clause, r2_clauses[3];
	struct xm_authz_rule rules[2];

	/* rule 1: one `from` clause of three alternatives (sources), each failing */
	for (size_t k = 0; k < 3; k++)
		r1_alts[k] = (struct xm_authz_alt){ .conds = dup_of(&r1[k], sizeof(r1[k])), .n_conds = 1 };
	r1_clause = (struct xm_authz_clause){ .alts = dup_of(r1_alts, sizeof(r1_alts)), .n_alts = 3 };
	/* rule 2: from (matches), to (fails), when (matches, not reached after to fails: put first) */
	r2_clauses[0] = (struct xm_authz_clause){
		.alts = dup_of(&(struct xm_authz_alt){ .conds = dup_of(&when2, sizeof(when2)), .n_conds = 1 },
			       sizeof(struct xm_authz_alt)),
		.n_alts = 1
	};
	r2_clauses[1] = (struct xm_authz_clause){
		.alts = dup_of(&(struct xm_authz_alt){ .conds = dup_of(&from2, sizeof(from2)), .n_conds = 1 },
			       sizeof(struct xm_authz_alt)),
		.n_alts = 1
	};
	r2_clauses[2] = (struct xm_authz_clause){
		.alts = dup_of(&(struct xm_authz_alt){ .conds = dup_of(&to2, sizeof(to2)), .n_conds = 1 },
			       sizeof(struct xm_authz_alt)),
		.n_alts = 1
	};
	rules[0] = (struct xm_authz_rule){ .clauses = dup_of(&r1_clause, sizeof(r1_clause)), .n_clauses = 1 };
	rules[1] = (struct xm_authz_rule){ .clauses = dup_of(r2_clauses, sizeof(r2_clauses)), .n_clauses = 3 };
	memset(p, 0, sizeof(*p));
	snprintf(p->ns, sizeof(p->ns), "foo");
	snprintf(p->name, sizeof(p->name), "allow-%zu", i);
	p->action = XM_AUTHZ_ALLOW;
	p->rules = dup_of(rules, sizeof(rules));
	p->n_rules = 2;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The best of rounds (the least disturbed on a shared machine), ns per CONNECT. */
static double run(size_t n_policies, long iters, int rounds)
{
	struct xm_config cfg;
	struct xm_authz_table t;
	struct xm_ip src = { .family = 4 }, dst = { .family = 4 };
	struct xm_authz_request req = { .peer_id = "spiffe://cluster.local/ns/default/sa/sleep",
					.trust_domain = "cluster.local",
					.src = &src,
					.dst = &dst,
					.dport = 8080 };
	struct xm_authz_verdict v;
	double best = 0;

	inet_pton(AF_INET, "10.2.0.9", src.bytes);
	inet_pton(AF_INET, "10.1.0.5", dst.bytes);
	memset(&cfg, 0, sizeof(cfg));
	cfg.authz_policies = calloc(n_policies, sizeof(*cfg.authz_policies));
	if (!cfg.authz_policies)
		die("out of memory");
	cfg.n_authz_policies = n_policies;
	for (size_t i = 0; i < n_policies; i++)
		policy(&cfg.authz_policies[i], i);
	if (authz_table_build(&cfg, NULL, &t))
		die("authz_table_build failed");
	authz_evaluate(&t, "foo", NULL, 0, &req, &v);
	if (v.allowed || v.n_applied != n_policies)
		die("the request must be denied by %zu applying policies (allowed %d, applied %zu)", n_policies,
		    v.allowed, v.n_applied);
	for (int r = 0; r < rounds; r++) {
		uint64_t t0 = now_ns();
		double ns;

		for (long i = 0; i < iters; i++) {
			authz_evaluate(&t, "foo", NULL, 0, &req, &v);
			__asm__ volatile("" : : "g"(&v) : "memory");
		}
		ns = (double)(now_ns() - t0) / (double)iters;
		if (!r || ns < best)
			best = ns;
	}
	authz_table_free(&t);
	for (size_t i = 0; i < n_policies; i++)
		authz_policy_free(&cfg.authz_policies[i]);
	free(cfg.authz_policies);
	return best;
}

int main(int argc, char **argv)
{
	const char *sizes = "4,100";
	long iters = 200000;
	int rounds = 5;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--policies"))
			sizes = argv[i + 1];
		else if (!strcmp(argv[i], "--iters"))
			iters = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else
			die("unknown option %s", argv[i]);
	}
	if (iters <= 0 || rounds <= 0)
		die("--iters and --rounds must be positive");
	for (const char *p = sizes; *p;) {
		char *end;
		unsigned long n = strtoul(p, &end, 10);

		if (end == p || !n)
			die("bad --policies %s", sizes);
		printf("authz_eval: %lu policies applying, none matching: %.0f ns per CONNECT (best of %d x %ld)\n", n,
		       run(n, n > 10 ? iters / 10 : iters, rounds), rounds, n > 10 ? iters / 10 : iters);
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}
