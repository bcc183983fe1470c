/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ICMP "fragmentation needed" (RFC 792, RFC 1191) and ICMPv6 "packet too big" (RFC 4443) for a client whose
 * packet would exceed the route MTU once encapsulated: the reply is built in place over the client's own
 * frame, from the VIP back to the client, for XDP_TX on the ingress interface. docs/xdp.md has the rules.
 */
#ifndef XMESH_BPF_ICMP_REPLY_H
#define XMESH_BPF_ICMP_REPLY_H

#include "csum.h"
#include "parse.h"

#define XM_IPPROTO_ICMP	     1
#define XM_IPPROTO_ICMPV6    58
#define XM_ICMP_DEST_UNREACH 3
#define XM_ICMP_FRAG_NEEDED  4
#define XM_ICMPV6_TOO_BIG    2
#define XM_ICMP_HLEN	     8 /* type, code, checksum, then unused + MTU (IPv4) or MTU (IPv6) */
#define XM_ICMP_TTL	     64
#define XM_IP_DF	     0x4000 /* host order */
#define XM_IPV4_MIN_MTU	     68	    /* RFC 791: every IPv4 host and link takes this much */
#define XM_IPV6_MIN_MTU	     1280   /* RFC 8200 */

/* Room made before the original IP header for the new IP + ICMP headers. */
#define XM_ICMP4_ROOM (20 + XM_ICMP_HLEN)
#define XM_ICMP6_ROOM (40 + XM_ICMP_HLEN)
/* IPv4 quote: the original header (at most 60 bytes) and the 8 bytes after it (RFC 792). */
#define XM_ICMP4_MAX_WORDS ((XM_ICMP_HLEN + 60 + 8) / 4)
/* IPv6 quote: as much of the original as fits a reply of the IPv6 minimum MTU (RFC 4443 2.4(c)). */
#define XM_ICMP6_QUOTE (XM_IPV6_MIN_MTU - XM_ICMP6_ROOM)

enum xm_icmp_res {
	XM_ICMP_SENT = 0, /* the frame is now the reply: XDP_TX */
	XM_ICMP_NOT_SENT, /* no reply is due (see xm_icmp_too_big); the frame is untouched */
	XM_ICMP_ERROR,	  /* a helper failed: the frame may be half-written, drop it */
};

/* RFC 1122 3.2.2 / RFC 4443 2.4(e): no error about a packet from a non-unicast source. */
static __always_inline bool xm_icmp_unicast4(__be32 addr)
{
	__u32 a = bpf_ntohl(addr);

	return a && (a >> 28) < 0xe; /* not 0.0.0.0, nor multicast 224/4, nor class E and broadcast 240/4 */
}

static __always_inline bool xm_icmp_unicast6(const struct in6_addr *addr)
{
	const __u32 *w = (const __u32 *)addr;

	return (w[0] | w[1] | w[2] | w[3]) && addr->in6_u.u6_addr8[0] != 0xff; /* not ::, not ff00::/8 */
}

/*
 * After bpf_xdp_adjust_head(-room): writes the L2 header (l2_len bytes, VLAN tag kept) at the new start
 * with the MACs swapped, so the reply goes back to the hop the packet came from.
 */
static __always_inline int xm_icmp_l2_swap(struct xdp_md *ctx, __u32 l2_len, __u32 room)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u8 *old = data + room;

	if ((void *)old + XM_ETH_HLEN + XM_VLAN_HLEN > end)
		return -1;
	__builtin_memcpy(data, old + 6, 6);
	__builtin_memcpy(data + 6, old, 6);
	if (l2_len == XM_ETH_HLEN + XM_VLAN_HLEN)
		__builtin_memcpy(data + 12, old + 12, XM_VLAN_HLEN + 2); /* tag + ethertype */
	else
		__builtin_memcpy(data + 12, old + 12, 2);
	return 0;
}

/* Cuts the frame to len bytes; never grows it (a reply quotes at most the whole original packet). */
static __always_inline int xm_icmp_trim(struct xdp_md *ctx, __u32 len)
{
	__u32 cur = ctx->data_end - ctx->data;

	if (len > cur)
		return -1;
	return bpf_xdp_adjust_tail(ctx, -(int)(cur - len));
}

/*
 * One's-complement sum of the first `words` 32-bit words at w, fully unrolled: the caller has checked that
 * XM_ICMP4_MAX_WORDS words lie within the frame, so every load is at a constant offset the verifier knows.
 */
static __always_inline __u64 xm_icmp4_sum(const __u32 *w, __u32 words)
{
	__u64 s = 0;

#pragma clang loop unroll(full)
	for (__u32 i = 0; i < XM_ICMP4_MAX_WORDS; i++)
		s += i < words ? w[i] : 0;
	return s;
}

/*
 * IPv4: the frame (l2_len, then the original header and at least XM_ICMP4_MAX_WORDS * 4 - 8 bytes) becomes
 * L2 | IPv4 vip → client | ICMP 3/4 next-hop MTU | the first `quote` bytes (original header + 8).
 */
static __always_inline int xm_icmp4_build(struct xdp_md *ctx, __u32 l2_len, __u32 quote, __be32 vip, __be32 client,
					  __u16 next_hop_mtu)
{
	__u32 msg_len = XM_ICMP_HLEN + quote;
	struct icmphdr *icmp;
	void *data, *end;
	struct iphdr *ip;

	if (bpf_xdp_adjust_head(ctx, -XM_ICMP4_ROOM) || xm_icmp_l2_swap(ctx, l2_len, XM_ICMP4_ROOM))
		return XM_ICMP_ERROR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	ip = data + l2_len;
	icmp = (void *)(ip + 1);
	if ((void *)icmp + XM_ICMP4_MAX_WORDS * 4 > end)
		return XM_ICMP_ERROR;
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons((__u16)(sizeof(*ip) + msg_len));
	ip->id = 0;
	ip->frag_off = bpf_htons(XM_IP_DF); /* an atomic datagram (RFC 6864): id 0 is fine */
	ip->ttl = XM_ICMP_TTL;
	ip->protocol = XM_IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = vip;
	ip->daddr = client;
	ip->check = xm_ipv4_hdr_csum(ip);
	icmp->type = XM_ICMP_DEST_UNREACH;
	icmp->code = XM_ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->un.frag.__unused = 0;
	icmp->un.frag.mtu = bpf_htons(next_hop_mtu);
	icmp->checksum = (__u16)~xm_csum_fold(xm_icmp4_sum((const __u32 *)icmp, msg_len / 4));
	/* Last: the sum above needed the fixed-size window, the cut ends the frame after the quote. */
	if (xm_icmp_trim(ctx, l2_len + sizeof(*ip) + msg_len))
		return XM_ICMP_ERROR;
	return XM_ICMP_SENT;
}

/*
 * IPv6: the frame (l2_len, then at least XM_ICMP6_QUOTE bytes of the original packet) becomes
 * L2 | IPv6 vip → client | ICMPv6 2/0 MTU | the first XM_ICMP6_QUOTE bytes of the original. The addresses
 * are copied from the quoted original header, not through the stack: the balancer's frame is large already.
 */
static __always_inline int xm_icmp6_build(struct xdp_md *ctx, __u32 l2_len, __u32 mtu)
{
	__u32 msg_len = XM_ICMP_HLEN + XM_ICMP6_QUOTE;
	const struct ipv6hdr *orig;
	struct icmp6hdr *icmp;
	struct ipv6hdr *ip6;
	void *data, *end;
	__s64 sum;

	if (bpf_xdp_adjust_head(ctx, -XM_ICMP6_ROOM))
		return XM_ICMP_ERROR;
	if (xm_icmp_l2_swap(ctx, l2_len, XM_ICMP6_ROOM) || xm_icmp_trim(ctx, l2_len + sizeof(*ip6) + msg_len))
		return XM_ICMP_ERROR;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	ip6 = data + l2_len;
	icmp = (void *)(ip6 + 1);
	orig = (const void *)(icmp + 1);
	if ((void *)icmp + msg_len > end)
		return XM_ICMP_ERROR;
	*(__be32 *)ip6 = bpf_htonl(6u << 28); /* traffic class 0, flow label 0 */
	ip6->payload_len = bpf_htons((__u16)msg_len);
	ip6->nexthdr = XM_IPPROTO_ICMPV6;
	ip6->hop_limit = XM_ICMP_TTL;
	__builtin_memcpy(&ip6->saddr, &orig->daddr, sizeof(ip6->saddr)); /* the VIP */
	__builtin_memcpy(&ip6->daddr, &orig->saddr, sizeof(ip6->daddr)); /* the client */
	icmp->icmp6_type = XM_ICMPV6_TOO_BIG;
	icmp->icmp6_code = 0;
	icmp->icmp6_cksum = 0;
	icmp->icmp6_dataun.un_data32[0] = bpf_htonl(mtu);
	/*
	 * Pseudo-header (addresses, upper-layer length, next header) then the message, in fixed pieces: the
	 * verifier checks each against the bound above, and bpf_csum_diff takes at most 512 bytes a call.
	 */
	sum = xm_csum_fold((__u64)bpf_htonl(msg_len) + bpf_htonl(XM_IPPROTO_ICMPV6));
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip6->saddr, 32, (__u32)sum);
	if (sum >= 0)
		sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, 512, (__u32)sum);
	if (sum >= 0)
		sum = bpf_csum_diff(NULL, 0, (__be32 *)((void *)icmp + 512), 512, (__u32)sum);
	if (sum >= 0)
		sum = bpf_csum_diff(NULL, 0, (__be32 *)((void *)icmp + 1024), msg_len - 1024, (__u32)sum);
	if (sum < 0)
		return XM_ICMP_ERROR;
	icmp->icmp6_cksum = (__u16)~xm_csum_fold((__u64)sum);
	return XM_ICMP_SENT;
}

/*
 * Answers a parsed TCP/UDP packet that does not fit route_mtu (bpf_fib_lookup's mtu_result) once an outer
 * header of outer_len bytes is added. The MTU reported to the client is route_mtu - outer_len. No reply
 * (XM_ICMP_NOT_SENT, frame untouched) for: IPv4 without DF (a router would fragment, XDP cannot), a
 * link-layer multicast/broadcast frame or a non-unicast source (RFC 1122 3.2.2, RFC 4443 2.4(e)), and a
 * reported MTU below the family's minimum, which the client may not honour (RFC 1191, RFC 8201 4).
 */
static __always_inline int xm_icmp_too_big(struct xdp_md *ctx, const struct xm_pkt *p, __u32 route_mtu, __u32 outer_len)
{
	const __u8 *eth = (const void *)(long)ctx->data;
	__u32 l2_len = p->l2_len & 0x1f, mtu = route_mtu - outer_len;

	if ((const void *)(eth + 1) > (const void *)(long)ctx->data_end || (eth[0] & 1) || route_mtu < outer_len)
		return XM_ICMP_NOT_SENT;
	if (p->family == XM_FAMILY_V4) {
		const struct iphdr *ip = p->l3;

		/* mtu >= 68 and the packet exceeds it, so it holds the largest quote (60 + 8 bytes): checked anyway,
		 * xm_icmp4_build sums over that fixed window. */
		if (!(ip->frag_off & bpf_htons(XM_IP_DF)) || !xm_icmp_unicast4(ip->saddr) || mtu < XM_IPV4_MIN_MTU ||
		    p->l3_len < XM_ICMP4_MAX_WORDS * 4 - XM_ICMP_HLEN)
			return XM_ICMP_NOT_SENT;
		return xm_icmp4_build(ctx, l2_len, (p->l3_hlen & 0x3c) + 8, ip->daddr, ip->saddr, (__u16)mtu);
	} else {
		const struct ipv6hdr *ip6 = p->l3;

		/* mtu >= 1280 and the packet exceeds it: at least XM_ICMP6_QUOTE bytes to quote. */
		if (!xm_icmp_unicast6(&ip6->saddr) || mtu < XM_IPV6_MIN_MTU || p->l3_len < XM_ICMP6_QUOTE)
			return XM_ICMP_NOT_SENT;
		return xm_icmp6_build(ctx, l2_len, mtu);
	}
}

#endif
