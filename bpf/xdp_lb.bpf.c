// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * North-south load balancing of external VIPs: XDP on the node's uplinks (parse, connection table, Maglev,
 * DNAT to a local backend or IPIP/IP6IP6 to the backend's node, decapsulation of what other nodes send),
 * and TC egress on the same uplinks giving locally served replies the VIP as their source again.
 *
 * One object for both programs: they share the connection table (XDP writes, TC reads) and the agent loads,
 * attaches and replaces them together. docs/xdp.md describes every verdict.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/xdp_balance.h"

#define XM_TC_ACT_OK 0

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xm_xdp_lb(struct xdp_md *ctx)
{
	return xm_xdp_balance(ctx);
}

/*
 * The candidate VIP:port of a reply whose flow the connection table pins to this backend (and, in *flow,
 * that flow's entry), or NULL.
 */
static __always_inline const struct xm_nat_vip *xm_reply_vip(const struct xm_nat_backend_value *nb,
							     struct xm_ct_key *ck, const union xm_addr *backend,
							     __u16 backend_port, struct xm_ct_value **flow)
{
	for (__u32 i = 0; i < XM_NAT_MAX_VIPS; i++) {
		const struct xm_nat_vip *c = &nb->vips[i];
		struct xm_ct_value *ct;

		if (i >= nb->count)
			break;
		ck->daddr = c->vip;
		ck->dport = c->vport;
		ct = bpf_map_lookup_elem(&xm_ct, ck);
		if (ct && (ct->flags & XM_BACKEND_F_LOCAL) && ct->port == backend_port &&
		    !((ct->addr.v6[0] ^ backend->v6[0]) | (ct->addr.v6[1] ^ backend->v6[1]) |
		      (ct->addr.v6[2] ^ backend->v6[2]) | (ct->addr.v6[3] ^ backend->v6[3]))) {
			*flow = ct;
			return c;
		}
	}
	return NULL;
}

/*
 * Replies of locally DNATed flows, pod → client, leaving through the uplink: the source becomes VIP:port
 * again. A reply is recognised by its backend (xm_nat_backends) and its flow in the connection table, so
 * traffic of the same pod that did not come through a VIP (east-west, its own connections) is untouched.
 * skb checksum helpers, so CHECKSUM_PARTIAL packets (the pod's stack offloads) stay correct. The reply
 * also tells how the flow's handshake went, and counts as response bytes (bpf/lib/xdp_flow.h).
 */
SEC("tc")
int xm_tc_nat(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	const struct xm_nat_backend_value *nb;
	struct xm_nat_backend_key bk;
	const struct xm_nat_vip *vip;
	__u32 l3_off, l4_off, csum_off, flags;
	__u16 old_port, new_port;
	union xm_addr backend;
	struct xm_ct_value *flow = NULL;
	struct xm_ct_key ck;
	struct xm_pkt p;

	/* Headers only: a TCP sender's payload sits in page fragments, beyond data_end. */
	if (xm_parse(&p, data, end, true) != XM_PARSE_OK || p.l3_len > skb->len - (__u32)(p.l3 - data))
		return XM_TC_ACT_OK;
	xm_pkt_addrs(&p, &bk.addr, &ck.saddr);
	bk.port = xm_pkt_sport(&p);
	bk.proto = p.proto;
	bk.family = p.family;
	nb = bpf_map_lookup_elem(&xm_nat_backends, &bk);
	if (!nb)
		return XM_TC_ACT_OK;
	ck.sport = xm_pkt_dport(&p);
	ck.proto = p.proto;
	ck.family = p.family;
	ck.pad[0] = ck.pad[1] = 0;
	backend = bk.addr;
	vip = xm_reply_vip(nb, &ck, &backend, bk.port, &flow);
	if (!vip || !flow)
		return XM_TC_ACT_OK;

	l3_off = (__u32)(p.l3 - data);
	l4_off = (__u32)(p.l4 - data);
	/* Before the rewrite: the store helpers invalidate the packet pointers in p. */
	xm_flow_from_backend(&p, flow, skb->len - l4_off);
	csum_off = l4_off + (p.proto == IPPROTO_TCP ? __builtin_offsetof(struct tcphdr, check)
						    : __builtin_offsetof(struct udphdr, check));
	flags = p.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	old_port = bk.port;
	new_port = vip->vport;
	if (p.family == XM_FAMILY_V4) {
		__u32 old_ip = backend.v4, new_ip = vip->vip.v4;

		bpf_l4_csum_replace(skb, csum_off, old_ip, new_ip, flags | BPF_F_PSEUDO_HDR | 4);
		bpf_l3_csum_replace(skb, l3_off + __builtin_offsetof(struct iphdr, check), old_ip, new_ip, 4);
		bpf_skb_store_bytes(skb, l3_off + __builtin_offsetof(struct iphdr, saddr), &new_ip, 4, 0);
	} else {
		union xm_addr new_ip = vip->vip;
		__s64 diff = bpf_csum_diff(backend.v6, 16, new_ip.v6, 16, 0);

		bpf_l4_csum_replace(skb, csum_off, 0, (__u64)diff, flags | BPF_F_PSEUDO_HDR);
		bpf_skb_store_bytes(skb, l3_off + __builtin_offsetof(struct ipv6hdr, saddr), new_ip.v6, 16, 0);
	}
	bpf_l4_csum_replace(skb, csum_off, old_port, new_port, flags | 2);
	bpf_skb_store_bytes(skb, l4_off, &new_port, 2, 0); /* source port: first in TCP and UDP */
	xm_xdp_stat(XM_TC_REV_NAT);
	return XM_TC_ACT_OK;
}
