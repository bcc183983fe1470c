// SPDX-License-Identifier: Apache-2.0
#include "compile/authz_change.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Labels are sorted by key (identities_build), so the same labels in any config order compare equal. */
static bool workload_authz_equal(const struct xm_workload *x, const struct xm_workload *y)
{
	if (!x || !y)
		return x == y;
	if (strcmp(x->ns, y->ns) || x->n_labels != y->n_labels)
		return false;
	for (size_t i = 0; i < x->n_labels; i++)
		if (strcmp(x->labels[i].key, y->labels[i].key) || strcmp(x->labels[i].value, y->labels[i].value))
			return false;
	return true;
}

/* The order of xm_identities' items: (family, address). */
static int addr_cmp(uint8_t fx, const union xm_addr *x, uint8_t fy, const union xm_addr *y)
{
	if (fx != fy)
		return fx < fy ? -1 : 1;
	return memcmp(x->bytes, y->bytes, sizeof(x->bytes));
}

/* What a decision reads of the identity at one address. */
static bool identity_authz_equal(const struct xm_identity *x, const struct xm_identity *y)
{
	return !strcmp(x->principal, y->principal) && !strcmp(x->ns, y->ns) && workload_authz_equal(x->wl, y->wl);
}

bool identities_authz_equal(const struct xm_identities *a, const struct xm_identities *b)
{
	if (a->n != b->n)
		return false;
	/* Both sorted by (family, address): a pod added, removed or moved shows as a differing item. */
	for (size_t i = 0; i < a->n; i++) {
		const struct xm_identity *x = &a->items[i], *y = &b->items[i];

		if (addr_cmp(x->family, &x->addr, y->family, &y->addr) || !identity_authz_equal(x, y))
			return false;
	}
	return true;
}

bool authz_recheck_needed(const struct xm_snapshot *old, const struct xm_snapshot *next)
{
	/* With no policy enforced every stream is allowed: there is nothing to close. */
	if (!next->authz.n)
		return false;
	return !authz_table_equal(&old->authz, &next->authz) ||
	       !identities_authz_equal(&old->identities, &next->identities);
}

static void scope_all(struct authz_recheck_scope *sc)
{
	free(sc->addrs);
	*sc = (struct authz_recheck_scope){ .all = true };
}

/* The addresses whose identity is only in a, only in b, or differs: a merge of the two sorted lists. */
static int identities_diff(const struct xm_identities *a, const struct xm_identities *b,
			   struct authz_recheck_scope *out)
{
	size_t i = 0, j = 0;

	out->addrs = malloc((a->n + b->n ? a->n + b->n : 1) * sizeof(*out->addrs));
	if (!out->addrs)
		return -ENOMEM;
	while (i < a->n || j < b->n) {
		const struct xm_identity *x = i < a->n ? &a->items[i] : NULL, *y = j < b->n ? &b->items[j] : NULL;
		int c = !x ? 1 : !y ? -1 : addr_cmp(x->family, &x->addr, y->family, &y->addr);
		const struct xm_identity *at = c <= 0 ? x : y;

		if (c || !identity_authz_equal(x, y))
			out->addrs[out->n++] = (struct authz_recheck_addr){ .family = at->family, .addr = at->addr };
		i += c <= 0;
		j += c >= 0;
	}
	return 0;
}

int authz_recheck_scope(const struct xm_snapshot *old, const struct xm_snapshot *next, struct authz_recheck_scope *out)
{
	*out = (struct authz_recheck_scope){ 0 };
	if (!next->authz.n)
		return 0;
	if (!authz_table_equal(&old->authz, &next->authz)) {
		out->all = true;
		return 0;
	}
	if (identities_diff(&old->identities, &next->identities, out)) {
		scope_all(out);
		return -ENOMEM;
	}
	return 0;
}

bool authz_recheck_scope_empty(const struct authz_recheck_scope *sc)
{
	return !sc->all && !sc->n;
}

static int scope_addr_cmp(const struct authz_recheck_addr *x, const struct authz_recheck_addr *y)
{
	return addr_cmp(x->family, &x->addr, y->family, &y->addr);
}

int authz_recheck_scope_merge(struct authz_recheck_scope *into, const struct authz_recheck_scope *from)
{
	struct authz_recheck_addr *v;
	size_t i = 0, j = 0, n = 0;

	if (into->all || authz_recheck_scope_empty(from))
		return 0;
	if (from->all) {
		scope_all(into);
		return 0;
	}
	v = malloc((into->n + from->n) * sizeof(*v));
	if (!v) {
		scope_all(into);
		return -ENOMEM;
	}
	while (i < into->n || j < from->n) {
		int c = i == into->n ? 1 : j == from->n ? -1 : scope_addr_cmp(&into->addrs[i], &from->addrs[j]);

		v[n++] = c <= 0 ? into->addrs[i] : from->addrs[j];
		i += c <= 0;
		j += c >= 0;
	}
	free(into->addrs);
	into->addrs = v;
	into->n = n;
	return 0;
}

bool authz_recheck_scope_has(const struct authz_recheck_scope *sc, uint8_t family, const union xm_addr *addr)
{
	struct authz_recheck_addr key = { .family = family, .addr = *addr };
	size_t lo = 0, hi = sc->n;

	if (sc->all)
		return true;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = scope_addr_cmp(&sc->addrs[mid], &key);

		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

void authz_recheck_scope_free(struct authz_recheck_scope *sc)
{
	free(sc->addrs);
	*sc = (struct authz_recheck_scope){ 0 };
}
