/* SPDX-License-Identifier: Apache-2.0 */
/* Maps of same-node socket acceleration, pinned by name with BTF so a restarted agent adopts them. */
#ifndef XMESH_BPF_SOCKMAP_MAPS_H
#define XMESH_BPF_SOCKMAP_MAPS_H

#include <xmesh/sockmap.h>

/*
 * Established local-to-local sockets. No map_flags: sockhash accepts none of the hash-map flags
 * (BPF_F_NO_PREALLOC makes the create fail), and its elements are allocated on insert anyway.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, XM_MAX_SOCK_PAIRS);
	__type(key, struct xm_sock_pair_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_sock_pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_LOCAL_IPS);
	__type(key, struct xm_local_ip_key);
	__type(value, struct xm_local_ip);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_local_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xm_sockmap_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_sockmap_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_MAX_EXCLUDED_PORTS);
	__type(key, __u32);
	__type(value, struct xm_sockmap_excl_port);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_sockmap_excl_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct xm_sockmap_sk);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_sockmap_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_SMSTAT_MAX);
	__type(key, __u32);
	__type(value, struct xm_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_sockmap_stats SEC(".maps");

static __always_inline void xm_sm_stat_add(__u32 idx, __u64 n)
{
	struct xm_counter *c = bpf_map_lookup_elem(&xm_sockmap_stats, &idx);

	if (c)
		c->value += n;
}

static __always_inline bool xm_sm_enabled(void)
{
	struct xm_sockmap_config *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&xm_sockmap_config, &zero);
	return cfg && cfg->enabled;
}

static __always_inline bool xm_sm_port_excluded(__u16 port)
{
	__u32 key = port;

	return bpf_map_lookup_elem(&xm_sockmap_excl_ports, &key) != NULL;
}

#endif
