/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PeerAuthentication STRICT and plaintext AuthorizationPolicy at the pod's host-side veth (TC egress, towards
 * the pod): the maps, the lookups, the counters, and the TCP reset that answers a refused SYN. See docs/mtls.md.
 */
#ifndef XMESH_BPF_PEER_AUTH_H
#define XMESH_BPF_PEER_AUTH_H

#include <xmesh/mtls.h>

#include "lib/parse.h"

#define XM_TC_ACT_OK	   0
#define XM_TC_ACT_SHOT	   2
#define XM_TC_ACT_REDIRECT 7

#define XM_TCP_RST 0x04

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_MTLS_POLICIES);
	__type(key, struct xm_mtls_key);
	__type(value, struct xm_mtls_policy);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_mtls_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, XM_MAX_MTLS_REJECTED);
	__type(key, struct xm_mtls_key);
	__type(value, struct xm_mtls_rejected);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_mtls_rejected SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_MTLS_LOCAL_PODS);
	__type(key, struct xm_mtls_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_mtls_local_pods SEC(".maps");

/* AuthorizationPolicy for plaintext clients: include/xmesh/mtls.h, docs/mtls.md. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XM_MAX_AUTHZ_PLAIN);
	__type(key, struct xm_authz_plain_key);
	__type(value, struct xm_authz_plain_verdict);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_authz_plain SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, XM_MAX_AUTHZ_PLAIN_DENIED);
	__type(key, struct xm_authz_plain_count_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_authz_plain_denied SEC(".maps");

/*
 * Interfaces the agent attached the program to (ifindex → 1): the pods' veths. What `xmesh cleanup` detaches,
 * and where same-node pod traffic enters the node.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_mtls_ifaces SEC(".maps");

/* Same-node mesh traffic: a local mesh pod's address, received on a pod veth (not the uplink). */
static __always_inline bool xm_mtls_from_local_pod(const struct __sk_buff *skb, const union xm_addr *saddr, __u8 family)
{
	struct xm_mtls_key k = { .addr = *saddr, .family = family };
	__u32 ifindex = skb->ingress_ifindex;

	return ifindex && bpf_map_lookup_elem(&xm_mtls_ifaces, &ifindex) &&
	       bpf_map_lookup_elem(&xm_mtls_local_pods, &k);
}

/* The effective policy of (addr, port): its own entry, else the pod's (port 0), else NULL (PERMISSIVE). */
static __always_inline const struct xm_mtls_policy *xm_mtls_lookup(struct xm_mtls_key *k, __u16 port)
{
	const struct xm_mtls_policy *p;

	k->port = port;
	p = bpf_map_lookup_elem(&xm_mtls_policy, k);
	if (p)
		return p;
	k->port = 0;
	return bpf_map_lookup_elem(&xm_mtls_policy, k);
}

static __always_inline void xm_mtls_count(struct xm_mtls_key *k, __u16 port, bool fragment)
{
	struct xm_mtls_rejected *r, zero = {};

	k->port = port;
	r = bpf_map_lookup_elem(&xm_mtls_rejected, k);
	if (!r) {
		/* Full: the attempt is still refused, only not counted. */
		bpf_map_update_elem(&xm_mtls_rejected, k, &zero, BPF_NOEXIST);
		r = bpf_map_lookup_elem(&xm_mtls_rejected, k);
		if (!r)
			return;
	}
	if (fragment)
		r->fragments++;
	else
		r->syns++;
}

/*
 * The plaintext AuthorizationPolicy verdict for a client at saddr reaching (daddr, port): the longest client
 * prefix of the port's own entries, else of the pod's port-0 entries, else NULL (no policy can deny it).
 */
static __always_inline const struct xm_authz_plain_verdict *
xm_authz_plain_lookup(const union xm_addr *saddr, const union xm_addr *daddr, __u8 family, __u16 port)
{
	struct xm_authz_plain_key k = {}; /* every byte set: the trie compares the pad and a v4 address's zeros */
	const struct xm_authz_plain_verdict *v;

	k.prefixlen = XM_AUTHZ_PLAIN_FIXED_BITS + (family == XM_FAMILY_V4 ? 32 : 128);
	k.family = family;
	k.port = port;
	k.dst = *daddr;
	k.src = *saddr;
	v = bpf_map_lookup_elem(&xm_authz_plain, &k);
	if (v)
		return v;
	k.port = 0;
	return bpf_map_lookup_elem(&xm_authz_plain, &k);
}

static __always_inline void xm_authz_plain_count(const union xm_addr *daddr, __u8 family, __u16 port, __u32 policy)
{
	struct xm_authz_plain_count_key k = { .addr = *daddr, .family = family, .port = port, .policy = policy };
	__u64 *n, zero = 0;

	n = bpf_map_lookup_elem(&xm_authz_plain_denied, &k);
	if (!n) {
		/* Full: the attempt is still refused, only not counted. */
		bpf_map_update_elem(&xm_authz_plain_denied, &k, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&xm_authz_plain_denied, &k);
		if (!n)
			return;
	}
	(*n)++;
}

/* Sum of the n_words 16-bit words at w (a stack buffer), as they sit in memory. */
static __always_inline __u64 xm_sum16(const __u16 *w, __u32 n_words)
{
	__u64 s = 0;

#pragma unroll
	for (__u32 i = 0; i < 30; i++)
		if (i < n_words)
			s += w[i];
	return s;
}

/* The pseudo header's sum (addresses, protocol, TCP length) of a packet whose addresses are at l3. */
static __always_inline __u64 xm_pseudo_sum(const struct xm_pkt *p, __u16 tcp_len)
{
	__u64 s = bpf_htons(IPPROTO_TCP) + bpf_htons(tcp_len);

	if (p->family == XM_FAMILY_V4) {
		const struct iphdr *iph = p->l3;

		s += (iph->saddr & 0xffff) + (iph->saddr >> 16) + (iph->daddr & 0xffff) + (iph->daddr >> 16);
	} else {
		const struct ipv6hdr *ip6h = p->l3;

#pragma unroll
		for (int i = 0; i < 4; i++) {
			s += (ip6h->saddr.in6_u.u6_addr32[i] & 0xffff) + (ip6h->saddr.in6_u.u6_addr32[i] >> 16);
			s += (ip6h->daddr.in6_u.u6_addr32[i] & 0xffff) + (ip6h->daddr.in6_u.u6_addr32[i] >> 16);
		}
	}
	return s;
}

static __always_inline __u16 xm_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)((s & 0xffff) + (s >> 16));
}

/* The reply's Ethernet header: the SYN's, addresses swapped. */
static __always_inline void xm_rst_l2(struct ethhdr *e, const struct ethhdr *syn, __u16 proto)
{
	__builtin_memcpy(e->h_dest, syn->h_source, 6);
	__builtin_memcpy(e->h_source, syn->h_dest, 6);
	e->h_proto = bpf_htons(proto);
}

/*
 * The RST|ACK's TCP header. Its pseudo header has the SYN's addresses (swapped: the sum does not care) and
 * length 20; partial: the field holds that sum alone, as the stack leaves it for checksum offload.
 */
static __always_inline void xm_rst_tcp(struct tcphdr *t, const struct tcphdr *syn, __u32 ack, __u64 pseudo,
				       __u32 syn_len, bool partial)
{
	__u64 sum = pseudo - bpf_htons((__u16)syn_len) + bpf_htons(20);

	t->source = syn->dest;
	t->dest = syn->source;
	t->ack_seq = ack;
	t->doff = 5;
	t->rst = 1;
	t->ack = 1;
	t->check = partial ? xm_fold(sum) : (__u16)~xm_fold(sum + xm_sum16((const __u16 *)t, 10));
}

/*
 * Turns the SYN at p into the RST|ACK the pod would have sent from a closed port (ack = seq + 1) and sends it
 * back into the node through the same veth's ingress: the node forwards or delivers it as the pod's answer.
 * The checksum follows the SYN's: a SYN that carries a full checksum gets one; a SYN whose field holds only
 * the pseudo header's sum (CHECKSUM_PARTIAL, a same-node sender with offload) gets the RST's pseudo sum, as
 * the stack would write it. Returns the TC verdict; anything it cannot answer exactly (a VLAN tag, IPv4
 * options, payload, a checksum of neither kind) is dropped instead.
 */
static __always_inline int xm_mtls_reset(struct __sk_buff *skb, const struct xm_pkt *p, void *data, void *end)
{
	const struct tcphdr *th = p->l4;
	__u32 tcp_len = p->l3_len - p->l3_hlen;
	const struct ethhdr *eth = data;
	struct ethhdr e = {};
	struct tcphdr t = {};
	__u16 hdr[30] = {};
	__u32 hlen = p->l4_hlen;
	__u64 pseudo;
	bool partial;
	__u32 ack;

	if (p->l2_len != XM_ETH_HLEN || p->l3_hlen != (p->family == XM_FAMILY_V4 ? 20 : 40) || tcp_len != p->l4_hlen ||
	    (void *)(th + 1) > end)
		return XM_TC_ACT_SHOT;
	/* The header with its options, copied: sums over packet memory of variable length upset older verifiers. */
	asm volatile("" : "+r"(hlen)); /* bounds checked on the register the helper gets */
	if (hlen < sizeof(*th) || hlen > sizeof(hdr))
		return XM_TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, (__u32)(p->l4 - data), hdr, hlen))
		return XM_TC_ACT_SHOT;
	pseudo = xm_pseudo_sum(p, (__u16)tcp_len);
	if (xm_fold(pseudo + xm_sum16(hdr, hlen / 2)) == 0xffff)
		partial = false;
	else if (th->check == xm_fold(pseudo))
		partial = true;
	else
		return XM_TC_ACT_SHOT;
	ack = bpf_htonl(bpf_ntohl(th->seq) + 1);

	if (p->family == XM_FAMILY_V4) {
		const struct iphdr *iph = p->l3;
		struct iphdr ip = {};

		ip.version = 4;
		ip.ihl = 5;
		ip.tot_len = bpf_htons(40);
		ip.frag_off = bpf_htons(0x4000); /* DF */
		ip.ttl = 64;
		ip.protocol = IPPROTO_TCP;
		ip.saddr = iph->daddr;
		ip.daddr = iph->saddr;
		ip.check = xm_ipv4_hdr_csum(&ip);
		xm_rst_l2(&e, eth, XM_ETH_P_IP);
		xm_rst_tcp(&t, th, ack, pseudo, tcp_len, partial);
		if (bpf_skb_change_tail(skb, XM_ETH_HLEN + sizeof(ip) + sizeof(t), 0) ||
		    bpf_skb_store_bytes(skb, 0, &e, XM_ETH_HLEN, BPF_F_RECOMPUTE_CSUM) ||
		    bpf_skb_store_bytes(skb, XM_ETH_HLEN, &ip, sizeof(ip), BPF_F_RECOMPUTE_CSUM) ||
		    bpf_skb_store_bytes(skb, XM_ETH_HLEN + sizeof(ip), &t, sizeof(t), BPF_F_RECOMPUTE_CSUM))
			return XM_TC_ACT_SHOT;
	} else {
		const struct ipv6hdr *ip6h = p->l3;
		struct ipv6hdr ip = {};

		ip.version = 6;
		ip.payload_len = bpf_htons(20);
		ip.nexthdr = IPPROTO_TCP;
		ip.hop_limit = 64;
		__builtin_memcpy(&ip.saddr, &ip6h->daddr, 16);
		__builtin_memcpy(&ip.daddr, &ip6h->saddr, 16);
		xm_rst_l2(&e, eth, XM_ETH_P_IPV6);
		xm_rst_tcp(&t, th, ack, pseudo, tcp_len, partial);
		if (bpf_skb_change_tail(skb, XM_ETH_HLEN + sizeof(ip) + sizeof(t), 0) ||
		    bpf_skb_store_bytes(skb, 0, &e, XM_ETH_HLEN, BPF_F_RECOMPUTE_CSUM) ||
		    bpf_skb_store_bytes(skb, XM_ETH_HLEN, &ip, sizeof(ip), BPF_F_RECOMPUTE_CSUM) ||
		    bpf_skb_store_bytes(skb, XM_ETH_HLEN + sizeof(ip), &t, sizeof(t), BPF_F_RECOMPUTE_CSUM))
			return XM_TC_ACT_SHOT;
	}
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

#endif
