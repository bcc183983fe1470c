// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The mesh cgroup's one sockops program: the socket LB's part (live counts, outlier signals, Istio TCP
 * metrics, L7/HBONE original destinations) and sockmap's part (sockhash insertion, close counters) in one
 * run per callback, where the two programs ran one after the other (6-7 callbacks per connection, each
 * paying both programs' dispatch). The L7 proxy's cgroup keeps sockmap's own program (sockmap.bpf.c), and a
 * mesh cgroup where sockmap could not be loaded keeps the socket LB's (sock_lb.bpf.c). Maps are the pinned
 * ones of both objects. docs/sockmap.md, "Per-connection cost".
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/sock_lb_ops.h"
#include "lib/sockmap_ops.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("sockops")
int xm_mesh_ops(struct bpf_sock_ops *skops)
{
	/* The same order as the two programs ran: the LB first (sockmap keeps the callback flags it set). */
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
	case BPF_SOCK_OPS_RTO_CB:
		xm_lb_sockops(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_STATE_CB:
		xm_lb_sockops(skops);
		xm_sm_sockops(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		xm_sm_sockops(skops);
		break;
	}
	return 1;
}
