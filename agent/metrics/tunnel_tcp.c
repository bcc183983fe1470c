// SPDX-License-Identifier: Apache-2.0
#include "metrics/tunnel_tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "metrics/istio_tcp.h"
#include "metrics/registry.h"

/* ---- labels ---- */

static void copy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* An address of a sockaddr as the snapshot keys it; false for other families. */
static bool xm_addr_of(const struct sockaddr_storage *ss, union xm_addr *a, uint8_t *family, uint16_t *port)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		a->v4 = in->sin_addr.s_addr;
		*family = XM_FAMILY_V4;
		*port = ntohs(in->sin_port);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		memcpy(a->bytes, &in6->sin6_addr, 16);
		*family = XM_FAMILY_V6;
		*port = ntohs(in6->sin6_port);
		return true;
	}
	return false;
}

/* compile.c's order of a service's backends: (family, addr, port). */
static int backend_cmp(const void *k, const void *e)
{
	const struct xm_lb_backend *x = k, *y = e;
	int c;

	if (x->family != y->family)
		return x->family - y->family;
	c = memcmp(x->addr.bytes, y->addr.bytes, 16);
	return c ? c : (int)x->port - (int)y->port;
}

static bool same_service(const struct xm_lb_service *a, const struct xm_lb_service *b)
{
	return !strcmp(a->ns, b->ns) && !strcmp(a->name, b->name);
}

static bool hostname_is(const struct xm_lb_service *svc, const char *host)
{
	char fqdn[XM_NAME_MAX + 64 + 32];

	snprintf(fqdn, sizeof(fqdn), "%s.%s.svc.cluster.local", svc->name, svc->ns);
	return host[0] && !strcmp(fqdn, host);
}

/*
 * The Service of the target: among the TCP service ports listing it as a backend, the one host= names (the client
 * said which Service it dialled; only a candidate can be chosen, as ztunnel's guess_inbound_service does), else
 * the Service when all candidates are ports of one Service. NULL otherwise.
 */
static const struct xm_lb_service *target_service(const struct xm_snapshot *snap, const struct xm_lb_backend *key,
						  const char *host)
{
	const struct xm_lb_service *only = NULL;
	bool several = false;

	for (size_t i = 0; i < snap->lb.n_services; i++) {
		const struct xm_lb_service *svc = &snap->lb.services[i];

		if (svc->key.proto != XM_PROTO_TCP || !svc->n_backends ||
		    !bsearch(key, svc->backends, svc->n_backends, sizeof(*svc->backends), backend_cmp))
			continue;
		if (hostname_is(svc, host))
			return svc;
		if (!only)
			only = svc;
		else if (!same_service(only, svc))
			several = true;
	}
	return several ? NULL : only;
}

void tunnel_tcp_resolve(const struct xm_snapshot *snap, const char *peer_id, const struct sockaddr_storage *target,
			const char *forwarded, struct tunnel_tcp_labels *out)
{
	struct hbone_forwarded fw;
	struct xm_lb_backend key;
	const struct xm_identity *id;
	const struct xm_lb_service *svc;
	union xm_addr a;
	uint8_t family;
	uint16_t port;

	memset(out, 0, sizeof(*out));
	copy(out->source_principal, sizeof(out->source_principal), peer_id ? peer_id : "");
	if (!forwarded || hbone_parse_forwarded(forwarded, strlen(forwarded), &fw))
		memset(&fw, 0, sizeof(fw));
	if (!snap)
		return;
	if (fw.has_for && xm_addr_of(&fw.for_addr, &a, &family, &port)) {
		id = identities_find(&snap->identities, &a, family);
		if (id && id->wl && peer_id && !strcmp(id->principal, peer_id)) {
			copy(out->source_workload, sizeof(out->source_workload), id->workload);
			copy(out->source_ns, sizeof(out->source_ns), id->ns);
			/* ztunnel's source_app is the canonical service (src/proxy/metrics.rs with_source) */
			copy(out->source_app, sizeof(out->source_app), id->wl->canonical_service);
		}
	}
	if (!xm_addr_of(target, &a, &family, &port))
		return;
	id = identities_find(&snap->identities, &a, family);
	if (id) {
		copy(out->destination_workload, sizeof(out->destination_workload), id->workload);
		copy(out->destination_ns, sizeof(out->destination_ns), id->ns);
		copy(out->destination_principal, sizeof(out->destination_principal), id->principal);
	}
	memset(&key, 0, sizeof(key));
	key.addr = a;
	key.family = family;
	key.port = port;
	svc = target_service(snap, &key, fw.host);
	if (svc) {
		copy(out->service_name, sizeof(out->service_name), svc->name);
		copy(out->service_ns, sizeof(out->service_ns), svc->ns);
	}
}

/* ---- the table ---- */

struct tunnel_tcp_entry {
	struct tunnel_tcp_labels labels;
	struct hbone_stream_counts counts;
};

struct tunnel_tcp_table {
	size_t max;
	atomic_size_t n; /* published series: entries [0, n) are whole */
	_Atomic(struct tunnel_tcp_entry *) *chunks;
	size_t n_chunks;
	/* the writer's index: open addressing over 2 * max slots, entry number + 1 (0: empty) */
	uint32_t *slots;
	size_t n_slots;
	atomic_ullong overflow;
	bool warned;
};

static uint64_t labels_hash(const struct tunnel_tcp_labels *l)
{
	const unsigned char *p = (const unsigned char *)l;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < sizeof(*l); i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static struct tunnel_tcp_entry *entry_at(const struct tunnel_tcp_table *t, size_t i)
{
	struct tunnel_tcp_entry *chunk = atomic_load_explicit(&t->chunks[i / TUNNEL_TCP_CHUNK], memory_order_acquire);

	return &chunk[i % TUNNEL_TCP_CHUNK];
}

struct tunnel_tcp_table *tunnel_tcp_new(size_t max)
{
	struct tunnel_tcp_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->max = max ? max : TUNNEL_TCP_MAX_SERIES;
	t->n_chunks = (t->max + TUNNEL_TCP_CHUNK - 1) / TUNNEL_TCP_CHUNK;
	t->n_slots = 2 * t->max;
	t->chunks = calloc(t->n_chunks, sizeof(*t->chunks));
	t->slots = calloc(t->n_slots, sizeof(*t->slots));
	if (!t->chunks || !t->slots) {
		tunnel_tcp_free(t);
		return NULL;
	}
	return t;
}

void tunnel_tcp_free(struct tunnel_tcp_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->chunks && i < t->n_chunks; i++)
		free(atomic_load_explicit(&t->chunks[i], memory_order_relaxed));
	free(t->chunks);
	free(t->slots);
	free(t);
}

struct hbone_stream_counts *tunnel_tcp_series(struct tunnel_tcp_table *t, const struct tunnel_tcp_labels *l)
{
	size_t n = atomic_load_explicit(&t->n, memory_order_relaxed), slot = labels_hash(l) % t->n_slots;
	struct tunnel_tcp_entry *e, *chunk;

	for (; t->slots[slot]; slot = (slot + 1) % t->n_slots) {
		e = entry_at(t, t->slots[slot] - 1);
		if (!memcmp(&e->labels, l, sizeof(*l)))
			return &e->counts;
	}
	if (n >= t->max)
		goto full;
	chunk = atomic_load_explicit(&t->chunks[n / TUNNEL_TCP_CHUNK], memory_order_relaxed);
	if (!chunk) {
		chunk = calloc(TUNNEL_TCP_CHUNK, sizeof(*chunk));
		if (!chunk)
			goto full;
		atomic_store_explicit(&t->chunks[n / TUNNEL_TCP_CHUNK], chunk, memory_order_release);
	}
	e = &chunk[n % TUNNEL_TCP_CHUNK];
	e->labels = *l;
	t->slots[slot] = (uint32_t)n + 1;
	/* Publishes the entry whole: a reader that sees n + 1 sees its labels. */
	atomic_store_explicit(&t->n, n + 1, memory_order_release);
	return &e->counts;
full:
	if (!t->warned)
		log_warn("hbone: %zu label sets of istio_tcp_* for tunnelled streams: further ones are not counted "
			 "(xmesh_hbone_metrics_overflow_total)",
			 t->max);
	t->warned = true;
	atomic_fetch_add_explicit(&t->overflow, 1, memory_order_relaxed);
	return NULL;
}

size_t tunnel_tcp_count(const struct tunnel_tcp_table *t)
{
	return atomic_load_explicit(&t->n, memory_order_acquire);
}

uint64_t tunnel_tcp_overflow(const struct tunnel_tcp_table *t)
{
	return atomic_load_explicit(&t->overflow, memory_order_relaxed);
}

void tunnel_tcp_collect(const struct tunnel_tcp_table *t, struct xm_scrape *sc)
{
	size_t n = tunnel_tcp_count(t);

	istio_tcp_declare(sc);
	for (size_t i = 0; i < n; i++) {
		const struct tunnel_tcp_entry *e = entry_at(t, i);
		const struct tunnel_tcp_labels *l = &e->labels;
		const struct istio_tcp_series s = {
			.reporter = ISTIO_TCP_DESTINATION,
			.source_workload = l->source_workload,
			.source_workload_namespace = l->source_ns,
			.source_principal = l->source_principal,
			.source_app = l->source_app,
			.service_name = l->service_name,
			.service_namespace = l->service_ns,
			.destination_workload = l->destination_workload,
			.destination_workload_namespace = l->destination_ns,
			.destination_principal = l->destination_principal,
			.security_policy = "mutual_tls",
		};
		struct istio_tcp_counts c = {
			.opened = atomic_load_explicit(&e->counts.opened, memory_order_relaxed),
			.closed = atomic_load_explicit(&e->counts.closed, memory_order_relaxed),
			.sent = atomic_load_explicit(&e->counts.sent, memory_order_relaxed),
			.received = atomic_load_explicit(&e->counts.received, memory_order_relaxed),
		};

		/* Never more closed than opened in one scrape (the two counters are read apart); still monotonic. */
		if (c.closed > c.opened)
			c.closed = c.opened;
		istio_tcp_render(sc, &s, &c);
	}
	scrape_u64(
	    scrape_family(sc, "xmesh_hbone_metrics_overflow_total", "counter",
			  "Tunnelled streams not counted in istio_tcp_*: the table of their label sets is full."),
	    NULL, NULL, 0, tunnel_tcp_overflow(t));
}
