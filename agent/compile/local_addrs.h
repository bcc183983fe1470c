/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The addresses that live on this node, derived once per config in compile: podIPs of Pods scheduled
 * here, EndpointSlice endpoints with this nodeName, and this Node's InternalIPs. The sockmap path only
 * short-circuits connections whose both ends are in this set.
 */
#ifndef XMESH_COMPILE_LOCAL_ADDRS_H
#define XMESH_COMPILE_LOCAL_ADDRS_H

#include <stdbool.h>
#include <stddef.h>

#include <xmesh/sockmap.h>

#include "config/model.h"

struct xm_local_addrs {
	struct xm_local_ip_key *keys; /* sorted, unique */
	__u32 *flags;		      /* XM_LOCAL_IP_*, merged for an address that is several things */
	size_t n, cap_keys, cap_flags;
};

/* Fills out from cfg for node (NULL or "": nothing is local). Returns 0 or -ENOMEM (out left empty). */
int local_addrs_build(const struct xm_config *cfg, const char *node, struct xm_local_addrs *out);
bool local_addrs_has(const struct xm_local_addrs *s, const struct xm_local_ip_key *k);
/* This node's first InternalIP of family (XM_LOCAL_IP_NODE) into out: where every pod reaches the agent. */
bool local_addrs_node_ip(const struct xm_local_addrs *s, uint8_t family, union xm_addr *out);
void local_addrs_free(struct xm_local_addrs *s);

#endif
