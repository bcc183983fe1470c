// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * PeerAuthentication STRICT in the kernel: TC egress on each local pod's host-side veth, where every packet
 * bound for the pod passes once (from the uplink, from other pods, from the node itself). A TCP SYN to a
 * STRICT (pod IP, port) is answered with a reset unless it carries the agent's mark (its tunnel termination,
 * XM_MTLS_AGENT_MARK) or from a mesh pod of this node (same-node traffic stays on the sockmap path); PERMISSIVE
 * and DISABLE ports, and everything but TCP, pass untouched. docs/mtls.md.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/csum.h"
#include "lib/peer_auth.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* A TCP packet whose header the program cannot see (fragment, IPv6 extension chain) to a pod with STRICT ports. */
static __always_inline int xm_mtls_hidden_header(struct xm_mtls_key *k, const struct xm_pkt *p)
{
	const struct xm_mtls_policy *pol;

	/* An IPv4 fragment says its protocol; an IPv6 chain may end in anything: both are judged by the pod. */
	if (p->family == XM_FAMILY_V4 && p->proto != IPPROTO_TCP)
		return XM_TC_ACT_OK;
	k->port = 0;
	pol = bpf_map_lookup_elem(&xm_mtls_policy, k);
	if (!pol || !(pol->flags & XM_MTLS_F_ANY_STRICT))
		return XM_TC_ACT_OK;
	xm_mtls_count(k, 0, true);
	return XM_TC_ACT_SHOT;
}

SEC("tc")
int xm_peer_auth(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	const struct xm_mtls_policy *pol;
	struct xm_mtls_key k = {};
	union xm_addr saddr = {};
	struct xm_pkt p = {};
	__u16 dport;
	int res;

	if (skb->mark == XM_MTLS_AGENT_MARK)
		return XM_TC_ACT_OK;
	res = xm_parse(&p, data, end, true);
	if (res == XM_PARSE_FRAGMENT || res == XM_PARSE_EXT_HDR) {
		xm_pkt_addrs(&p, &saddr, &k.addr);
		k.family = p.family;
		return xm_mtls_hidden_header(&k, &p);
	}
	/* Only a connection's first packet is judged: SYN without ACK. */
	if (res != XM_PARSE_OK || p.proto != IPPROTO_TCP || (p.tcp_flags & (XM_TCP_SYN | XM_TCP_ACK)) != XM_TCP_SYN)
		return XM_TC_ACT_OK;
	xm_pkt_addrs(&p, &saddr, &k.addr);
	k.family = p.family;
	dport = bpf_ntohs(xm_pkt_dport(&p));
	pol = xm_mtls_lookup(&k, dport);
	if (!pol || pol->mode != XM_MTLS_MODE_STRICT || xm_mtls_from_local_pod(skb, &saddr, p.family))
		return XM_TC_ACT_OK;
	xm_mtls_count(&k, dport, false);
	return xm_mtls_reset(skb, &p, data, end);
}
