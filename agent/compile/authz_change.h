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

#endif
