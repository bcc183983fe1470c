/* SPDX-License-Identifier: Apache-2.0 */
/* Maps of the socket-level load balancer, pinned by name so the agent's restarts adopt them. */
#ifndef XMESH_BPF_SOCK_MAPS_H
#define XMESH_BPF_SOCK_MAPS_H

#include <xmesh/lb.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_SERVICES);
	__type(key, struct xm_svc_key);
	__type(value, struct xm_svc_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_SLOTS);
	__type(key, struct xm_slot_key);
	__type(value, struct xm_slot_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct xm_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_backends SEC(".maps");

/* Shared, not per-CPU: LEAST_REQUEST compares live counts, and they change once per connection. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct xm_backend_conns);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_backend_conns SEC(".maps");

/* One Maglev lookup table per consistent-hash service port; inner arrays may differ in size. */
struct xm_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xm_slot_value);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, XM_MAX_MAGLEV_TABLES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct xm_maglev_inner);
} xm_maglev SEC(".maps");

/* Round-robin position per service port and CPU, as Envoy keeps one per worker. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, struct xm_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_rr_state SEC(".maps");

/*
 * Per-socket state of connections through a VIP, keyed by socket cookie. An LRU hash rather than socket
 * storage: creating socket storage at connect() cost ~1.2 µs here, an LRU insert a fraction of that.
 * sockops deletes a TCP entry when its socket closes, so the live entries are the live connections.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XM_MAX_SOCKS);
	__type(key, __u64);
	__type(value, struct xm_sock_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_sock_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct xm_udp_revnat_key);
	__type(value, struct xm_udp_revnat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_udp_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_STAT_SOCK_MAX);
	__type(key, __u32);
	__type(value, struct xm_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_sock_stats SEC(".maps");

/*
 * Istio's TCP counters per (client, service port, backend). Shared, not per CPU: they change twice per
 * connection (established, closed; atomic adds), never per packet, and a per-CPU LRU hash of this size
 * held 2 MiB per possible CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct xm_conn_metrics_key);
	__type(value, struct xm_conn_metrics);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_conn_metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_MAPERR_MAX);
	__type(key, __u32);
	__type(value, struct xm_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_map_errors SEC(".maps");

/* A map update that failed (enum xm_map_error): counted, as nothing else reports it. */
static __always_inline void xm_map_error(__u32 idx)
{
	struct xm_counter *c = bpf_map_lookup_elem(&xm_map_errors, &idx);

	if (c)
		c->value++;
}

static __always_inline void xm_stat_inc(__u32 idx)
{
	struct xm_counter *c = bpf_map_lookup_elem(&xm_sock_stats, &idx);

	if (c)
		c->value++;
}

#endif
