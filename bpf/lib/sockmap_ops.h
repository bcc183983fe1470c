/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sockmap's part of sockops and the socket keys it shares with sk_msg: used by sockmap.bpf.c (xm_sockmap_ops,
 * xm_sockmap_msg) and by the mesh cgroup's one program that also does the socket LB's part (mesh_ops.bpf.c).
 */
#ifndef XMESH_BPF_SOCKMAP_OPS_H
#define XMESH_BPF_SOCKMAP_OPS_H

#include <bpf/bpf_endian.h>

#include "sockmap_maps.h"

#define XM_AF_INET  2
#define XM_AF_INET6 10

/* One side of a connection as the context shows it, before normalisation. */
struct xm_sm_tuple {
	__u32 family; /* AF_* */
	__u32 local4, remote4;
	__u32 local6[4], remote6[4];
	__u32 local_port;  /* host order */
	__u32 remote_port; /* as the context stores it */
};

/*
 * Both sockops and sk_msg expose remote_port as the network-order port shifted into the upper half on
 * little-endian kernels, and some kernels as a plain 16-bit value; both readings give the host-order port.
 */
static __always_inline __u16 xm_sm_remote_port(__u32 raw)
{
	return raw > 0xffff ? (__u16)bpf_ntohl(raw) : bpf_ntohs((__u16)raw);
}

static __always_inline bool xm_sm_v4_mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline bool xm_sm_is_loopback(const union xm_addr *a, __u8 family)
{
	if (family == XM_FAMILY_V4)
		return (bpf_ntohl(a->v4) >> 24) == 127;
	return a->v6[0] == 0 && a->v6[1] == 0 && a->v6[2] == 0 && a->v6[3] == bpf_htonl(1);
}

/* The key of the socket itself; returns false for a family that is not TCP/IP. */
static __always_inline bool xm_sm_self_key(const struct xm_sm_tuple *t, struct xm_sock_pair_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->local_port = (__u16)t->local_port;
	k->remote_port = xm_sm_remote_port(t->remote_port);
	if (t->family == XM_AF_INET) {
		k->family = XM_FAMILY_V4;
		k->local.v4 = t->local4;
		k->remote.v4 = t->remote4;
		return true;
	}
	if (t->family != XM_AF_INET6)
		return false;
	if (xm_sm_v4_mapped(t->remote6) && xm_sm_v4_mapped(t->local6)) {
		k->family = XM_FAMILY_V4;
		k->local.v4 = t->local6[3];
		k->remote.v4 = t->remote6[3];
		return true;
	}
	k->family = XM_FAMILY_V6;
	k->local.v6[0] = t->local6[0];
	k->local.v6[1] = t->local6[1];
	k->local.v6[2] = t->local6[2];
	k->local.v6[3] = t->local6[3];
	k->remote.v6[0] = t->remote6[0];
	k->remote.v6[1] = t->remote6[1];
	k->remote.v6[2] = t->remote6[2];
	k->remote.v6[3] = t->remote6[3];
	return true;
}

/* The peer is on this node: loopback, or an address the agent listed in xm_local_ips. */
static __always_inline bool xm_sm_peer_is_local(const struct xm_sock_pair_key *k)
{
	struct xm_local_ip_key lk;

	if (xm_sm_is_loopback(&k->remote, k->family))
		return true;
	__builtin_memset(&lk, 0, sizeof(lk));
	lk.addr = k->remote;
	lk.family = k->family;
	return bpf_map_lookup_elem(&xm_local_ips, &lk) != NULL;
}

#define XM_SM_TUPLE_FROM_CTX(t, ctx)                                                                                   \
	do {                                                                                                           \
		(t).family = (ctx)->family;                                                                            \
		(t).local4 = (ctx)->local_ip4;                                                                         \
		(t).remote4 = (ctx)->remote_ip4;                                                                       \
		(t).local6[0] = (ctx)->local_ip6[0];                                                                   \
		(t).local6[1] = (ctx)->local_ip6[1];                                                                   \
		(t).local6[2] = (ctx)->local_ip6[2];                                                                   \
		(t).local6[3] = (ctx)->local_ip6[3];                                                                   \
		(t).remote6[0] = (ctx)->remote_ip6[0];                                                                 \
		(t).remote6[1] = (ctx)->remote_ip6[1];                                                                 \
		(t).remote6[2] = (ctx)->remote_ip6[2];                                                                 \
		(t).remote6[3] = (ctx)->remote_ip6[3];                                                                 \
		(t).local_port = (ctx)->local_port;                                                                    \
		(t).remote_port = (ctx)->remote_port;                                                                  \
	} while (0)

static __always_inline void xm_sm_established(struct bpf_sock_ops *skops)
{
	struct xm_sock_pair_key key;
	struct xm_sm_tuple t;
	struct bpf_sock *sk;

	sk = skops->sk;
	if (!sk)
		return;
	XM_SM_TUPLE_FROM_CTX(t, skops);
	if (!xm_sm_self_key(&t, &key))
		return;
	if (!xm_sm_enabled()) {
		xm_sm_stat_add(XM_SMSTAT_SKIPPED_OFF, 1);
		return;
	}
	if (!xm_sm_peer_is_local(&key)) {
		xm_sm_stat_add(XM_SMSTAT_NOT_LOCAL, 1);
		return;
	}
	/* Both ends check both ports, so neither socket of an excluded connection enters the map. */
	if (xm_sm_port_excluded(key.local_port) || xm_sm_port_excluded(key.remote_port)) {
		xm_sm_stat_add(XM_SMSTAT_SKIPPED_PORT, 1);
		return;
	}
	/*
	 * No socket storage here: sk_msg creates it at the socket's first message (xm_sockmap_msg), so a
	 * connection that closes without sending never pays for it (allocation, and its RCU free at close).
	 * STATE_CB settles the counters at close. RETRANS_CB marks the socket as one this program took: the
	 * close sees no storage for a socket that never sent and must still count it. The mark costs one
	 * invocation per retransmitted segment, rare on a same-node path, where the program returns at once.
	 * The other sockops program may have set flags too: keep them.
	 */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG |
					     BPF_SOCK_OPS_RETRANS_CB_FLAG);
	if (xm_sm_is_loopback(&key.remote, key.family))
		key.netns = bpf_get_netns_cookie(skops);
	/* NOEXIST: never evict another live socket that happens to share the key. */
	if (bpf_sock_hash_update(skops, &xm_sock_pairs, &key, BPF_NOEXIST)) {
		xm_sm_stat_add(XM_SMSTAT_INSERT_FAILED, 1);
		return;
	}
	xm_sm_stat_add(XM_SMSTAT_INSERTED, 1);
}

/* The sockhash drops a closing socket by itself; this only settles the byte counts of the connection. */
static __always_inline void xm_sm_closed(struct bpf_sock_ops *skops)
{
	struct xm_sockmap_sk *st;
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&xm_sockmap_sk, sk, 0, 0);
	/* Taken by xm_sm_established (marked), or with state from an earlier agent's program or the agent. */
	if (!st && !(skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_RETRANS_CB_FLAG))
		return;
	xm_sm_stat_add(XM_SMSTAT_CLOSED, 1);
	xm_sm_stat_add(XM_SMSTAT_CLOSED_TX_BYTES, skops->bytes_acked + (st ? st->redir_bytes : 0));
	xm_sm_stat_add(XM_SMSTAT_CLOSED_RX_BYTES, skops->bytes_received);
}

static __always_inline void xm_sm_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		xm_sm_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			xm_sm_closed(skops);
		break;
	}
}

#endif
