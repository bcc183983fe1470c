/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The XDP connection table: a flow's 5-tuple (as the client sent it) → the backend it was given. Entries
 * leave by LRU eviction only; a flow keeps its backend while the service's backend set changes.
 */
#ifndef XMESH_BPF_CONNTRACK_H
#define XMESH_BPF_CONNTRACK_H

#include "hash.h"
#include "parse.h"
#include "xdp_maps.h"

static __always_inline void xm_ct_key_of(const struct xm_pkt *p, struct xm_ct_key *k)
{
	xm_pkt_addrs(p, &k->saddr, &k->daddr);
	k->sport = xm_pkt_sport(p);
	k->dport = xm_pkt_dport(p);
	k->proto = p->proto;
	k->family = p->family;
	k->pad[0] = k->pad[1] = 0;
}

/*
 * The flow hash that indexes the Maglev table: every field of the 5-tuple, as the client sent it, so every
 * node computes the same value for the same flow (and a decapsulating node agrees with the encapsulating one).
 */
static __always_inline __u32 xm_flow_hash(const struct xm_ct_key *k)
{
	__u64 h;

	h = xm_mix64(((__u64)k->daddr.v6[2] << 32 | k->daddr.v6[3]) ^
		     ((__u64)k->sport << 48 | (__u64)k->dport << 32 | (__u32)k->proto << 8 | k->family));
	h = xm_mix64(h ^ ((__u64)k->daddr.v6[0] << 32 | k->daddr.v6[1]));
	h = xm_mix64(h ^ ((__u64)k->saddr.v6[2] << 32 | k->saddr.v6[3]));
	h = xm_mix64(h ^ ((__u64)k->saddr.v6[0] << 32 | k->saddr.v6[1]));
	return (__u32)(h ^ (h >> 32));
}

static __always_inline struct xm_ct_value *xm_ct_lookup(const struct xm_ct_key *k)
{
	return bpf_map_lookup_elem(&xm_ct, k);
}

/*
 * Pins the flow to a snapshot of the backend, in handshake state (enum xm_ct_state), and leaves that entry
 * in *v (which the caller forwards from: one struct on the stack, not two). No timestamp: a clock read costs
 * as much as a lookup.
 */
static __always_inline void xm_ct_insert(const struct xm_ct_key *k, __u32 backend_id, __u32 svc_id,
					 const struct xm_backend *be, __u32 state, struct xm_ct_value *v)
{
	/* Every field (no padding): nothing uninitialised reaches the map. */
	v->addr = be->addr;
	v->node_addr = be->node_addr;
	v->backend_id = backend_id;
	v->svc_id = svc_id;
	v->port = be->port;
	v->family = be->family;
	v->flags = be->flags;
	v->state = state;
	bpf_map_update_elem(&xm_ct, k, v, BPF_ANY);
}

#endif
