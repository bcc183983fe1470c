// SPDX-License-Identifier: Apache-2.0
/* Keeping the north-south datapath's maps in step with what the agent serves (datapath/xdp.h). */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/grow.h"
#include "core/log.h"
#include "datapath/neigh.h"
#include "datapath/tcp_counters.h"
#include "datapath/xdp.h"
#include "datapath/xdp_nodes.h"
#include "skel/xdp_lb.skel.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void xdp_vip_filter_set(__u64 *f, const struct xm_svc_key *k)
{
	uint32_t fold =
	    k->family == XM_FAMILY_V4 ? k->vip.v4 : k->vip.v6[0] ^ k->vip.v6[1] ^ k->vip.v6[2] ^ k->vip.v6[3];
	uint32_t bit = xm_vip_filter_bit(fold, k->port, k->proto);

	f[bit / 64] |= 1ULL << (bit % 64);
}

void xdp_vip_filter_fill(__u64 *filter, const struct xm_lb_state *st, bool add_only)
{
	static __u64 next[XM_VIP_FILTER_BITS / 64];
	size_t i;

	memset(next, 0, sizeof(next));
	for (i = 0; i < st->n_services; i++)
		if (st->services[i].flags & XM_SVC_F_EXTERNAL)
			xdp_vip_filter_set(next, &st->services[i].key);
	/* Word by word: each store is atomic for the program, and a bit that stays set is never cleared. */
	for (i = 0; i < XM_VIP_FILTER_BITS / 64; i++) {
		__u64 w = add_only ? filter[i] | next[i] : next[i];

		if (filter[i] != w)
			filter[i] = w;
	}
}

/* An empty datagram to the discard port: the kernel resolves the next hop to send it (kernels < 5.16). */
static void prime_neighbour(const struct xm_neigh_node *n)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(9) };
	bool v4 = n->family == XM_FAMILY_V4;
	int fd = socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return;
	a4.sin_addr.s_addr = n->addr.v4;
	memcpy(&a6.sin6_addr, n->addr.bytes, 16);
	(void)!(v4 ? sendto(fd, "", 0, 0, (struct sockaddr *)&a4, sizeof(a4))
		   : sendto(fd, "", 0, 0, (struct sockaddr *)&a6, sizeof(a6)));
	close(fd);
}

void xdp_datapath_neighbours(struct xm_xdp *x, const struct xm_lb_state *st)
{
	struct xm_neigh_node *nodes = NULL;
	size_t n = 0, cap = 0, i, j, k;

	for (i = 0; i < st->n_services; i++) {
		const struct xm_lb_service *s = &st->services[i];

		if (!(s->flags & XM_SVC_F_EXTERNAL))
			continue;
		for (j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];

			if (b->local || !b->ready ||
			    !(b->node_addr.v6[0] | b->node_addr.v6[1] | b->node_addr.v6[2] | b->node_addr.v6[3]))
				continue;
			for (k = 0; k < n && memcmp(&nodes[k].addr, &b->node_addr, sizeof(b->node_addr)); k++)
				;
			if (k < n)
				continue;
			if (XM_GROW(nodes, cap, n + 1))
				goto out;
			nodes[n++] = (struct xm_neigh_node){ .addr = b->node_addr, .family = b->family };
		}
	}
	/* n = 0 too: removes the entries of nodes that no longer serve anything. */
	if (neigh_sync(nodes, n))
		log_warn("xdp: could not manage the neighbour entries of remote nodes; sending a datagram instead");
	for (i = 0; i < n; i++)
		if (!nodes[i].managed)
			prime_neighbour(&nodes[i]);
	if (x->skel)
		xdp_nexthops_sync(&x->nexthops, bpf_map__fd(x->skel->maps.xm_nexthops),
				  bpf_map__fd(x->skel->maps.xm_xdp_ifaces), nodes, n);
out:
	free(nodes);
}

int xdp_datapath_sync(struct xm_xdp *x, const struct xm_lb_state *st, bool before)
{
	struct tcp_counters_fill fill = { x->tcp_pairs_placed, x->tcp_pairs_unplaced }; /* kept if sync fails */
	int err;

	xdp_vip_filter_fill(x->skel->bss->xm_vip_filter, st, before);
	if (before)
		return 0;
	xdp_datapath_neighbours(x, st);
	err = xdp_nat_backends_sync(&x->nat_drain, bpf_map__fd(x->skel->maps.xm_nat_backends),
				    bpf_map__fd(x->skel->maps.xm_ct), st, mono_ms());
	/* Not counted (logged, shown by status and metrics) is no reason to call the reverse NAT failed. */
	tcp_counters_sync(bpf_map__fd(x->skel->maps.xm_xdp_tcp_counters), st, &fill);
	atomic_store(&x->tcp_pairs_placed, fill.placed);
	atomic_store(&x->tcp_pairs_unplaced, fill.unplaced);
	atomic_store(&x->nat_draining, xdp_nat_draining(&x->nat_drain));
	return err;
}

int xdp_datapath_sync_nodes(struct xm_xdp *x, const struct xm_node_addrs *na)
{
	return xdp_node_addrs_sync(bpf_map__fd(x->skel->maps.xm_node_addrs), na);
}

void xdp_datapath_tick(struct xm_xdp *x, const struct xm_lb_state *st)
{
	uint64_t now = mono_ms();

	if (!x->skel || !xdp_nat_draining(&x->nat_drain) || now < x->nat_drain.next_check_ms)
		return;
	x->nat_drain.next_check_ms = now + XM_NAT_DRAIN_CHECK_MS;
	xdp_nat_backends_sync(&x->nat_drain, bpf_map__fd(x->skel->maps.xm_nat_backends),
			      bpf_map__fd(x->skel->maps.xm_ct), st, now);
	atomic_store(&x->nat_draining, xdp_nat_draining(&x->nat_drain));
}
