// SPDX-License-Identifier: Apache-2.0
#include "metrics/istio_tcp.h"

#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
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

static void set_identity(const char **labels, int first, const struct xm_identity *id)
{
	labels[first] = id ? id->workload : "unknown";
	labels[first + 1] = id ? id->ns : "unknown";
	labels[first + 2] = id ? id->principal : "unknown";
}

void istio_tcp_add(struct xm_scrape *sc, const struct xm_snapshot *snap, enum istio_tcp_reporter reporter,
		   uint32_t svc_id, uint32_t backend_id, const struct xm_identity *client,
		   const struct istio_tcp_counts *c)
{
	const struct xm_lb_service *svc = snapshot_service(snap, svc_id);
	const struct xm_lb_backend *b = snapshot_backend(snap, backend_id);
	const uint64_t v[4] = { c->opened, c->closed, c->sent, c->received };
	const char *labels[TCP_LABELS];
	char fqdn[sizeof(svc->name) + sizeof(svc->ns) + 32];

	if (!svc)
		return;
	snprintf(fqdn, sizeof(fqdn), "%s.%s.svc.cluster.local", svc->name, svc->ns);
	labels[0] = reporter == ISTIO_TCP_DESTINATION ? "destination" : "source";
	set_identity(labels, 1, client);
	labels[4] = labels[1];
	labels[5] = fqdn;
	labels[6] = svc->name;
	labels[7] = svc->ns;
	set_identity(labels, 8, b ? identities_find(&snap->identities, &b->addr, b->family) : NULL);
	labels[11] = "tcp";
	labels[12] = "unknown";
	labels[13] = "-";
	for (int f = 0; f < 4; f++)
		scrape_u64(scrape_family(sc, family_names[f], "counter", family_help[f]), tcp_label_names, labels,
			   TCP_LABELS, v[f]);
}

static int key_cmp(const void *x, const void *y)
{
	return memcmp(x, y, sizeof(struct xm_conn_metrics_key));
}

/*
 * The keys of the LRU hash, each once: a walk restarts from the first key when the previous one was
 * evicted meanwhile, so keys are collected and deduplicated before any value is read.
 */
static size_t collect_keys(int map_fd, struct xm_conn_metrics_key **out)
{
	struct xm_conn_metrics_key k, next, *prev = NULL, *keys = NULL;
	size_t n = 0, cap = 0, i, m;

	while (bpf_map_get_next_key(map_fd, prev, &next) == 0 && n < 4 * 65536) {
		if (xm_grow((void **)&keys, &cap, n + 1, sizeof(*keys)))
			break;
		keys[n++] = next;
		k = next;
		prev = &k;
	}
	if (n > 1)
		qsort(keys, n, sizeof(*keys), key_cmp);
	for (i = 0, m = 0; i < n; i++)
		if (!m || key_cmp(&keys[m - 1], &keys[i]))
			keys[m++] = keys[i];
	*out = keys;
	return m;
}

void istio_tcp_collect_sockets(struct xm_scrape *sc, const struct xm_snapshot *snap, int conn_metrics_fd)
{
	struct xm_conn_metrics_key *keys = NULL;
	size_t n = collect_keys(conn_metrics_fd, &keys);

	/* Declared even when empty: a scrape always has the four families. */
	for (int f = 0; f < 4; f++)
		scrape_family(sc, family_names[f], "counter", family_help[f]);
	for (size_t i = 0; i < n; i++) {
		struct xm_conn_metrics c;

		if (bpf_map_lookup_elem(conn_metrics_fd, &keys[i], &c))
			continue;
		/* xm_conn_metrics counts from the client's side: its sent bytes are the request's. */
		istio_tcp_add(sc, snap, ISTIO_TCP_SOURCE, keys[i].svc_id, keys[i].backend_id,
			      identities_find(&snap->identities, &keys[i].client, keys[i].family),
			      &(struct istio_tcp_counts){ c.opened, c.closed, c.received_bytes, c.sent_bytes });
	}
	free(keys);
}
