/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backend selection for a service port: one function per algorithm over the immutable list (or Maglev
 * table) that the service value points at. Shared by the socket hooks and, later, XDP.
 */
#ifndef XMESH_BPF_LB_SELECT_H
#define XMESH_BPF_LB_SELECT_H

#include "sock_maps.h"

static __always_inline __u32 xm_slot_backend(__u32 table_id, __u32 slot)
{
	struct xm_slot_key k = { .table_id = table_id, .slot = slot };
	struct xm_slot_value *v = bpf_map_lookup_elem(&xm_slots, &k);

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
	return xm_slot_backend(svc->table_id, (__u32)((n + bpf_get_smp_processor_id()) % svc->count));
}

static __always_inline __u32 xm_pick_random(const struct xm_svc_value *svc)
{
	return xm_slot_backend(svc->table_id, bpf_get_prandom_u32() % svc->count);
}

/* Power of two choices over live connection counts: Envoy's LEAST_REQUEST for unweighted hosts. */
static __always_inline __u32 xm_pick_least_request(const struct xm_svc_value *svc)
{
	__u32 a, b, ida, idb;

	if (svc->count == 1)
		return xm_slot_backend(svc->table_id, 0);
	a = bpf_get_prandom_u32() % svc->count;
	b = bpf_get_prandom_u32() % (svc->count - 1);
	if (b >= a)
		b++;
	ida = xm_slot_backend(svc->table_id, a);
	idb = xm_slot_backend(svc->table_id, b);
	if (!ida)
		return idb;
	if (!idb)
		return ida;
	return xm_backend_active(idb) < xm_backend_active(ida) ? idb : ida;
}

static __always_inline __u32 xm_pick_maglev(const struct xm_svc_value *svc, __u32 hash)
{
	__u32 table_id = svc->table_id, slot = hash % svc->count;
	struct xm_slot_value *v;
	void *table;

	table = bpf_map_lookup_elem(&xm_maglev, &table_id);
	if (!table)
		return 0;
	v = bpf_map_lookup_elem(table, &slot);
	return v ? v->backend_id : 0;
}

/* Returns the chosen backend id, or 0 when the service has none that is ready. */
static __always_inline __u32 xm_select_backend(const struct xm_svc_value *svc, __u32 client_hash)
{
	if (!svc->count)
		return 0;
	switch (svc->algo) {
	case XM_LB_ROUND_ROBIN:
		return xm_pick_round_robin(svc);
	case XM_LB_RANDOM:
		return xm_pick_random(svc);
	case XM_LB_MAGLEV:
		return xm_pick_maglev(svc, client_hash);
	default:
		return xm_pick_least_request(svc);
	}
}

#endif
