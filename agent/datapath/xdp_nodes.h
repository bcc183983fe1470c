/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm_node_addrs: the outer sources from which XDP decapsulates IPIP/IP6IP6 (compile/nodes.h); xm_nexthops:
 * the resolved next hops XDP encapsulates to (include/xmesh/xdp.h).
 */
#ifndef XMESH_DATAPATH_XDP_NODES_H
#define XMESH_DATAPATH_XDP_NODES_H

#include <xmesh/xdp.h>

#include "compile/nodes.h"
#include "datapath/neigh.h"

/*
 * Makes the map at fd hold exactly na's addresses: new ones first, then the others go, so a node that
 * stays is never missing. Returns 0 or -errno (logged once).
 */
int xdp_node_addrs_sync(int fd, const struct xm_node_addrs *na);

/* xm_nexthops as the agent last wrote it (slots: NULL until the first sync reads the pinned map). */
struct xm_nexthop_table {
	struct xm_nexthop *slots;
};

/*
 * Makes xm_nexthops (fd) hold the resolved next hop of each node of nodes (neigh_sync's output) whose egress
 * interface is an uplink with an address of the node's family in xm_xdp_ifaces (ifaces_fd): its outer
 * source. A node keeps the slot it had when it can; a node that is not resolved, or finds both of its slots
 * taken, gets no entry (XDP takes the FIB path for it). Every other slot is cleared. Writes only the slots
 * that change. Returns the number of entries, or -errno (logged).
 */
int xdp_nexthops_sync(struct xm_nexthop_table *t, int fd, int ifaces_fd, const struct xm_neigh_node *nodes, size_t n);
void xdp_nexthops_free(struct xm_nexthop_table *t);

#endif
