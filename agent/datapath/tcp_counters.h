/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's side of xm_xdp_tcp_counters (include/xmesh/xdp.h): it decides where each (service port,
 * local backend) pair of the external services counts, and reads the counters back summed over CPUs.
 */
#ifndef XMESH_DATAPATH_TCP_COUNTERS_H
#define XMESH_DATAPATH_TCP_COUNTERS_H

#include <stddef.h>

#include <xmesh/xdp.h>

#include "compile/compile.h"

/* Where the last sync left the pairs (status and metrics). */
struct tcp_counters_fill {
	size_t placed;	 /* pairs with a position */
	size_t unplaced; /* pairs that found none: not counted */
};

/*
 * Gives every (service port, local backend) pair of st's external services a position (by the ids that
 * publishing assigned in st: call after lbmap_apply), and frees the positions of pairs that are gone, with their
 * counts. A pair that keeps its position keeps its counts. Fills *fill (may be NULL). Returns 0, or -ENOSPC when a pair
 * found no free position (it is not counted; logged), or -errno.
 */
int tcp_counters_sync(int map_fd, const struct xm_lb_state *st, struct tcp_counters_fill *fill);

/*
 * Every placed pair with its counters summed over the CPUs (owner fields as placed), in *out (malloc'd,
 * the caller frees). Returns how many, or -errno.
 */
int tcp_counters_read(int map_fd, struct xm_xdp_tcp_metrics **out);

#endif
