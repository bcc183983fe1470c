// SPDX-License-Identifier: Apache-2.0
/*
 * The proxy object on the control thread: starts the workers, opens their SO_REUSEPORT listeners, posts
 * snapshots to them, drains and stops them, and sums their counters for a scrape.
 */
#include "l7/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "metrics/registry.h"
#include "daemon/listen_handover.h"
#include "l7/ratelimit.h"
#include "l7/stats.h"
#include "l7/worker.h"

#define LISTEN_BACKLOG 4096

static void format_addr(const struct l7_proxy_addr *a, uint16_t port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(a->family == XM_FAMILY_V4 ? AF_INET : AF_INET6, a->addr.bytes, ip, sizeof(ip));
	snprintf(buf, len, a->family == XM_FAMILY_V4 ? "%s:%u" : "[%s]:%u", ip, port);
}

/* One SO_REUSEPORT listening socket on a:port; returns the fd or -errno. */
static int open_listener(const struct l7_proxy_opts *o, const struct l7_proxy_addr *a, uint16_t port,
			 uint16_t *bound_port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd, err;

	memset(&ss, 0, sizeof(ss));
	if (a->family == XM_FAMILY_V4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a->addr.bytes, 4);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a->addr.bytes, 16);
		len = sizeof(*sin6);
	}
	if (o->make_socket) {
		fd = o->make_socket(o->socket_ctx, ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return fd;
	} else {
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    (a->family == XM_FAMILY_V6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, LISTEN_BACKLOG))
		goto fail;
	if (bound_port) {
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len))
			goto fail;
		*bound_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							    : ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

static bool same_addr(const struct l7_proxy_addr *a, const struct l7_proxy_addr *b)
{
	return a->family == b->family && !memcmp(a->addr.bytes, b->addr.bytes, a->family == XM_FAMILY_V4 ? 4 : 16);
}

/* The address and port a listening socket is bound to; false when it is not a TCP socket we can use. */
static bool bound_to(int fd, struct l7_proxy_addr *a, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(a, 0, sizeof(*a));
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return false;
	if (ss.ss_family == AF_INET) {
		a->family = XM_FAMILY_V4;
		memcpy(a->addr.bytes, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		return true;
	}
	if (ss.ss_family == AF_INET6) {
		a->family = XM_FAMILY_V6;
		memcpy(a->addr.bytes, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		return true;
	}
	return false;
}

/* Adopted sockets (a previous agent's) bound to l->addr and our port move into l. */
static int take_adopted(struct l7_proxy *p, struct l7_listener *l)
{
	size_t j = 0;

	for (size_t i = 0; i < p->n_adopted; i++) {
		struct l7_proxy_addr a;
		uint16_t port;

		if (bound_to(p->adopted[i], &a, &port) && port == p->port && same_addr(&a, &l->addr)) {
			l->fds[l->n_fds++] = p->adopted[i];
			continue;
		}
		p->adopted[j++] = p->adopted[i];
	}
	p->n_adopted = j;
	return 0;
}

/* Every worker gets at least one socket on l->addr: adopted ones first, new SO_REUSEPORT ones for the rest. */
static int listener_open(struct l7_proxy *p, struct l7_listener *l)
{
	size_t cap = p->n_workers + p->n_adopted, i;
	int fd;

	l->fds = calloc(cap ? cap : 1, sizeof(*l->fds));
	if (!l->fds)
		return -ENOMEM;
	l->n_fds = 0;
	take_adopted(p, l);
	l->n_adopted = l->n_fds;
	while (l->n_fds < p->n_workers) {
		fd = open_listener(&p->opts, &l->addr, p->port, p->port ? NULL : &p->port);
		if (fd < 0) {
			while (l->n_fds > l->n_adopted)
				close(l->fds[--l->n_fds]);
			/* adopted ones go back: another address may not fail */
			while (l->n_fds)
				p->adopted[p->n_adopted++] = l->fds[--l->n_fds];
			free(l->fds);
			l->fds = NULL;
			return fd;
		}
		l->fds[l->n_fds++] = fd;
	}
	for (i = 0; i < l->n_fds; i++) {
		if (l7_worker_post_listen(p->workers[i % p->n_workers], l->fds[i], L7_LISTEN_ADD)) {
			/* the workers told already own theirs; close the rest */
			for (size_t j = i; j < l->n_fds; j++)
				close(l->fds[j]);
			free(l->fds);
			l->fds = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

/* The workers close their sockets on their own threads (no accept runs on a closed fd). */
static void listener_close(struct l7_proxy *p, struct l7_listener *l)
{
	enum l7_listen_op op = p->handed_over ? L7_LISTEN_LEAVE : L7_LISTEN_REMOVE;

	for (size_t i = 0; l->fds && i < l->n_fds; i++)
		if (l7_worker_post_listen(p->workers[i % p->n_workers], l->fds[i], op))
			close(l->fds[i]); /* out of memory: the worker may still poll it; better than leaking */
	free(l->fds);
	l->fds = NULL;
	l->n_fds = 0;
}

void l7_proxy_adopt(struct l7_proxy *p, const int *fds, size_t n)
{
	int *all = realloc(p->adopted, (p->n_adopted + n) * sizeof(*all));

	if (!all) {
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		return;
	}
	p->adopted = all;
	memcpy(all + p->n_adopted, fds, n * sizeof(*fds));
	p->n_adopted += n;
}

int l7_proxy_handover(struct l7_proxy *p, const char *path, int capture_map_fd, unsigned int timeout_s)
{
	struct listen_handover_undo undo = { .capture_map_fd = capture_map_fd };
	int fds[LISTEN_HANDOVER_MAX_FDS];
	size_t n = 0;
	pid_t pid;

	pthread_mutex_lock(&p->lock);
	for (size_t j = 0; j < p->n_listeners; j++)
		for (size_t i = 0; p->listeners[j].fds && i < p->listeners[j].n_fds && n < LISTEN_HANDOVER_MAX_FDS; i++)
			fds[n++] = p->listeners[j].fds[i];
	if (!n) {
		pthread_mutex_unlock(&p->lock);
		return -ENOENT;
	}
	pid = listen_handover_spawn(path, fds, n, &undo, timeout_s, "xmesh-l7-hold");
	if (pid > 0)
		p->handed_over = true;
	pthread_mutex_unlock(&p->lock);
	if (pid < 0)
		return (int)pid;
	log_info("l7 proxy: %zu listening sockets held for the next agent by pid %d on %s (%u s)", n, (int)pid, path,
		 timeout_s);
	return 0;
}

int l7_proxy_listen(struct l7_proxy *p, const struct l7_proxy_addr *addrs, size_t n)
{
	struct l7_listener *next = calloc(n ? n : 1, sizeof(*next));
	size_t i, j, kept = 0;
	int err = 0, e;
	char name[64];

	if (!next)
		return -ENOMEM;
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < n; i++) {
		next[kept].addr = addrs[i];
		for (j = 0; j < p->n_listeners; j++) {
			if (p->listeners[j].fds && same_addr(&p->listeners[j].addr, &addrs[i])) {
				next[kept] = p->listeners[j];
				p->listeners[j].fds = NULL;
				break;
			}
		}
		if (!next[kept].fds) {
			e = listener_open(p, &next[kept]);
			format_addr(&addrs[i], p->port, name, sizeof(name));
			if (e) {
				log_error("l7 proxy: listen on %s: %s", name, strerror(-e));
				err = e;
				continue;
			}
			log_info("l7 proxy: listening on %s (%zu workers, %zu sockets taken over)", name, p->n_workers,
				 next[kept].n_adopted);
		}
		kept++;
	}
	for (j = 0; j < p->n_listeners; j++) {
		if (!p->listeners[j].fds)
			continue;
		format_addr(&p->listeners[j].addr, p->port, name, sizeof(name));
		log_info("l7 proxy: no longer listening on %s", name);
		listener_close(p, &p->listeners[j]);
	}
	free(p->listeners);
	p->listeners = next;
	p->n_listeners = kept;
	/* A previous agent's sockets on addresses we no longer serve: their queued connections are lost. */
	if (p->n_adopted)
		log_warn("l7 proxy: %zu taken-over listening sockets are not on a proxy address now; closed",
			 p->n_adopted);
	while (p->n_adopted)
		close(p->adopted[--p->n_adopted]);
	pthread_mutex_unlock(&p->lock);
	return err;
}

bool l7_proxy_listening(struct l7_proxy *p, const struct l7_proxy_addr *a)
{
	bool found = false;

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n_listeners && !found; i++)
		found = p->listeners[i].fds && same_addr(&p->listeners[i].addr, a);
	pthread_mutex_unlock(&p->lock);
	return found;
}

uint16_t l7_proxy_port(const struct l7_proxy *p)
{
	return p->port;
}

size_t l7_proxy_workers(const struct l7_proxy *p)
{
	return p->n_workers;
}

int l7_proxy_apply(struct l7_proxy *p, struct xm_snapshot *snap, const struct l7_route_table *routes)
{
	struct l7_route_table *t = (struct l7_route_table *)routes; /* not yet seen by any worker */
	int err = 0;

	/* Counts and buckets carry over from the table in force (l7/shared_state.h). */
	for (size_t i = 0; t && i < t->n_clusters; i++)
		l7_shared_adopt(p->shared, &t->clusters[i].load);
	for (size_t i = 0; t && i < t->n_ratelimits; i++)
		l7_shared_adopt(p->shared, &t->ratelimits[i]->bucket);
	l7_shared_sweep(p->shared);
	for (size_t i = 0; i < p->n_workers; i++)
		if (l7_worker_post_snapshot(p->workers[i], snap, routes))
			err = -ENOMEM;
	return err;
}

void l7_proxy_drain(struct l7_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	for (size_t j = 0; j < p->n_listeners; j++)
		listener_close(p, &p->listeners[j]);
	p->n_listeners = 0;
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->n_workers; i++)
		if (l7_worker_post_drain(p->workers[i]))
			log_warn("l7 worker %zu: out of memory for the drain message", i);
}

struct l7_proxy *l7_proxy_new(const struct l7_proxy_opts *opts, int *err)
{
	struct l7_proxy *p = calloc(1, sizeof(*p));
	long cpus;
	size_t i;

	*err = -ENOMEM;
	if (!p)
		return NULL;
	if (!opts->resolve) {
		free(p);
		*err = -EINVAL;
		return NULL;
	}
	p->opts = *opts;
	p->port = opts->port;
	pthread_mutex_init(&p->lock, NULL);
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	p->n_workers = opts->n_workers ? opts->n_workers : (cpus > 0 ? (size_t)cpus : 1);
	p->workers = calloc(p->n_workers, sizeof(*p->workers));
	p->shards = calloc(p->n_workers, sizeof(*p->shards));
	p->shared = l7_shared_registry_new();
	if (!p->workers || !p->shards || !p->shared)
		goto fail;
	for (i = 0; i < p->n_workers; i++) {
		p->shards[i] = l7_stats_shard_new();
		p->workers[i] = p->shards[i] ? l7_worker_new(p, i, p->shards[i]) : NULL;
		if (!p->workers[i])
			goto fail;
	}
	for (i = 0; i < p->n_workers; i++) {
		int e = pthread_create(&p->workers[i]->thread, NULL, l7_worker_main, p->workers[i]);

		if (e) {
			*err = -e;
			goto fail;
		}
		p->workers[i]->started = true;
	}
	*err = 0;
	return p;
fail:
	l7_proxy_free(p);
	return NULL;
}

void l7_proxy_free(struct l7_proxy *p)
{
	size_t i;

	if (!p)
		return;
	if (p->workers) {
		l7_proxy_drain(p);
		for (i = 0; i < p->n_workers; i++) {
			if (p->workers[i] && p->workers[i]->started)
				pthread_join(p->workers[i]->thread, NULL);
			l7_worker_free(p->workers[i]);
		}
	}
	for (i = 0; p->shards && i < p->n_workers; i++)
		l7_stats_shard_free(p->shards[i]);
	free(p->listeners);
	while (p->n_adopted)
		close(p->adopted[--p->n_adopted]);
	free(p->adopted);
	free(p->workers);
	free(p->shards);
	l7_shared_registry_free(p->shared); /* the workers are stopped: no reference moves now */
	pthread_mutex_destroy(&p->lock);
	free(p);
}

struct l7_stats_shard *const *l7_proxy_shards(const struct l7_proxy *p, size_t *n)
{
	*n = p->n_workers;
	return p->shards;
}

static uint64_t sum(const struct l7_proxy *p, size_t offset)
{
	uint64_t v = 0;

	for (size_t i = 0; i < p->n_workers; i++)
		v += atomic_load_explicit((atomic_ullong *)((char *)&p->workers[i]->c + offset), memory_order_relaxed);
	return v;
}

#define SUM(p, field) sum(p, offsetof(struct l7_worker_counters, field))

void l7_proxy_collect(struct l7_proxy *p, struct xm_scrape *sc)
{
	static const char *const error_label[1] = { "error" };
	struct xm_scrape_family *f;

	f = scrape_family(sc, "xmesh_l7_downstream_connections", "gauge", "Client connections open to the L7 proxy.");
	scrape_u64(f, NULL, NULL, 0, SUM(p, downstream_active));
	f = scrape_family(sc, "xmesh_l7_downstream_connections_total", "counter",
			  "Client connections the L7 proxy accepted.");
	scrape_u64(f, NULL, NULL, 0, SUM(p, downstream_total));
	f = scrape_family(sc, "xmesh_l7_unresolved_connections_total", "counter",
			  "Accepted connections closed because their original destination was unknown.");
	scrape_u64(f, NULL, NULL, 0, SUM(p, unresolved));
	f = scrape_family(sc, "xmesh_l7_parse_errors_total", "counter",
			  "Requests refused with 400 by the HTTP/1 parser, by reason.");
	for (int e = 1; e < H1_E_MAX; e++) {
		const char *v[1] = { h1_error_name((enum h1_error)e) };

		scrape_u64(f, error_label, v, 1, SUM(p, parse_errors[e]));
	}
	f = scrape_family(sc, "xmesh_l7_upstream_connections", "gauge",
			  "Connections from the L7 proxy to endpoints (busy and pooled).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, upstream_active));
	f = scrape_family(sc, "xmesh_l7_upstream_connections_total", "counter",
			  "Connections the L7 proxy opened to endpoints.");
	scrape_u64(f, NULL, NULL, 0, SUM(p, upstream_total));
	f = scrape_family(sc, "xmesh_l7_upstream_connect_failures_total", "counter",
			  "Upstream connects that failed (503 UF).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, connect_failures));
	f = scrape_family(sc, "xmesh_l7_upstream_resends_total", "counter",
			  "Requests resent on a fresh connection after a reused one closed before answering.");
	scrape_u64(f, NULL, NULL, 0, SUM(p, resends));
	f = scrape_family(sc, "xmesh_l7_upstream_resets_total", "counter",
			  "Upstream connections that closed or failed in the middle of a response (UC).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, upstream_resets));
	f = scrape_family(sc, "xmesh_l7_upstream_bad_responses_total", "counter",
			  "Upstream responses the parser refused (502).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, bad_responses));
	f = scrape_family(sc, "xmesh_l7_mirrored_requests_total", "counter", "Shadow copies sent to mirror clusters.");
	scrape_u64(f, NULL, NULL, 0, SUM(p, mirrors));
	f = scrape_family(sc, "xmesh_l7_overflow_total", "counter",
			  "connectionPool circuit-breaker overflows by kind: requests answered 503 UO (pending: "
			  "http1MaxPendingRequests, requests: http2MaxRequests) and connections not opened at "
			  "tcp.maxConnections (the request waited).");
	{
		static const char *const kind_label[1] = { "kind" };
		static const char *const kinds[3] = { "connections", "pending", "requests" };
		const uint64_t v[3] = { SUM(p, overflow_connections), SUM(p, overflow_pending),
					SUM(p, overflow_requests) };

		for (int i = 0; i < 3; i++)
			scrape_u64(f, kind_label, &kinds[i], 1, v[i]);
	}
	f = scrape_family(sc, "xmesh_l7_rate_limited_total", "counter",
			  "Requests answered 429 by an EnvoyFilter local rate limit (response_flags RL).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, ratelimited));
	f = scrape_family(sc, "xmesh_l7_rate_limit_not_enforced_total", "counter",
			  "Requests over a local rate limit let through (filter enabled, not enforced).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, ratelimit_not_enforced));
	f = scrape_family(sc, "xmesh_l7_upstream_retries_total", "counter",
			  "Retries the L7 proxy made (VirtualService retries, or Istio's default policy).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, retries));
	f = scrape_family(sc, "xmesh_l7_upstream_retry_overflows_total", "counter",
			  "Retries not made because the destination's maxRetries were in flight (UO).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, retry_overflows));
	f = scrape_family(sc, "xmesh_l7_upstream_retries_exhausted_total", "counter",
			  "Requests answered with a retriable outcome after every retry was spent (URX).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, retries_exhausted));
	f = scrape_family(
	    sc, "xmesh_l7_tunnel_upstream_connections_total", "counter",
	    "Upstream connections the L7 proxy opened through the node's mTLS tunnel (pods of other nodes).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, tunnel_total));
	f = scrape_family(
	    sc, "xmesh_l7_tunnel_refused_total", "counter",
	    "Upstream connections through the tunnel that failed (503 UF) by reason: the tunnel answered "
	    "refused, failed or timed out, or connectTimeout came first (connect); or not attempted: the client "
	    "is no local pod with an identity (no_identity), the tunnel is not running (unavailable). Never sent "
	    "in plaintext.");
	{
		static const char *const reason_label[1] = { "reason" };
		static const char *const reasons[3] = { "connect", "no_identity", "unavailable" };
		const uint64_t v[3] = { SUM(p, tunnel_failures), SUM(p, tunnel_no_identity),
					SUM(p, tunnel_unavailable) };

		for (int i = 0; i < 3; i++)
			scrape_u64(f, reason_label, &reasons[i], 1, v[i]);
	}
	f = scrape_family(
	    sc, "xmesh_l7_tunnel_answers_total", "counter",
	    "The tunnel's answers to the L7 proxy's upstream connections, by outcome: opened (CONNECT "
	    "200), refused (another :status), failed (no route, TLS, peer identity), timed_out (TCP/TLS).");
	{
		static const char *const outcome_label[1] = { "outcome" };
		static const char *const outcomes[XM_TUNNEL_OUTCOMES] = {
			[XM_TUNNEL_OPENED] = "opened",
			[XM_TUNNEL_REFUSED] = "refused",
			[XM_TUNNEL_FAILED] = "failed",
			[XM_TUNNEL_TIMED_OUT] = "timed_out",
		};

		for (int i = 0; i < XM_TUNNEL_OUTCOMES; i++)
			scrape_u64(f, outcome_label, &outcomes[i], 1,
				   sum(p, offsetof(struct l7_worker_counters, tunnel_outcomes) +
					      (size_t)i * sizeof(atomic_ullong)));
	}
	f = scrape_family(sc, "xmesh_l7_tunnel_answers_late_total", "counter",
			  "The tunnel's answers that came after the connection was closed (connectTimeout, the client "
			  "left): dropped.");
	scrape_u64(f, NULL, NULL, 0, SUM(p, tunnel_late));
	f = scrape_family(sc, "xmesh_l7_upstream_retries_body_too_large_total", "counter",
			  "Retries not made because the request body outgrew the retry buffer (64 KiB).");
	scrape_u64(f, NULL, NULL, 0, SUM(p, retry_body_too_big));
}
