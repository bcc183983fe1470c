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

/* Rewrites the destination of a parsed TCP/UDP packet to addr:port (network order). */
static __always_inline void xm_dnat(struct xm_pkt *p, const union xm_addr *addr, __u16 port)
{
	struct udphdr *uh = p->l4;
	struct tcphdr *th = p->l4;
	__u64 s;

	if (p->family == XM_FAMILY_V4) {
		struct iphdr *iph = p->l3;
		__u32 old = iph->daddr;

		iph->check = xm_csum_finish(xm_csum_add32(xm_csum_start(iph->check), old, addr->v4));
		iph->daddr = addr->v4;
		if (p->proto == IPPROTO_TCP) {
			s = xm_csum_add32(xm_csum_start(th->check), old, addr->v4);
			th->check = xm_csum_finish(xm_csum_add16(s, th->dest, port));
		} else if (uh->check) { /* IPv4 UDP without checksum stays without */
			s = xm_csum_add32(xm_csum_start(uh->check), old, addr->v4);
			uh->check = xm_csum_finish_udp(xm_csum_add16(s, uh->dest, port));
		}
	} else {
		struct ipv6hdr *ip6h = p->l3;
		__u32 *d = (__u32 *)&ip6h->daddr;

		s = xm_csum_start(p->proto == IPPROTO_TCP ? th->check : uh->check);
		s = xm_csum_add32(s, d[0], addr->v6[0]);
		s = xm_csum_add32(s, d[1], addr->v6[1]);
		s = xm_csum_add32(s, d[2], addr->v6[2]);
		s = xm_csum_add32(s, d[3], addr->v6[3]);
		s = xm_csum_add16(s, uh->dest, port);
		d[0] = addr->v6[0];
		d[1] = addr->v6[1];
		d[2] = addr->v6[2];
		d[3] = addr->v6[3];
		if (p->proto == IPPROTO_TCP)
			th->check = xm_csum_finish(s);
		else
			uh->check = xm_csum_finish_udp(s);
	}
	uh->dest = port; /* same offset in TCP and UDP */
}

#endif
