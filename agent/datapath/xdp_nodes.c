// SPDX-License-Identifier: Apache-2.0
#include "datapath/xdp_nodes.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_node_addr_key));
}

int xdp_node_addrs_sync(int fd, const struct xm_node_addrs *na)
{
	struct xm_node_addr_key k, next, *prev = NULL;
	__u32 one = 1;
	size_t i;
	int err = 0;

	for (i = 0; i < na->n; i++) {
		if (bpf_map_update_elem(fd, &na->addrs[i], &one, BPF_ANY) < 0 && !err) {
			err = -errno;
			log_error("xm_node_addrs: update: %s (IPIP/IP6IP6 from that node is dropped)", strerror(errno));
		}
	}
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		bool keep;

		k = next;
		keep = na->n && bsearch(&k, na->addrs, na->n, sizeof(*na->addrs), key_cmp);
		if (!keep && bpf_map_delete_elem(fd, &k) == 0) {
			prev = NULL;
			continue;
		}
		prev = &k;
	}
	return err;
}

static bool nexthop_holds(const struct xm_nexthop *e, const struct xm_neigh_node *node)
{
	return (e->flags & XM_NEXTHOP_F_VALID) && e->family == node->family &&
	       !memcmp(&e->node, &node->addr, sizeof(e->node));
}

/* The entry of a resolved node, from its next hop and its uplink's address; false if it cannot have one. */
static bool nexthop_entry(int ifaces_fd, const struct xm_neigh_node *node, struct xm_nexthop *e)
{
	struct xm_xdp_iface ifc;
	__u32 ifindex = (__u32)node->ifindex;
	const union xm_addr *src = node->family == XM_FAMILY_V4 ? &ifc.addr4 : &ifc.addr6;

	if (!node->resolved || node->ifindex <= 0 || bpf_map_lookup_elem(ifaces_fd, &ifindex, &ifc) < 0 ||
	    !(src->v6[0] | src->v6[1] | src->v6[2] | src->v6[3]))
		return false;
	memset(e, 0, sizeof(*e));
	e->node = node->addr;
	e->src = *src;
	e->ifindex = ifindex;
	e->mtu = (__u16)(node->mtu > 0xffff ? 0xffff : node->mtu);
	e->family = node->family;
	e->flags = XM_NEXTHOP_F_VALID;
	memcpy(e->dmac, node->dmac, 6);
	memcpy(e->smac, node->smac, 6);
	return true;
}

int xdp_nexthops_sync(struct xm_nexthop_table *t, int fd, int ifaces_fd, const struct xm_neigh_node *nodes, size_t n)
{
	struct xm_nexthop *next, e;
	__u32 i;
	int placed = 0, err = 0;

	if (!t->slots) {
		t->slots = calloc(XM_NEXTHOP_SLOTS, sizeof(*t->slots));
		if (!t->slots)
			return -ENOMEM;
		for (i = 0; i < XM_NEXTHOP_SLOTS; i++)
			if (bpf_map_lookup_elem(fd, &i, &t->slots[i]) < 0) /* unknown: rewritten below */
				memset(&t->slots[i], 0xff, sizeof(t->slots[i]));
	}
	next = calloc(XM_NEXTHOP_SLOTS, sizeof(*next));
	if (!next)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++) {
		__u32 s0 = xm_nexthop_slot(&nodes[k].addr, nodes[k].family), s1 = s0 ^ 1, s;

		if (!nexthop_entry(ifaces_fd, &nodes[k], &e))
			continue;
		/* The slot it holds now if free in next (no move, no torn read), else the first free one. */
		if (nexthop_holds(&t->slots[s1], &nodes[k]) && !next[s1].flags)
			s = s1;
		else if (!next[s0].flags)
			s = s0;
		else if (!next[s1].flags)
			s = s1;
		else
			continue; /* both taken: the FIB path serves it */
		next[s] = e;
		placed++;
	}
	for (i = 0; i < XM_NEXTHOP_SLOTS; i++) {
		if (!memcmp(&next[i], &t->slots[i], sizeof(next[i])))
			continue;
		if (bpf_map_update_elem(fd, &i, &next[i], BPF_ANY) < 0) {
			if (!err) {
				err = -errno;
				log_error("xm_nexthops: update: %s (XDP takes the FIB path)", strerror(errno));
			}
			memset(&t->slots[i], 0xff, sizeof(t->slots[i])); /* unknown: retried next time */
			continue;
		}
		t->slots[i] = next[i];
	}
	free(next);
	return err ? err : placed;
}

void xdp_nexthops_free(struct xm_nexthop_table *t)
{
	free(t->slots);
	t->slots = NULL;
}
