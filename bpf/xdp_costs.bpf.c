// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * One primitive per program, for bench/xdp_costs.c: what each costs by the XDP benchmark's method A (one
 * BPF_PROG_TEST_RUN call per packet) on this machine, next to a bare XDP_PASS. It explains where the XDP
 * balancer's budget goes (docs/xdp.md). The maps are sized like the balancer's.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct key40 {
	__u32 w[10]; /* the size of struct xm_ct_key */
};

struct val48 {
	__u64 w[6]; /* the size of struct xm_ct_value */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} c_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} c_array2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct val48);
} c_percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct key40);
	__type(value, struct val48);
} c_hash SEC(".maps");

/* The connection table's shape: per-CPU LRU lists, 262,144 entries, filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct key40);
	__type(value, struct val48);
} c_lru SEC(".maps");

__u32 c_seq;

static __always_inline struct key40 key_of(__u32 n)
{
	struct key40 k = {};

	k.w[0] = n;
	k.w[4] = 0x0a61000a;
	return k;
}

SEC("xdp")
int c_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* The first memory beyond the packet and the stack: one array element. */
SEC("xdp")
int c_first_access(struct xdp_md *ctx)
{
	__u32 k = ctx->rx_queue_index + 4000;
	__u64 *v = bpf_map_lookup_elem(&c_array, &k);

	return v && *v == 7 ? XDP_DROP : XDP_PASS;
}

/* Two arrays, elements pages apart: what a further page costs once one was touched. */
SEC("xdp")
int c_second_access(struct xdp_md *ctx)
{
	__u32 k = ctx->rx_queue_index + 4000, k2 = k + 30000;
	__u64 *v = bpf_map_lookup_elem(&c_array, &k), *w = bpf_map_lookup_elem(&c_array2, &k2);

	return v && w && *v + *w == 7 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int c_percpu_count(struct xdp_md *ctx)
{
	__u32 k = ctx->rx_queue_index + 4000;
	struct val48 *v = bpf_map_lookup_elem(&c_percpu, &k);

	if (v)
		v->w[0]++;
	return XDP_PASS;
}

SEC("xdp")
int c_hash_hit(struct xdp_md *ctx)
{
	struct key40 k = key_of(7);
	struct val48 *v = bpf_map_lookup_elem(&c_hash, &k);

	return v && v->w[0] == 7 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int c_lru_hit(struct xdp_md *ctx)
{
	struct key40 k = key_of(12345);
	struct val48 *v = bpf_map_lookup_elem(&c_lru, &k);

	return v && v->w[0] == 7 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int c_lru_miss(struct xdp_md *ctx)
{
	struct key40 k = key_of(0x80000000 | c_seq++);
	struct val48 *v = bpf_map_lookup_elem(&c_lru, &k);

	return v && v->w[0] == 7 ? XDP_DROP : XDP_PASS;
}

/* A new key into the full table: the insert that every new flow pays (eviction included). */
SEC("xdp")
int c_lru_insert(struct xdp_md *ctx)
{
	struct key40 k = key_of(0x40000000 | c_seq++);
	struct val48 v = {};

	bpf_map_update_elem(&c_lru, &k, &v, BPF_ANY);
	return XDP_PASS;
}

SEC("xdp")
int c_ktime(struct xdp_md *ctx)
{
	return bpf_ktime_get_ns() == 7 ? XDP_DROP : XDP_PASS;
}
