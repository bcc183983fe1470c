/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm_nat_backends, the reverse-NAT table of TC egress: for every local backend of an external VIP, the
 * VIP:ports whose replies it sends. Reverse NAT outlives selection: a (backend, VIP:port) pair that the
 * config no longer selects (the backend turned not ready, terminating, or was removed) drains, that is
 * stays in the table while a connection-table flow still pins that backend for that VIP:port, for at most
 * XM_NAT_DRAIN_MAX_MS. Without it, the replies of the backend's established flows would leave with the
 * pod's address and the client would drop them. docs/xdp.md, "Draining".
 */
#ifndef XMESH_DATAPATH_XDP_NAT_H
#define XMESH_DATAPATH_XDP_NAT_H

#include <stddef.h>
#include <stdint.h>

#include <xmesh/xdp.h>

#include "compile/compile.h"

/*
 * The longest a pair drains. The connection table is an LRU without timestamps, so a closed TCP flow or a
 * finished UDP exchange stays in it until evicted: without a bound a busy backend's pair would never leave.
 */
#define XM_NAT_DRAIN_MAX_MS (15 * 60 * 1000)
/* How often the GC tick looks for drained pairs (a scan of the whole connection table). */
#define XM_NAT_DRAIN_CHECK_MS 2000

struct xm_nat_pair {
	struct xm_nat_backend_key key;
	struct xm_nat_vip vip;
};

struct xm_nat_draining {
	struct xm_nat_pair pair;
	uint64_t since_ms; /* when the config stopped selecting it */
};

/* Pairs no longer selected whose flows still hold them; sorted by pair. */
struct xm_nat_drain {
	struct xm_nat_draining *items;
	size_t n, cap;
	uint64_t next_check_ms; /* the GC tick's next look */
};

/*
 * Makes xm_nat_backends (nat_fd) serve st's local ready backends of external VIPs, plus the pairs that
 * drain: those in the table that st does not select and that a flow of xm_ct (ct_fd) still pins, for at
 * most XM_NAT_DRAIN_MAX_MS after they left st. d NULL: no draining (a left pair is deleted at once).
 * Call it after every apply and, while xdp_nat_draining(d), periodically to let drained pairs go.
 * Returns 0 or -errno (logged).
 */
int xdp_nat_backends_sync(struct xm_nat_drain *d, int nat_fd, int ct_fd, const struct xm_lb_state *st, uint64_t now_ms);

static inline size_t xdp_nat_draining(const struct xm_nat_drain *d)
{
	return d ? d->n : 0;
}

void xdp_nat_drain_free(struct xm_nat_drain *d);

#endif
