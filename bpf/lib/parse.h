/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packet parsing for XDP and TC: Ethernet with at most one VLAN tag, IPv4 (options allowed) and IPv6, TCP
 * and UDP headers, each validated against the frame before anything is read. Never writes the packet.
 */
#ifndef XMESH_BPF_PARSE_H
#define XMESH_BPF_PARSE_H

#include <bpf/bpf_endian.h>
#include <xmesh/xdp.h>

#define XM_ETH_HLEN	    14
#define XM_VLAN_HLEN	    4
#define XM_ETH_P_IP	    0x0800
#define XM_ETH_P_IPV6	    0x86DD
#define XM_ETH_P_8021Q	    0x8100
#define XM_ETH_P_8021AD	    0x88A8
#define XM_IPPROTO_IPIP	    4
#define XM_IPPROTO_IPV6	    41
#define XM_IPPROTO_FRAGMENT 44
#define XM_IP_MF_OFFSET	    0x3FFF /* More Fragments + fragment offset, host order */
#define XM_TCP_SYN	    0x02
#define XM_TCP_ACK	    0x10

/*
 * Bounds a byte-swapped length for the verifier: kernels before 6.x treat the result of a byte swap as
 * unbounded, and pointer arithmetic needs bounds. The empty asm keeps the compiler from dropping the mask.
 */
#define XM_BOUND16(x)                                                                                                  \
	({                                                                                                             \
		__u32 __v = (x);                                                                                       \
		asm volatile("" : "+r"(__v));                                                                          \
		__v & 0xffff;                                                                                          \
	})

enum xm_parse_res {
	XM_PARSE_OK = 0,    /* IP + a complete TCP or UDP header */
	XM_PARSE_NOT_IP,    /* short frame, not IPv4/IPv6, or more than one VLAN tag */
	XM_PARSE_MALFORMED, /* IP or L4 header truncated or inconsistent */
	XM_PARSE_FRAGMENT,  /* IPv4 fragment, IPv6 fragment header */
	XM_PARSE_EXT_HDR,   /* IPv6 extension header before L4 */
	XM_PARSE_OTHER_L4,  /* valid IP, payload neither TCP nor UDP (ICMP, IPIP, ...): l4 points at it */
};

struct xm_pkt {
	void *l3;	/* IP header */
	void *l4;	/* L4 header (or the inner IP header of a tunnel) */
	__u32 l2_len;	/* 14 or 18 */
	__u32 l3_len;	/* IP total length (IPv6: 40 + payload length) */
	__u32 l3_hlen;	/* IP header length: IHL * 4, or 40 */
	__u8 family;	/* XM_FAMILY_V4 / XM_FAMILY_V6 */
	__u8 proto;	/* L4 protocol */
	__u8 tcp_flags; /* 0 for UDP */
	__u8 l4_hlen;	/* TCP: doff * 4; UDP: 8. Kept so later code need not re-read (and re-check) the header */
};

/* TCP/UDP header at l4, fully inside both the frame and the IP payload (l4_room bytes). */
static __always_inline int xm_parse_l4(struct xm_pkt *p, void *end, __u32 l4_room)
{
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		__u32 doff;

		if ((void *)(th + 1) > end || l4_room < sizeof(*th))
			return XM_PARSE_MALFORMED;
		doff = th->doff * 4;
		if (doff < sizeof(*th) || doff > l4_room)
			return XM_PARSE_MALFORMED;
		p->tcp_flags = ((__u8 *)th)[13];
		p->l4_hlen = doff;
		return XM_PARSE_OK;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = p->l4;
		__u32 ulen;

		if ((void *)(uh + 1) > end || l4_room < sizeof(*uh))
			return XM_PARSE_MALFORMED;
		ulen = bpf_ntohs(uh->len);
		if (ulen < sizeof(*uh) || ulen > l4_room)
			return XM_PARSE_MALFORMED;
		p->tcp_flags = 0;
		p->l4_hlen = sizeof(*uh);
		return XM_PARSE_OK;
	}
	return XM_PARSE_OTHER_L4;
}

static __always_inline int xm_parse_ipv4(struct xm_pkt *p, void *l3, void *end, const bool headers_only)
{
	struct iphdr *iph = l3;
	__u32 hlen, tot;

	if ((void *)(iph + 1) > end)
		return XM_PARSE_MALFORMED;
	hlen = iph->ihl * 4;
	tot = XM_BOUND16(bpf_ntohs(iph->tot_len));
	if (iph->version != 4 || hlen < sizeof(*iph) || tot < hlen || (!headers_only && l3 + tot > end))
		return XM_PARSE_MALFORMED;
	p->l3 = l3;
	p->l3_len = tot;
	p->l3_hlen = hlen;
	p->family = XM_FAMILY_V4;
	p->proto = iph->protocol;
	if (iph->frag_off & bpf_htons(XM_IP_MF_OFFSET))
		return XM_PARSE_FRAGMENT;
	p->l4 = l3 + hlen;
	return xm_parse_l4(p, end, tot - hlen);
}

static __always_inline bool xm_ipv6_is_ext_hdr(__u8 nh)
{
	/* hop-by-hop, routing, destination options, AH, mobility, HIP, shim6 (ESP ends the chain: opaque) */
	return nh == 0 || nh == 43 || nh == 60 || nh == 51 || nh == 135 || nh == 139 || nh == 140;
}

static __always_inline int xm_parse_ipv6(struct xm_pkt *p, void *l3, void *end, const bool headers_only)
{
	struct ipv6hdr *ip6h = l3;
	__u32 plen;

	if ((void *)(ip6h + 1) > end)
		return XM_PARSE_MALFORMED;
	plen = XM_BOUND16(bpf_ntohs(ip6h->payload_len));
	/* payload_len 0 is a jumbogram (hop-by-hop option): not on an Ethernet uplink. */
	if (ip6h->version != 6 || plen == 0 || (!headers_only && l3 + sizeof(*ip6h) + plen > end))
		return XM_PARSE_MALFORMED;
	p->l3 = l3;
	p->l3_len = sizeof(*ip6h) + plen;
	p->l3_hlen = sizeof(*ip6h);
	p->family = XM_FAMILY_V6;
	p->proto = ip6h->nexthdr;
	if (p->proto == XM_IPPROTO_FRAGMENT)
		return XM_PARSE_FRAGMENT;
	if (xm_ipv6_is_ext_hdr(p->proto))
		return XM_PARSE_EXT_HDR;
	p->l4 = l3 + sizeof(*ip6h);
	return xm_parse_l4(p, end, plen);
}

/*
 * Parses an IP packet starting at l3; eth_proto (host order) says which family to expect. headers_only:
 * the payload may lie beyond end (an skb's paged data, TC); the caller checks l3_len against the skb.
 */
static __always_inline int xm_parse_l3(struct xm_pkt *p, void *l3, void *end, __u16 eth_proto, const bool headers_only)
{
	if (eth_proto == XM_ETH_P_IP)
		return xm_parse_ipv4(p, l3, end, headers_only);
	if (eth_proto == XM_ETH_P_IPV6)
		return xm_parse_ipv6(p, l3, end, headers_only);
	return XM_PARSE_NOT_IP;
}

static __always_inline int xm_parse(struct xm_pkt *p, void *data, void *end, const bool headers_only)
{
	struct ethhdr *eth = data;
	__u16 proto;

	if ((void *)(eth + 1) > end)
		return XM_PARSE_NOT_IP;
	proto = bpf_ntohs(eth->h_proto);
	p->l2_len = XM_ETH_HLEN;
	if (proto == XM_ETH_P_8021Q || proto == XM_ETH_P_8021AD) {
		__be16 *inner = data + XM_ETH_HLEN + 2;

		if ((void *)(inner + 1) > end)
			return XM_PARSE_NOT_IP;
		proto = bpf_ntohs(*inner);
		p->l2_len = XM_ETH_HLEN + XM_VLAN_HLEN;
	}
	return xm_parse_l3(p, data + p->l2_len, end, proto, headers_only);
}

/* Source and destination of a parsed packet as union xm_addr (IPv4: first word, rest zero). */
static __always_inline void xm_pkt_addrs(const struct xm_pkt *p, union xm_addr *saddr, union xm_addr *daddr)
{
	if (p->family == XM_FAMILY_V4) {
		const struct iphdr *iph = p->l3;

		saddr->v6[1] = saddr->v6[2] = saddr->v6[3] = 0;
		daddr->v6[1] = daddr->v6[2] = daddr->v6[3] = 0;
		saddr->v4 = iph->saddr;
		daddr->v4 = iph->daddr;
	} else {
		const struct ipv6hdr *ip6h = p->l3;

		__builtin_memcpy(saddr, &ip6h->saddr, 16);
		__builtin_memcpy(daddr, &ip6h->daddr, 16);
	}
}

/* TCP and UDP keep their ports in the same first four bytes. */
static __always_inline __u16 xm_pkt_sport(const struct xm_pkt *p)
{
	return ((const struct udphdr *)p->l4)->source;
}

static __always_inline __u16 xm_pkt_dport(const struct xm_pkt *p)
{
	return ((const struct udphdr *)p->l4)->dest;
}

#endif
