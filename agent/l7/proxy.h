/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The L7 proxy: N worker threads, each with its own event loop, SO_REUSEPORT listeners on the proxy
 * addresses, downstream connections, upstream pools and request-metrics shard. Config reaches workers as
 * snapshots posted to their loops; a request finishes on the snapshot it started with.
 */
#ifndef XMESH_L7_PROXY_H
#define XMESH_L7_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

#include "core/tunnel_done.h"
#include "l7/balance.h"
#include "l7/routes.h"

struct xm_scrape;
struct xm_snapshot;
struct l7_record;
struct l7_stats_shard;
struct l7_proxy;

#define L7_PROXY_DEFAULT_PORT 15001

/*
 * Which service VIP:port the client of an accepted connection dialed (the capture's original destination).
 * listen_fd is the listener it came from, fd the accepted socket. Returns 0, or -errno: the connection is
 * closed and counted (xmesh_l7_unresolved_connections_total).
 */
typedef int (*l7_resolve_fn)(void *ctx, int listen_fd, int fd, struct xm_svc_key *vip, uint32_t *svc_id);

/* What a worker saw of an upstream, for the kernel's outlier detection. */
enum l7_connect_outcome {
	L7_CONNECT_FAILED = 0, /* refused, reset or closed before the first response byte, or connectTimeout */
	L7_CONNECT_SUCCEEDED,  /* a connect to an endpoint that had a failure reported since its last success */
	L7_HTTP_STATUS,	       /* an upstream response status (batched: 200, 500 or 503 stand for their class) */
};

/*
 * Reports an outcome for (svc_id, backend_id), the ids the socket LB uses, on the worker's thread. Called
 * only for services with outlier detection on, and only on failures and the success after them: it may
 * make a system call. status is the HTTP status for L7_HTTP_STATUS, else 0.
 */
typedef void (*l7_report_fn)(void *ctx, uint32_t svc_id, uint32_t backend_id, enum l7_connect_outcome outcome,
			     uint16_t status);

/*
 * An upstream connection through the node's mTLS tunnel (docs/l7.md "Upstreams through the tunnel"): the
 * endpoint, the downstream client (HBONE's Forwarded: for=) and the workload whose certificate is presented.
 * Strings live as long as the call.
 */
struct l7_tunnel_req {
	union xm_addr addr; /* the endpoint (a pod of another node) */
	uint16_t port;	    /* host order */
	uint8_t family;	    /* XM_FAMILY_* */
	union xm_addr client_addr;
	uint16_t client_port;	 /* host order */
	uint8_t client_family;	 /* 0: none */
	const char *src_id;	 /* the client pod's SPIFFE id */
	const char *traceparent; /* "": none */
};

/*
 * Carries fd (one end of a connected AF_UNIX stream socketpair, owned from now on, also on failure) to req's
 * endpoint through the tunnel, on any thread; it must read nothing from fd before the tunnel's stream opened,
 * and reset it when the stream is refused or fails. Returns 0, -ENOTCONN when the tunnel is not available,
 * -ENOENT when src_id has no certificate on this node, or another -errno. When it returns 0, the outcome of
 * the opening is posted once to done (core/tunnel_done.h; its gate's reference taken here), before any reset
 * of fd: the connection counts as connecting until then, as a TCP connect.
 */
typedef int (*l7_tunnel_fn)(void *ctx, int fd, const struct l7_tunnel_req *req, const struct xm_tunnel_done *done);

struct l7_proxy_addr {
	union xm_addr addr;
	uint8_t family; /* XM_FAMILY_* */
};

struct l7_proxy_opts {
	size_t n_workers;      /* 0: one per CPU */
	uint16_t port;	       /* host order; 0: any (tests read it back with l7_proxy_port) */
	l7_resolve_fn resolve; /* required */
	void *resolve_ctx;
	l7_ejected_fn ejected; /* the kernel's outlier state for the balancer; NULL: nothing is ejected */
	void *ejected_ctx;
	l7_report_fn report; /* upstream connect outcomes and statuses into the kernel's outlier state; NULL: none */
	void *report_ctx;
	/* Every finished request, on the worker's thread (the access log): must not block. NULL: none. */
	void (*on_record)(void *ctx, size_t worker, const struct l7_record *r);
	void *record_ctx;
	uint64_t idle_timeout_ms;      /* idle downstream keep-alive connections; 0: 1 hour (Envoy's) */
	uint64_t drain_timeout_ms;     /* how long l7_proxy_free lets requests finish; 0: 10 s */
	double trace_sampling_percent; /* new traces sampled, 0..100 (--trace-sampling; Istio's default is 1) */
	/*
	 * Makes a listening socket (socket(2)'s domain and type): the module puts them in the proxy's own
	 * cgroup, where sockmap's sockops runs (datapath/l7_proxy_cgroup.h). Returns the fd or -errno. NULL:
	 * socket(2) in the agent's cgroup.
	 */
	int (*make_socket)(void *ctx, int domain, int type);
	void *socket_ctx;
	/*
	 * The node's tunnel for endpoints the snapshot's mtls_remote says are tunnelled (pods of other nodes not
	 * in DISABLE). NULL: no tunnel (no --hbone): every upstream is a TCP connect.
	 */
	l7_tunnel_fn tunnel;
	void *tunnel_ctx;
};

/* Starts the workers (they serve nothing until listen and apply). NULL with *err = -errno. */
struct l7_proxy *l7_proxy_new(const struct l7_proxy_opts *opts, int *err);

/*
 * Listens on exactly these addresses (opts->port), one SO_REUSEPORT socket per worker and address; addresses
 * already listened on keep their sockets. Returns 0 or -errno (the addresses that failed are logged).
 */
int l7_proxy_listen(struct l7_proxy *p, const struct l7_proxy_addr *addrs, size_t n);
/*
 * Listening sockets a previous agent handed over (daemon/listen_handover.h): the proxy owns them now, and the next
 * l7_proxy_listen serves each address with the ones bound to it (and our port) before opening new ones.
 */
void l7_proxy_adopt(struct l7_proxy *p, const int *fds, size_t n);
/*
 * Restart: a holder process keeps copies of every listening socket for the next agent (at path, at most
 * timeout_s seconds, then it turns the capture off through capture_map_fd); from then on the proxy leaves
 * their accept queues to it. Call before l7_proxy_free.
 */
int l7_proxy_handover(struct l7_proxy *p, const char *path, int capture_map_fd, unsigned int timeout_s);
/* Does the proxy listen on a now? */
bool l7_proxy_listening(struct l7_proxy *p, const struct l7_proxy_addr *a);
/* The port the listeners are bound to (opts->port, or the one the kernel picked for 0); 0 before listen. */
uint16_t l7_proxy_port(const struct l7_proxy *p);
size_t l7_proxy_workers(const struct l7_proxy *p);

/*
 * Serves snap from now on; routes lives in snap (or as long as it). Each worker takes its own reference.
 * Returns 0 or -ENOMEM (workers that could not be told keep the previous one).
 */
int l7_proxy_apply(struct l7_proxy *p, struct xm_snapshot *snap, const struct l7_route_table *routes);

/* Stops accepting; keep-alive connections close after their current response; returns at once. */
void l7_proxy_drain(struct l7_proxy *p);
/* Drains, waits for in-flight requests (at most opts->drain_timeout_ms), stops the workers, frees. */
void l7_proxy_free(struct l7_proxy *p);

/* Metrics thread: the proxy's own counters (connections, parse errors, upstream failures). */
void l7_proxy_collect(struct l7_proxy *p, struct xm_scrape *sc);
/* The workers' request-metrics shards (for l7_stats_collect / l7_stats_per_service). */
struct l7_stats_shard *const *l7_proxy_shards(const struct l7_proxy *p, size_t *n);

#endif
