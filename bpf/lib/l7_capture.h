/* SPDX-License-Identifier: Apache-2.0 */
/*
 * L7 capture for the socket LB: where the agent's HTTP proxy listens, and the original destination of each
 * connection sent there, keyed by the 4-tuple the kernel assigned (written by sockops before the SYN leaves).
 */
#ifndef XMESH_BPF_L7_CAPTURE_H
#define XMESH_BPF_L7_CAPTURE_H

#include <xmesh/l7.h>

#include "sock_maps.h"

#define XM_L7_AF_INET  2
#define XM_L7_AF_INET6 10

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xm_l7_proxy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_l7_proxy SEC(".maps");

/* LRU: an entry the proxy never takes (it refused, or the SYN failed) ages out instead of filling the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XM_MAX_L7_ORIGDST);
	__type(key, struct xm_l7_origdst_key);
	__type(value, struct xm_l7_origdst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_l7_origdst SEC(".maps");

/*
 * The listener a one-entry xm_l7_proxy array (the L7 proxy's, the tunnel's) holds for this family, or NULL
 * when it holds none for it. One array lookup.
 */
static __always_inline const struct xm_l7_proxy *xm_capture_listener_for(void *proxy_map, __u8 family)
{
	const struct xm_l7_proxy *p;
	__u32 zero = 0;

	p = bpf_map_lookup_elem(proxy_map, &zero);
	if (!p || !p->port)
		return NULL;
	if (family == XM_FAMILY_V4 && (p->flags & XM_L7_PROXY_F_V4))
		return p;
	if (family == XM_FAMILY_V6 && (p->flags & XM_L7_PROXY_F_V6))
		return p;
	return NULL;
}

/* The proxy for a service of this family, or NULL when none is configured for it. */
static __always_inline const struct xm_l7_proxy *xm_l7_proxy_for(__u8 family)
{
	return xm_capture_listener_for(&xm_l7_proxy, family);
}

static __always_inline bool xm_l7_v4_mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/* sockops' remote_port: the network-order port in the upper half on some kernels, a 16-bit value on others. */
static __always_inline __u16 xm_l7_remote_port_n(__u32 raw)
{
	return raw > 0xffff ? (__u16)(raw >> 16) : (__u16)raw;
}

/*
 * The origdst key of a connecting socket (client = local, proxy = remote); false for a family that is not
 * TCP/IP. local_port is in host order in the context, remote_port in network order.
 */
static __always_inline bool xm_l7_key_of(struct bpf_sock_ops *skops, struct xm_l7_origdst_key *k)
{
	__u32 l6[4], r6[4];

	__builtin_memset(k, 0, sizeof(*k));
	k->client_port = bpf_htons((__u16)skops->local_port);
	k->proxy_port = xm_l7_remote_port_n(skops->remote_port);
	if (skops->family == XM_L7_AF_INET) {
		k->family = XM_FAMILY_V4;
		k->client.v4 = skops->local_ip4;
		k->proxy.v4 = skops->remote_ip4;
		return true;
	}
	if (skops->family != XM_L7_AF_INET6)
		return false;
	l6[0] = skops->local_ip6[0];
	l6[1] = skops->local_ip6[1];
	l6[2] = skops->local_ip6[2];
	l6[3] = skops->local_ip6[3];
	r6[0] = skops->remote_ip6[0];
	r6[1] = skops->remote_ip6[1];
	r6[2] = skops->remote_ip6[2];
	r6[3] = skops->remote_ip6[3];
	/* A dual-stack socket dialing an IPv4 service: on the wire, and at the proxy, this is IPv4. */
	if (xm_l7_v4_mapped(r6)) {
		k->family = XM_FAMILY_V4;
		k->client.v4 = l6[3];
		k->proxy.v4 = r6[3];
		return true;
	}
	k->family = XM_FAMILY_V6;
	__builtin_memcpy(k->client.v6, l6, sizeof(l6));
	__builtin_memcpy(k->proxy.v6, r6, sizeof(r6));
	return true;
}

/*
 * At BPF_SOCK_OPS_TCP_CONNECT_CB of a captured socket (source address and port assigned, SYN not sent yet):
 * records what it dialed under its 4-tuple, so the entry exists before the proxy can accept the connection.
 */
static __always_inline void xm_l7_record_origdst(struct bpf_sock_ops *skops, const struct xm_sock_state *st)
{
	struct xm_l7_origdst_key k;
	struct xm_l7_origdst v;

	if (!xm_l7_key_of(skops, &k)) {
		xm_map_error(XM_MAPERR_L7_ORIGDST);
		return;
	}
	__builtin_memset(&v, 0, sizeof(v));
	v.vip = st->vip;
	v.vport = st->vport;
	v.family = st->family;
	v.svc_id = st->svc_id;
	v.netns = bpf_get_netns_cookie(skops);
	/* BPF_ANY: a 4-tuple is unique among live connections, so an entry under it is a closed one's leftover. */
	if (bpf_map_update_elem(&xm_l7_origdst, &k, &v, BPF_ANY))
		xm_map_error(XM_MAPERR_L7_ORIGDST);
}

#endif
