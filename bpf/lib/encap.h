/* SPDX-License-Identifier: Apache-2.0 */
/*
 * IPIP / IP6IP6 for direct server return across nodes: encapsulation of the original packet towards the
 * backend's node (outer MACs from the agent's next-hop table or the kernel's FIB), and removal of the outer header
 * on the receiving node. The inner packet is never modified here.
 */
#ifndef XMESH_BPF_ENCAP_H
#define XMESH_BPF_ENCAP_H

#include "csum.h"
#include "parse.h"

#define XM_AF_INET   2
#define XM_AF_INET6  10
#define XM_OUTER_TTL 64
#define XM_IPV4_HLEN 20
#define XM_IPV6_HLEN 40

/*
 * Route lookup towards the backend's node for an outer packet of outer_len bytes. Fills fib (MACs, egress
 * ifindex). Returns the BPF_FIB_LKUP_RET_* code; FRAG_NEEDED when the outer packet exceeds the route MTU.
 */
static __always_inline int xm_fib_to_node(struct xdp_md *ctx, struct bpf_fib_lookup *fib, __u8 family,
					  const union xm_addr *src, const union xm_addr *dst, __u32 outer_len)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = ctx->ingress_ifindex;
	fib->tot_len = (__u16)outer_len;
	if (family == XM_FAMILY_V4) {
		fib->family = XM_AF_INET;
		fib->l4_protocol = XM_IPPROTO_IPIP;
		fib->ipv4_src = src->v4;
		fib->ipv4_dst = dst->v4;
	} else {
		fib->family = XM_AF_INET6;
		fib->l4_protocol = XM_IPPROTO_IPV6;
		__builtin_memcpy(fib->ipv6_src, src->v6, 16);
		__builtin_memcpy(fib->ipv6_dst, dst->v6, 16);
	}
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

/*
 * Prepends an outer IPv4 (hdr_len 20) or IPv6 (hdr_len 40) header between the L2 header (l2_len bytes,
 * VLAN tag kept) and the inner packet, writing the new MACs. Returns a pointer to the outer header, NULL on
 * failure (the packet may then have grown: drop it).
 */
static __always_inline void *xm_push_outer(struct xdp_md *ctx, __u32 l2_len, __u32 hdr_len, const __u8 *dmac,
					   const __u8 *smac)
{
	void *data, *end;

	if (bpf_xdp_adjust_head(ctx, -(int)hdr_len))
		return NULL;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + XM_ETH_HLEN + XM_VLAN_HLEN + XM_IPV6_HLEN > end)
		return NULL; /* the inner packet alone is longer than this */
	if (l2_len == XM_ETH_HLEN + XM_VLAN_HLEN)
		__builtin_memcpy(data + 12, data + hdr_len + 12, XM_VLAN_HLEN + 2); /* tag + ethertype */
	else
		__builtin_memcpy(data + 12, data + hdr_len + 12, 2);
	__builtin_memcpy(data, dmac, 6);
	__builtin_memcpy(data + 6, smac, 6);
	return data + l2_len;
}

/* IPIP: the original IPv4 packet (l3_len bytes, tos copied) inside src → dst. */
static __always_inline int xm_encap_ipip(struct xdp_md *ctx, const struct xm_pkt *p, const union xm_addr *src,
					 const union xm_addr *dst, const __u8 *dmac, const __u8 *smac)
{
	__u8 tos = ((const struct iphdr *)p->l3)->tos;
	__u32 l2_len = p->l2_len, len = p->l3_len + XM_IPV4_HLEN;
	void *end;
	struct iphdr *o = xm_push_outer(ctx, l2_len, XM_IPV4_HLEN, dmac, smac);

	end = (void *)(long)ctx->data_end;
	if (!o || (void *)(o + 1) > end)
		return -1;
	o->version = 4;
	o->ihl = 5;
	o->tos = tos;
	o->tot_len = bpf_htons((__u16)len);
	o->id = 0;
	o->frag_off = 0;
	o->ttl = XM_OUTER_TTL;
	o->protocol = XM_IPPROTO_IPIP;
	o->check = 0;
	o->saddr = src->v4;
	o->daddr = dst->v4;
	o->check = xm_ipv4_hdr_csum(o);
	return 0;
}

/* IP6IP6: traffic class copied from the inner header, flow label from the flow hash (ECMP entropy). */
static __always_inline int xm_encap_ip6ip6(struct xdp_md *ctx, const struct xm_pkt *p, const union xm_addr *src,
					   const union xm_addr *dst, const __u8 *dmac, const __u8 *smac,
					   __u32 flow_hash)
{
	const struct ipv6hdr *in = p->l3;
	__u32 tc = (__u32)in->priority << 4 | in->flow_lbl[0] >> 4;
	__u32 l2_len = p->l2_len, plen = p->l3_len;
	__u32 vtf = 6u << 28 | tc << 20 | (flow_hash & 0xfffff);
	struct ipv6hdr *o = xm_push_outer(ctx, l2_len, XM_IPV6_HLEN, dmac, smac);
	void *end = (void *)(long)ctx->data_end;

	if (!o || (void *)(o + 1) > end)
		return -1;
	*(__be32 *)o = bpf_htonl(vtf);
	o->payload_len = bpf_htons((__u16)plen);
	o->nexthdr = XM_IPPROTO_IPV6;
	o->hop_limit = XM_OUTER_TTL;
	__builtin_memcpy(&o->saddr, src->v6, 16);
	__builtin_memcpy(&o->daddr, dst->v6, 16);
	return 0;
}

/* Removes the outer header (hdr_len bytes after the L2 header); the L2 header moves up unchanged. */
static __always_inline int xm_decap(struct xdp_md *ctx, __u32 l2_len, __u32 hdr_len)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

	/* Both checks: the verifier does not derive the fixed range from the variable one. */
	if (hdr_len > 60 || data + XM_ETH_HLEN + XM_VLAN_HLEN > end ||
	    data + hdr_len + XM_ETH_HLEN + XM_VLAN_HLEN > end)
		return -1;
	if (l2_len == XM_ETH_HLEN + XM_VLAN_HLEN)
		__builtin_memmove(data + hdr_len, data, XM_ETH_HLEN + XM_VLAN_HLEN);
	else
		__builtin_memmove(data + hdr_len, data, XM_ETH_HLEN);
	return bpf_xdp_adjust_head(ctx, (int)hdr_len);
}

#endif
