/* SPDX-License-Identifier: Apache-2.0 */
/* xm_node_addrs: the outer sources from which XDP decapsulates IPIP/IP6IP6 (compile/nodes.h). */
#ifndef XMESH_DATAPATH_XDP_NODES_H
#define XMESH_DATAPATH_XDP_NODES_H

#include "compile/nodes.h"

/*
 * Makes the map at fd hold exactly na's addresses: new ones first, then the others go, so a node that
 * stays is never missing. Returns 0 or -errno (logged once).
 */
int xdp_node_addrs_sync(int fd, const struct xm_node_addrs *na);

#endif
