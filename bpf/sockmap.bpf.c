// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Same-node socket acceleration. sockops puts every established TCP socket whose peer lives on this node
 * (a local pod IP, this node, or loopback) into a sockhash keyed by its own 4-tuple; sk_msg looks the peer
 * up by the swapped tuple and moves each sent message straight into the peer's receive queue
 * (bpf_msg_redirect_hash with BPF_F_INGRESS), skipping TCP/IP. Whenever redirecting is not certainly
 * safe, the message takes the normal TCP path (SK_PASS): never a drop, never a reorder.
 *
 * Ordering rule: a direction that has put payload on TCP (fallback, or before the peer was in the map)
 * is never redirected again, because the receiver reads redirected data before what waits in its TCP
 * receive queue. Redirected-then-TCP is safe (the receiver drains redirected data first), so switching off
 * at any time is safe. See docs/sockmap.md.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/sockmap_maps.h"

#define XM_AF_INET  2
#define XM_AF_INET6 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

SEC("sockops")
int xm_sockmap_ops(struct bpf_sock_ops *skops)
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
	return 1;
}

static __always_inline int xm_sm_fallback(struct xm_sockmap_sk *st, __u32 why, __u64 size)
{
	if (st)
		st->fallback_msgs++;
	xm_sm_stat_add(why, 1);
	xm_sm_stat_add(XM_SMSTAT_FALLBACK_BYTES, size);
	return SK_PASS;
}

/*
 * Pages by which TCP's global usage count may lag: every CPU charges up to net.core.mem_pcpu_rsv pages
 * (1 MiB of 4 KiB pages by default) before the count sees them. The loader sets it to that reserve times
 * the possible CPUs (sockmap_tcp_mem_lag()); the default is one CPU's.
 */
const volatile long xm_tcp_mem_lag = 256;

/*
 * TCP's memory accounting (tcp_mem, in pages) is global. Past the hard limit the kernel refuses to charge a
 * redirected message to the receiver and sendmsg fails with ENOMEM, where TCP would make the writer wait.
 * So at the pressure threshold, or once TCP has declared pressure (it keeps it until usage drops below
 * tcp_mem[0]), messages take TCP instead. The pressure flag and tcp_mem sit behind plain pointers of
 * struct proto, hence bpf_probe_read_kernel; the usage counter is BTF-typed and read directly.
 *
 * The count lags: each CPU keeps its charges to itself until its reserve is full, so the count can read
 * far below the real usage (even below zero) while the charge of this very message, or another CPU's,
 * flushes a reserve and puts TCP over tcp_mem[1]; under pressure the kernel may then refuse the charge
 * (ENOMEM) long before tcp_mem[2]. Hence the margin of every CPU's reserve.
 */
static __always_inline bool xm_sm_tcp_mem_tight(struct tcp_sock *tp, __u64 size)
{
	struct proto *prot = tp->inet_conn.icsk_inet.sk.__sk_common.skc_prot;
	unsigned long pressure = 0;
	long limits[3] = {};
	long pages;

	if (!prot)
		return false;
	if (!bpf_probe_read_kernel(&pressure, sizeof(pressure), prot->memory_pressure) && pressure)
		return true;
	if (bpf_probe_read_kernel(limits, sizeof(limits), prot->sysctl_mem) || !prot->memory_allocated)
		return false;
	/* Pages of 4 KiB: an over-estimate where pages are larger, which only makes the fallback earlier. */
	pages = prot->memory_allocated->counter + xm_tcp_mem_lag + (long)((size + 4095) >> 12);
	return pages >= limits[1];
}

SEC("sk_msg")
int xm_sockmap_msg(struct sk_msg_md *msg)
{
	struct xm_sock_pair_key self, peer;
	struct xm_sockmap_sk *st;
	struct bpf_sock *sk = msg->sk;
	struct xm_sm_tuple t;
	struct tcp_sock *tp;
	__u64 size = msg->size;

	if (!sk)
		return xm_sm_fallback(NULL, XM_SMSTAT_FALLBACK_NO_STATE, size);
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return xm_sm_fallback(NULL, XM_SMSTAT_FALLBACK_NO_STATE, size);
	st = bpf_sk_storage_get(&xm_sockmap_sk, sk, 0, 0);
	if (!st) {
		/*
		 * The socket's first message in the sockhash: its state starts here (xm_sm_established creates
		 * none, so that connections that never send never pay for it). Every send of a socket in the
		 * sockhash passes this program; payload that took TCP before it (in the SYN with TCP Fast Open,
		 * or while the socket was out of the map) shows in bytes_sent, or as write_seq ahead of snd_nxt
		 * while still queued: that direction stays on TCP (ordering).
		 */
		st = bpf_sk_storage_get(&xm_sockmap_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return xm_sm_fallback(NULL, XM_SMSTAT_FALLBACK_NO_STATE, size);
		st->seq0 = tp->write_seq;
		st->flags = XM_SMSK_F_INSERTED;
		if (tp->bytes_sent || tp->write_seq != tp->snd_nxt)
			st->flags |= XM_SMSK_F_TCP_USED;
	}
	if (!xm_sm_enabled())
		return xm_sm_fallback(st, XM_SMSTAT_FALLBACK_OFF, size);
	if (st->flags & XM_SMSK_F_SEQ_AT_FIRST_MSG) {
		/* The inserter saw no payload queued or sent; this message is the first, so write_seq is the start. */
		st->seq0 = tp->write_seq;
		st->flags &= ~XM_SMSK_F_SEQ_AT_FIRST_MSG;
	}
	/* write_seq moves only with TCP payload: redirected bytes never touch it. */
	if ((st->flags & XM_SMSK_F_TCP_USED) || tp->write_seq != st->seq0) {
		st->flags |= XM_SMSK_F_TCP_USED;
		return xm_sm_fallback(st, XM_SMSTAT_FALLBACK_ORDER, size);
	}
	/* Once this puts bytes on TCP, the write_seq check above keeps the direction there (ordering). */
	if (xm_sm_tcp_mem_tight(tp, size))
		return xm_sm_fallback(st, XM_SMSTAT_FALLBACK_MEM_PRESSURE, size);
	XM_SM_TUPLE_FROM_CTX(t, msg);
	if (!xm_sm_self_key(&t, &self))
		return xm_sm_fallback(st, XM_SMSTAT_FALLBACK_NO_STATE, size);
	__builtin_memset(&peer, 0, sizeof(peer));
	peer.family = self.family;
	peer.local = self.remote;
	peer.remote = self.local;
	peer.local_port = self.remote_port;
	peer.remote_port = self.local_port;
	if (xm_sm_is_loopback(&peer.local, peer.family))
		peer.netns = bpf_get_netns_cookie(msg);
	/* SK_DROP here only means "no such peer": never return it, the message goes through TCP instead. */
	if (bpf_msg_redirect_hash(msg, &xm_sock_pairs, &peer, BPF_F_INGRESS) != SK_PASS)
		return xm_sm_fallback(st, XM_SMSTAT_FALLBACK_NO_PEER, size);
	st->redir_bytes += size;
	st->redir_msgs++;
	xm_sm_stat_add(XM_SMSTAT_REDIR_MSGS, 1);
	xm_sm_stat_add(XM_SMSTAT_REDIR_BYTES, size);
	return SK_PASS;
}
