// SPDX-License-Identifier: Apache-2.0
#include "datapath/xdp_stats.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "datapath/xdp.h"
#include "core/percpu.h"
#include "skel/xdp_lb.skel.h"

static const char *const stat_names[XM_XDP_STAT_MAX] = {
	[XM_XDP_PASS_NOT_IP] = "pass_not_ip",	      [XM_XDP_PASS_NOT_VIP] = "pass_not_vip",
	[XM_XDP_PASS_MALFORMED] = "pass_malformed",   [XM_XDP_PASS_FRAGMENT] = "pass_fragment",
	[XM_XDP_PASS_IPV6_EXT] = "pass_ipv6_ext",     [XM_XDP_DROP_NO_NEIGH] = "drop_no_neigh",
	[XM_XDP_DNAT_LOCAL] = "dnat_local",	      [XM_XDP_TX_ENCAP] = "tx_encap",
	[XM_XDP_CT_HIT] = "ct_revalidated",	      [XM_XDP_DECAP] = "decap",
	[XM_XDP_DROP_NO_BACKEND] = "drop_no_backend", [XM_XDP_DROP_NO_LOCAL] = "drop_no_local",
	[XM_XDP_DROP_NO_ROUTE] = "drop_no_route",     [XM_XDP_DROP_TOO_BIG] = "drop_too_big",
	[XM_XDP_DROP_ERROR] = "drop_error",	      [XM_XDP_CT_NEW] = "ct_new",
	[XM_XDP_CT_NEW_NON_SYN] = "ct_new_non_syn",   [XM_TC_REV_NAT] = "tc_rev_nat",
	[XM_XDP_TX_ICMP_TOO_BIG] = "tx_icmp_too_big", [XM_XDP_DROP_TUNNEL_SOURCE] = "drop_tunnel_source",
};

const char *xdp_stat_name(unsigned int stat)
{
	return stat < XM_XDP_STAT_MAX && stat_names[stat] ? stat_names[stat] : "?";
}

/* Entries of the connection table, by batched lookups (one syscall per 4,096). */
static uint64_t ct_entries(int fd)
{
	static struct xm_ct_key keys[4096];
	static struct xm_ct_value vals[4096];
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	__u64 in = 0, out = 0;
	void *inp = NULL;
	uint64_t total = 0;

	for (;;) {
		__u32 count = 4096;
		int err = bpf_map_lookup_batch(fd, inp, &out, keys, vals, &count, &o);

		total += count;
		if (err)
			break; /* ENOENT: the end */
		in = out;
		inp = &in;
	}
	return total;
}

/* A service port's per-VIP counters summed over CPUs; zero when it has no id (yet). */
static void vip_counters(const struct xm_xdp *x, const struct xm_svc_key *key, struct xm_xdp_vip_counters *sum)
{
	uint64_t f[sizeof(*sum) / sizeof(uint64_t)];
	struct xm_svc_value v;

	memset(sum, 0, sizeof(*sum));
	if (bpf_map_lookup_elem(bpf_map__fd(x->skel->maps.xm_services), key, &v) < 0 || !v.svc_id)
		return;
	if (percpu_lookup_sum(bpf_map__fd(x->skel->maps.xm_xdp_vip_stats), &v.svc_id, sizeof(f) / sizeof(f[0]), f))
		return;
	memcpy(sum, f, sizeof(*sum));
}

int xdp_stats_read(const struct xm_xdp *x, const struct xm_lb_state *st, struct xm_xdp_stats *out)
{
	size_t i, n = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < x->n_uplinks; i++) {
		memcpy(out->uplinks[i].name, x->uplinks[i].name, sizeof(out->uplinks[i].name));
		out->uplinks[i].adopted = x->uplinks[i].adopted;
	}
	out->n_uplinks = x->n_uplinks;
	out->ct_capacity = XM_CT_MAX;
	out->tcp_pairs_placed = x->tcp_pairs_placed;
	out->tcp_pairs_unplaced = x->tcp_pairs_unplaced;
	out->tcp_positions = XM_XDP_TCP_SLOTS;
	out->nat_draining = atomic_load(&x->nat_draining);
	if (!x->skel)
		return 0;
	out->ct_entries = ct_entries(bpf_map__fd(x->skel->maps.xm_ct));
	if (percpu_sum_u64(bpf_map__fd(x->skel->maps.xm_xdp_stats), XM_XDP_STAT_MAX, out->verdicts))
		memset(out->verdicts, 0, sizeof(out->verdicts));
	for (i = 0; st && i < st->n_services; i++)
		n += !!(st->services[i].flags & XM_SVC_F_EXTERNAL);
	if (n && !(out->vips = calloc(n, sizeof(*out->vips)))) {
		xdp_stats_free(out);
		return -ENOMEM;
	}
	for (i = 0; st && i < st->n_services; i++) {
		struct xm_xdp_vip_stats *v;

		if (!(st->services[i].flags & XM_SVC_F_EXTERNAL))
			continue;
		v = &out->vips[out->n_vips++];
		v->svc = &st->services[i];
		vip_counters(x, &st->services[i].key, &v->counters);
	}
	return 0;
}

void xdp_stats_free(struct xm_xdp_stats *s)
{
	free(s->vips);
	memset(s, 0, sizeof(*s));
}
