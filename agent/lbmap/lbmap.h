/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Publishes a compiled xm_lb_state into the socket-LB maps. Each service port is switched in one map
 * update (new backend list under a fresh table id, then the service value), so a concurrent connect()
 * sees the old list or the new one, never a mix. Replaced lists and unused backends are deleted after a
 * grace period. On start it adopts what a previous agent left in the pinned maps (backend ids carry live
 * connection counts, so they are kept).
 */
#ifndef XMESH_LBMAP_H
#define XMESH_LBMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "compile/compile.h"
#include "datapath/map_fds.h"

#define XM_LBMAP_GRACE_MS 1000

struct xm_lbmap;

struct xm_lbmap_stats {
	uint32_t services;
	uint32_t backends;
	uint32_t changed; /* service ports republished by the last apply */
	uint32_t removed;
	uint32_t errors;
};

/* Adopts the current content of the maps. NULL on failure (logged). */
struct xm_lbmap *lbmap_open(const struct xm_map_fds *fds);
void lbmap_free(struct xm_lbmap *m);

/* Makes the maps serve st. Returns 0, or -EIO if some service ports kept their old state (logged). */
int lbmap_apply(struct xm_lbmap *m, const struct xm_lb_state *st, uint64_t now_ms, struct xm_lbmap_stats *stats);

/*
 * Fills svc_id and every backend's id in st from what is published now (0 where nothing is): after
 * lbmap_apply, so that readers of st (XDP sync, status, metrics) need no lbmap lookups of their own.
 */
void lbmap_assign_ids(const struct xm_lbmap *m, struct xm_lb_state *st);

/* Deletes replaced tables and unused backends whose grace period ended. Returns true if work remains. */
bool lbmap_gc(struct xm_lbmap *m, uint64_t now_ms);

/* Backend id serving addr:port (network-order port), 0 if none. For status. */
uint32_t lbmap_backend_id(const struct xm_lbmap *m, const union xm_addr *addr, uint16_t port_be, uint8_t family);

/* svc_id of a published service port, 0 if none; and the reverse. For status, events and metrics. */
uint32_t lbmap_svc_id(const struct xm_lbmap *m, const struct xm_svc_key *key);
bool lbmap_svc_key(const struct xm_lbmap *m, uint32_t svc_id, struct xm_svc_key *key);
/*
 * The outlier id of a published service port, 0 if none: the key of its outlier state, shared by every VIP
 * of the same Service port (include/xmesh/outlier.h).
 */
uint32_t lbmap_outlier_id(const struct xm_lbmap *m, const struct xm_svc_key *key);
bool lbmap_backend(const struct xm_lbmap *m, uint32_t backend_id, struct xm_backend *out);

/* Live connections to a backend, from xm_backend_conns. */
int64_t lbmap_backend_active(const struct xm_lbmap *m, uint32_t backend_id);

#endif
