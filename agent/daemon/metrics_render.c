// SPDX-License-Identifier: Apache-2.0
/*
 * The agent's own figures for GET /metrics: config applies, Istio's TCP metrics counted in the kernel
 * (reporter="source" from sockops, which runs on the client's node; reporter="destination" from XDP/TC,
 * which run on the node that receives external clients), and outlier ejections.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/xdp_render.h"
#include "datapath/tcp_counters.h"
#include "lbmap/lbmap.h"
#include "metrics/percpu.h"
#include "metrics/prom.h"
#include "metrics/map_errors.h"
#include "metrics/sock_lb_metrics.h"
#include "outlier/outlier.h"

#define TCP_LABELS 14

static const char *const tcp_label_names[TCP_LABELS] = {
	"reporter",
	"source_workload",
	"source_workload_namespace",
	"source_principal",
	"source_app",
	"destination_service",
	"destination_service_name",
	"destination_service_namespace",
	"destination_workload",
	"destination_workload_namespace",
	"destination_principal",
	"request_protocol",
	"connection_security_policy",
	"response_flags",
};

struct tcp_series {
	char labels[TCP_LABELS][640];
	uint64_t v[4]; /* opened, closed, sent, received */
};

static const struct xm_lb_service *served_by_key(const struct xm_agent *a, const struct xm_svc_key *key)
{
	size_t i;

	for (i = 0; i < a->served.n_services; i++)
		if (!memcmp(&a->served.services[i].key, key, sizeof(*key)))
			return &a->served.services[i];
	return NULL;
}

static void set_identity(struct tcp_series *s, int workload, const struct xm_identity *id)
{
	snprintf(s->labels[workload], sizeof(s->labels[0]), "%s", id ? id->workload : "unknown");
	snprintf(s->labels[workload + 1], sizeof(s->labels[0]), "%s", id ? id->ns : "unknown");
	snprintf(s->labels[workload + 2], sizeof(s->labels[0]), "%s", id ? id->principal : "unknown");
}

/* Where a series' counts come from: sockops on the client's node, or XDP/TC on the destination's uplink. */
enum tcp_origin {
	TCP_FROM_SOCKETS,
	TCP_FROM_XDP,
};

/*
 * Labels of one (client, service port, backend) series. The socket path knows its client; XDP's clients
 * are external addresses, reported as Istio reports an unknown source.
 */
static bool label_series(const struct xm_agent *a, uint32_t svc_id, uint32_t backend_id,
			 const struct xm_identity *client, enum tcp_origin origin, struct tcp_series *s)
{
	const struct xm_lb_service *svc;
	struct xm_svc_key key;
	struct xm_backend b;

	memset(s->labels, 0, sizeof(s->labels));
	if (!lbmap_svc_key(a->lbmap, svc_id, &key) || !(svc = served_by_key(a, &key)))
		return false; /* a service port that is gone: its counters go with it */
	snprintf(s->labels[0], sizeof(s->labels[0]), "%s", origin == TCP_FROM_XDP ? "destination" : "source");
	set_identity(s, 1, client);
	snprintf(s->labels[4], sizeof(s->labels[0]), "%s", s->labels[1]);
	snprintf(s->labels[5], sizeof(s->labels[0]), "%s.%s.svc.cluster.local", svc->name, svc->ns);
	snprintf(s->labels[6], sizeof(s->labels[0]), "%s", svc->name);
	snprintf(s->labels[7], sizeof(s->labels[0]), "%s", svc->ns);
	if (lbmap_backend(a->lbmap, backend_id, &b))
		set_identity(s, 8, identities_find(&a->identities, &b.addr, b.family));
	else
		set_identity(s, 8, NULL);
	snprintf(s->labels[11], sizeof(s->labels[0]), "tcp");
	snprintf(s->labels[12], sizeof(s->labels[0]), "unknown");
	snprintf(s->labels[13], sizeof(s->labels[0]), "-");
	return true;
}

static int series_cmp(const void *x, const void *y)
{
	return memcmp(((const struct tcp_series *)x)->labels, ((const struct tcp_series *)y)->labels,
		      sizeof(((const struct tcp_series *)x)->labels));
}

static int key_cmp(const void *x, const void *y, void *key_size)
{
	return memcmp(x, y, *(const size_t *)key_size);
}

/*
 * The keys (key_size bytes each) of an LRU hash, each once: a walk restarts from the first key when the
 * previous one was evicted meanwhile, so keys are collected and deduplicated before any value is read.
 */
static size_t collect_keys(int map_fd, size_t key_size, unsigned char **out)
{
	unsigned char k[64], next[64], *prev = NULL, *keys = NULL;
	size_t n = 0, cap = 0, i, m;

	*out = NULL;
	if (key_size > sizeof(k))
		return 0;
	while (bpf_map_get_next_key(map_fd, prev, next) == 0 && n < 4 * 65536) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			void *p = realloc(keys, ncap * key_size);

			if (!p)
				break;
			keys = p;
			cap = ncap;
		}
		memcpy(keys + n++ * key_size, next, key_size);
		memcpy(k, next, key_size);
		prev = k;
	}
	if (n > 1)
		qsort_r(keys, n, key_size, key_cmp, &key_size);
	for (i = 0, m = 0; i < n; i++)
		if (!m || memcmp(keys + (m - 1) * key_size, keys + i * key_size, key_size))
			memmove(keys + m++ * key_size, keys + i * key_size, key_size);
	*out = keys;
	return m;
}

struct series_set {
	struct tcp_series *v;
	size_t n, cap;
};

static struct tcp_series *series_add(struct series_set *set)
{
	if (set->n == set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 16;
		void *p = realloc(set->v, ncap * sizeof(*set->v));

		if (!p)
			return NULL;
		set->v = p;
		set->cap = ncap;
	}
	return &set->v[set->n];
}

/*
 * One series: opened, closed, sent and received as Istio means them (sent = response bytes, received =
 * request bytes, whoever reports). Skipped when its service port is gone: its counters go with it.
 */
static void add_series(const struct xm_agent *a, struct series_set *set, uint32_t svc_id, uint32_t backend_id,
		       const struct xm_identity *client, enum tcp_origin origin, const uint64_t v[4])
{
	struct tcp_series *s = series_add(set);

	if (!s || !label_series(a, svc_id, backend_id, client, origin, s))
		return;
	memcpy(s->v, v, sizeof(s->v));
	set->n++;
}

/* The socket path's xm_conn_metrics: per client, service port and backend (reporter="source"). */
static void collect_socket_series(const struct xm_agent *a, int map_fd, struct series_set *set)
{
	unsigned char *keys = NULL;
	size_t n = collect_keys(map_fd, sizeof(struct xm_conn_metrics_key), &keys), i;

	for (i = 0; i < n; i++) {
		const struct xm_conn_metrics_key *ck = (const void *)(keys + i * sizeof(*ck));
		struct xm_conn_metrics c;

		if (bpf_map_lookup_elem(map_fd, ck, &c))
			continue;
		/* xm_conn_metrics counts from the client's side: its sent bytes are the request's. */
		add_series(a, set, ck->svc_id, ck->backend_id, identities_find(&a->identities, &ck->client, ck->family),
			   TCP_FROM_SOCKETS, (const uint64_t[4]){ c.opened, c.closed, c.received_bytes, c.sent_bytes });
	}
	free(keys);
}

/* XDP's xm_xdp_tcp_counters: per service port and local backend (reporter="destination"). */
static void collect_xdp_series(const struct xm_agent *a, int map_fd, struct series_set *set)
{
	struct xm_xdp_tcp_metrics *pairs;
	int n = tcp_counters_read(map_fd, &pairs);

	for (int i = 0; i < n; i++) {
		const struct xm_xdp_tcp_metrics *p = &pairs[i];

		add_series(a, set, p->svc_id, p->backend_id, NULL, TCP_FROM_XDP,
			   (const uint64_t[4]){ p->opened, p->closed, p->sent_bytes, p->received_bytes });
	}
	free(pairs);
}

/* Connections from several addresses of one workload are one series: merge equal label sets. */
static size_t merge_series(struct series_set *set)
{
	struct tcp_series *all = set->v;
	size_t n = set->n, i, m;

	if (n > 1)
		qsort(all, n, sizeof(*all), series_cmp);
	for (i = 0, m = 0; i < n; i++) {
		if (m && !series_cmp(&all[m - 1], &all[i])) {
			for (int f = 0; f < 4; f++)
				all[m - 1].v[f] += all[i].v[f];
			continue;
		}
		if (m != i)
			all[m] = all[i];
		m++;
	}
	return m;
}

/* conn_fd: the socket path's xm_conn_metrics; xdp_fd: xm_xdp_tcp_counters, or -1 without uplinks. */
static void render_istio_tcp(const struct xm_agent *a, int conn_fd, int xdp_fd, struct strbuf *out)
{
	static const char *const names[4] = {
		"istio_tcp_connections_opened_total",
		"istio_tcp_connections_closed_total",
		"istio_tcp_sent_bytes_total",
		"istio_tcp_received_bytes_total",
	};
	static const char *const help[4] = {
		"TCP connections opened, counted by the kernel at establishment.",
		"TCP connections closed.",
		"TCP payload bytes sent during responses (server to client), as Istio counts them for either "
		"reporter; the socket path counts closed connections.",
		"TCP payload bytes received during requests (client to server), as Istio counts them for either "
		"reporter; the socket path counts closed connections.",
	};
	struct series_set set = { NULL, 0, 0 };
	struct tcp_series *all;
	size_t n, i;
	int f;

	collect_socket_series(a, conn_fd, &set);
	if (xdp_fd >= 0)
		collect_xdp_series(a, xdp_fd, &set);
	n = merge_series(&set);
	all = set.v;

	for (f = 0; f < 4; f++) {
		prom_family(out, names[f], "counter", help[f]);
		for (i = 0; i < n; i++) {
			const char *values[TCP_LABELS];

			for (int l = 0; l < TCP_LABELS; l++)
				values[l] = all[i].labels[l];
			prom_sample_u64(out, names[f], tcp_label_names, values, TCP_LABELS, all[i].v[f]);
		}
	}
	free(all);
}

/* "reviews.default.svc.cluster.local:80/TCP": Istio's destination_service, plus the port a VIP serves. */
static void service_label(const struct xm_agent *a, const struct xm_svc_key *key, char *buf, size_t len)
{
	const struct xm_lb_service *s = served_by_key(a, key);

	if (s)
		snprintf(buf, len, "%s.%s.svc.cluster.local:%u/%s", s->name, s->ns, ntohs(key->port),
			 key->proto == XM_PROTO_UDP ? "UDP" : "TCP");
	else
		lb_format_key(key, buf, len);
}

static void render_outlier(const struct xm_agent *a, int outlier_fd, struct strbuf *out)
{
	static const char *const ej_names[3] = { "destination_service", "endpoint", "reason" };
	static const char *const g_names[2] = { "destination_service", "endpoint" };
	size_t i, j;

	prom_family(out, "xmesh_endpoint_ejections_total", "counter",
		    "Outlier ejections of an endpoint, by reason, since the agent started.");
	for (i = 0; i < a->n_ejections; i++) {
		const struct xm_ejection_count *e = &a->ejections[i];
		char svc[400] = "unknown", ep[80] = "unknown";
		struct xm_svc_key key;
		struct xm_backend b;
		const char *values[3] = { svc, ep, outlier_reason_name(e->reason) };

		if (lbmap_svc_key(a->lbmap, e->svc_id, &key))
			service_label(a, &key, svc, sizeof(svc));
		if (lbmap_backend(a->lbmap, e->backend_id, &b)) {
			struct xm_lb_backend lb = { .addr = b.addr, .port = ntohs(b.port), .family = b.family };

			lb_format_backend(&lb, ep, sizeof(ep));
		}
		prom_sample_u64(out, "xmesh_endpoint_ejections_total", ej_names, values, 3, e->count);
	}
	prom_family(out, "xmesh_endpoint_ejected", "gauge", "1 while an endpoint is ejected by outlier detection.");
	for (i = 0; i < a->served.n_services; i++) {
		const struct xm_lb_service *s = &a->served.services[i];
		uint32_t svc_id = lbmap_svc_id(a->lbmap, &s->key);
		char svc[400];

		if (!s->outlier_on || !svc_id)
			continue;
		service_label(a, &s->key, svc, sizeof(svc));
		for (j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];
			uint32_t id = lbmap_backend_id(a->lbmap, &b->addr, htons(b->port), b->family);
			struct xm_endpoint_health h;
			char ep[80];
			const char *values[2] = { svc, ep };

			if (!b->ready || !id)
				continue;
			lb_format_backend(b, ep, sizeof(ep));
			outlier_read(outlier_fd, svc_id, id, &h);
			prom_sample_u64(out, "xmesh_endpoint_ejected", g_names, values, 2, h.ejected);
		}
	}
}

void daemon_render_metrics(struct strbuf *out, void *ctx)
{
	static const char *const result[1] = { "result" };
	const struct xm_agent *a = ctx;
	const char *ok[1] = { "ok" }, *rejected[1] = { "rejected" };
	struct xm_xdp_stats xs;
	struct xm_map_fds fds;

	datapath_map_fds(&a->dp, &fds);
	prom_family(out, "xmesh_config_applies_total", "counter", "Config applies, by result.");
	prom_sample_u64(out, "xmesh_config_applies_total", result, ok, 1, a->applies_ok);
	prom_sample_u64(out, "xmesh_config_applies_total", result, rejected, 1, a->applies_failed);
	sock_lb_metrics_render(fds.sock_stats, out);
	map_errors_metrics_render(fds.map_errors, out);
	render_istio_tcp(a, fds.conn_metrics, xdp_datapath_tcp_counters_fd(&a->xdp), out);
	render_outlier(a, fds.outlier, out);
	if (a->xdp.skel && xdp_stats_read(&a->xdp, &a->served, &xs) == 0) {
		xdp_render_metrics(&xs, out);
		xdp_stats_free(&xs);
	}
}
