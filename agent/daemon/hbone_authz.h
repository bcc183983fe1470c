/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE server's AuthorizationPolicy check of one CONNECT already known to target a pod of this node
 * (docs/mtls.md "AuthorizationPolicy"): the request as the policies see it, Istio's evaluation (compile/authz.h),
 * and a denial counted and logged once per pod and policy.
 */
#ifndef XMESH_DAEMON_HBONE_AUTHZ_H
#define XMESH_DAEMON_HBONE_AUTHZ_H

#include "compile/authz_change.h"
#include "compile/snapshot.h"
#include "hbone/hbone.h"
#include "metrics/authz_denied.h"

/*
 * 200 (allowed) or 401 (denied, counted in denied). The client's address is the Forwarded for= address when
 * the pod there has the verified peer's identity (the source node connects from its own address), else the
 * TLS connection's remote address.
 */
int hbone_authz_check(const struct xm_snapshot *s, const char *trust_domain, const struct hbone_admit *req,
		      struct authz_denied *denied);
/*
 * The same decision for a stream admitted before a policy change (hbone_server_recheck): 200 keeps it, 401
 * closes it, counted in closed (xmesh_authz_closed_total) and logged once per pod and policy.
 */
int hbone_authz_recheck(const struct xm_snapshot *s, const char *trust_domain, const struct hbone_admit *req,
			struct authz_denied *closed);
/*
 * Whether a change of scope may change the decision of an admitted stream: the policies changed, or the
 * identity changed at an address the decision reads (the target, the Forwarded for= client, the TLS peer).
 * A stream it says no to keeps the decision it had: the walk skips it without evaluating.
 */
bool hbone_authz_recheck_affected(const struct authz_recheck_scope *scope, const struct hbone_admit *req);

#endif
