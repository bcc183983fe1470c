// SPDX-License-Identifier: Apache-2.0
#include "metrics/istio_tcp.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/registry.h"

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

static const char *const family_names[4] = {
	"istio_tcp_connections_opened_total",
	"istio_tcp_connections_closed_total",
	"istio_tcp_sent_bytes_total",
	"istio_tcp_received_bytes_total",
};

static const char *const family_help[4] = {
	"TCP connections opened, counted by the kernel at establishment.",
	"TCP connections closed.",
	"TCP payload bytes sent during responses (server to client), as Istio counts them for either "
	"reporter; the socket path counts closed connections.",
	"TCP payload bytes received during requests (client to server), as Istio counts them for either "
	"reporter; the socket path counts closed connections.",
};

static const char *or_unknown(const char *v)
{
	return v && v[0] ? v : "unknown";
}

void istio_tcp_declare(struct xm_scrape *sc)
{
	for (int f = 0; f < 4; f++)
		scrape_family(sc, family_names[f], "counter", family_help[f]);
}

void istio_tcp_render(struct xm_scrape *sc, const struct istio_tcp_series *s, const struct istio_tcp_counts *c)
{
	const uint64_t v[4] = { c->opened, c->closed, c->sent, c->received };
	const char *labels[TCP_LABELS];
	char fqdn[XM_NAME_MAX + 64 + 32];
	bool svc = s->service_name && s->service_name[0];

	if (svc)
		snprintf(fqdn, sizeof(fqdn), "%s.%s.svc.cluster.local", s->service_name,
			 or_unknown(s->service_namespace));
	labels[0] = s->reporter == ISTIO_TCP_DESTINATION ? "destination" : "source";
	labels[1] = or_unknown(s->source_workload);
	labels[2] = or_unknown(s->source_workload_namespace);
	labels[3] = or_unknown(s->source_principal);
	labels[4] = or_unknown(s->source_app);
	labels[5] = svc ? fqdn : "unknown";
	labels[6] = svc ? s->service_name : "unknown";
	labels[7] = svc ? or_unknown(s->service_namespace) : "unknown";
	labels[8] = or_unknown(s->destination_workload);
	labels[9] = or_unknown(s->destination_workload_namespace);
	labels[10] = or_unknown(s->destination_principal);
	labels[11] = "tcp";
	labels[12] = or_unknown(s->security_policy);
	labels[13] = "-";
	for (int f = 0; f < 4; f++)
		scrape_u64(scrape_family(sc, family_names[f], "counter", family_help[f]), tcp_label_names, labels,
			   TCP_LABELS, v[f]);
}

static void add_series(struct xm_scrape *sc, const struct xm_snapshot *snap, enum istio_tcp_reporter reporter,
		       uint32_t svc_id, const struct xm_identity *client, const struct xm_identity *backend,
		       const struct istio_tcp_counts *c)
{
	const struct xm_lb_service *svc = snapshot_service(snap, svc_id);
	struct istio_tcp_series s = { .reporter = reporter };

	if (!svc)
		return;
	/* The kernel's paths know no peer certificate: security policy and principals as the config says. */
	if (client) {
		s.source_workload = client->workload;
		s.source_workload_namespace = client->ns;
		s.source_principal = client->principal;
		s.source_app = client->workload;
	}
	s.service_name = svc->name;
	s.service_namespace = svc->ns;
	if (backend) {
		s.destination_workload = backend->workload;
		s.destination_workload_namespace = backend->ns;
		s.destination_principal = backend->principal;
	}
	istio_tcp_render(sc, &s, c);
}

void istio_tcp_add(struct xm_scrape *sc, const struct xm_snapshot *snap, enum istio_tcp_reporter reporter,
		   uint32_t svc_id, uint32_t backend_id, const struct xm_identity *client,
		   const struct istio_tcp_counts *c)
{
	const struct xm_lb_backend *b = snapshot_backend(snap, backend_id);

	add_series(sc, snap, reporter, svc_id, client,
		   b ? identities_find(&snap->identities, &b->addr, b->family) : NULL, c);
}

/*
 * Every entry of the LRU hash with its value, read in batches (a few syscalls for 65,536 entries instead of
 * two per entry). A kernel without batch operations on this map type gets the key walk.
 */
static size_t collect_entries(int map_fd, struct xm_conn_metrics_key **keys_out, struct xm_conn_metrics **vals_out)
{
	enum {
		BATCH = 4096,
		max_entries = 65536
	};
	struct xm_conn_metrics_key *keys = calloc(max_entries, sizeof(*keys));
	struct xm_conn_metrics *vals = calloc(max_entries, sizeof(*vals));
	struct xm_conn_metrics_key k, next, *prev = NULL;
	__u32 in_batch = 0, out_batch;
	size_t n = 0;
	int err = 0;

	*keys_out = keys;
	*vals_out = vals;
	if (!keys || !vals)
		return 0;
	while (!err && n < max_entries) {
		__u32 count = (__u32)(max_entries - n < BATCH ? max_entries - n : BATCH);

		err = bpf_map_lookup_batch(map_fd, n ? &in_batch : NULL, &out_batch, keys + n, vals + n, &count, NULL);
		if (err && errno != ENOENT)
			break;
		n += count;
		in_batch = out_batch;
	}
	if (!err || errno == ENOENT)
		return n;
	/* No batch operations here: walk the keys (a walk restarts when its key was evicted meanwhile). */
	for (n = 0; n < max_entries && bpf_map_get_next_key(map_fd, prev, &next) == 0;) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(map_fd, &k, &vals[n]) == 0)
			keys[n++] = k;
	}
	return n;
}

/* One (service port, client identity, backend identity) group of xm_conn_metrics entries. */
struct socket_group {
	uint32_t svc_id;
	const struct xm_identity *client, *backend; /* into the snapshot: equal pointers, equal identity */
	struct istio_tcp_counts c;
};

static int group_cmp(const void *x, const void *y)
{
	const struct socket_group *a = x, *b = y;

	if (a->svc_id != b->svc_id)
		return a->svc_id < b->svc_id ? -1 : 1;
	if (a->client != b->client)
		return (uintptr_t)a->client < (uintptr_t)b->client ? -1 : 1;
	if (a->backend != b->backend)
		return (uintptr_t)a->backend < (uintptr_t)b->backend ? -1 : 1;
	return 0;
}

void istio_tcp_collect_sockets(struct xm_scrape *sc, const struct xm_snapshot *snap, int conn_metrics_fd)
{
	struct xm_conn_metrics_key *keys;
	struct xm_conn_metrics *vals;
	size_t n = collect_entries(conn_metrics_fd, &keys, &vals), m = 0;
	struct socket_group *g = calloc(n ? n : 1, sizeof(*g));

	/* Declared even when empty: a scrape always has the four families. */
	istio_tcp_declare(sc);
	if (!g)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct xm_lb_backend *b = snapshot_backend(snap, keys[i].backend_id);
		const struct xm_conn_metrics c = vals[i];

		if (!snapshot_service(snap, keys[i].svc_id))
			continue; /* a service port that is gone: its counters go with it */
		/* xm_conn_metrics counts from the client's side: its sent bytes are the request's. */
		g[m++] = (struct socket_group){
			.svc_id = keys[i].svc_id,
			.client = identities_find(&snap->identities, &keys[i].client, keys[i].family),
			.backend = b ? identities_find(&snap->identities, &b->addr, b->family) : NULL,
			.c = { c.opened, c.closed, c.received_bytes, c.sent_bytes },
		};
	}
	/*
	 * Many entries are one series (a workload's pods, clients outside the mesh): sum them here, so a scrape
	 * labels each series once instead of once per entry (65,536 entries at most).
	 */
	if (m > 1)
		qsort(g, m, sizeof(*g), group_cmp);
	for (size_t i = 0; i < m;) {
		struct istio_tcp_counts sum = g[i].c;
		size_t j = i + 1;

		for (; j < m && !group_cmp(&g[i], &g[j]); j++) {
			sum.opened += g[j].c.opened;
			sum.closed += g[j].c.closed;
			sum.sent += g[j].c.sent;
			sum.received += g[j].c.received;
		}
		add_series(sc, snap, ISTIO_TCP_SOURCE, g[i].svc_id, g[i].client, g[i].backend, &sum);
		i = j;
	}
out:
	free(g);
	free(keys);
	free(vals);
}
