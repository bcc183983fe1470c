// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The trivial XDP program: the floor of `make bench` (bench/xdp.c), and what the e2e tests attach to the
 * far end of a veth that receives XDP_TX frames (veth needs a native XDP program on the receiving side).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xm_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
