/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Our TC egress filters on an interface (the XDP uplinks' reverse NAT, PeerAuthentication on pod veths):
 * attached in place by handle and priority, and detached only when the filter there is still ours.
 */
#ifndef XMESH_DATAPATH_TC_EGRESS_H
#define XMESH_DATAPATH_TC_EGRESS_H

#include <linux/types.h>

struct tc_egress_filter {
	__u32 handle;
	__u32 priority;
	const char *prog_name; /* the program's name in the kernel: what tells our filter from another's */
};

/*
 * Creates the clsact qdisc when missing (a previous agent's, or anyone's, is fine) and attaches prog_fd at the
 * filter's handle and priority, replacing what is there (a restart swaps the program in place: TC filters
 * are not links). Returns 0 or -errno; *step names what failed ("create clsact", "attach TC egress").
 */
int tc_egress_attach(const struct tc_egress_filter *f, int ifindex, int prog_fd, const char **step);

/*
 * Detaches the filter at f's handle and priority if the program there is f->prog_name. Returns 0 when none
 * was there or it is someone else's (left alone), else bpf_tc_detach's result.
 */
int tc_egress_detach_ours(const struct tc_egress_filter *f, int ifindex);

#endif
