/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The socket LB's part of sockops, shared by its own program (sock_lb.bpf.c: xm_sockops) and the mesh
 * cgroup's one program that also does sockmap's part (mesh_ops.bpf.c: xm_mesh_ops).
 */
#ifndef XMESH_BPF_SOCK_LB_OPS_H
#define XMESH_BPF_SOCK_LB_OPS_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "hbone_capture.h"
#include "l7_capture.h"
#include "outlier.h"
#include "sock_maps.h"

static __always_inline void xm_backend_conns_add(__u32 backend_id, __s64 delta)
{
	struct xm_backend_conns *c = bpf_map_lookup_elem(&xm_backend_conns, &backend_id);

	if (c)
		__sync_fetch_and_add(&c->active, delta);
}

/* The Istio TCP counters of the connection's (client, service port, backend), created on first use. */
static __always_inline struct xm_conn_metrics *xm_conn_metrics_of(struct bpf_sock_ops *skops,
								  const struct xm_sock_state *st)
{
	struct xm_conn_metrics_key k;
	struct xm_conn_metrics zero = {}, *m;

	__builtin_memset(&k, 0, sizeof(k));
	k.svc_id = st->svc_id;
	k.backend_id = st->backend_id;
	k.family = st->family;
	k.flags = (st->flags & XM_SOCK_F_HBONE) ? XM_CONN_F_MTLS : 0;
	if (st->family == XM_FAMILY_V4) {
		k.client.v4 = skops->local_ip4;
	} else {
		k.client.v6[0] = skops->local_ip6[0];
		k.client.v6[1] = skops->local_ip6[1];
		k.client.v6[2] = skops->local_ip6[2];
		k.client.v6[3] = skops->local_ip6[3];
	}
	m = bpf_map_lookup_elem(&xm_conn_metrics, &k);
	if (m)
		return m;
	bpf_map_update_elem(&xm_conn_metrics, &k, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&xm_conn_metrics, &k);
}

/*
 * TCP's byte counters include the sequence numbers that SYN and FIN consume; Istio counts application
 * bytes. The state a socket closes from tells which FINs were exchanged: FIN_WAIT2 (entering TIME_WAIT
 * on the peer's FIN), LAST_ACK and CLOSING mean both were; CLOSE_WAIT means only the peer's.
 */
static __always_inline __u64 xm_fin_acked(__u64 old_state)
{
	return old_state == BPF_TCP_FIN_WAIT2 || old_state == BPF_TCP_LAST_ACK || old_state == BPF_TCP_CLOSING;
}

/* struct sock's flags: sk_flags until 6.x moved them into sock_common as skc_flags (CO-RE picks). */
struct sock___flags_in_sock {
	unsigned long sk_flags;
} __attribute__((preserve_access_index));

struct sock_common___flags_in_common {
	unsigned long skc_flags;
} __attribute__((preserve_access_index));

static __always_inline unsigned long xm_sk_flags(struct sock *sk)
{
	if (bpf_core_field_exists(((struct sock___flags_in_sock *)0)->sk_flags))
		return ((struct sock___flags_in_sock *)sk)->sk_flags;
	return ((struct sock_common___flags_in_common *)sk)->skc_flags;
}

/*
 * Whether the peer's FIN (one sequence number in bytes_received) arrived before the close: tcp_fin() marks
 * the socket SOCK_DONE. The old state alone cannot tell: an orphaned socket whose own FIN was acked leaves
 * FIN_WAIT2 for a timewait socket before the peer's FIN comes (and sk_shutdown is set by close() too). The
 * state is the fallback where the socket cannot be read.
 */
static __always_inline __u64 xm_fin_received(struct bpf_sock_ops *skops, __u64 old_state)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;

	if (tp)
		return (xm_sk_flags(&tp->inet_conn.icsk_inet.sk) >> SOCK_DONE) & 1;
	return old_state == BPF_TCP_LAST_ACK || old_state == BPF_TCP_CLOSING || old_state == BPF_TCP_CLOSE_WAIT;
}

static __always_inline __u64 xm_app_bytes(__u64 seq_bytes, __u64 control)
{
	return seq_bytes > control ? seq_bytes - control : 0;
}

/* A failed active open, reported once per socket to outlier detection. */
static __always_inline void xm_report_failure(struct xm_sock_state *st)
{
	if (st->flags & XM_SOCK_F_FAILED)
		return;
	st->flags |= XM_SOCK_F_FAILED;
	xm_outlier_local_failure(xm_outlier_id(st->svc_id), st->backend_id, bpf_ktime_get_ns());
}

/* sk_shutdown's bits (include/net/sock.h): macros, so vmlinux.h has no copy. */
#define XM_SHUTDOWN_MASK 3

/*
 * Whether the client is done with the connection: it can neither send nor receive on it (close(), or
 * shutdown both ways). From then on the connection is no longer active for LEAST_REQUEST (Envoy counts the
 * connections its own side holds): the socket may wait in FIN_WAIT1 until the server's kernel acks the FIN,
 * which it delays until the server process closes, and a busy server must not make a backend look loaded
 * to a client that has moved on. A half-closed socket (shutdown(SHUT_WR)) still awaits the reply: active.
 */
static __always_inline bool xm_client_done(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;

	return tp && (tp->inet_conn.icsk_inet.sk.sk_shutdown & XM_SHUTDOWN_MASK) == XM_SHUTDOWN_MASK;
}

/* Takes a connection out of its backend's live count, once. */
static __always_inline void xm_uncount(struct xm_sock_state *st)
{
	if (!(st->flags & XM_SOCK_F_COUNTED))
		return;
	st->flags &= ~XM_SOCK_F_COUNTED;
	xm_backend_conns_add(st->backend_id, -1);
}

/*
 * Per connection through a VIP: live counts per backend (+1 when the SYN leaves, -1 when the client is
 * done with it or at the latest at CLOSE) for LEAST_REQUEST, and connect outcomes for outlier detection — a refused or
 * reset SYN, or a SYN that had to be retransmitted, is a local-origin failure; an established connection is a success.
 */
static __always_inline void xm_lb_sockops(struct bpf_sock_ops *skops)
{
	struct xm_sock_state *st;
	__u64 cookie;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
		if (st && (st->flags & XM_SOCK_F_L7)) {
			xm_l7_record_origdst(skops, st);
			/* Only so that CLOSE removes the socket's state: a captured socket has no backend to count. */
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
			break;
		}
		if (st && (st->flags & XM_SOCK_F_HBONE)) {
			xm_hbone_record_origdst(skops, st);
			/*
			 * Counted for its backend (LEAST_REQUEST) and in Istio's TCP metrics (marked mutual_tls) like
			 * any connection through a VIP; the hop to the local listener says nothing of the backend's
			 * health, so no outlier report comes from it. RTO callbacks only so that establishment is
			 * seen (the RTO and SYN_SENT cases below skip tunnelled sockets).
			 */
			if (st->backend_id && !(st->flags & XM_SOCK_F_COUNTED)) {
				st->flags |= XM_SOCK_F_COUNTED;
				xm_backend_conns_add(st->backend_id, 1);
				bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
								     BPF_SOCK_OPS_STATE_CB_FLAG |
								     BPF_SOCK_OPS_RTO_CB_FLAG);
				break;
			}
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
			break;
		}
		if (!st || !st->backend_id || (st->flags & XM_SOCK_F_COUNTED))
			break;
		st->flags |= XM_SOCK_F_COUNTED;
		xm_backend_conns_add(st->backend_id, 1);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG |
						     BPF_SOCK_OPS_RTO_CB_FLAG);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		/* Only a counted socket has RTO callbacks (TCP_CONNECT_CB above): the others need no lookup. */
		if (!(skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_RTO_CB_FLAG))
			break;
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
		if (st && st->backend_id) {
			struct xm_conn_metrics *m = xm_conn_metrics_of(skops, st);

			if (m) {
				__sync_fetch_and_add(&m->opened, 1);
				st->flags |= XM_SOCK_F_OPENED;
			}
			if (!(st->flags & XM_SOCK_F_HBONE))
				xm_outlier_success(xm_outlier_id(st->svc_id), st->backend_id);
			/* Retransmission timeouts of an established connection are not connect failures. */
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTO_CB_FLAG);
		}
		break;
	case BPF_SOCK_OPS_RTO_CB:
		if (skops->state != BPF_TCP_SYN_SENT)
			break;
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
		if (st && st->backend_id && !(st->flags & XM_SOCK_F_HBONE))
			xm_report_failure(st);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE) {
			if (!xm_client_done(skops))
				break;
			cookie = bpf_get_socket_cookie(skops);
			st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
			if (st)
				xm_uncount(st);
			break;
		}
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
		if (!st)
			break;
		if (skops->args[0] == BPF_TCP_SYN_SENT && st->backend_id && !(st->flags & XM_SOCK_F_HBONE))
			xm_report_failure(st);
		if (st->flags & XM_SOCK_F_OPENED) {
			struct xm_conn_metrics *m = xm_conn_metrics_of(skops, st);

			st->flags &= ~XM_SOCK_F_OPENED;
			if (m) {
				__sync_fetch_and_add(&m->closed, 1);
				__sync_fetch_and_add(
				    &m->sent_bytes, xm_app_bytes(skops->bytes_acked, 1 + xm_fin_acked(skops->args[0])));
				__sync_fetch_and_add(
				    &m->received_bytes,
				    xm_app_bytes(skops->bytes_received, xm_fin_received(skops, skops->args[0])));
			}
		}
		xm_uncount(st);
		/* The socket is done: its entry goes, so live entries are live connections. */
		bpf_map_delete_elem(&xm_sock_state, &cookie);
		break;
	}
}

#endif
