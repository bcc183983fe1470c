/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A parsed packet as plain numbers, for handing it to a global BPF function: those are verified once, not
 * per call site and path, but take no packet pointers (6.1: ctx, scalars, fixed-size stack or map memory).
 * The callee rebuilds the struct xm_pkt from ctx with the bounds checked again; after xm_parse (which checked
 * the whole IP packet against the frame) they always hold.
 */
#ifndef XMESH_BPF_XDP_PKT_LOC_H
#define XMESH_BPF_XDP_PKT_LOC_H

#include "parse.h"

/* Offsets as far as the frame goes: an inner header after L2 (18) and an outer IPv4 header (60). */
#define XM_PKT_LOC_MAX_L3_OFF 128

struct xm_pkt_loc {
	__u32 l3_off; /* IP header, from the start of the frame */
	__u32 l2_len;
	__u32 l3_len;
	__u32 l3_hlen;
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 l4_hlen;
};

static __always_inline void xm_pkt_loc_of(const struct xm_pkt *p, const void *data, struct xm_pkt_loc *loc)
{
	loc->l3_off = (__u32)(p->l3 - data);
	loc->l2_len = p->l2_len;
	loc->l3_len = p->l3_len;
	loc->l3_hlen = p->l3_hlen;
	loc->family = p->family;
	loc->proto = p->proto;
	loc->tcp_flags = p->tcp_flags;
	loc->l4_hlen = p->l4_hlen;
}

/*
 * The packet of loc in ctx's frame: IP header and the first 8 bytes of L4 (ports, UDP checksum) inside the
 * frame. Returns -1 when they are not (never after xm_parse).
 */
static __always_inline int xm_pkt_at(struct xdp_md *ctx, const struct xm_pkt_loc *loc, struct xm_pkt *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 l3_off = loc->l3_off, l3_hlen = loc->l3_hlen, l2_len = loc->l2_len;
	__u8 family = loc->family; /* read once: each read of loc is a new unknown value to the verifier */
	void *l3, *l4;

	/* l2_len: 14 or 18, bounded for the header writers (a pointer offset there). */
	if (l3_off > XM_PKT_LOC_MAX_L3_OFF || l2_len < XM_ETH_HLEN || l2_len > XM_ETH_HLEN + XM_VLAN_HLEN ||
	    l3_hlen > 60 || l3_hlen < (family == XM_FAMILY_V4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)))
		return -1;
	/* Opaque to the compiler (as in xm_parse_ipv4): a recomputed pointer would lack the checked bound. */
	l3 = data + l3_off;
	asm volatile("" : "+r"(l3));
	/* Each family's fixed header on its own: the verifier does not derive it from the variable l4 bound. */
	if (family == XM_FAMILY_V4) {
		if (l3 + sizeof(struct iphdr) > end)
			return -1;
	} else if (l3 + sizeof(struct ipv6hdr) > end) {
		return -1;
	}
	l4 = l3 + l3_hlen;
	asm volatile("" : "+r"(l4));
	if (l4 + 8 > end)
		return -1;
	p->l3 = l3;
	p->l4 = l4;
	p->l2_len = l2_len;
	p->l3_len = loc->l3_len;
	p->l3_hlen = l3_hlen;
	p->family = family;
	p->proto = loc->proto;
	p->tcp_flags = loc->tcp_flags;
	p->l4_hlen = loc->l4_hlen;
	return 0;
}

#endif
