/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The XDP load balancer for external VIPs over parse/conntrack/nat/encap, so that the production program
 * (bpf/xdp_lb.bpf.c) and the benchmark wrappers (bpf/xdp_bench.bpf.c) run the same code: an inline entry
 * with the connection-table hit, and two global functions for the rest (docs/xdp.md "Verifier cost").
 * Verdicts and the reasons for them are documented in docs/xdp.md.
 */
#ifndef XMESH_BPF_XDP_BALANCE_H
#define XMESH_BPF_XDP_BALANCE_H

#include "conntrack.h"
#include "encap.h"
#include "icmp_reply.h"
#include "lb_select.h"
#include "nat.h"
#include "xdp_flow.h"
#include "xdp_pkt_loc.h"

/* Not ours: the caller passes the packet untouched. */
#define XM_NOT_VIP -1

static __always_inline bool xm_vip_filter_test(__u32 addr_fold, __u16 dport, __u8 proto)
{
	__u32 bit = xm_vip_filter_bit(addr_fold, dport, proto);

	return xm_vip_filter[(bit >> 6) & (XM_VIP_FILTER_BITS / 64 - 1)] & (1ULL << (bit & 63));
}

static __always_inline bool xm_vip_maybe(const struct xm_pkt *p)
{
	__u32 fold;

	if (p->family == XM_FAMILY_V4) {
		fold = ((const struct iphdr *)p->l3)->daddr;
	} else {
		const __u32 *d = (const __u32 *)&((const struct ipv6hdr *)p->l3)->daddr;

		fold = d[0] ^ d[1] ^ d[2] ^ d[3];
	}
	return xm_vip_filter_test(fold, xm_pkt_dport(p), p->proto);
}

/*
 * True when the frame is plainly not for a VIP: untagged IPv4 without options and not a fragment, or
 * untagged IPv6 without extension headers, carrying TCP or UDP to an address:port whose pre-filter bit is
 * clear. Reads only fixed offsets, so most of the uplink's traffic leaves before the full parse (a third
 * of the non-VIP cost). Anything else (VLAN, options, fragments, tunnels, short frames) takes the full
 * parse, which validates it and counts it. A frame judged here is passed untouched, so what lies beyond
 * its headers does not matter.
 */
static __always_inline bool xm_plainly_not_vip(void *data, void *end)
{
	const __u8 *b = data;

	if (data + XM_ETH_HLEN + sizeof(struct ipv6hdr) + 4 <= end &&
	    *(const __u16 *)(b + 12) == bpf_htons(XM_ETH_P_IPV6)) {
		const struct ipv6hdr *ip6h = data + XM_ETH_HLEN;
		const __u32 *d = (const __u32 *)&ip6h->daddr;
		const __u16 *ports = (const __u16 *)(ip6h + 1);

		return (ip6h->nexthdr == IPPROTO_TCP || ip6h->nexthdr == IPPROTO_UDP) &&
		       !xm_vip_filter_test(d[0] ^ d[1] ^ d[2] ^ d[3], ports[1], ip6h->nexthdr);
	}
	if (data + XM_ETH_HLEN + sizeof(struct iphdr) + 4 <= end &&
	    *(const __u16 *)(b + 12) == bpf_htons(XM_ETH_P_IP)) {
		const struct iphdr *iph = data + XM_ETH_HLEN;
		const __u16 *ports = (const __u16 *)(iph + 1);

		return b[XM_ETH_HLEN] == 0x45 && !(iph->frag_off & bpf_htons(XM_IP_MF_OFFSET)) &&
		       (iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP) &&
		       !xm_vip_filter_test(iph->daddr, ports[1], iph->protocol);
	}
	return false;
}

static __always_inline struct xm_backend *xm_backend_get(__u32 id, __u8 family)
{
	struct xm_backend *be = id ? bpf_map_lookup_elem(&xm_backends, &id) : NULL;

	return be && be->family == family ? be : NULL;
}

struct xm_local_probe {
	__u32 table_id;
	__u32 count;
	__u32 slot;
	__u32 found;
	__u8 family;
};

static long xm_local_probe_step(__u32 i, void *arg)
{
	struct xm_local_probe *c = arg;
	__u32 table_id = c->table_id, slot = c->slot;
	struct xm_slot_value *v;
	struct xm_backend *be;
	void *table;

	table = bpf_map_lookup_elem(&xm_maglev, &table_id);
	if (!table)
		return 1;
	v = bpf_map_lookup_elem(table, &slot);
	if (v) {
		be = xm_backend_get(v->backend_id, c->family);
		if (be && (be->flags & XM_BACKEND_F_LOCAL)) {
			c->found = v->backend_id;
			return 1;
		}
	}
	c->slot = slot + 1 < c->count ? slot + 1 : 0;
	return 0;
}

/*
 * A decapsulating node serves only local backends. Its table normally agrees with the sender's (same
 * config, same Maglev), so the first slot is local. If not, it walks the table from the flow's slot until a
 * local backend: deterministic for the flow, found whenever one exists, and expected 1/(local share) steps
 * (Maglev spreads every backend over the whole table). New flows only: the connection table pins the result.
 */
static __always_inline __u32 xm_pick_local(const struct xm_svc_value *svc, __u32 hash, __u8 family)
{
	struct xm_local_probe c = {
		.table_id = svc->table_id, .count = svc->count, .slot = hash % svc->count, .family = family
	};

	if (svc->count > XM_MAGLEV_MAX_SIZE)
		return 0;
	bpf_loop(svc->count, xm_local_probe_step, &c, 0);
	return c.found;
}

static __always_inline bool xm_nexthop_is(const struct xm_nexthop *nh, const union xm_addr *node, __u8 family)
{
	return nh->family == family && (nh->flags & XM_NEXTHOP_F_VALID) &&
	       !((nh->node.v6[0] ^ node->v6[0]) | (nh->node.v6[1] ^ node->v6[1]) | (nh->node.v6[2] ^ node->v6[2]) |
		 (nh->node.v6[3] ^ node->v6[3]));
}

/*
 * The agent's resolved next hop towards the node (xm_nexthops) when it can carry this packet: received on
 * the next hop's uplink (so XDP_TX, and the same outer source as the FIB path would take), outer packet
 * within the route MTU. NULL: the FIB path decides (no entry, another uplink, too big: ICMP, no neighbour).
 */
static __always_inline const struct xm_nexthop *xm_nexthop_get(const union xm_addr *node, __u8 family, __u32 ifindex,
							       __u32 outer_len)
{
	__u32 slot = xm_nexthop_slot(node, family);
	const struct xm_nexthop *nh = bpf_map_lookup_elem(&xm_nexthops, &slot);

	if (nh && !xm_nexthop_is(nh, node, family)) {
		slot ^= 1;
		nh = bpf_map_lookup_elem(&xm_nexthops, &slot);
		if (nh && !xm_nexthop_is(nh, node, family))
			nh = NULL;
	}
	return nh && nh->ifindex == ifindex && outer_len <= nh->mtu ? nh : NULL;
}

/* Encapsulates towards the backend's node and transmits. Returns the XDP verdict. */
static __always_inline int xm_xdp_encap(struct xdp_md *ctx, struct xm_pkt *p, const union xm_addr *node_addr,
					__u32 hash, __u32 svc_id, bool new_flow)
{
	__u32 ifindex = ctx->ingress_ifindex, hdr_len, pkt_len;
	struct bpf_fib_lookup *fib;
	const struct xm_nexthop *nh;
	struct xm_xdp_scratch *scr;
	struct xm_xdp_iface *ifc;
	const union xm_addr *src;
	int rc;

	pkt_len = p->l2_len + p->l3_len; /* before the outer header; Ethernet padding not counted */
	hdr_len = p->family == XM_FAMILY_V4 ? XM_IPV4_HLEN : XM_IPV6_HLEN;
	nh = xm_nexthop_get(node_addr, p->family, ifindex, p->l3_len + hdr_len);
	if (nh) {
		/* The fast path: no interface or FIB lookup. */
		if (p->family == XM_FAMILY_V4)
			rc = xm_encap_ipip(ctx, p, &nh->src, node_addr, nh->dmac, nh->smac);
		else
			rc = xm_encap_ip6ip6(ctx, p, &nh->src, node_addr, nh->dmac, nh->smac, hash);
		if (rc) {
			xm_xdp_stat(XM_XDP_DROP_ERROR);
			return XDP_DROP;
		}
		xm_xdp_stat(XM_XDP_TX_ENCAP);
		xm_vip_count(svc_id, XM_VIP_REMOTE, new_flow, pkt_len);
		return XDP_TX;
	}
	ifc = bpf_map_lookup_elem(&xm_xdp_ifaces, &ifindex);
	src = ifc ? (p->family == XM_FAMILY_V4 ? &ifc->addr4 : &ifc->addr6) : NULL;
	if (!src || !(node_addr->v6[0] | node_addr->v6[1] | node_addr->v6[2] | node_addr->v6[3]) ||
	    !(src->v6[0] | src->v6[1] | src->v6[2] | src->v6[3])) {
		xm_xdp_stat(XM_XDP_DROP_NO_ROUTE);
		xm_vip_count(svc_id, XM_VIP_DROP, new_flow, 0);
		return XDP_DROP;
	}
	/* Off the stack: with xm_xdp_serve_slow's frame, the entry's would pass 512 bytes. */
	rc = 0;
	scr = bpf_map_lookup_elem(&xm_xdp_scratch, &rc);
	if (!scr) {
		xm_xdp_stat(XM_XDP_DROP_ERROR);
		return XDP_DROP;
	}
	fib = &scr->fib;
	rc = xm_fib_to_node(ctx, fib, p->family, src, node_addr, p->l3_len + hdr_len);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* XDP cannot queue it while ARP/ND runs, and the kernel cannot route a VIP: passed, it came back to
		 * the client as ICMP unreachable, which aborts a connecting socket. Dropped, the client
		 * retransmits while the kernel resolves the managed entry the agent keeps for each remote node. */
		xm_xdp_stat(XM_XDP_DROP_NO_NEIGH);
		xm_vip_count(svc_id, XM_VIP_DROP, new_flow, 0);
		return XDP_DROP;
	}
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* Tell the client (PMTU discovery) instead of black-holing it; never forwarded: a per-VIP drop. */
		rc = xm_icmp_too_big(ctx, p, fib->mtu_result, hdr_len);
		xm_xdp_stat(rc == XM_ICMP_SENT	     ? XM_XDP_TX_ICMP_TOO_BIG
			    : rc == XM_ICMP_NOT_SENT ? XM_XDP_DROP_TOO_BIG
						     : XM_XDP_DROP_ERROR);
		xm_vip_count(svc_id, XM_VIP_DROP, new_flow, 0);
		return rc == XM_ICMP_SENT ? XDP_TX : XDP_DROP;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		xm_xdp_stat(XM_XDP_DROP_NO_ROUTE);
		xm_vip_count(svc_id, XM_VIP_DROP, new_flow, 0);
		return XDP_DROP;
	}
	if (p->family == XM_FAMILY_V4)
		rc = xm_encap_ipip(ctx, p, src, node_addr, fib->dmac, fib->smac);
	else
		rc = xm_encap_ip6ip6(ctx, p, src, node_addr, fib->dmac, fib->smac, hash);
	if (rc) {
		xm_xdp_stat(XM_XDP_DROP_ERROR);
		return XDP_DROP;
	}
	xm_xdp_stat(XM_XDP_TX_ENCAP);
	xm_vip_count(svc_id, XM_VIP_REMOTE, new_flow, pkt_len);
	if (fib->ifindex != ifindex)
		return bpf_redirect(fib->ifindex, 0);
	return XDP_TX;
}

/* DNAT to the flow's local backend; the kernel delivers it. */
static __always_inline int xm_xdp_dnat_local(struct xdp_md *ctx, struct xm_pkt *p, const struct xm_ct_value *ct,
					     bool new_flow)
{
	__u32 svc_id = ct->svc_id;

	if (xm_dnat(p, (void *)(long)ctx->data_end, &ct->addr, ct->port)) {
		xm_xdp_stat(XM_XDP_DROP_ERROR);
		return XDP_DROP;
	}
	xm_vip_count(svc_id, XM_VIP_LOCAL, new_flow, p->l2_len + p->l3_len);
	return XDP_PASS;
}

/* Forwards a packet of a pinned flow: DNAT to a local backend, or encapsulation to its node. */
static __always_inline int xm_xdp_forward(struct xdp_md *ctx, struct xm_pkt *p, const struct xm_ct_key *ck,
					  const struct xm_ct_value *ct, bool new_flow)
{
	if (ct->flags & XM_BACKEND_F_LOCAL)
		return xm_xdp_dnat_local(ctx, p, ct, new_flow);
	return xm_xdp_encap(ctx, p, &ct->node_addr, xm_flow_hash(ck), ct->svc_id, new_flow);
}

/* The external service port a flow is addressed to, or NULL (not a VIP, or a ClusterIP-only port). */
static __always_inline struct xm_svc_value *xm_ext_service(const struct xm_ct_key *ck)
{
	struct xm_svc_key sk;
	struct xm_svc_value *svc;

	sk.vip = ck->daddr;
	sk.port = ck->dport;
	sk.proto = ck->proto;
	sk.family = ck->family;
	svc = bpf_map_lookup_elem(&xm_services, &sk);
	return svc && (svc->flags & XM_SVC_F_EXTERNAL) ? svc : NULL;
}

#define XM_SERVE_DECAPPED  1
#define XM_SERVE_FROM_NODE 2
#define XM_SERVE_NO_FLOW   4 /* the caller's lookup found no entry: not looked up again (new flows) */

/* xm_xdp_serve_slow's answers (not XDP verdicts): forward as its scratch says, a new flow or a pinned one. */
#define XM_FORWARD_NEW	  -2
#define XM_FORWARD_PINNED -3

/*
 * Everything but a connection-table hit: the service, the pinned backend if it still exists, else Maglev,
 * and the new entry. how: XM_SERVE_*. A decapsulated packet whose outer source is no node (!from_node) is
 * dropped when it is for a VIP: it is nobody's to hand over. Returns an XDP verdict, XM_NOT_VIP, or
 * XM_FORWARD_*: the flow's key and entry are in the per-CPU scratch, for xm_xdp_forward_slow.
 *
 * A global function, so the verifier checks it once (decapped and from_node unknown) instead of once per
 * way in, with its forward (one more global function) checked once instead of at each place that forwards:
 * most of xm_xdp_lb's verification (docs/xdp.md "Verifier cost"). The packet crosses as offsets (6.1's
 * global functions take no packet pointers, nor map values: the flow is looked up again; new flows and
 * SYNs only come here).
 */
__noinline int xm_xdp_serve_slow(struct xdp_md *ctx, const struct xm_pkt_loc *loc, __u32 how)
{
	const bool decapped = how & XM_SERVE_DECAPPED, from_node = how & XM_SERVE_FROM_NODE;
	struct xm_xdp_scratch *scr;
	struct xm_ct_value *ct, *snap;
	struct xm_svc_value *svc;
	struct xm_backend *be = NULL;
	struct xm_ct_key *ck;
	struct xm_pkt p;
	__u32 backend_id = 0, hash, state = XM_CT_NONE, zero = 0;

	scr = bpf_map_lookup_elem(&xm_xdp_scratch, &zero);
	if (!scr || !loc || xm_pkt_at(ctx, loc, &p)) {
		xm_xdp_stat(XM_XDP_DROP_ERROR);
		return XDP_DROP;
	}
	ck = &scr->ck;
	snap = &scr->snap;
	xm_ct_key_of(&p, ck);
	if (decapped && !from_node) {
		/* Before the connection table: a spoofed packet must neither use nor create a flow. */
		svc = xm_ext_service(ck);
		if (!svc)
			return XM_NOT_VIP;
		xm_xdp_stat(XM_XDP_DROP_TUNNEL_SOURCE);
		return XDP_DROP;
	}
	ct = how & XM_SERVE_NO_FLOW ? NULL : xm_ct_lookup(ck);
	svc = xm_ext_service(ck);
	if (!svc)
		return XM_NOT_VIP;

	/*
	 * A pinned flow keeps its backend while that backend exists (and, decapsulated, is local) and, for a
	 * SYN (only SYNs of pinned flows get here), is not ejected: a retransmitted SYN may be the event that
	 * ejects it, and then goes elsewhere at once.
	 */
	if (ct) {
		backend_id = ct->backend_id;
		state = ct->state;
		be = xm_backend_get(backend_id, ck->family);
		if (be && decapped && !(be->flags & XM_BACKEND_F_LOCAL))
			be = NULL;
		if (be && (p.tcp_flags & XM_TCP_SYN)) {
			state = xm_flow_syn(ct);
			if ((svc->flags & XM_SVC_F_OUTLIER) &&
			    xm_endpoint_ejected(xm_outlier_id(svc->svc_id), backend_id, bpf_ktime_get_ns()))
				be = NULL;
		}
		if (be && ct->flags == be->flags && ct->svc_id == svc->svc_id) {
			xm_xdp_stat(XM_XDP_CT_HIT);
			*snap = *ct;
			return XM_FORWARD_PINNED;
		}
	}
	if (!be) {
		hash = xm_flow_hash(ck);
		backend_id = svc->count ? xm_pick_maglev(svc, hash) : 0;
		be = xm_backend_get(backend_id, ck->family);
		if (be && decapped && !(be->flags & XM_BACKEND_F_LOCAL)) {
			backend_id = xm_pick_local(svc, hash, ck->family);
			be = xm_backend_get(backend_id, ck->family);
			if (!be) {
				xm_xdp_stat(XM_XDP_DROP_NO_LOCAL);
				xm_vip_count(svc->svc_id, XM_VIP_DROP, true, 0);
				return XDP_DROP;
			}
		}
		if (!be) {
			xm_xdp_stat(XM_XDP_DROP_NO_BACKEND);
			xm_vip_count(svc->svc_id, XM_VIP_DROP, true, 0);
			return XDP_DROP;
		}
		xm_xdp_stat(XM_XDP_CT_NEW);
		if (p.proto == IPPROTO_TCP && !(p.tcp_flags & XM_TCP_SYN))
			xm_xdp_stat(XM_XDP_CT_NEW_NON_SYN);
		state = p.proto == IPPROTO_TCP && (p.tcp_flags & XM_TCP_SYN) ? XM_CT_SYN_SENT : XM_CT_NONE;
	}
	xm_ct_insert(ck, backend_id, svc->svc_id, be, state, snap);
	if (p.proto == IPPROTO_TCP && !(p.tcp_flags & XM_TCP_SYN))
		xm_flow_count_request(&p, snap); /* a TCP flow first seen mid-stream: its bytes count */
	if (be->flags & XM_BACKEND_F_LOCAL)
		xm_xdp_stat(XM_XDP_DNAT_LOCAL);
	return ct ? XM_FORWARD_PINNED : XM_FORWARD_NEW;
}

/*
 * Forwards what xm_xdp_serve_slow left in the scratch. Global too (verified once), and called by the entry
 * after it rather than from it: nested, the frames would pass the 512 bytes of BPF stack.
 */
__noinline int xm_xdp_forward_slow(struct xdp_md *ctx, const struct xm_pkt_loc *loc, __u32 new_flow)
{
	struct xm_xdp_scratch *scr;
	struct xm_pkt p;
	__u32 zero = 0;

	scr = bpf_map_lookup_elem(&xm_xdp_scratch, &zero);
	if (!scr || !loc || xm_pkt_at(ctx, loc, &p)) {
		xm_xdp_stat(XM_XDP_DROP_ERROR);
		return XDP_DROP;
	}
	return xm_xdp_forward(ctx, &p, &scr->ck, &scr->snap, new_flow);
}

/*
 * Balances a parsed TCP/UDP packet whose destination may be an external VIP. decapped: it came out of a
 * tunnel from another node, so only a local backend may serve it. Returns an XDP verdict, or XM_NOT_VIP.
 *
 * Inline, the hot path: a known flow (no SYN; decapsulated, pinned to a local backend) is forwarded from
 * its connection-table entry, with no other lookup and no call. Everything else: xm_xdp_serve_slow.
 */
static __always_inline int xm_xdp_serve(struct xdp_md *ctx, struct xm_pkt *p, const bool decapped, bool from_node)
{
	struct xm_ct_value *ct = NULL;
	struct xm_pkt_loc loc;
	struct xm_ct_key ck;
	__u32 how;
	int rc;

	if (!decapped || from_node) {
		xm_ct_key_of(p, &ck);
		ct = xm_ct_lookup(&ck);
		if (ct && !(p->tcp_flags & XM_TCP_SYN)) {
			if (!decapped) {
				xm_flow_from_client(p, ct);
				return xm_xdp_forward(ctx, p, &ck, ct, false);
			}
			if (ct->flags & XM_BACKEND_F_LOCAL) {
				xm_flow_from_client(p, ct);
				return xm_xdp_dnat_local(ctx, p, ct, false);
			}
		}
	}
	xm_pkt_loc_of(p, (void *)(long)ctx->data, &loc);
	how = (ct ? 0 : XM_SERVE_NO_FLOW) | (decapped ? XM_SERVE_DECAPPED : 0) | (from_node ? XM_SERVE_FROM_NODE : 0);
	rc = xm_xdp_serve_slow(ctx, &loc, how);
	if (rc == XM_FORWARD_NEW || rc == XM_FORWARD_PINNED)
		return xm_xdp_forward_slow(ctx, &loc, rc == XM_FORWARD_NEW);
	return rc;
}

/* The outer source of an encapsulated packet is one of the cluster's nodes (xm_node_addrs). */
static __always_inline bool xm_from_node(const struct xm_pkt *outer)
{
	struct xm_node_addr_key nk = {};

	if (outer->family == XM_FAMILY_V4) {
		nk.addr.v4 = ((const struct iphdr *)outer->l3)->saddr;
	} else {
		const __u32 *s = (const __u32 *)&((const struct ipv6hdr *)outer->l3)->saddr;

		nk.addr.v6[0] = s[0];
		nk.addr.v6[1] = s[1];
		nk.addr.v6[2] = s[2];
		nk.addr.v6[3] = s[3];
	}
	nk.family = outer->family;
	return bpf_map_lookup_elem(&xm_node_addrs, &nk) != NULL;
}

/* IPIP / IP6IP6 addressed to this uplink: serve the inner packet locally, or pass the original untouched. */
static __always_inline int xm_xdp_tunnel(struct xdp_md *ctx, struct xm_pkt *outer, void *end)
{
	__u32 ifindex = ctx->ingress_ifindex, l2_len = outer->l2_len, hdr_len = outer->l3_hlen;
	struct xm_xdp_iface *ifc;
	struct xm_pkt in;
	int rc;

	if (outer->family == XM_FAMILY_V4 ? outer->proto != XM_IPPROTO_IPIP : outer->proto != XM_IPPROTO_IPV6)
		return XDP_PASS;
	ifc = bpf_map_lookup_elem(&xm_xdp_ifaces, &ifindex);
	if (!ifc)
		return XDP_PASS;
	if (outer->family == XM_FAMILY_V4) {
		if (((struct iphdr *)outer->l3)->daddr != ifc->addr4.v4 || !ifc->addr4.v4)
			return XDP_PASS;
		rc = xm_parse_ipv4(&in, outer->l4, end, false);
	} else {
		const __u32 *d = (const __u32 *)&((const struct ipv6hdr *)outer->l3)->daddr;

		if (((d[0] ^ ifc->addr6.v6[0]) | (d[1] ^ ifc->addr6.v6[1]) | (d[2] ^ ifc->addr6.v6[2]) |
		     (d[3] ^ ifc->addr6.v6[3])) ||
		    !ifc->addr6.v6[0])
			return XDP_PASS;
		rc = xm_parse_ipv6(&in, outer->l4, end, false);
	}
	if (rc != XM_PARSE_OK || in.l3_len > outer->l3_len - hdr_len || !xm_vip_maybe(&in))
		return XDP_PASS;
	in.l2_len = l2_len;
	rc = xm_xdp_serve(ctx, &in, true, xm_from_node(outer));
	if (rc == XM_NOT_VIP)
		return XDP_PASS;
	if (rc != XDP_PASS)
		return rc; /* dropped: nothing local can serve it */
	/* DNAT done in place: strip the outer header so the kernel sees client → pod. */
	if (xm_decap(ctx, l2_len, hdr_len)) {
		xm_xdp_stat(XM_XDP_DROP_ERROR);
		return XDP_DROP;
	}
	xm_xdp_stat(XM_XDP_DECAP);
	return XDP_PASS;
}

static __always_inline int xm_xdp_balance(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct xm_pkt p;
	int rc;

	if (xm_plainly_not_vip(data, end))
		return XDP_PASS; /* the fast path: not for a VIP */
	rc = xm_parse(&p, data, end, false);
	if (rc == XM_PARSE_OK) {
		if (!xm_vip_maybe(&p))
			return XDP_PASS; /* not for a VIP (tagged, IPv4 options) */
		rc = xm_xdp_serve(ctx, &p, false, true);
		if (rc == XM_NOT_VIP) {
			xm_xdp_stat(XM_XDP_PASS_NOT_VIP);
			return XDP_PASS;
		}
		return rc;
	}
	switch (rc) {
	case XM_PARSE_OTHER_L4:
		return xm_xdp_tunnel(ctx, &p, end);
	case XM_PARSE_MALFORMED:
		xm_xdp_stat(XM_XDP_PASS_MALFORMED);
		break;
	case XM_PARSE_FRAGMENT:
		xm_xdp_stat(XM_XDP_PASS_FRAGMENT);
		break;
	case XM_PARSE_EXT_HDR:
		xm_xdp_stat(XM_XDP_PASS_IPV6_EXT);
		break;
	default:
		xm_xdp_stat(XM_XDP_PASS_NOT_IP);
		break;
	}
	return XDP_PASS;
}

#endif
