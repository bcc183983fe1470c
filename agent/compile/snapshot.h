/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Everything one config means for this node, derived once per apply and then immutable: the service ports
 * and their backends (with the ids publishing gave them), who each pod address is, which addresses are
 * local, and the cluster's node addresses. Readers on other threads (the metrics scrape today, L7 workers next) hold a
 * reference and never see it change; the control loop builds the next one and swaps it in.
 */
#ifndef XMESH_COMPILE_SNAPSHOT_H
#define XMESH_COMPILE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include "compile/authz.h"
#include "compile/authz_plain.h"
#include "compile/compile.h"
#include "compile/identity.h"
#include "compile/local_addrs.h"
#include "compile/nodes.h"
#include "compile/peer_auth.h"
#include "l7/routes.h"

struct xm_identity_store;
struct xm_trust_bundle;

/* An id of the published state, resolved to where the snapshot holds it. */
struct xm_snap_ref {
	uint32_t id;
	uint32_t svc, backend; /* indexes into lb.services and its backends */
};

struct xm_snapshot {
	atomic_uint refs;
	uint64_t generation; /* 1 for the first config applied, +1 each apply */
	struct xm_lb_state lb;
	struct xm_identities identities;
	struct xm_local_addrs local;
	struct xm_node_addrs nodes; /* every Node's InternalIPs: where IPIP may come from */
	struct xm_mtls_table mtls;  /* PeerAuthentication of local pods with a STRICT port (xm_mtls_policy) */
	/* Every address of every pod of another node with its resolved mode: what the HBONE client tunnels. */
	struct xm_mtls_table mtls_remote;
	struct xm_authz_table authz; /* AuthorizationPolicy: what the HBONE server checks each CONNECT against */
	/*
	 * The same for plaintext connections to local pods, as the kernel's xm_authz_plain holds it. authz_plain_err
	 * -E2BIG: it did not fit (empty then); whoever loads it keeps the previous one.
	 */
	struct xm_authz_plain_table authz_plain;
	int authz_plain_err;
	/* The HTTP service ports and their routes; points into lb, whose arrays never move once built. */
	struct l7_route_table routes;
	/*
	 * This node's workload certificates, the trust bundle and the trust domain (identity/identity.h): set by
	 * the identity module when it applies, for the modules after it; not owned by the snapshot, and valid
	 * until the identity module closes (after every module that follows it). NULL when it is off.
	 */
	struct xm_identity_store *certs;
	const struct xm_trust_bundle *trust_bundle;
	const char *trust_domain;
	/* Sorted by id, filled by snapshot_index() once publishing has assigned the ids. */
	struct xm_snap_ref *by_svc_id, *by_backend_id;
	size_t n_by_svc_id, n_by_backend_id;
};

/* Compiles cfg. Returns a snapshot with one reference, or NULL with *err = -ENOMEM. */
struct xm_snapshot *snapshot_build(const struct xm_config *cfg, const struct xm_compile_opts *opts, int *err);

/* After the ids are in lb (lbmap_assign_ids): the id indexes. Returns 0 or -ENOMEM (lookups then fail). */
int snapshot_index(struct xm_snapshot *s);

/* The service port with svc_id, the backend with backend_id (the first service listing it), or NULL. */
const struct xm_lb_service *snapshot_service(const struct xm_snapshot *s, uint32_t svc_id);
const struct xm_lb_backend *snapshot_backend(const struct xm_snapshot *s, uint32_t backend_id);
/* The served service port with this key, or NULL. */
const struct xm_lb_service *snapshot_service_by_key(const struct xm_snapshot *s, const struct xm_svc_key *key);

struct xm_snapshot *snapshot_get(struct xm_snapshot *s);
void snapshot_put(struct xm_snapshot *s);

#endif
