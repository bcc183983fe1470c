// SPDX-License-Identifier: Apache-2.0
#include "compile/authz_change.h"

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

bool identities_authz_equal(const struct xm_identities *a, const struct xm_identities *b)
{
	if (a->n != b->n)
		return false;
	/* Both sorted by (family, address): a pod added, removed or moved shows as a differing item. */
	for (size_t i = 0; i < a->n; i++) {
		const struct xm_identity *x = &a->items[i], *y = &b->items[i];

		if (x->family != y->family || memcmp(x->addr.bytes, y->addr.bytes, sizeof(x->addr.bytes)) ||
		    strcmp(x->principal, y->principal) || strcmp(x->ns, y->ns) || !workload_authz_equal(x->wl, y->wl))
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
