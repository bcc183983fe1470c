/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The north-south datapath as the agent sees it: loads xdp_lb next to the socket LB's pinned maps, attaches
 * XDP to each uplink through a pinned bpf_link (adopted and swapped on restart) and TC egress through
 * netlink (not a link: replaced in place by handle/priority) — xdp_load.c; keeps the VIP pre-filter, the
 * reverse-NAT backend table, the node addresses and the uplink addresses in step with what the agent
 * serves — xdp_sync.c, xdp_nat.c, xdp_nodes.c; and reads its counters as plain values — xdp_stats.h. It
 * renders nothing: agent/daemon/xdp_render.c does.
 */
#ifndef XMESH_DATAPATH_XDP_H
#define XMESH_DATAPATH_XDP_H

#include <net/if.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/xdp.h>

#include "compile/compile.h"
#include "compile/nodes.h"
#include "datapath/xdp_nat.h"
#include "datapath/xdp_nodes.h"

#define XM_TC_HANDLE   0x786d /* "xm" */
#define XM_TC_PRIORITY 0x786d

struct xdp_lb;

struct xm_xdp_uplink {
	char name[IF_NAMESIZE];
	int ifindex;
	bool adopted; /* the XDP link was left by a previous agent */
};

struct xm_xdp {
	struct xdp_lb *skel;
	/* Written on the control loop, read by the metrics thread (xdp_stats_read): atomics. */
	atomic_size_t tcp_pairs_placed;	  /* Istio TCP counters: (service port, local backend) pairs with a position */
	atomic_size_t tcp_pairs_unplaced; /* and without one (no room: not counted) */
	atomic_size_t nat_draining;	  /* xdp_nat_draining(&nat_drain) after the last sync */
	struct xm_nat_drain nat_drain;	  /* control loop only: reverse NAT of backends no longer selected */
	struct xm_nexthop_table nexthops; /* control loop only: xm_nexthops as last written */
	char bpffs[4096];
	struct xm_xdp_uplink uplinks[XM_XDP_MAX_IFACES];
	size_t n_uplinks;
};

/*
 * Loads xdp_lb with its maps pinned under bpffs (after datapath_open: the socket LB's maps must be there),
 * then for each interface (by name, in the caller's network namespace): records its addresses, attaches TC
 * egress, then XDP (native where the driver has it). Returns 0 or -errno (logged); on failure nothing that
 * this call attached stays attached.
 */
int xdp_datapath_open(struct xm_xdp *x, const char *bpffs, const char *const *ifaces, size_t n);

/*
 * Makes the pre-filter and xm_nat_backends serve st. before = true (call it before lbmap_apply) only adds,
 * so new VIPs pass the filter by the time lbmap publishes them; after lbmap_apply, call it with false: it
 * also places the Istio TCP counters of the local backends (by the ids lbmap_apply left in st) and asks the kernel to
 * resolve the neighbours of remote backends' nodes (fib lookups need them).
 */
int xdp_datapath_sync(struct xm_xdp *x, const struct xm_lb_state *st, bool before);

/*
 * Keeps the next hop of every remote node of st resolved for the XDP FIB lookup (agent/datapath/neigh.h):
 * managed neighbour entries, or a datagram that makes the kernel resolve it where those are not available;
 * and hands XDP the next hops the kernel has resolved (xm_nexthops), so that it needs no FIB lookup for them.
 * Called by xdp_datapath_sync and periodically (routes and neighbours change; a primed entry ages).
 */
void xdp_datapath_neighbours(struct xm_xdp *x, const struct xm_lb_state *st);

/*
 * Publishes the cluster's node addresses (compile/nodes.h: the Nodes' InternalIPs) into xm_node_addrs: XDP
 * decapsulates only what they send. Returns 0 or -errno (logged).
 */
int xdp_datapath_sync_nodes(struct xm_xdp *x, const struct xm_node_addrs *na);

/* The GC tick: lets the reverse NAT of drained backends go (datapath/xdp_nat.h). st: what is served. */
void xdp_datapath_tick(struct xm_xdp *x, const struct xm_lb_state *st);

/* The fd of xm_xdp_tcp_counters (Istio TCP counters of XDP flows), or -1 when XDP is not loaded. */
int xdp_datapath_tcp_counters_fd(const struct xm_xdp *x);

/* Closes fds; the links, TC filters and maps stay. */
void xdp_datapath_close(struct xm_xdp *x);
/*
 * Detaches TC from the uplinks named in the pinned xm_xdp_ifaces (only our filters, in the caller's
 * network namespace). Call before datapath_remove(), which unpins the XDP links (detaching XDP) and maps.
 */
int xdp_datapath_remove(const char *bpffs);

/* Building blocks, shared with the tests. */
void xdp_vip_filter_fill(__u64 *filter, const struct xm_lb_state *st, bool add_only);
/* Sets k's bit in a pre-filter. */
void xdp_vip_filter_set(__u64 *filter, const struct xm_svc_key *k);

#endif
