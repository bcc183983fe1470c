/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the north-south path learns from the TCP flows it forwards, without any per-flow state beyond the
 * connection table's handshake state (enum xm_ct_state):
 *
 * - Outlier detection (the same locked functions as sockops): a local backend's SYN-ACK, or the client's
 *   first ACK, is a success; a local backend's RST to the SYN (refused), or the client retransmitting its
 *   SYN (timed out), is a local-origin failure, reported once per connection.
 * - Istio's TCP metrics per (service port, backend) of the flows a local backend serves: opened, closed,
 *   request bytes (client packets, XDP) and response bytes (the backend's replies, TC), per CPU.
 *
 * A remote backend's replies go from its node straight to the client (DSR), so this node sees neither its
 * SYN-ACK nor its RST: its failures show as retransmitted SYNs only. Its node, which decapsulates the flow
 * and sees the replies, counts its metrics.
 */
#ifndef XMESH_BPF_XDP_FLOW_H
#define XMESH_BPF_XDP_FLOW_H

#include "outlier.h"
#include "parse.h"
#include "xdp_maps.h"

#define XM_TCP_FIN 0x01
#define XM_TCP_RST 0x04

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_XDP_TCP_SLOTS);
	__type(key, __u32);
	__type(value, struct xm_xdp_tcp_metrics);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_xdp_tcp_counters SEC(".maps");

/*
 * This CPU's counters of the flow's (service port, backend), at the position the agent gave the pair
 * (include/xmesh/xdp.h); NULL for a pair it did not place (no room: not counted), and for a flow served by
 * another node: that node counts it (it decapsulates the flow, and its TC sees the replies), so a
 * connection is counted once in the cluster.
 */
static __always_inline struct xm_xdp_tcp_metrics *xm_flow_metrics(const struct xm_ct_value *ct)
{
	__u32 svc_id = ct->svc_id, backend_id = ct->backend_id, first = xm_xdp_tcp_slot(svc_id, backend_id);

	if (!(ct->flags & XM_BACKEND_F_LOCAL))
		return NULL;
#pragma unroll
	for (__u32 i = 0; i < XM_XDP_TCP_PROBES; i++) {
		__u32 pos = (first + i) & (XM_XDP_TCP_SLOTS - 1);
		struct xm_xdp_tcp_metrics *m = bpf_map_lookup_elem(&xm_xdp_tcp_counters, &pos);

		if (m && m->svc_id == svc_id && m->backend_id == backend_id)
			return m;
	}
	return NULL;
}

/* TCP payload bytes of a segment whose L4 starts l4_len bytes before its end: what Istio counts. */
static __always_inline __u32 xm_tcp_payload(const struct xm_pkt *p, __u32 l4_len)
{
	__u32 doff = p->l4_hlen;

	return l4_len > doff ? l4_len - doff : 0;
}

/* Moves the flow from one state to another; true for the one CPU that made the move. */
static __always_inline bool xm_flow_move(struct xm_ct_value *ct, __u32 from, __u32 to)
{
	return __sync_val_compare_and_swap(&ct->state, from, to) == from;
}

/* The handshake completed: a success for outlier detection, an opened connection for the metrics. */
static __always_inline void xm_flow_opened(struct xm_ct_value *ct, __u32 from)
{
	struct xm_xdp_tcp_metrics *m;

	if (!xm_flow_move(ct, from, XM_CT_OPEN))
		return;
	xm_outlier_success(xm_outlier_id(ct->svc_id), ct->backend_id);
	m = xm_flow_metrics(ct);
	if (m)
		m->opened++;
}

static __always_inline void xm_flow_closed(struct xm_ct_value *ct)
{
	struct xm_xdp_tcp_metrics *m;

	if (!xm_flow_move(ct, XM_CT_OPEN, XM_CT_NONE))
		return;
	m = xm_flow_metrics(ct);
	if (m)
		m->closed++;
}

/* A failed open, reported once per connection: the SYN_SENT → SYN_FAILED (or → NONE) move decides. */
static __always_inline void xm_flow_failed(struct xm_ct_value *ct, __u32 to)
{
	if (xm_flow_move(ct, XM_CT_SYN_SENT, to))
		xm_outlier_local_failure(xm_outlier_id(ct->svc_id), ct->backend_id, bpf_ktime_get_ns());
}

static __always_inline bool xm_flow_pending(__u32 state)
{
	return state == XM_CT_SYN_SENT || state == XM_CT_SYN_FAILED;
}

/*
 * A TCP SYN of a flow the table pins. Seen again while the handshake is pending, it is the client
 * retransmitting: the backend did not answer in time, a local-origin failure. Otherwise it opens a new
 * connection on the same 5-tuple.
 */
static __always_inline __u32 xm_flow_syn(struct xm_ct_value *ct)
{
	__u32 state = ct->state;

	if (state == XM_CT_SYN_SENT) {
		xm_flow_failed(ct, XM_CT_SYN_FAILED);
		return XM_CT_SYN_FAILED;
	}
	if (state != XM_CT_SYN_FAILED)
		ct->state = XM_CT_SYN_SENT;
	return ct->state;
}

static __always_inline void xm_flow_client_event(struct xm_ct_value *ct, __u8 flags)
{
	__u32 state = ct->state;

	if (xm_flow_pending(state)) {
		if (flags & XM_TCP_RST) {
			xm_flow_move(ct, state, XM_CT_NONE); /* the client gave up: no verdict on the backend */
			return;
		}
		if (!(flags & XM_TCP_ACK))
			return;
		xm_flow_opened(ct, state);
		state = XM_CT_OPEN;
	}
	if (state == XM_CT_OPEN && (flags & (XM_TCP_FIN | XM_TCP_RST)))
		xm_flow_closed(ct);
}

/* Request bytes: the TCP payload of a client packet (XDP sees single frames, never GRO bursts). */
static __always_inline void xm_flow_count_request(const struct xm_pkt *p, const struct xm_ct_value *ct)
{
	__u32 payload = xm_tcp_payload(p, p->l3_len - p->l3_hlen);
	struct xm_xdp_tcp_metrics *m;

	if (!payload || !(ct->flags & XM_BACKEND_F_LOCAL))
		return;
	m = xm_flow_metrics(ct);
	if (m)
		m->received_bytes += payload;
}

/*
 * A non-SYN packet from the client of a pinned flow (XDP, before forwarding). The hit fast path: for an
 * established flow this adds a protocol compare and one load of the state, and one per-CPU map lookup
 * (inlined: an array) only when the packet carries payload.
 */
static __always_inline void xm_flow_from_client(const struct xm_pkt *p, struct xm_ct_value *ct)
{
	if (p->proto != IPPROTO_TCP)
		return;
	if (ct->state != XM_CT_NONE)
		xm_flow_client_event(ct, p->tcp_flags);
	xm_flow_count_request(p, ct);
}

/*
 * A local backend's reply of a pinned flow (TC egress). l4_len: from the TCP header to the end of the skb,
 * which for a GSO packet is the whole burst.
 */
static __always_inline void xm_flow_from_backend(const struct xm_pkt *p, struct xm_ct_value *ct, __u32 l4_len)
{
	struct xm_xdp_tcp_metrics *m;
	__u8 flags = p->tcp_flags;
	__u32 state, payload;

	if (p->proto != IPPROTO_TCP)
		return;
	state = ct->state;
	if (xm_flow_pending(state)) {
		if (!(flags & XM_TCP_RST)) {
			if ((flags & (XM_TCP_SYN | XM_TCP_ACK)) == (XM_TCP_SYN | XM_TCP_ACK))
				xm_flow_opened(ct, state);
		} else if (state == XM_CT_SYN_SENT) {
			xm_flow_failed(ct, XM_CT_NONE); /* refused */
		} else {
			xm_flow_move(ct, state, XM_CT_NONE); /* refused, but its failure is already counted */
		}
	} else if (state == XM_CT_OPEN && (flags & (XM_TCP_FIN | XM_TCP_RST))) {
		xm_flow_closed(ct);
	}
	payload = xm_tcp_payload(p, l4_len);
	if (!payload)
		return;
	m = xm_flow_metrics(ct);
	if (m)
		m->sent_bytes += payload;
}

#endif
