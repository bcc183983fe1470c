/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outlier detection in the kernel (Envoy/Istio semantics). sockops reports failed and successful active
 * opens; reaching a threshold ejects the endpoint at once, in the same event, so the very next connect()
 * skips it. Ejections end lazily: the first selection that finds the time is up returns the endpoint.
 * Every transition happens under the endpoint's spin lock, so it is counted exactly once even when
 * events race on several CPUs; the per-service ejected count is a shared atomic changed per transition.
 * State, policy and count are per Service port, keyed by its outlier id (xm_outlier_id below), not per VIP.
 */
#ifndef XMESH_BPF_OUTLIER_H
#define XMESH_BPF_OUTLIER_H

#include <xmesh/outlier.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, struct xm_outlier_cfg);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_outlier_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_OUTLIER_MAX);
	__type(key, struct xm_outlier_key);
	__type(value, struct xm_outlier_state);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_outlier SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XM_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, struct xm_outlier_svc);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_outlier_svc SEC(".maps");

/* svc_id → the service port's outlier id (include/xmesh/outlier.h); written by the agent before it publishes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XM_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_outlier_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XM_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_events SEC(".maps");

/*
 * The outlier id of a VIP's svc_id: every address of one Service port shares one state, so an endpoint
 * ejected through the ClusterIP is skipped through its externalIPs too. The functions below take it.
 * A global function, verified once per program rather than at each of its call sites: inlined, it took
 * xm_xdp_lb from 243k to 402k verified instructions, and past its test's time limit on 6.1 under TCG.
 */
__noinline __u32 xm_outlier_id(__u32 svc_id)
{
	__u32 *oid = bpf_map_lookup_elem(&xm_outlier_ids, &svc_id);

	return oid && *oid ? *oid : svc_id;
}

static __always_inline void xm_emit(__u32 type, __u32 oid, __u32 backend_id, __u32 reason, __u64 duration_ms,
				    __u64 times)
{
	struct xm_event ev = {
		.type = type,
		.svc_id = oid,
		.backend_id = backend_id,
		.reason = reason,
		.duration_ms = duration_ms,
		.times_ejected = times,
	};

	bpf_ringbuf_output(&xm_events, &ev, sizeof(ev), 0);
}

static __always_inline void xm_outlier_svc_add(__u32 oid, __s32 delta)
{
	struct xm_outlier_svc *s = bpf_map_lookup_elem(&xm_outlier_svc, &oid);

	if (s)
		__sync_fetch_and_add(&s->ejected, delta);
}

/*
 * True while the endpoint is ejected. An ejection whose time is up ends here (exactly once, under the
 * lock), so selection never needs the agent to bring an endpoint back.
 */
static __always_inline bool xm_endpoint_ejected(__u32 oid, __u32 backend_id, __u64 now)
{
	struct xm_outlier_key k = { .svc_id = oid, .backend_id = backend_id };
	struct xm_outlier_state *st = bpf_map_lookup_elem(&xm_outlier, &k);
	bool returned = false;
	__u64 until, times;

	if (!st)
		return false;
	until = st->ejected_until_ns;
	if (!until)
		return false;
	if (until > now)
		return true;
	bpf_spin_lock(&st->lock);
	if (st->ejected_until_ns && st->ejected_until_ns <= now) {
		st->ejected_until_ns = 0;
		st->last_change_ns = now;
		returned = true;
	}
	times = st->times_ejected;
	bpf_spin_unlock(&st->lock);
	if (returned) {
		xm_outlier_svc_add(oid, -1);
		xm_emit(XM_EV_RETURN, oid, backend_id, 0, 0, times);
	}
	return false;
}

/* Envoy's eject-time backoff: one step down per interval spent healthy since the last change. */
static __always_inline __u32 xm_decayed_backoff(const struct xm_outlier_state *st, const struct xm_outlier_cfg *cfg,
						__u64 now)
{
	__u64 interval_ns = (__u64)cfg->interval_ms * 1000000ULL, steps;

	if (!st->backoff || !interval_ns || now <= st->last_change_ns)
		return st->backoff;
	steps = (now - st->last_change_ns) / interval_ns;
	return steps >= st->backoff ? 0 : st->backoff - (__u32)steps;
}

/* Whether one more ejection keeps the service within maxEjectionPercent and minHealthPercent. */
static __always_inline bool xm_ejection_allowed(const struct xm_outlier_cfg *cfg, __s32 ejected_before)
{
	__u32 n = cfg->n_endpoints;

	if (!n || ejected_before >= (__s32)n)
		return false;
	/* Like Envoy: one ejection is always allowed; more only within maxEjectionPercent. */
	if (ejected_before > 0 && (__u64)(ejected_before + 1) * 100 > (__u64)cfg->max_ejection_pct * n)
		return false;
	/* Below minHealthPercent healthy endpoints, ejection is suspended. */
	if ((__u64)(n - (__u32)ejected_before - 1) * 100 < (__u64)cfg->min_health_pct * n)
		return false;
	return true;
}

static __always_inline void xm_outlier_eject(__u32 oid, __u32 backend_id, struct xm_outlier_state *st,
					     const struct xm_outlier_cfg *cfg, __u32 reason, __u64 now)
{
	struct xm_outlier_svc *svc = bpf_map_lookup_elem(&xm_outlier_svc, &oid);
	__u64 duration_ms = 0, times = 0;
	bool ejected = false;
	__s32 before;

	if (!svc)
		return;
	/* Reserve a place under the cap first; give it back if the policy or a racing CPU says no. */
	before = __sync_fetch_and_add(&svc->ejected, 1);
	if (!xm_ejection_allowed(cfg, before)) {
		__sync_fetch_and_add(&svc->ejected, -1);
		return;
	}
	bpf_spin_lock(&st->lock);
	if (!st->ejected_until_ns) {
		__u32 backoff = xm_decayed_backoff(st, cfg, now) + 1;

		duration_ms = (__u64)cfg->base_ejection_ms * backoff;
		if (cfg->max_ejection_ms && duration_ms > cfg->max_ejection_ms)
			duration_ms =
			    cfg->base_ejection_ms > cfg->max_ejection_ms ? cfg->base_ejection_ms : cfg->max_ejection_ms;
		st->backoff = backoff;
		st->ejected_until_ns = now + duration_ms * 1000000ULL;
		st->last_change_ns = now;
		st->consecutive_local = 0;
		st->consecutive_5xx = 0;
		st->consecutive_gateway = 0;
		st->times_ejected++;
		times = st->times_ejected;
		ejected = true;
	}
	bpf_spin_unlock(&st->lock);
	if (!ejected) {
		__sync_fetch_and_add(&svc->ejected, -1);
		return;
	}
	xm_emit(XM_EV_EJECT, oid, backend_id, reason, duration_ms, times);
}

static __always_inline struct xm_outlier_state *xm_outlier_state_get(__u32 oid, __u32 backend_id)
{
	struct xm_outlier_key k = { .svc_id = oid, .backend_id = backend_id };
	struct xm_outlier_state *st = bpf_map_lookup_elem(&xm_outlier, &k);
	struct xm_outlier_state zero = {};

	if (st)
		return st;
	bpf_map_update_elem(&xm_outlier, &k, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&xm_outlier, &k);
}

/*
 * A local-origin failure (refused, reset or timed-out connect). Unsplit, it counts toward the 5xx and
 * gateway thresholds, as Envoy does; split, toward consecutiveLocalOriginFailures only.
 */
static __always_inline void xm_outlier_local_failure(__u32 oid, __u32 backend_id, __u64 now)
{
	struct xm_outlier_cfg *cfg = bpf_map_lookup_elem(&xm_outlier_cfg, &oid);
	struct xm_outlier_state *st;
	__u32 reason = 0;

	if (!cfg)
		return;
	st = xm_outlier_state_get(oid, backend_id);
	if (!st)
		return;
	bpf_spin_lock(&st->lock);
	if (!st->ejected_until_ns || st->ejected_until_ns <= now) {
		st->consecutive_local++;
		if (cfg->split_local_origin) {
			if (cfg->consecutive_local_origin && st->consecutive_local >= cfg->consecutive_local_origin)
				reason = XM_OUTLIER_LOCAL_ORIGIN;
		} else {
			st->consecutive_5xx++;
			st->consecutive_gateway++;
			if ((cfg->consecutive_5xx && st->consecutive_5xx >= cfg->consecutive_5xx) ||
			    (cfg->consecutive_gateway && st->consecutive_gateway >= cfg->consecutive_gateway))
				reason = XM_OUTLIER_LOCAL_ORIGIN;
		}
	}
	bpf_spin_unlock(&st->lock);
	/* An expired ejection is ended first, so that the new one is counted against the cap correctly. */
	if (reason && !xm_endpoint_ejected(oid, backend_id, now))
		xm_outlier_eject(oid, backend_id, st, cfg, reason, now);
}

/*
 * An upstream HTTP status from the L7 proxy. 5xx extend the 5xx run (502/503/504 also the gateway run);
 * anything else ends both, as in Envoy.
 */
static __always_inline void xm_outlier_http(__u32 oid, __u32 backend_id, __u32 status, __u64 now)
{
	struct xm_outlier_cfg *cfg = bpf_map_lookup_elem(&xm_outlier_cfg, &oid);
	bool is_5xx = status >= 500 && status <= 599;
	bool is_gw = status >= 502 && status <= 504;
	struct xm_outlier_state *st;
	__u32 reason = 0;

	if (!cfg)
		return;
	st = xm_outlier_state_get(oid, backend_id);
	if (!st)
		return;
	bpf_spin_lock(&st->lock);
	if (!is_5xx) {
		st->consecutive_5xx = 0;
		st->consecutive_gateway = 0;
	} else if (!st->ejected_until_ns || st->ejected_until_ns <= now) {
		st->consecutive_5xx++;
		if (is_gw)
			st->consecutive_gateway++;
		else
			st->consecutive_gateway = 0;
		if (cfg->consecutive_gateway && st->consecutive_gateway >= cfg->consecutive_gateway)
			reason = XM_OUTLIER_GATEWAY;
		else if (cfg->consecutive_5xx && st->consecutive_5xx >= cfg->consecutive_5xx)
			reason = XM_OUTLIER_5XX;
	}
	bpf_spin_unlock(&st->lock);
	if (reason && !xm_endpoint_ejected(oid, backend_id, now))
		xm_outlier_eject(oid, backend_id, st, cfg, reason, now);
}

/*
 * An established connection: the consecutive counts start over. Unsplit, Envoy treats a successful
 * connect like a 200, which also ends runs of 5xx and gateway errors; split, only the local-origin run.
 */
static __always_inline void xm_outlier_success(__u32 oid, __u32 backend_id)
{
	struct xm_outlier_key k = { .svc_id = oid, .backend_id = backend_id };
	struct xm_outlier_state *st = bpf_map_lookup_elem(&xm_outlier, &k);
	struct xm_outlier_cfg *cfg;
	bool split;

	if (!st || !(st->consecutive_local | st->consecutive_5xx | st->consecutive_gateway))
		return;
	cfg = bpf_map_lookup_elem(&xm_outlier_cfg, &oid);
	split = cfg && cfg->split_local_origin;
	bpf_spin_lock(&st->lock);
	st->consecutive_local = 0;
	if (!split) {
		st->consecutive_5xx = 0;
		st->consecutive_gateway = 0;
	}
	bpf_spin_unlock(&st->lock);
}

#endif
