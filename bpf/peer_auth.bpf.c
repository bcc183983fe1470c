// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * PeerAuthentication STRICT and plaintext AuthorizationPolicy in the kernel: TC egress on each local pod's
 * host-side veth, where every packet bound for the pod passes once (from the uplink, from other pods, from the
 * node itself). Only a TCP SYN (without ACK) is judged, never one carrying the agent's mark (its tunnel
 * termination, XM_MTLS_AGENT_MARK: the tunnel checked the peer's identity and the policies), and nothing the
 * node itself sent (its processes, the kubelet's probes, hostNetwork pods: Istio ambient leaves host traffic
 * out of ztunnel, for STRICT and the policies alike):
 *   1. STRICT: a SYN to a STRICT (pod IP, port) is answered with a reset unless it comes from a mesh pod of
 *      this node (same-node traffic stays on the sockmap path); counted in xm_mtls_rejected.
 *   2. AuthorizationPolicy, as ztunnel's inbound passthrough judges a client without an identity: a SYN that
 *      STRICT let through, not sent by the node itself, is looked up in xm_authz_plain by (pod, port, client);
 *      a denying entry answers it with the same reset, counted in xm_authz_plain_denied by policy.
 * PERMISSIVE and DISABLE ports without denying entries, and everything but TCP, pass untouched. docs/mtls.md.
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
	const struct xm_authz_plain_verdict *v;
	const struct xm_mtls_policy *pol;
	struct xm_mtls_key k = {};
	union xm_addr saddr = {};
	struct xm_pkt p = {};
	int res, local = -1; /* from a mesh pod of this node: -1 until asked */
	__u16 dport;

	/*
	 * Sent by the node itself: no ingress interface (a forwarded packet keeps the one it arrived on). Istio
	 * ambient's CNI lets the host's traffic to pods bypass ztunnel (kubelet's probes must reach a STRICT pod),
	 * so neither STRICT nor AuthorizationPolicy judges it. The agent's own connections are among these; its
	 * mark is checked as well, first, for the same verdict.
	 */
	if (skb->mark == XM_MTLS_AGENT_MARK || !skb->ingress_ifindex)
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
	/*
	 * STRICT first, the policies after: a SYN both would refuse gets the same reset and counts as STRICT's
	 * (xm_mtls_rejected), the more basic reason (plaintext at all). istiod hands STRICT to ztunnel as one more
	 * DENY policy, so ztunnel has no order between them. A same-node mesh pod passes STRICT; the policies still
	 * judge it (deny_local).
	 */
	if (pol && pol->mode == XM_MTLS_MODE_STRICT) {
		local = xm_mtls_from_local_pod(skb, &saddr, p.family);
		if (!local) {
			xm_mtls_count(&k, dport, false);
			return xm_mtls_reset(skb, &p, data, end);
		}
	}
	v = xm_authz_plain_lookup(&saddr, &k.addr, p.family, dport);
	if (!v)
		return XM_TC_ACT_OK;
	if (local < 0)
		local = xm_mtls_from_local_pod(skb, &saddr, p.family);
	if (!(local ? v->deny_local : v->deny))
		return XM_TC_ACT_OK;
	xm_authz_plain_count(&k.addr, p.family, dport, local ? v->policy_local : v->policy);
	return xm_mtls_reset(skb, &p, data, end);
}
