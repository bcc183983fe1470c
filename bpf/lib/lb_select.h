/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backend selection for a service port: each algorithm picks a slot of the immutable list (or Maglev
 * table) that the service value points at; with outlier detection on, ejected endpoints are skipped by
 * probing the next slots. Shared by the socket hooks and XDP.
 */
#ifndef XMESH_BPF_LB_SELECT_H
#define XMESH_BPF_LB_SELECT_H

#include "hash.h"
#include "outlier.h"
#include "sock_maps.h"

/* Backend id in a slot of the service's list or Maglev table; 0 when missing. */
static __always_inline __u32 xm_slot_backend(const struct xm_svc_value *svc, __u32 slot)
{
	__u32 table_id = svc->table_id;
	struct xm_slot_value *v;

	if (svc->algo == XM_LB_MAGLEV) {
		void *table = bpf_map_lookup_elem(&xm_maglev, &table_id);

		v = table ? bpf_map_lookup_elem(table, &slot) : NULL;
	} else {
		struct xm_slot_key k = { .table_id = table_id, .slot = slot };

		v = bpf_map_lookup_elem(&xm_slots, &k);
	}
	return v ? v->backend_id : 0;
}

static __always_inline __s64 xm_backend_active(__u32 backend_id)
{
	struct xm_backend_conns *c = bpf_map_lookup_elem(&xm_backend_conns, &backend_id);

	return c ? c->active : 0;
}

static __always_inline __u32 xm_pick_round_robin(const struct xm_svc_value *svc)
{
	__u32 id = svc->svc_id;
	struct xm_counter *pos = bpf_map_lookup_elem(&xm_rr_state, &id);
	__u64 n = 0;

	if (pos)
		n = pos->value++;
	/* Per-CPU positions start apart so that CPUs do not walk the list in lockstep. */
	return (__u32)((n + bpf_get_smp_processor_id()) % svc->count);
}

/* Power of two choices over live connection counts: Envoy's LEAST_REQUEST for unweighted hosts. */
static __always_inline __u32 xm_pick_least_request(const struct xm_svc_value *svc)
{
	__u32 a, b;

	if (svc->count == 1)
		return 0;
	a = bpf_get_prandom_u32() % svc->count;
	b = bpf_get_prandom_u32() % (svc->count - 1);
	if (b >= a)
		b++;
	return xm_backend_active(xm_slot_backend(svc, b)) < xm_backend_active(xm_slot_backend(svc, a)) ? b : a;
}

static __always_inline __u32 xm_pick_slot(const struct xm_svc_value *svc, __u32 client_hash)
{
	switch (svc->algo) {
	case XM_LB_ROUND_ROBIN:
		return xm_pick_round_robin(svc);
	case XM_LB_RANDOM:
		return bpf_get_prandom_u32() % svc->count;
	case XM_LB_MAGLEV:
		return client_hash % svc->count;
	default:
		return xm_pick_least_request(svc);
	}
}

/* Slots one step of the re-pick walk passes at most: a Maglev table's run of one backend is one step. */
#define XM_SELECT_MAX_RUN 64

struct xm_run_walk {
	struct xm_svc_value svc;
	__u32 slot;
	__u32 id;
};

static long xm_run_walk_step(__u32 i, void *arg)
{
	struct xm_run_walk *w = arg;

	w->slot = w->slot + 1 >= w->svc.count ? 0 : w->slot + 1;
	return xm_slot_backend(&w->svc, w->slot) != w->id;
}

/*
 * The first slot after slot that does not hold id. A list holds each backend once, but a Maglev table holds
 * runs of one backend (10 and more slots): probing them one by one would run out of probes on one ejected
 * endpoint. A bpf_loop keeps the verifier's work to one pass over the step; out of line (ejections only),
 * so that its state stays off the callers' stack (XDP's frames share 512 bytes).
 */
static __noinline __u32 xm_skip_run(__u32 table_id, __u32 count, __u8 algo, __u32 slot, __u32 id)
{
	struct xm_run_walk w = { .svc = { .table_id = table_id, .count = count, .algo = algo },
				 .slot = slot,
				 .id = id };

	bpf_loop(XM_SELECT_MAX_RUN, xm_run_walk_step, &w, 0);
	return w.slot;
}

/*
 * Returns the chosen backend id, or 0 when the service has none that is ready. When every probed
 * endpoint is ejected (XM_OUTLIER_PROBES consecutive slots), the first pick stands (Envoy's panic
 * routing: some service beats none).
 */
static __always_inline __u32 xm_select_backend(const struct xm_svc_value *svc, __u32 client_hash)
{
	__u32 slot, first, id, i, oid;
	__u64 now;

	if (!svc->count)
		return 0;
	slot = xm_pick_slot(svc, client_hash);
	first = xm_slot_backend(svc, slot);
	if (!(svc->flags & XM_SVC_F_OUTLIER) || !first)
		return first;
	now = bpf_ktime_get_ns();
	oid = xm_outlier_id(svc->svc_id);
	if (!xm_endpoint_ejected(oid, first, now))
		return first;
	/*
	 * Re-pick from a uniform start, so an ejected endpoint's share spreads over the others rather than
	 * landing on its neighbour (Maglev starts from the client hash, so a client keeps its fallback), then
	 * walk on from there: the walk cannot keep landing on the same ejected endpoint as repeated random
	 * picks could.
	 */
	if (svc->algo == XM_LB_MAGLEV)
		slot = (__u32)(xm_mix64((__u64)client_hash + 1) % svc->count);
	else
		slot = bpf_get_prandom_u32() % svc->count;
	for (i = 0; i < XM_OUTLIER_PROBES; i++) {
		id = xm_slot_backend(svc, slot);
		if (!id)
			break;
		if (!xm_endpoint_ejected(oid, id, now))
			return id;
		slot = xm_skip_run(svc->table_id, svc->count, svc->algo, slot, id);
	}
	return first;
}

/* Maglev pick for a flow hash, skipping ejected endpoints (the XDP path's new flows). */
static __always_inline __u32 xm_pick_maglev(const struct xm_svc_value *svc, __u32 hash)
{
	return svc->algo == XM_LB_MAGLEV ? xm_select_backend(svc, hash) : 0;
}

#endif
