/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE client-side capture for the socket LB (ABI: include/xmesh/hbone.h): where the agent's outbound tunnel
 * listener is, which remote pod addresses are tunnelled, and the real destination of each connection sent to
 * the listener, keyed by the 4-tuple the kernel assigned (written by sockops before the SYN leaves).
 */
#ifndef XMESH_BPF_HBONE_CAPTURE_H
#define XMESH_BPF_HBONE_CAPTURE_H

#include <xmesh/hbone.h>

#include "l7_capture.h"

/* Same layout as xm_l7_proxy; zero (a fresh map) captures nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xm_l7_proxy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_hbone_proxy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_HBONE_DSTS);
	__type(key, struct xm_mtls_key);
	__type(value, struct xm_mtls_policy);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_hbone_dsts SEC(".maps");

/* LRU: an entry the agent never takes (the SYN failed, the listener refused) ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XM_MAX_HBONE_ORIGDST);
	__type(key, struct xm_l7_origdst_key);
	__type(value, struct xm_hbone_origdst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_hbone_origdst SEC(".maps");

/* The outbound listener when one is set for this family, else NULL. One array lookup. */
static __always_inline const struct xm_l7_proxy *xm_hbone_proxy_for(__u8 family)
{
	return xm_capture_listener_for(&xm_hbone_proxy, family);
}

/*
 * Whether a TCP connection to address a of this family, port (network order) goes through the tunnel: the
 * address is a pod of another node ((a, port), else (a, 0) in xm_hbone_dsts) whose mode is not DISABLE.
 * 15008 never.
 */
static __always_inline bool xm_hbone_tunnelled(const union xm_addr *a, __u8 family, __u16 port)
{
	const struct xm_mtls_policy *pol;
	struct xm_mtls_key k;

	if (port == bpf_htons(XM_HBONE_INBOUND_PORT))
		return false;
	__builtin_memset(&k, 0, sizeof(k));
	k.addr = *a;
	k.family = family;
	k.port = bpf_ntohs(port);
	pol = bpf_map_lookup_elem(&xm_hbone_dsts, &k);
	if (!pol) {
		k.port = 0;
		pol = bpf_map_lookup_elem(&xm_hbone_dsts, &k);
	}
	return pol && pol->mode != XM_MTLS_MODE_DISABLE;
}

/*
 * At BPF_SOCK_OPS_TCP_CONNECT_CB of a socket sent to the listener: records where it really goes (the backend
 * the socket LB chose, or the pod dialed) and what it dialed under its 4-tuple, before the SYN leaves.
 */
static __always_inline void xm_hbone_record_origdst(struct bpf_sock_ops *skops, const struct xm_sock_state *st)
{
	struct xm_l7_origdst_key k;
	struct xm_hbone_origdst v;

	/* The 4-tuple's family is the dial's (a v4-mapped dial is IPv4 both on the wire and in st). */
	if (!xm_l7_key_of(skops, &k) || k.family != st->family) {
		xm_map_error(XM_MAPERR_HBONE_ORIGDST);
		return;
	}
	__builtin_memset(&v, 0, sizeof(v));
	if (st->backend_id) {
		__u32 id = st->backend_id;
		const struct xm_backend *be = bpf_map_lookup_elem(&xm_backends, &id);

		/* Gone between connect and here (an apply removed it): no destination, the agent refuses. */
		if (!be || be->family != st->family) {
			xm_map_error(XM_MAPERR_HBONE_ORIGDST);
			return;
		}
		v.target = be->addr;
		v.tport = be->port;
	} else {
		v.target = st->vip;
		v.tport = st->vport;
	}
	v.vip = st->vip;
	v.vport = st->vport;
	v.family = st->family;
	v.svc_id = st->svc_id;
	v.netns = bpf_get_netns_cookie(skops);
	/* BPF_ANY: a 4-tuple is unique among live connections, so an entry under it is a closed one's leftover. */
	if (bpf_map_update_elem(&xm_hbone_origdst, &k, &v, BPF_ANY))
		xm_map_error(XM_MAPERR_HBONE_ORIGDST);
}

#endif
