/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whether an apply may change what AuthorizationPolicy decides for a stream already admitted (docs/mtls.md
 * "Open streams after a change"): the enforced policies, or what the decision reads of the pods. The control
 * loop asks it per apply to post the HBONE server's re-check walk; it compares, it never decides a stream.
 */
#ifndef XMESH_COMPILE_AUTHZ_CHANGE_H
#define XMESH_COMPILE_AUTHZ_CHANGE_H

#include <stdbool.h>

#include "compile/identity.h"
#include "compile/snapshot.h"

/*
 * Whether a and b are the same to a policy decision: per address (family, address), the principal (the
 * Forwarded client rule), whether a pod is there, its namespace and all its labels (what selectors read).
 * Pod names, nodes, localities and config order do not count.
 */
bool identities_authz_equal(const struct xm_identities *a, const struct xm_identities *b);

/* Whether streams admitted under old must be checked again under next: a policy is enforced in next, and
 * the policies or identities_authz_equal's fields differ. */
bool authz_recheck_needed(const struct xm_snapshot *old, const struct xm_snapshot *next);

/*
 * Which admitted streams a change may affect. A stream's decision reads the policies, the identity at its
 * target address (namespace, labels: the selectors) and the one at its Forwarded client address (the principal
 * that lets that address stand for the source); nothing else of the pods. So when the policies are the same,
 * only streams whose target or client address is one whose identity changed need the walk: `addrs`, sorted by
 * (family, address), unique. `all`: the policies changed, every stream.
 */
struct authz_recheck_addr {
	uint8_t family;
	union xm_addr addr;
};

struct authz_recheck_scope {
	bool all;
	struct authz_recheck_addr *addrs;
	size_t n;
};

/* The scope of old -> next into *out (empty when authz_recheck_needed says no). 0 or -ENOMEM (*out is then
 * "all": a failed diff never skips a stream). */
int authz_recheck_scope(const struct xm_snapshot *old, const struct xm_snapshot *next, struct authz_recheck_scope *out);
/* Whether the scope asks for anything. */
bool authz_recheck_scope_empty(const struct authz_recheck_scope *sc);
/* into |= from (from is left as it is). 0 or -ENOMEM (into becomes "all"). */
int authz_recheck_scope_merge(struct authz_recheck_scope *into, const struct authz_recheck_scope *from);
bool authz_recheck_scope_has(const struct authz_recheck_scope *sc, uint8_t family, const union xm_addr *addr);
void authz_recheck_scope_free(struct authz_recheck_scope *sc);

#endif
