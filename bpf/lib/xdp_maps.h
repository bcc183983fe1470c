/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Maps of the north-south load balancer (XDP + TC), pinned by name next to the socket LB's maps, and the
 * VIP pre-filter in .bss (the agent fills it through the skeleton's mmap).
 */
#ifndef XMESH_BPF_XDP_MAPS_H
#define XMESH_BPF_XDP_MAPS_H

#include <xmesh/xdp.h>

/*
 * The connection table. BPF_F_NO_COMMON_LRU: every CPU has its own LRU list and free list, so an insert
 * never takes a lock shared with other CPUs (Katran keeps one LRU per CPU for the same reason); RSS keeps a
 * flow on one CPU, so the per-CPU lists age the flows that CPU serves. The cost: eviction is per CPU
 * (a CPU may evict while another has room); size for the busiest CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XM_CT_MAX);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct xm_ct_key);
	__type(value, struct xm_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_ct SEC(".maps");

/* Local backend → the external VIP:ports it serves; written by the agent, read by TC. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_NAT_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xm_nat_backend_key);
	__type(value, struct xm_nat_backend_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_nat_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_XDP_MAX_IFACES);
	__type(key, __u32); /* ifindex */
	__type(value, struct xm_xdp_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_xdp_ifaces SEC(".maps");

/* Nodes' addresses: the only outer sources XDP decapsulates from; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XM_NODE_ADDRS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xm_node_addr_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_node_addrs SEC(".maps");

/* Remote nodes' resolved next hops (include/xmesh/xdp.h): written by the agent, read by XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XM_NEXTHOP_SLOTS);
	__type(key, __u32);
	__type(value, struct xm_nexthop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_XDP_STAT_MAX);
	__type(key, __u32);
	__type(value, struct xm_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_xdp_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XM_MAX_EXT_SVC_IDS); /* external VIP ports' ids are below it (48 B x 4096 per CPU) */
	__type(key, __u32);			 /* svc_id */
	__type(value, struct xm_xdp_vip_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xm_xdp_vip_stats SEC(".maps");

/* Bit xm_vip_filter_bit(daddr, dport, proto) is set for every external VIP (false positives are fine). */
__u64 xm_vip_filter[XM_VIP_FILTER_BITS / 64];

static __always_inline void xm_xdp_stat(__u32 idx)
{
	struct xm_counter *c = bpf_map_lookup_elem(&xm_xdp_stats, &idx);

	if (c)
		c->value++;
}

/*
 * xm_xdp_serve_slow's working structs, off the BPF stack: with the entry's frame they would pass its 512
 * bytes. Per CPU, one slot; not pinned (nothing outside one call reads it).
 */
struct xm_xdp_scratch {
	struct bpf_fib_lookup fib;
	struct xm_ct_key ck;
	struct xm_ct_value snap;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xm_xdp_scratch);
} xm_xdp_scratch SEC(".maps");

static __always_inline void xm_vip_count(__u32 svc_id, __u32 verdict, bool new_flow, __u64 bytes)
{
	struct xm_xdp_vip_counters *c = bpf_map_lookup_elem(&xm_xdp_vip_stats, &svc_id);

	if (!c)
		return;
	if (verdict < XM_VIP_VERDICT_MAX)
		c->packets[verdict]++;
	if (new_flow)
		c->packets[XM_VIP_NEW_FLOW]++;
	c->bytes += bytes;
}

#endif
