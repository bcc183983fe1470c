/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNAT of balanced flows in XDP: direct packet writes, incremental checksums. (The reverse direction, in
 * TC, needs no per-flow record: bpf/xdp_lb.bpf.c finds the flow in the connection table.)
 */
#ifndef XMESH_BPF_NAT_H
#define XMESH_BPF_NAT_H

#include "csum.h"
#include "parse.h"
#include "xdp_maps.h"

/*
 * Rewrites the destination of a parsed TCP/UDP packet to addr:port (network order). Returns -1 if the L4
 * checksum lies beyond end: never after xm_parse, but the bound is checked again here because older
 * verifiers (6.1) lose the TCP header's bound once p->proto is reloaded from the stack.
 */
static __always_inline int xm_dnat(struct xm_pkt *p, void *end, const union xm_addr *addr, __u16 port)
{
	struct udphdr *uh = p->l4;
	bool tcp = p->proto == IPPROTO_TCP;
	__u16 *check = tcp ? &((struct tcphdr *)p->l4)->check : &uh->check;
	__u64 s;

	if ((void *)(check + 1) > end)
		return -1;
	if (p->family == XM_FAMILY_V4) {
		struct iphdr *iph = p->l3;
		__u32 old = iph->daddr;

		iph->check = xm_csum_finish(xm_csum_add32(xm_csum_start(iph->check), old, addr->v4));
		iph->daddr = addr->v4;
		if (tcp || *check) { /* IPv4 UDP without checksum stays without */
			s = xm_csum_add32(xm_csum_start(*check), old, addr->v4);
			s = xm_csum_add16(s, uh->dest, port);
			*check = tcp ? xm_csum_finish(s) : xm_csum_finish_udp(s);
		}
	} else {
		struct ipv6hdr *ip6h = p->l3;
		__u32 *d = (__u32 *)&ip6h->daddr;

		s = xm_csum_start(*check);
		s = xm_csum_add32(s, d[0], addr->v6[0]);
		s = xm_csum_add32(s, d[1], addr->v6[1]);
		s = xm_csum_add32(s, d[2], addr->v6[2]);
		s = xm_csum_add32(s, d[3], addr->v6[3]);
		s = xm_csum_add16(s, uh->dest, port);
		d[0] = addr->v6[0];
		d[1] = addr->v6[1];
		d[2] = addr->v6[2];
		d[3] = addr->v6[3];
		*check = tcp ? xm_csum_finish(s) : xm_csum_finish_udp(s);
	}
	uh->dest = port; /* same offset in TCP and UDP */
	return 0;
}

#endif
