// SPDX-License-Identifier: Apache-2.0
/* North-south XDP/TC as a module: on with --iface, off (no state) without. */
#include <errno.h>
#include <stdlib.h>

#include "compile/snapshot.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/module.h"
#include "datapath/tcp_counters.h"
#include "datapath/xdp.h"
#include "datapath/xdp_stats.h"
#include "daemon/xdp_render.h"
#include "metrics/istio_tcp.h"

/*
 * Remote nodes' neighbour entries, and the next hops XDP uses (xm_nexthops), are refreshed every
 * --neigh-sync seconds (default 30; ticks of 500 ms): routes and neighbours change.
 */
#define NEIGH_SYNC_DEFAULT_S 30

struct xdp_mod {
	struct xm_xdp xdp;
	unsigned neigh_ticks;	   /* ticks since the remote nodes' neighbours were last refreshed */
	unsigned neigh_sync_ticks; /* the period */
};

static int xdp_mod_init(struct xm_agent *a, void **state)
{
	const struct xm_agent_opts *o = daemon_opts(a);
	struct xdp_mod *m;

	*state = NULL;
	if (!o->n_ifaces)
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->neigh_sync_ticks = (o->neigh_sync_s ? o->neigh_sync_s : NEIGH_SYNC_DEFAULT_S) * 2;
	if (xdp_datapath_open(&m->xdp, o->bpffs, o->ifaces, o->n_ifaces)) {
		free(m);
		return -EIO;
	}
	*state = m;
	return 0;
}

/* New VIPs pass the pre-filter before the socket LB module publishes them. */
static int xdp_mod_prepare(void *state, const struct xm_snapshot *next)
{
	struct xdp_mod *m = state;

	return xdp_datapath_sync(&m->xdp, &next->lb, true);
}

static int xdp_mod_apply(void *state, struct xm_snapshot *next)
{
	struct xdp_mod *m = state;
	int err = xdp_datapath_sync(&m->xdp, &next->lb, false), nerr;

	if (err)
		log_warn("xdp: reverse-NAT table not fully updated");
	nerr = xdp_datapath_sync_nodes(&m->xdp, &next->nodes);
	if (nerr)
		log_warn("xdp: node addresses not fully published; IPIP/IP6IP6 from the missing ones is dropped");
	return err ? err : nerr;
}

static void xdp_mod_tick(void *state, const struct xm_snapshot *cur, uint64_t now_ms)
{
	struct xdp_mod *m = state;

	(void)now_ms;
	if (!cur)
		return;
	xdp_datapath_tick(&m->xdp, &cur->lb);
	if (++m->neigh_ticks >= m->neigh_sync_ticks) {
		m->neigh_ticks = 0;
		xdp_datapath_neighbours(&m->xdp, &cur->lb);
	}
}

/* The XDP section, from one read of its counters. */
static void xdp_mod_status(void *state, const struct xm_snapshot *cur, bool json, struct strbuf *out)
{
	struct xdp_mod *m = state;
	struct xm_xdp_stats s;
	bool ok = !xdp_stats_read(&m->xdp, cur ? &cur->lb : NULL, &s);

	if (json)
		sb_puts(out, ",\"xdp\":");
	xdp_render_status(ok ? &s : NULL, json, out);
	if (ok)
		xdp_stats_free(&s);
}

/* XDP's Istio counters: per service port and local backend, reporter="destination". */
static void collect_istio_tcp(const struct xdp_mod *m, const struct xm_snapshot *cur, struct xm_scrape *sc)
{
	struct xm_xdp_tcp_metrics *pairs = NULL;
	int n = tcp_counters_read(xdp_datapath_tcp_counters_fd(&m->xdp), &pairs);

	for (int i = 0; i < n; i++) {
		const struct xm_xdp_tcp_metrics *p = &pairs[i];

		istio_tcp_add(sc, cur, ISTIO_TCP_DESTINATION, p->svc_id, p->backend_id, NULL,
			      &(struct istio_tcp_counts){ p->opened, p->closed, p->sent_bytes, p->received_bytes });
	}
	free(pairs);
}

static void xdp_mod_collect(void *state, const struct xm_snapshot *cur, struct xm_scrape *sc)
{
	struct xdp_mod *m = state;

	struct xm_xdp_stats s;

	collect_istio_tcp(m, cur, sc);
	if (xdp_stats_read(&m->xdp, &cur->lb, &s))
		return;
	xdp_render_metrics(&s, sc);
	xdp_stats_free(&s);
}

static void xdp_mod_close(void *state)
{
	struct xdp_mod *m = state;

	xdp_datapath_close(&m->xdp);
	free(m);
}

const struct xm_module xm_module_xdp = {
	.name = "xdp",
	.init = xdp_mod_init,
	.prepare = xdp_mod_prepare,
	.apply = xdp_mod_apply,
	.tick = xdp_mod_tick,
	.status = xdp_mod_status,
	.collect = xdp_mod_collect,
	.close = xdp_mod_close,
};
