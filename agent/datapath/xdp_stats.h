/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the north-south datapath reports, as plain values: uplinks, connection-table fill, verdict counters
 * and per-VIP counters, read from the kernel in one go. Rendering (status text and JSON, Prometheus) is the
 * daemon's (agent/daemon/xdp_render.c).
 */
#ifndef XMESH_DATAPATH_XDP_STATS_H
#define XMESH_DATAPATH_XDP_STATS_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/xdp.h>

#include "compile/compile.h"

struct xm_xdp;

struct xm_xdp_uplink_stats {
	char name[IF_NAMESIZE];
	bool adopted; /* the XDP link was left by a previous agent */
};

struct xm_xdp_vip_stats {
	const struct xm_lb_service *svc; /* an external service port of the st passed to xdp_stats_read */
	struct xm_xdp_vip_counters counters;
};

struct xm_xdp_stats {
	struct xm_xdp_uplink_stats uplinks[XM_XDP_MAX_IFACES];
	size_t n_uplinks;
	uint64_t ct_entries;
	uint32_t ct_capacity;
	size_t tcp_pairs_placed;   /* Istio TCP counters: (service port, local backend) pairs with a position */
	size_t tcp_pairs_unplaced; /* and without one (not counted) */
	uint32_t tcp_positions;
	size_t nat_draining; /* reverse-NAT pairs kept for flows of backends no longer selected */
	uint64_t verdicts[XM_XDP_STAT_MAX];
	struct xm_xdp_vip_stats *vips; /* one per external service port of st, in st's order */
	size_t n_vips;
};

/* "pass_not_ip", "decap", ... for an enum xm_xdp_stat. */
const char *xdp_stat_name(unsigned int stat);

/*
 * Reads x's counters; st (may be NULL) names the external VIP ports to report. Returns 0 or -ENOMEM
 * (out is then empty); an unreadable counter reads as 0. Free with xdp_stats_free.
 */
int xdp_stats_read(const struct xm_xdp *x, const struct xm_lb_state *st, struct xm_xdp_stats *out);
void xdp_stats_free(struct xm_xdp_stats *s);

#endif
