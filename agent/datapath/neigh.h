/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Neighbour entries for the next hops XDP encapsulates to. bpf_fib_lookup only reads the kernel's neighbour
 * table (XDP cannot queue a packet while ARP/ND runs), and XDP_TX traffic never refreshes an entry, so an
 * idle entry could be garbage-collected while flows still need it. The agent adds a managed entry
 * (NTF_EXT_MANAGED, Linux 5.16+) for the next hop of every remote node: the kernel resolves it, keeps it
 * resolved and never collects it. Entries carry NDA_PROTOCOL XM_NEIGH_PROTO so that a later sync, by this
 * agent or its successor, removes the ones no node needs any more and never touches anyone else's.
 */
#ifndef XMESH_DATAPATH_NEIGH_H
#define XMESH_DATAPATH_NEIGH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

#define XM_NEIGH_PROTO 0xb1 /* NDA_PROTOCOL of the agent's entries (0-4 are the kernel's and iproute2's) */

struct xm_neigh_node {
	union xm_addr addr;
	uint8_t family; /* XM_FAMILY_V4 / XM_FAMILY_V6 */
	bool managed;	/* out: a managed entry now covers its next hop */
	/* out: the next hop as the kernel had it resolved when the sync began (resolved: all of these are set) */
	bool resolved;
	int ifindex;	 /* egress interface of the route to the node */
	uint32_t mtu;	 /* the route's MTU (its metric, a learned path MTU) or else the interface's */
	uint8_t dmac[6]; /* the next hop's link-layer address (a valid neighbour entry) */
	uint8_t smac[6]; /* the egress interface's */
};

/*
 * Keeps the next hop of each node resolved (managed entries; sets .managed), reports the next hop as resolved
 * now (sets .resolved and the fields after it, read before the entries are touched), and deletes the agent's entries
 * for next hops none of them uses. n = 0 deletes them all. Returns 0, or -errno if netlink failed as a
 * whole; a node whose entry the kernel refused (older kernels: no managed entries) keeps .managed false and
 * the caller resolves it another way.
 */
int neigh_sync(struct xm_neigh_node *nodes, size_t n);

#endif
