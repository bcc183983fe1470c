/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cluster's node addresses, derived from the config's Node objects (status.addresses of type
 * InternalIP): the outer sources from which XDP accepts IPIP/IP6IP6 (xm_node_addrs).
 */
#ifndef XMESH_COMPILE_NODES_H
#define XMESH_COMPILE_NODES_H

#include <stddef.h>

#include <xmesh/xdp.h>

#include "config/model.h"

struct xm_node_addrs {
	struct xm_node_addr_key *addrs; /* sorted, unique, zero padding */
	size_t n;
};

/* Every InternalIP of every Node of cfg, both families. Returns 0 or -ENOMEM (out is then empty). */
int compile_node_addrs(const struct xm_config *cfg, struct xm_node_addrs *out);
void node_addrs_free(struct xm_node_addrs *na);

#endif
