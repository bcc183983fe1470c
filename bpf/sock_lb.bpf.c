// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level load balancing: a connect()/sendmsg() to a service VIP is rewritten to a backend before
 * any packet exists, and getpeername()/recvmsg() show the VIP again. sockops keeps per-backend live
 * connection counts for LEAST_REQUEST.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/hash.h"
#include "lib/hbone_capture.h"
#include "lib/l7_capture.h"
#include "lib/lb_select.h"

#define ECONNREFUSED 111
#define SYS_REJECT   0
#define SYS_PROCEED  1

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ::ffff:a.b.c.d, as a dual-stack socket dials an IPv4 service. */
static __always_inline bool xm_is_v4_mapped(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0x0000ffff);
}

static __always_inline __u32 xm_client_hash(struct bpf_sock_addr *ctx, __u8 family)
{
	struct bpf_sock *sk = ctx->sk;
	union xm_addr a;

	__builtin_memset(&a, 0, sizeof(a));
	/* A bound socket has a source address; an unbound one is identified by its pod's netns. */
	if (family == XM_FAMILY_V4 && sk->src_ip4) {
		a.v4 = sk->src_ip4;
		return xm_hash_addr(&a);
	}
	if (family == XM_FAMILY_V6 && (sk->src_ip6[0] | sk->src_ip6[1] | sk->src_ip6[2] | sk->src_ip6[3])) {
		a.v6[0] = sk->src_ip6[0];
		a.v6[1] = sk->src_ip6[1];
		a.v6[2] = sk->src_ip6[2];
		a.v6[3] = sk->src_ip6[3];
		return xm_hash_addr(&a);
	}
	return (__u32)xm_mix64(bpf_get_netns_cookie(ctx));
}

/*
 * The verifier checks context accesses per attach type, so every function touching user_ip4/user_ip6
 * takes the family as a compile-time constant (v6) and the other family's code is compiled out.
 */
static __always_inline void xm_key_from_ctx(struct bpf_sock_addr *ctx, struct xm_svc_key *key, bool *mapped,
					    const bool v6)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->port = (__u16)ctx->user_port;
	key->proto = (__u8)ctx->protocol;
	*mapped = false;
	if (!v6) {
		key->family = XM_FAMILY_V4;
		key->vip.v4 = ctx->user_ip4;
		return;
	}
	key->vip.v6[0] = ctx->user_ip6[0];
	key->vip.v6[1] = ctx->user_ip6[1];
	key->vip.v6[2] = ctx->user_ip6[2];
	key->vip.v6[3] = ctx->user_ip6[3];
	key->family = XM_FAMILY_V6;
	if (xm_is_v4_mapped(key->vip.v6)) {
		key->vip.v4 = key->vip.v6[3];
		key->vip.v6[1] = key->vip.v6[2] = key->vip.v6[3] = 0;
		key->family = XM_FAMILY_V4;
		*mapped = true;
	}
}

/* Writes a backend address into the context, in the family the application dialed. */
static __always_inline void xm_write_dest(struct bpf_sock_addr *ctx, const union xm_addr *a, __u16 port, bool mapped,
					  const bool v6)
{
	if (!v6) {
		ctx->user_ip4 = a->v4;
	} else if (mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = a->v4;
	} else {
		ctx->user_ip6[0] = a->v6[0];
		ctx->user_ip6[1] = a->v6[1];
		ctx->user_ip6[2] = a->v6[2];
		ctx->user_ip6[3] = a->v6[3];
	}
	ctx->user_port = port;
}

static __always_inline void xm_remember_udp(struct bpf_sock_addr *ctx, const struct xm_svc_key *key,
					    const struct xm_backend *be)
{
	struct xm_udp_revnat_key rk;
	struct xm_udp_revnat_value rv;

	__builtin_memset(&rk, 0, sizeof(rk));
	__builtin_memset(&rv, 0, sizeof(rv));
	rk.cookie = bpf_get_socket_cookie(ctx);
	rk.backend = be->addr;
	rk.port = be->port;
	rk.family = be->family;
	rv.vip = key->vip;
	rv.vport = key->port;
	if (bpf_map_update_elem(&xm_udp_revnat, &rk, &rv, BPF_ANY))
		xm_map_error(XM_MAPERR_UDP_REVNAT);
}

/*
 * A TCP connect to an HTTP service port goes to the agent's L7 proxy: no backend is chosen or counted (the
 * proxy balances per request and reports what it sees). The socket remembers the VIP for getpeername and for
 * sockops, which records it under the connection's 4-tuple once the kernel has assigned one. Without that
 * state the proxy could not learn the destination and would refuse: false, and the caller balances at L4.
 */
static __always_inline bool xm_l7_capture(struct bpf_sock_addr *ctx, const struct xm_svc_key *key,
					  const struct xm_svc_value *svc, const struct xm_l7_proxy *proxy,
					  struct xm_sock_state *st, bool mapped, const bool v6)
{
	struct xm_sock_state fresh = {
		.vip = key->vip,
		.vport = key->port,
		.family = key->family,
		.flags = XM_SOCK_F_NATTED | XM_SOCK_F_L7,
		.svc_id = svc->svc_id,
	};
	__u64 cookie = bpf_get_socket_cookie(ctx);

	if (st)
		*st = fresh;
	else if (bpf_map_update_elem(&xm_sock_state, &cookie, &fresh, BPF_ANY))
		return false; /* counted once, by the L4 path's own insert */
	xm_write_dest(ctx, key->family == XM_FAMILY_V4 ? &proxy->addr4 : &proxy->addr6, proxy->port, mapped, v6);
	xm_stat_inc(XM_STAT_SOCK_L7_CAPTURE);
	return true;
}

/*
 * HBONE capture (include/xmesh/hbone.h): a TCP connect whose final destination (IPv4, v4-mapped or IPv6) is
 * a tunnelled pod of another node goes to the agent's outbound tunnel listener of that family instead. The
 * listener is looked up first (one array lookup while capture is off), the destination only when it is set.
 */
static __always_inline const struct xm_l7_proxy *xm_hbone_want(struct bpf_sock_addr *ctx, const union xm_addr *dest,
							       __u8 family, __u16 port)
{
	const struct xm_l7_proxy *proxy = xm_hbone_proxy_for(family);

	if (!proxy)
		return NULL;
	/*
	 * The agent's own connections for a verified peer carry its mark: never captured again, even when the
	 * agent lives in the cgroup it serves (a DaemonSet given the host's root cgroup).
	 */
	if (ctx->sk->mark == XM_MTLS_AGENT_MARK)
		return NULL;
	return xm_hbone_tunnelled(dest, family, port) ? proxy : NULL;
}

/*
 * A pod IP dialed directly (no service): the socket remembers it for getpeername and for sockops, which
 * records it as both target and dialed address under the connection's 4-tuple. Without that state the agent
 * could not learn the destination: the connect then goes out as dialed (plaintext), counted as a map error.
 */
static __always_inline void xm_hbone_direct(struct bpf_sock_addr *ctx, const struct xm_svc_key *key, bool mapped,
					    const bool v6)
{
	const struct xm_l7_proxy *proxy = xm_hbone_want(ctx, &key->vip, key->family, key->port);
	struct xm_sock_state fresh = {
		.vip = key->vip,
		.vport = key->port,
		.family = key->family,
		.flags = XM_SOCK_F_NATTED | XM_SOCK_F_HBONE,
	};
	struct xm_sock_state *st;
	__u64 cookie;

	if (!proxy)
		return;
	cookie = bpf_get_socket_cookie(ctx);
	st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
	/* connect() again on a socket still counted for a backend: left as the first connect made it. */
	if (st && (st->flags & XM_SOCK_F_COUNTED))
		return;
	if (st) {
		*st = fresh;
	} else if (bpf_map_update_elem(&xm_sock_state, &cookie, &fresh, BPF_ANY)) {
		xm_map_error(XM_MAPERR_SOCK_STATE);
		return;
	}
	xm_write_dest(ctx, key->family == XM_FAMILY_V4 ? &proxy->addr4 : &proxy->addr6, proxy->port, mapped, v6);
	xm_stat_inc(XM_STAT_SOCK_HBONE_CAPTURE);
}

/*
 * Shared body of connect4/6 and sendmsg4/6: SYS_PROCEED, possibly with the destination rewritten, or
 * SYS_REJECT with ECONNREFUSED when the VIP has no ready backend.
 */
static __always_inline int xm_sock_balance(struct bpf_sock_addr *ctx, const bool is_connect, const bool v6)
{
	const struct xm_l7_proxy *hbone;
	struct xm_svc_value *svc;
	struct xm_sock_state *st;
	struct xm_backend *be;
	struct xm_svc_key key;
	__u32 backend_id;
	__u64 cookie;
	bool mapped;

	xm_key_from_ctx(ctx, &key, &mapped, v6);
	if (key.proto != XM_PROTO_TCP && key.proto != XM_PROTO_UDP)
		return SYS_PROCEED;

	svc = bpf_map_lookup_elem(&xm_services, &key);
	if (!svc) {
		/* Not a service: a pod of another node dialed directly may go through the tunnel. */
		if (is_connect && key.proto == XM_PROTO_TCP)
			xm_hbone_direct(ctx, &key, mapped, v6);
		/* A UDP socket re-connected elsewhere: getpeername must stop answering the old VIP. */
		if (is_connect && key.proto == XM_PROTO_UDP) {
			cookie = bpf_get_socket_cookie(ctx);
			st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
			if (st)
				st->flags &= ~XM_SOCK_F_NATTED;
		}
		return SYS_PROCEED;
	}

	/* The sendmsg hooks see UDP only: is_connect is always true for TCP. */
	if ((svc->flags & XM_SVC_F_L7) && key.proto == XM_PROTO_TCP && is_connect) {
		const struct xm_l7_proxy *proxy = xm_l7_proxy_for(key.family);

		cookie = bpf_get_socket_cookie(ctx);
		st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
		/* A connect() again on a socket already counted for a backend keeps that backend (below). */
		if (proxy && !(st && (st->flags & XM_SOCK_F_COUNTED)) &&
		    xm_l7_capture(ctx, &key, svc, proxy, st, mapped, v6))
			return SYS_PROCEED;
		if (!proxy)
			xm_stat_inc(XM_STAT_SOCK_L7_NO_PROXY);
	}

	backend_id = xm_select_backend(svc, svc->algo == XM_LB_MAGLEV ? xm_client_hash(ctx, key.family) : 0);
	be = backend_id ? bpf_map_lookup_elem(&xm_backends, &backend_id) : NULL;
	if (!be || be->family != key.family) {
		xm_stat_inc(svc->count ? XM_STAT_SOCK_LOOKUP_MISS : XM_STAT_SOCK_NO_BACKEND);
		bpf_set_retval(-ECONNREFUSED);
		return SYS_REJECT;
	}

	if (key.proto == XM_PROTO_UDP) {
		xm_remember_udp(ctx, &key, be);
		xm_stat_inc(XM_STAT_SOCK_LB_UDP);
	} else {
		xm_stat_inc(XM_STAT_SOCK_LB_TCP);
	}
	if (!is_connect) {
		xm_write_dest(ctx, &be->addr, be->port, mapped, v6);
		return SYS_PROCEED;
	}

	/* The backend chosen is a pod of another node to tunnel: the connect goes to the listener instead. */
	hbone = key.proto == XM_PROTO_TCP ? xm_hbone_want(ctx, &be->addr, key.family, be->port) : NULL;
	cookie = bpf_get_socket_cookie(ctx);
	st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
	if (st) {
		/* connect() again (non-blocking retry, UDP re-connect): a counted socket keeps its backend. */
		st->vip = key.vip;
		st->vport = key.port;
		st->family = key.family;
		if (!(st->flags & XM_SOCK_F_COUNTED)) {
			st->backend_id = backend_id;
			st->svc_id = svc->svc_id;
		} else {
			hbone = NULL; /* its origdst would name the backend it keeps, not the one chosen now */
		}
		/* Balanced here, so not (or no longer) the proxy's: sockops counts it for its backend. */
		st->flags = (st->flags | XM_SOCK_F_NATTED) & ~(XM_SOCK_F_L7 | XM_SOCK_F_HBONE);
		if (hbone)
			st->flags |= XM_SOCK_F_HBONE;
	} else {
		struct xm_sock_state fresh = {
			.vip = key.vip,
			.backend_id = backend_id,
			.vport = key.port,
			.family = key.family,
			.flags = XM_SOCK_F_NATTED | (hbone ? XM_SOCK_F_HBONE : 0),
			.svc_id = svc->svc_id,
		};

		if (bpf_map_update_elem(&xm_sock_state, &cookie, &fresh, BPF_ANY)) {
			xm_map_error(XM_MAPERR_SOCK_STATE);
			hbone = NULL; /* without state sockops cannot tell the agent where it goes: straight there */
		}
	}
	if (hbone) {
		xm_write_dest(ctx, key.family == XM_FAMILY_V4 ? &hbone->addr4 : &hbone->addr6, hbone->port, mapped, v6);
		xm_stat_inc(XM_STAT_SOCK_HBONE_CAPTURE);
	} else {
		xm_write_dest(ctx, &be->addr, be->port, mapped, v6);
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int xm_connect4(struct bpf_sock_addr *ctx)
{
	return xm_sock_balance(ctx, true, false);
}

SEC("cgroup/connect6")
int xm_connect6(struct bpf_sock_addr *ctx)
{
	return xm_sock_balance(ctx, true, true);
}

SEC("cgroup/sendmsg4")
int xm_sendmsg4(struct bpf_sock_addr *ctx)
{
	return xm_sock_balance(ctx, false, false);
}

SEC("cgroup/sendmsg6")
int xm_sendmsg6(struct bpf_sock_addr *ctx)
{
	return xm_sock_balance(ctx, false, true);
}

/* getpeername on a socket connected through a VIP answers the VIP. */
static __always_inline int xm_sock_getpeername(struct bpf_sock_addr *ctx, const bool v6)
{
	struct xm_sock_state *st;
	struct xm_svc_key peer;
	__u64 cookie;
	bool mapped;

	cookie = bpf_get_socket_cookie(ctx);
	st = bpf_map_lookup_elem(&xm_sock_state, &cookie);
	if (!st || !(st->flags & XM_SOCK_F_NATTED))
		return SYS_PROCEED;
	xm_key_from_ctx(ctx, &peer, &mapped, v6);
	if (peer.family != st->family)
		return SYS_PROCEED;
	xm_write_dest(ctx, &st->vip, st->vport, mapped, v6);
	xm_stat_inc(XM_STAT_SOCK_REVNAT);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int xm_getpeername4(struct bpf_sock_addr *ctx)
{
	return xm_sock_getpeername(ctx, false);
}

SEC("cgroup/getpeername6")
int xm_getpeername6(struct bpf_sock_addr *ctx)
{
	return xm_sock_getpeername(ctx, true);
}

/* A datagram from a backend this socket sent to through a VIP appears to come from the VIP. */
static __always_inline int xm_sock_recvmsg(struct bpf_sock_addr *ctx, const bool v6)
{
	struct xm_udp_revnat_value *rv;
	struct xm_udp_revnat_key rk;
	bool mapped;
	struct xm_svc_key k;

	xm_key_from_ctx(ctx, &k, &mapped, v6);
	__builtin_memset(&rk, 0, sizeof(rk));
	rk.cookie = bpf_get_socket_cookie(ctx);
	rk.backend = k.vip;
	rk.port = k.port;
	rk.family = k.family;
	rv = bpf_map_lookup_elem(&xm_udp_revnat, &rk);
	if (!rv)
		return SYS_PROCEED;
	xm_write_dest(ctx, &rv->vip, rv->vport, mapped, v6);
	xm_stat_inc(XM_STAT_SOCK_REVNAT);
	return SYS_PROCEED;
}

SEC("cgroup/recvmsg4")
int xm_recvmsg4(struct bpf_sock_addr *ctx)
{
	return xm_sock_recvmsg(ctx, false);
}

SEC("cgroup/recvmsg6")
int xm_recvmsg6(struct bpf_sock_addr *ctx)
{
	return xm_sock_recvmsg(ctx, true);
}

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
SEC("sockops")
int xm_sockops(struct bpf_sock_ops *skops)
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
	return 1;
}

/*
 * The agent's door into outlier detection, run with BPF_PROG_TEST_RUN and never attached: the "packet"
 * is an Ethernet-sized pad followed by struct xm_outlier_report_msg. L7 errors and agent-seen connect
 * outcomes go through the same locked code as sockops' events, so the kernel and the agent never race
 * on an endpoint's state. (An XDP program because tracing programs may not take bpf_spin_lock.)
 */
SEC("xdp")
int xm_outlier_report(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct xm_outlier_report_msg *msg = data + XM_REPORT_PAD;
	__u64 now = bpf_ktime_get_ns();
	__u32 oid;

	if ((void *)(msg + 1) > data_end)
		return XDP_ABORTED;
	oid = xm_outlier_id(msg->svc_id);
	switch (msg->kind) {
	case XM_REPORT_LOCAL_FAILURE:
		xm_outlier_local_failure(oid, msg->backend_id, now);
		break;
	case XM_REPORT_SUCCESS:
		xm_outlier_success(oid, msg->backend_id);
		break;
	case XM_REPORT_HTTP:
		xm_outlier_http(oid, msg->backend_id, msg->http_status, now);
		break;
	case XM_REPORT_PROBE:
		return xm_endpoint_ejected(oid, msg->backend_id, now) ? XDP_DROP : XDP_PASS;
	}
	return XDP_PASS;
}
