// SPDX-License-Identifier: Apache-2.0
/*
 * The socket LB as a module: its programs on the cgroup (datapath.c), the service maps (lbmap), outlier
 * detection's events and sweeps, and its part of status and metrics. First in the daemon's order: the other
 * objects load next to its pinned maps, and the ids it publishes go into the snapshot for the others.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compile/snapshot.h"
#include "core/grow.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/module.h"
#include "datapath/datapath.h"
#include "lbmap/lbmap.h"
#include "metrics/istio_tcp.h"
#include "metrics/map_errors.h"
#include "metrics/registry.h"
#include "metrics/sock_lb_metrics.h"
#include "outlier/events.h"
#include "outlier/outlier.h"

struct ejection_count {
	uint32_t svc_id, backend_id, reason;
	uint64_t count;
	char service[400], endpoint[80]; /* labels as of the ejection: the ids may be gone at scrape time */
};

struct sock_lb_mod {
	struct xm_agent *agent;
	struct xm_datapath dp;
	struct xm_map_fds fds;
	struct xm_lbmap *lbmap;
	struct xm_outlier_events *events;
	pthread_mutex_t lock; /* guards the ejection counts: the events add, the metrics thread reads */
	struct ejection_count *ejections;
	size_t n_ejections, cap_ejections;
	uint64_t ejections_total, returns_total, ejections_uncounted;
};

/* "reviews.default.svc.cluster.local:80/TCP": Istio's destination_service, plus the port a VIP serves. */
static void service_label(const struct xm_lb_service *s, const struct xm_svc_key *key, char *buf, size_t len)
{
	if (s)
		snprintf(buf, len, "%s.%s.svc.cluster.local:%u/%s", s->name, s->ns, ntohs(key->port),
			 key->proto == XM_PROTO_UDP ? "UDP" : "TCP");
	else
		lb_format_key(key, buf, len);
}

/* "default/reviews 10.96.0.10:80/TCP" and "10.200.1.12:8080" for an event's ids, plus the metric labels. */
static void describe_event(struct sock_lb_mod *m, const struct xm_event *ev, char *svc, size_t svc_len, char *be,
			   size_t be_len, struct ejection_count *labels)
{
	const struct xm_snapshot *snap = daemon_snapshot(m->agent);
	const struct xm_lb_service *s = NULL;
	struct xm_svc_key key;
	struct xm_backend b;

	snprintf(svc, svc_len, "service id %u", ev->svc_id);
	snprintf(labels->service, sizeof(labels->service), "unknown");
	if (lbmap_svc_key(m->lbmap, ev->svc_id, &key)) {
		char k[80];

		s = snap ? snapshot_service_by_key(snap, &key) : NULL;
		lb_format_key(&key, k, sizeof(k));
		if (s)
			snprintf(svc, svc_len, "%s/%s %s", s->ns, s->name, k);
		else
			snprintf(svc, svc_len, "%s", k);
		service_label(s, &key, labels->service, sizeof(labels->service));
	}
	snprintf(be, be_len, "backend %u", ev->backend_id);
	snprintf(labels->endpoint, sizeof(labels->endpoint), "unknown");
	if (lbmap_backend(m->lbmap, ev->backend_id, &b)) {
		struct xm_lb_backend lb = { .addr = b.addr, .port = ntohs(b.port), .family = b.family };

		lb_format_backend(&lb, be, be_len);
		snprintf(labels->endpoint, sizeof(labels->endpoint), "%s", be);
	}
}

static void count_ejection(struct sock_lb_mod *m, const struct xm_event *ev, const struct ejection_count *labels)
{
	struct ejection_count *p;
	size_t i;

	pthread_mutex_lock(&m->lock);
	m->ejections_total++;
	for (i = 0; i < m->n_ejections; i++) {
		p = &m->ejections[i];
		if (p->svc_id == ev->svc_id && p->backend_id == ev->backend_id && p->reason == ev->reason) {
			p->count++;
			goto out;
		}
	}
	if (xm_grow((void **)&m->ejections, &m->cap_ejections, m->n_ejections + 1, sizeof(*m->ejections))) {
		/* The total still counts it; only its per-endpoint series misses one. */
		if (!m->ejections_uncounted++)
			log_warn("outlier: out of memory for ejection counts: this and later new (endpoint, reason) "
				 "pairs are not counted (xmesh_endpoint_ejections_uncounted_total)");
		goto out;
	}
	p = &m->ejections[m->n_ejections++];
	*p = *labels;
	p->svc_id = ev->svc_id;
	p->backend_id = ev->backend_id;
	p->reason = ev->reason;
	p->count = 1;
out:
	pthread_mutex_unlock(&m->lock);
}

static void on_outlier_event(const struct xm_event *ev, void *ctx)
{
	struct sock_lb_mod *m = ctx;
	struct ejection_count labels;
	char svc[400], be[80];

	describe_event(m, ev, svc, sizeof(svc), be, sizeof(be), &labels);
	if (ev->type == XM_EV_EJECT) {
		count_ejection(m, ev, &labels);
		log_warn("outlier: ejected %s from %s: %s, for %llu ms (times ejected %llu)", be, svc,
			 outlier_reason_name(ev->reason), (unsigned long long)ev->duration_ms,
			 (unsigned long long)ev->times_ejected);
	} else if (ev->type == XM_EV_RETURN) {
		pthread_mutex_lock(&m->lock);
		m->returns_total++;
		pthread_mutex_unlock(&m->lock);
		log_info("outlier: %s returned to %s (times ejected %llu)", be, svc,
			 (unsigned long long)ev->times_ejected);
	}
}

static int sock_lb_init(struct xm_agent *a, void **state)
{
	const struct xm_agent_opts *o = daemon_opts(a);
	struct sock_lb_mod *m = calloc(1, sizeof(*m));

	*state = NULL;
	if (!m)
		return -ENOMEM;
	m->agent = a;
	m->dp.cgroup_fd = -1;
	pthread_mutex_init(&m->lock, NULL);
	if (datapath_open(&m->dp, o->bpffs, o->cgroup))
		goto fail;
	datapath_map_fds(&m->dp, &m->fds);
	m->lbmap = lbmap_open(&m->fds);
	if (!m->lbmap)
		goto fail;
	log_info("programs on cgroup %s: %d attached, %d adopted from %s", o->cgroup, m->dp.n_attached, m->dp.n_adopted,
		 o->bpffs);
	m->events = outlier_events_open(daemon_loop(a), m->fds.events, on_outlier_event, m);
	if (!m->events)
		goto fail;
	*state = m;
	return 0;
fail:
	lbmap_free(m->lbmap);
	if (m->dp.sock || m->dp.cgroup_fd >= 0)
		datapath_close(&m->dp);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return -EIO;
}

static int sock_lb_apply(void *state, struct xm_snapshot *next)
{
	struct timespec ts;
	struct sock_lb_mod *m = state;
	struct xm_lbmap_stats stats;
	int err;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	err = lbmap_apply(m->lbmap, &next->lb, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000, &stats);
	/* Everyone after this reads the published ids from the snapshot. */
	lbmap_assign_ids(m->lbmap, &next->lb);
	if (snapshot_index(next))
		log_warn("socket LB: out of memory for the id index; metrics and events lack names this time");
	log_info("socket LB: %u service ports (%u changed, %u removed), %u backends%s", stats.services, stats.changed,
		 stats.removed, stats.backends, err ? ", some kept their previous state" : "");
	return err;
}

/*
 * Ends expired ejections even where no connection selects the endpoint (selection also ends them, lazily).
 * The tick (500 ms) is at least as frequent as any interval Istio users set in practice (>= 1 s).
 */
static void sweep_ejections(struct sock_lb_mod *m, const struct xm_snapshot *cur)
{
	for (size_t i = 0; i < cur->lb.n_services; i++) {
		const struct xm_lb_service *s = &cur->lb.services[i];
		struct xm_outlier_svc count = { 0 };

		/* One lookup per service port: only those with an ejection in force have endpoints to check. */
		if (!s->outlier_on || !s->outlier_id ||
		    bpf_map_lookup_elem(m->fds.outlier_svc, &s->outlier_id, &count) || count.ejected <= 0)
			continue;
		for (size_t j = 0; j < s->n_backends; j++)
			if (s->backends[j].ready && s->backends[j].id)
				outlier_sweep(m->fds.outlier, m->fds.outlier_report_prog, s->outlier_id,
					      s->backends[j].id);
	}
}

static void sock_lb_tick(void *state, const struct xm_snapshot *cur, uint64_t now_ms)
{
	struct sock_lb_mod *m = state;

	lbmap_gc(m->lbmap, now_ms);
	if (cur)
		sweep_ejections(m, cur);
}

/* Outlier state of one endpoint of a service port, when that port has outlier detection on. */
static void health_of(const struct sock_lb_mod *m, const struct xm_lb_service *s, const struct xm_lb_backend *b,
		      struct xm_endpoint_health *h)
{
	memset(h, 0, sizeof(*h));
	if (s->outlier_on && s->outlier_id && b->id)
		outlier_read(m->fds.outlier, s->outlier_id, b->id, h);
}

static void status_text(const struct sock_lb_mod *m, const struct xm_snapshot *cur, struct strbuf *out)
{
	size_t n = cur ? cur->lb.n_services : 0;

	sb_printf(out, "programs: socket LB %d (%d attached now, %d adopted)\n", xm_n_sock_progs, m->dp.n_attached,
		  m->dp.n_adopted);
	sb_printf(out, "services: %zu ports\n", n);
	for (size_t i = 0; i < n; i++) {
		const struct xm_lb_service *s = &cur->lb.services[i];
		char key[80];

		lb_format_key(&s->key, key, sizeof(key));
		sb_printf(out, "\n%s/%s%s%s %s %s%s%s, %zu/%zu ready\n", s->ns, s->name, *s->port_name ? ":" : "",
			  s->port_name, key, lb_algo_name(s->algo),
			  s->flags & XM_SVC_F_EXTERNAL ? ", external (XDP)" : "",
			  s->outlier_on ? ", outlier detection" : "", s->n_ready, s->n_backends);
		if (!s->n_ready)
			sb_puts(out, "  (no ready endpoint: connects are refused)\n");
		for (size_t j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];
			struct xm_endpoint_health h;
			char addr[80];

			lb_format_backend(b, addr, sizeof(addr));
			health_of(m, s, b, &h);
			sb_printf(out, "  %-28s %-9s id %-5u active %-5lld %s%s%s", addr,
				  b->ready ? "ready" : "not-ready", b->id,
				  (long long)lbmap_backend_active(m->lbmap, b->id), b->local ? "local " : "",
				  *b->pod ? "pod " : "", b->pod);
			if (s->outlier_on && h.ejected) {
				time_t until = time(NULL) + (time_t)((h.ejected_for_ms + 999) / 1000);
				char until_s[32];

				strftime(until_s, sizeof(until_s), "%H:%M:%SZ", gmtime(&until));
				sb_printf(
				    out,
				    " EJECTED until %s (%llu ms left, times ejected %llu, consecutive failures %u)",
				    until_s, (unsigned long long)h.ejected_for_ms, (unsigned long long)h.times_ejected,
				    h.consecutive_local);
			} else if (s->outlier_on) {
				sb_printf(out, " healthy (consecutive failures %u, times ejected %llu)",
					  h.consecutive_local, (unsigned long long)h.times_ejected);
			}
			sb_puts(out, "\n");
		}
	}
}

static void status_json(const struct sock_lb_mod *m, const struct xm_snapshot *cur, struct strbuf *out)
{
	size_t n = cur ? cur->lb.n_services : 0;

	sb_printf(out, ",\"socket_lb\":{\"programs\":%d,\"attached\":%d,\"adopted\":%d}", xm_n_sock_progs,
		  m->dp.n_attached, m->dp.n_adopted);
	sb_puts(out, ",\"services\":[");
	for (size_t i = 0; i < n; i++) {
		const struct xm_lb_service *s = &cur->lb.services[i];
		char key[80];

		lb_format_key(&s->key, key, sizeof(key));
		sb_puts(out, i ? ",{" : "{");
		sb_puts(out, "\"namespace\":");
		sb_json_str(out, s->ns);
		sb_puts(out, ",\"name\":");
		sb_json_str(out, s->name);
		sb_puts(out, ",\"port_name\":");
		sb_json_str(out, s->port_name);
		sb_puts(out, ",\"vip\":");
		sb_json_str(out, key);
		sb_printf(out,
			  ",\"id\":%u,\"algorithm\":\"%s\",\"external\":%s,\"outlier_detection\":%s,\"ready\":%zu,"
			  "\"backends\":[",
			  s->svc_id, lb_algo_name(s->algo), s->flags & XM_SVC_F_EXTERNAL ? "true" : "false",
			  s->outlier_on ? "true" : "false", s->n_ready);
		for (size_t j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];
			struct xm_endpoint_health h;
			char addr[80];

			lb_format_backend(b, addr, sizeof(addr));
			health_of(m, s, b, &h);
			sb_puts(out, j ? ",{\"address\":" : "{\"address\":");
			sb_json_str(out, addr);
			sb_printf(out,
				  ",\"id\":%u,\"ready\":%s,\"local\":%s,\"active\":%lld,\"ejected\":%s,"
				  "\"ejected_for_ms\":%llu,\"times_ejected\":%llu,\"consecutive_failures\":%u,\"pod\":",
				  b->id, b->ready ? "true" : "false", b->local ? "true" : "false",
				  (long long)lbmap_backend_active(m->lbmap, b->id), h.ejected ? "true" : "false",
				  (unsigned long long)h.ejected_for_ms, (unsigned long long)h.times_ejected,
				  h.consecutive_local);
			sb_json_str(out, b->pod);
			sb_puts(out, "}");
		}
		sb_puts(out, "]}");
	}
	sb_puts(out, "]");
}

static void sock_lb_status(void *state, const struct xm_snapshot *cur, bool json, struct strbuf *out)
{
	if (json)
		status_json(state, cur, out);
	else
		status_text(state, cur, out);
}

static void collect_outlier(struct sock_lb_mod *m, const struct xm_snapshot *cur, struct xm_scrape *sc)
{
	static const char *const ej_names[3] = { "destination_service", "endpoint", "reason" };
	static const char *const g_names[2] = { "destination_service", "endpoint" };
	struct xm_scrape_family *f;
	uint64_t uncounted;
	uint8_t *seen;

	f = scrape_family(sc, "xmesh_endpoint_ejections_total", "counter",
			  "Outlier ejections of an endpoint, by reason, since the agent started.");
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n_ejections; i++) {
		const struct ejection_count *e = &m->ejections[i];
		const char *values[3] = { e->service, e->endpoint, outlier_reason_name(e->reason) };

		scrape_u64(f, ej_names, values, 3, e->count);
	}
	uncounted = m->ejections_uncounted;
	pthread_mutex_unlock(&m->lock);
	scrape_u64(
	    scrape_family(sc, "xmesh_endpoint_ejections_uncounted_total", "counter",
			  "Outlier ejections missing from xmesh_endpoint_ejections_total: no memory to count them."),
	    NULL, NULL, 0, uncounted);
	f = scrape_family(sc, "xmesh_endpoint_ejected", "gauge",
			  "1 while an endpoint is ejected by outlier detection.");
	/* One series per service port and endpoint: its VIPs (ClusterIP, externalIPs) share the state and label. */
	seen = calloc(XM_MAX_SVC_IDS / 8, 1);
	for (size_t i = 0; seen && i < cur->lb.n_services; i++) {
		const struct xm_lb_service *s = &cur->lb.services[i];
		char svc[400];

		if (!s->outlier_on || !s->outlier_id || s->outlier_id >= XM_MAX_SVC_IDS ||
		    (seen[s->outlier_id / 8] & (1u << (s->outlier_id % 8))))
			continue;
		seen[s->outlier_id / 8] |= (uint8_t)(1u << (s->outlier_id % 8));
		service_label(s, &s->key, svc, sizeof(svc));
		for (size_t j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];
			struct xm_endpoint_health h;
			char ep[80];
			const char *values[2] = { svc, ep };

			if (!b->ready || !b->id)
				continue;
			lb_format_backend(b, ep, sizeof(ep));
			outlier_read(m->fds.outlier, s->outlier_id, b->id, &h);
			scrape_u64(f, g_names, values, 2, h.ejected);
		}
	}
	free(seen);
}

static void sock_lb_collect(void *state, const struct xm_snapshot *cur, struct xm_scrape *sc)
{
	struct sock_lb_mod *m = state;

	sock_lb_metrics_collect(m->fds.sock_stats, sc);
	map_errors_metrics_collect(m->fds.map_errors, sc);
	istio_tcp_collect_sockets(sc, cur, m->fds.conn_metrics);
	collect_outlier(m, cur, sc);
}

static void sock_lb_close(void *state)
{
	struct sock_lb_mod *m = state;

	outlier_events_close(m->events);
	lbmap_free(m->lbmap);
	if (m->dp.sock || m->dp.cgroup_fd >= 0)
		datapath_close(&m->dp);
	free(m->ejections);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

const struct xm_module xm_module_sock_lb = {
	.name = "socket LB",
	.init = sock_lb_init,
	.apply = sock_lb_apply,
	.tick = sock_lb_tick,
	.status = sock_lb_status,
	.collect = sock_lb_collect,
	.close = sock_lb_close,
};
