// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark wrappers around the XDP load balancer for BPF_PROG_TEST_RUN with repeat > 1 (bench/xdp.c,
 * method B). The kernel runs every repetition on the same buffer, so a wrapper restores what the balancer
 * rewrote (daddr, dport and both checksums of an untagged IPv4/TCP packet without options) and, for the
 * new-flow case, first writes a fresh source address and port so that every repetition misses the
 * connection table. xm_bench_lb is the production program's code unchanged (method A runs xdp_lb itself).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/xdp_balance.h"

#define B_IP  14
#define B_TCP (14 + 20)
#define B_END (B_TCP + 20)

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u64 xm_bench_flow_seq;

struct bench_saved {
	__u32 daddr;
	__u16 ip_check, dport, tcp_check;
};

static __always_inline int bench_save(struct xdp_md *ctx, struct bench_saved *s)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

	if (data + B_END > end)
		return -1;
	s->daddr = *(__u32 *)(data + B_IP + 16);
	s->ip_check = *(__u16 *)(data + B_IP + 10);
	s->dport = *(__u16 *)(data + B_TCP + 2);
	s->tcp_check = *(__u16 *)(data + B_TCP + 16);
	return 0;
}

static __always_inline void bench_restore(struct xdp_md *ctx, const struct bench_saved *s)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

	if (data + B_END > end)
		return;
	*(__u32 *)(data + B_IP + 16) = s->daddr;
	*(__u16 *)(data + B_IP + 10) = s->ip_check;
	*(__u16 *)(data + B_TCP + 2) = s->dport;
	*(__u16 *)(data + B_TCP + 16) = s->tcp_check;
}

SEC("xdp")
int xm_bench_lb(struct xdp_md *ctx)
{
	return xm_xdp_balance(ctx);
}

SEC("xdp")
int xm_bench_hit(struct xdp_md *ctx)
{
	struct bench_saved s;
	int rc;

	if (bench_save(ctx, &s))
		return XDP_ABORTED;
	rc = xm_xdp_balance(ctx);
	bench_restore(ctx, &s);
	return rc;
}

SEC("xdp")
int xm_bench_new(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u64 seq = xm_bench_flow_seq++;
	struct bench_saved s;
	int rc;

	if (data + B_END > end || bench_save(ctx, &s))
		return XDP_ABORTED;
	/* 10.100.0.0/16 sources × 65536 ports: a flow never seen before, every repetition. */
	*(__u32 *)(data + B_IP + 12) = bpf_htonl(0x0a640000 | (__u32)((seq >> 16) & 0xffff));
	*(__u16 *)(data + B_TCP) = bpf_htons((__u16)seq);
	rc = xm_xdp_balance(ctx);
	bench_restore(ctx, &s);
	return rc;
}
