// SPDX-License-Identifier: Apache-2.0
/* AuthorizationPolicy objects: freeing, the deep copy a snapshot keeps, and the ipBlocks syntax. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/authz_policy.h"

static void strs_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void authz_policy_free(struct xm_authz_policy *p)
{
	for (size_t r = 0; r < p->n_rules; r++) {
		struct xm_authz_rule *rule = &p->rules[r];

		for (size_t c = 0; c < rule->n_clauses; c++) {
			struct xm_authz_clause *cl = &rule->clauses[c];

			for (size_t a = 0; a < cl->n_alts; a++) {
				for (size_t k = 0; k < cl->alts[a].n_conds; k++) {
					strs_free(cl->alts[a].conds[k].values, cl->alts[a].conds[k].n_values);
					free(cl->alts[a].conds[k].match);
				}
				free(cl->alts[a].conds);
			}
			free(cl->alts);
		}
		free(rule->clauses);
	}
	free(p->rules);
	free(p->selector);
	memset(p, 0, sizeof(*p));
}

/* calloc of n elements that never returns NULL for n == 0 being a failure. */
static void *dup_array(const void *src, size_t n, size_t size, bool *failed)
{
	void *p;

	if (!n)
		return NULL;
	p = calloc(n, size);
	if (!p) {
		*failed = true;
		return NULL;
	}
	memcpy(p, src, n * size);
	return p;
}

int authz_policy_copy(struct xm_authz_policy *dst, const struct xm_authz_policy *src)
{
	bool failed = false;

	*dst = *src;
	dst->loc.file = NULL; /* the config's file names go with it; the copy outlives them */
	dst->selector = dup_array(src->selector, src->n_selector, sizeof(*src->selector), &failed);
	dst->rules = dup_array(src->rules, src->n_rules, sizeof(*src->rules), &failed);
	if (failed) {
		/* Nothing below the arrays is ours yet: drop the counts that would point into src. */
		free(dst->selector);
		free(dst->rules);
		memset(dst, 0, sizeof(*dst));
		return -ENOMEM;
	}
	for (size_t r = 0; r < dst->n_rules; r++) {
		struct xm_authz_rule *rule = &dst->rules[r];

		rule->clauses = dup_array(rule->clauses, rule->n_clauses, sizeof(*rule->clauses), &failed);
		if (!rule->clauses)
			rule->n_clauses = 0;
		for (size_t c = 0; c < rule->n_clauses; c++) {
			struct xm_authz_clause *cl = &rule->clauses[c];

			cl->alts = dup_array(cl->alts, cl->n_alts, sizeof(*cl->alts), &failed);
			if (!cl->alts)
				cl->n_alts = 0;
			for (size_t a = 0; a < cl->n_alts; a++) {
				struct xm_authz_alt *alt = &cl->alts[a];

				alt->conds = dup_array(alt->conds, alt->n_conds, sizeof(*alt->conds), &failed);
				if (!alt->conds)
					alt->n_conds = 0;
				for (size_t k = 0; k < alt->n_conds; k++) {
					struct xm_authz_cond *cd = &alt->conds[k];
					char **v = cd->values;
					size_t n = cd->n_values;

					cd->match = NULL; /* compiled by the copy's owner (compile/authz.c) */
					cd->values = n ? calloc(n, sizeof(*v)) : NULL;
					cd->n_values = cd->values ? n : 0;
					failed |= n && !cd->values;
					for (size_t i = 0; i < cd->n_values; i++)
						failed |= !(cd->values[i] = strdup(v[i]));
				}
			}
		}
	}
	if (failed) {
		authz_policy_free(dst);
		return -ENOMEM;
	}
	return 0;
}

int authz_cidr_parse(const char *s, struct xm_ip *addr, uint8_t *bits)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	long max;

	memset(addr, 0, sizeof(*addr));
	if (!len || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, addr->bytes) == 1)
		addr->family = 4;
	else if (inet_pton(AF_INET6, buf, addr->bytes) == 1)
		addr->family = 6;
	else
		return -EINVAL;
	max = addr->family == 4 ? 32 : 128;
	*bits = (uint8_t)max;
	if (slash) {
		const char *d = slash + 1;
		long v = 0;

		/* Go's netip: decimal digits, no sign, no leading zero. */
		if (!*d || strlen(d) > 3 || (d[0] == '0' && d[1]))
			return -EINVAL;
		for (; *d; d++) {
			if (*d < '0' || *d > '9')
				return -EINVAL;
			v = v * 10 + (*d - '0');
		}
		if (v > max)
			return -EINVAL;
		*bits = (uint8_t)v;
	}
	return 0;
}

bool authz_cidr_contains(const struct xm_ip *block, uint8_t bits, const struct xm_ip *ip)
{
	size_t full = bits / 8;
	uint8_t rest = bits % 8;

	if (block->family != ip->family)
		return false;
	if (memcmp(block->bytes, ip->bytes, full))
		return false;
	if (!rest)
		return true;
	return ((block->bytes[full] ^ ip->bytes[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}
