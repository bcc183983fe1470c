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

#include "lib/sockmap_ops.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("sockops")
int xm_sockmap_ops(struct bpf_sock_ops *skops)
{
	xm_sm_sockops(skops);
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
