/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's private structures: a worker (its loop, snapshot, pools, counters) and the connections it owns.
 * Everything here is touched only by the worker's own thread, except the atomic counters the metrics thread
 * reads. Shared by proxy.c, worker.c, downstream.c, exchange.c and upstream.c.
 */
#ifndef XMESH_L7_WORKER_H
#define XMESH_L7_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/h1.h"
#include "l7/balance.h"
#include "l7/buf.h"
#include "l7/outlier_batch.h"
#include "l7/proxy.h"
#include "l7/request_id.h"
#include "l7/retry.h"
#include "l7/trace.h"
#include "l7/routes.h"

struct xm_loop;
struct xm_timer;
struct xm_snapshot;

/* A snapshot as one worker holds it: requests count themselves in users without atomics. */
struct l7_snap_hold {
	struct xm_snapshot *snap;
	const struct l7_route_table *routes;
	uint64_t epoch; /* the worker's count of snapshots, this one's: keys what connections cached of it */
	uint32_t users; /* exchanges running on it */
	bool retired;	/* a newer one is in force: freed when users reaches 0 */
};

/*
 * Upstream pool key: one endpoint address, and how it is reached: a TCP connect, or the node's tunnel for one
 * client workload (its certificate is presented: a tunnelled connection serves only that workload's requests).
 */
struct l7_endpoint {
	union xm_addr addr;
	uint16_t port; /* host order */
	uint8_t family;
	bool tunnel;	    /* through opts.tunnel */
	const char *src_id; /* tunnel: the client workload's SPIFFE id (NULL: none, refused locally) */
};

struct l7_down;

enum l7_up_kind {
	L7_UP_PRIMARY = 0, /* serves the exchange of down, or idles in its pool */
	L7_UP_SHADOW,	   /* a mirror's copy: response read and dropped */
};

struct l7_up {
	int fd;
	struct l7_worker *w;
	enum l7_up_kind kind;
	struct l7_down *down; /* the exchange it serves; NULL while pooled */
	struct l7_endpoint ep;
	struct l7_up *pool_next, *pool_prev;  /* in the worker's idle list for ep */
	struct l7_up *all_next, *all_prev;    /* every live upstream connection of the worker */
	struct xm_timer *timer;		      /* connect timeout, then pool idle timeout / shadow deadline */
	uint64_t idle_since_ms, timer_due_ms; /* pooled at (loop_batch_ms()); when timer was last armed for */
	struct l7_buf in, out;
	bool readable;	       /* edge-triggered: bytes or EOF may wait in the socket (l7_up_read) */
	uint32_t requests;     /* sent on this connection so far */
	uint32_t max_requests; /* maxRequestsPerConnection, 0: unlimited */
	uint64_t idle_timeout_ms;
	bool connecting, eof, error, connect_failed, pooled, dead;
	union xm_addr local; /* the proxy's end (access log's upstream_local_address) */
	uint16_t local_port;
	uint8_t local_family;
	struct l7_shared *load;	  /* the destination's counts (a reference, L7_LOAD_CONNECTIONS); NULL: none */
	uint64_t born_ms;	  /* opened at (loop_batch_ms()) */
	uint64_t max_duration_ms; /* maxConnectionDuration: not reused, and closed when pooled, past it; 0: none */
	/*
	 * Tunnelled (ep.tunnel): fd is a socketpair's end, the other one is the tunnel's. It is connecting until
	 * the tunnel's answer (l7_up_tunnel_done, found by tunnel_handle among the worker's tunnels_opening):
	 * opened, or refused/failed/timed out, which is a connect failure (UF), as a refused TCP connect.
	 */
	uint64_t tunnel_handle;			   /* 0: not waiting for an answer */
	struct l7_up *opening_next, *opening_prev; /* in the worker's tunnels_opening while waiting */
	char *tunnel_id;			   /* ep.src_id's copy (ep.src_id points here) */
	struct h1_chunked shadow_chunk;		   /* shadow: response framing while it drains */
	bool shadow_head_done;
	enum h1_body shadow_body;
	uint64_t shadow_remaining;
	struct l7_up *next_dead;
};

enum l7_down_state {
	L7_DOWN_HEAD = 0, /* waiting for (the rest of) a request head */
	L7_DOWN_EXCHANGE, /* one request in flight */
	L7_DOWN_TUNNEL,	  /* after 101: bytes both ways */
	L7_DOWN_CLOSING,  /* flushing the last response, then linger */
	L7_DOWN_LINGER,	  /* write side shut: read and drop until EOF or the linger timer */
};

/*
 * An exchange's copies for its record and rewrites (2.4 KiB), taken from the worker when a request starts and
 * given back when it ends, so that an idle keep-alive connection does not carry them.
 */
struct l7_exchange_text {
	char xff[320]; /* x-forwarded-for as sent upstream */
	char set_cookie[512];
	char method[24], path[1024], authority[256], user_agent[256], request_id[40];
	struct l7_trace_ctx trace;		  /* the proxy's span (l7/trace.h) */
	char trace_headers[L7_TRACE_HEADERS_MAX]; /* its header lines, as forwarded */
	struct l7_exchange_text *next_free;
};

/* Request body bytes kept for a retry: one buffer's worth (Envoy keeps up to its per-request buffer limit). */
#define L7_RETRY_BODY_MAX  (64 * 1024)
#define L7_RETRY_TRIED_MAX 8

/* The request in flight on a downstream connection. */
struct l7_exchange {
	struct l7_snap_hold *hold;
	const struct l7_service *service;
	const struct l7_route *route;
	const struct l7_destination *dest;
	const struct l7_cluster *cluster;
	const struct xm_lb_backend *endpoint;
	const struct xm_workload *endpoint_wl, *source;
	struct l7_up *up;
	bool counted_active; /* l7_active_add done for endpoint */
	char *head;	     /* the rewritten request head, kept until a response byte arrives (one resend) */
	uint32_t head_len;
	bool head_sent, resent, local;
	bool tunnelled; /* the current try's upstream goes through the tunnel (connection_security_policy) */
	/* request */
	enum h1_body req_body;
	uint64_t req_remaining;
	struct h1_chunked req_chunk;
	bool req_done;
	uint64_t req_bytes;
	uint64_t req_body_sent; /* bytes of the body written upstream: a resend needs none yet */
	bool is_head, is_connect, keep_alive, http10, expect_continue, upgrade;
	/* response */
	bool resp_started, resp_head_done, resp_done, resp_keep_alive;
	enum h1_body resp_body;
	uint64_t resp_remaining;
	struct h1_chunked resp_chunk;
	bool resp_dechunk; /* a chunked response to an HTTP/1.0 client: its payload only, then close */
	uint64_t resp_bytes;
	uint16_t status;
	uint32_t flags; /* L7_RF_* */
	uint64_t start_unix_ns, start_mono_ns;
	uint64_t req_head_bytes, resp_head_bytes;
	uint64_t upstream_sent_ns, upstream_service_ns; /* head queued upstream; → response head */
	const char *details;				/* %RESPONSE_CODE_DETAILS%, NULL: derived */
	union xm_addr up_local;
	uint16_t up_local_port;
	uint8_t up_local_family;
	struct l7_exchange_text *t; /* while the exchange runs (l7_text_get) */
	/* fault delay and route timeout (l7/fault.c) */
	struct xm_timer *timer;		    /* due at the sooner of delay_due_ms and deadline_ms */
	uint64_t delay_due_ms, deadline_ms; /* loop_now_ms() clock; 0: none */
	uint32_t delay_head_len;	    /* the head waiting in d->in while delayed */
	bool delayed;
	/* connectionPool limits (l7/admission.c): what this exchange counts in its cluster's load */
	bool waiting;			       /* queued on the worker for a connection to wait_ep */
	bool counted_pending, counted_request; /* L7_LOAD_PENDING / L7_LOAD_REQUESTS taken */
	struct l7_endpoint wait_ep;
	struct l7_down *wait_next, *wait_prev;
	/* retries (l7/retry.c); the timer above also runs the per-try timeout and the backoff */
	uint32_t attempt;		    /* this try's number: 1 for the first, 0 before one started */
	uint32_t tried[L7_RETRY_TRIED_MAX]; /* backend ids tried (previous-hosts predicate) */
	uint8_t n_tried;
	bool keep_body;				  /* the policy may retry after body bytes left: copy them */
	bool body_too_big;			  /* the body outgrew L7_RETRY_BODY_MAX: no retry */
	bool backing_off;			  /* between tries: no upstream, waiting for retry_due_ms */
	bool retry_slot;			  /* holds one of the cluster's L7_LOAD_RETRIES */
	char *body;				  /* the body bytes sent so far (keep_body), NULL: none yet */
	uint32_t body_len, body_cap, body_resent; /* kept; allocated; re-queued on this try */
	uint64_t retry_due_ms, try_deadline_ms;	  /* loop_now_ms() clock; 0: none */
};

struct l7_down {
	int fd;
	struct l7_worker *w;
	enum l7_down_state state;
	struct l7_buf in, out;
	bool readable;		/* edge-triggered: bytes or EOF may wait in the socket */
	struct xm_timer *timer; /* idle keep-alive, then linger */
	uint64_t idle_since_ms; /* loop_batch_ms() when it last had nothing to do */
	union xm_addr peer;
	uint16_t peer_port;
	uint8_t family;
	char peer_str[48];
	struct xm_svc_key vip; /* what the client dialed */
	uint32_t svc_id;
	bool eof, error, close_after, dead;
	uint32_t requests; /* heads parsed on this connection */
	/* What depends only on the peer, the VIP and the snapshot, looked up once per snapshot (epoch). */
	uint64_t lookup_epoch; /* 0: nothing cached */
	const struct xm_workload *source;
	const struct l7_service *service;
	struct l7_exchange x;
	struct l7_down *prev, *next; /* the worker's connections */
	struct l7_down *next_dead;
};

struct l7_worker_counters {
	atomic_ullong downstream_total, downstream_active, unresolved, parse_errors[H1_E_MAX];
	atomic_ullong upstream_total, upstream_active, connect_failures, resends, bad_responses, mirrors;
	atomic_ullong upstream_resets;
	/* connectionPool overflows (Envoy's upstream_cx_overflow, upstream_rq_pending_overflow, max requests) */
	atomic_ullong overflow_connections, overflow_pending, overflow_requests;
	atomic_ullong ratelimited, ratelimit_not_enforced; /* local rate limits (l7/ratelimit.c) */
	atomic_ullong retries, retry_overflows, retry_body_too_big, retries_exhausted;
	/* upstreams through the tunnel: opened, refused before any byte (UF), refused locally (no client
	 * certificate, no tunnel) */
	atomic_ullong tunnel_total, tunnel_failures, tunnel_no_identity, tunnel_unavailable;
	/* the tunnel's answers, by outcome; late: answers for a connection closed meanwhile (connectTimeout) */
	atomic_ullong tunnel_outcomes[XM_TUNNEL_OUTCOMES], tunnel_late;
};

#define L7_POOL_BUCKETS 256
#define L7_FAILED_SET	64 /* endpoints a worker remembers reporting a failure for (then it forgets the oldest) */

/*
 * Connections are watched edge-triggered for everything, from first to last, with no epoll_ctl in between
 * (level-triggered epoll polls each ready socket once more per event). An edge means "read": reads go on
 * while the buffer has room and the last read filled it (a shorter read emptied the socket; bytes arriving
 * later make a new edge), and a buffer that was full is read again as soon as it has room. Writes go on
 * until EAGAIN; an EPOLLOUT edge follows when there is room again.
 */
#define L7_CONN_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

struct l7_worker {
	struct l7_proxy *proxy;
	size_t index;
	pthread_t thread;
	bool started;
	struct xm_loop *loop;
	struct l7_snap_hold *hold; /* in force; NULL before the first apply */
	uint64_t epochs;	   /* snapshots received (l7_snap_hold.epoch) */
	struct l7_balancer *balancer;
	struct l7_stats_shard *shard;
	struct l7_rng rng;
	struct l7_down *conns; /* every live downstream connection */
	size_t n_conns;
	struct l7_up *pool[L7_POOL_BUCKETS]; /* idle upstream connections, by endpoint hash */
	struct l7_up *ups;		     /* every live upstream connection */
	/* Tunnelled connections waiting for the tunnel's answer, which comes through gate (closed when the loop
	 * stops: the hbone thread outlives the workers) naming the connection by handle (never a pointer). */
	struct l7_up *tunnels_opening;
	uint64_t tunnel_handles; /* the last handle given */
	struct xm_post_gate *gate;
	struct l7_down *dead_downs;
	struct l7_up *dead_ups;
	struct xm_timer *reaper; /* frees dead connections once no callback can hold them */
	struct xm_timer *drain_timer;
	bool draining;
	char scratch[L7_BUF_CAP];	     /* heads are built here before they are queued */
	struct l7_exchange_text *free_texts; /* given back, for the next exchanges (at most L7_TEXT_CACHE) */
	uint32_t n_free_texts;
	struct l7_exchange_text spare_text; /* when out of memory: shared, the records may mix, nothing breaks */
	struct l7_worker_counters c;
	/* Endpoints (svc_id << 32 | backend_id) with a connect failure reported since their last success. */
	uint64_t failed[L7_FAILED_SET];
	uint32_t n_failed, failed_next;
	/* Upstream HTTP statuses of outlier-detected services, until outlier_timer reports them (outlier_report.c). */
	struct l7_outlier_batch *outlier_batch; /* NULL until the first one */
	struct xm_timer *outlier_timer;
	/* Exchanges waiting for an upstream connection (admission.c), oldest first, and their re-check timer. */
	struct l7_down *wait_head, *wait_tail;
	uint32_t n_waiting;
	struct xm_timer *admit_timer;
};

struct l7_listener {
	struct l7_proxy_addr addr;
	int *fds; /* socket i is served by worker i % n_workers; at least one each */
	size_t n_fds, n_adopted;
};

enum l7_listen_op {
	L7_LISTEN_ADD = 0,
	L7_LISTEN_REMOVE, /* accept what is queued, then close */
	L7_LISTEN_LEAVE,  /* stop accepting and close our copy: a holder keeps the socket and its queue */
};

struct l7_proxy {
	struct l7_proxy_opts opts;
	struct l7_worker **workers;
	size_t n_workers;
	struct l7_stats_shard **shards;
	struct l7_listener *listeners;
	size_t n_listeners;
	uint16_t port;
	int *adopted; /* a previous agent's listening sockets, until an address claims them */
	size_t n_adopted;
	bool handed_over;		   /* a holder keeps our listening sockets: leave their queues alone */
	pthread_mutex_t lock;		   /* listeners (control thread vs. free) */
	struct l7_shared_registry *shared; /* circuit-breaker counts and buckets across snapshots (control thread) */
};

/* worker.c */
#define L7_TEXT_CACHE 64
/* Empty texts for an exchange (never NULL); give them back with l7_text_put. */
struct l7_exchange_text *l7_text_get(struct l7_worker *w);
void l7_text_put(struct l7_worker *w, struct l7_exchange_text *t);
void l7_worker_reap_later(struct l7_worker *w);
struct l7_snap_hold *l7_worker_hold(struct l7_worker *w);
void l7_worker_release(struct l7_worker *w, struct l7_snap_hold *h);

/* downstream.c */
struct sockaddr_storage;
void l7_down_accept(struct l7_worker *w, int fd, const struct sockaddr_storage *peer, const struct xm_svc_key *vip,
		    uint32_t svc_id);
/* Moves whatever can move on d (and its upstream), then updates what the loop watches. */
void l7_down_progress(struct l7_down *d);
/* Writes what d->out holds now; false (d->error set) on a write error. */
bool l7_down_flush(struct l7_down *d);
/* Closes d now (and its exchange's upstream); freed later. */
void l7_down_close(struct l7_down *d);
/* Draining: closes d if it idles between requests, else marks its next response Connection: close. */
void l7_down_drain(struct l7_down *d);
void l7_down_free(struct l7_down *d);

/* exchange.c */
/* A complete request head is at the front of d->in: route it and start the exchange. */
void l7_exchange_start(struct l7_down *d, const struct h1_request *req, uint32_t head_len);
/* Moves request and response bytes; true if anything moved or changed. */
bool l7_exchange_step(struct l7_down *d);
/* Ends the exchange (record, metrics, log), keeps or closes the upstream, releases the snapshot. */
void l7_exchange_finish(struct l7_down *d);
/* Ends the exchange now with flags (UC, DC): recorded, upstream closed; the caller closes d. */
void l7_exchange_abort(struct l7_down *d, uint32_t flags);
/* A request head the parser refused: 400, counted, recorded, connection closing. */
void l7_exchange_bad_request(struct l7_down *d, enum h1_error err);
/* Moves raw bytes both ways after a 101; true if anything moved. */
bool l7_tunnel_step(struct l7_down *d);
/* Queues a reply the proxy makes itself and ends the exchange with it. */
void l7_exchange_local_reply(struct l7_down *d, uint16_t status, uint32_t flags, const char *extra, const char *body,
			     size_t body_len);

/* exchange.c: the head of a delayed request (parsed again from d->in) goes on to its route's action. */
void l7_exchange_resume(struct l7_down *d);

/* fault.c */
/*
 * Starts the route timeout of d's forwarded exchange once its request is complete, as Envoy's router does (after
 * any fault delay); a no-op when it runs already or the route has none.
 */
void l7_exchange_timeout_start(struct l7_down *d);
/* Samples the route's delay: true when the request now waits on the timer (its head stays in d->in). */
bool l7_fault_delay(struct l7_down *d, uint32_t head_len);
/* Samples the route's abort: the status to answer with (flag FI), or 0 to go on. */
uint16_t l7_fault_abort(struct l7_down *d);
/* A delayed exchange's step: a client that went away ends it (DC) and its connection. */
bool l7_fault_delay_step(struct l7_down *d);
/* Cancels the exchange's timer (exchange end). */
void l7_exchange_timer_stop(struct l7_down *d);

/*
 * admission.c: DestinationRule connectionPool limits per destination (Envoy's per-cluster circuit breakers,
 * docs/l7.md "Circuit breaking").
 *
 * Gets d's exchange (destination and endpoint chosen, head consumed) a connection to ep: an idle pooled one, a new
 * one under tcp.maxConnections, or it waits on the worker (x->waiting) as a pending request. Returns true when the
 * exchange goes on (x->up set, or waiting); false when it ended with a local reply (503 UO on overflow, 503 UF).
 * A retry calls it again for its attempt once x->up was given back or closed (x->up NULL): what the previous
 * attempt counted is given back first.
 */
bool l7_admit(struct l7_down *d, const struct l7_endpoint *ep);
/* The exchange ends: gives back what it counted and leaves the wait list. */
void l7_admit_done(struct l7_down *d);
/* A waiting exchange's step: starts the route timeout; a client that went away ends it (DC). */
bool l7_admit_wait_step(struct l7_down *d);
/* x's new connection is up: the request stops being pending. */
void l7_admit_connected(struct l7_down *d);
/* A connection of w went back to its pool or closed: waiting exchanges look again (soon, from a timer). */
void l7_admit_kick(struct l7_worker *w);
void l7_admit_free(struct l7_worker *w);
/* The cluster's per-connection settings on up: maxRequestsPerConnection, idle timeout, maxConnectionDuration. */
void l7_up_apply_policy(struct l7_up *up, const struct l7_cluster *c);
/* fault.c: (re)arms the exchange's timer for the soonest of its deadlines; false when out of memory. */
bool l7_exchange_timer_arm(struct l7_down *d);

/*
 * exchange.c: the pool key of d's current endpoint (x->endpoint): tunnelled when the proxy has a tunnel and
 * the snapshot's mtls_remote says so, for d's client workload (src_id NULL when it has no identity).
 */
void l7_exchange_endpoint(const struct l7_down *d, const struct xm_lb_backend *b, struct l7_endpoint *ep);
/*
 * What a new tunnelled connection for d tells the tunnel besides the endpoint: the downstream client and the
 * request's trace (traceparent is the caller's buffer, at least 64 bytes).
 */
void l7_exchange_tunnel_origin(const struct l7_down *d, struct l7_tunnel_req *o, char *traceparent);
/*
 * l7_up_get returned NULL with errno err: ENOENT (the client has no identity the tunnel can present) and
 * ENOTCONN (no tunnel) are local refusals: counted, and the record's details for them returned; NULL otherwise.
 */
const char *l7_tunnel_refused(struct l7_down *d, int err);

/* exchange.c: x->endpoint's connection for the current try (pooled or new); a socket that failed counts as a
 * connect failure (retried, or 503 UF). */
void l7_exchange_connect(struct l7_down *d);

/* retry.c (docs/l7.md "Retries") */
/* A forwarded request's first try starts: the policy's bookkeeping. */
void l7_retry_begin(struct l7_down *d);
/*
 * The current try failed this way (its outcome already reported to outlier detection). True: a retry is
 * scheduled (the upstream closed, the exchange waits on its timer); false: answer as without retries (flags
 * URX or UO, or the details, may now say why not).
 */
bool l7_retry_failed(struct l7_down *d, enum l7_retry_cause cause, uint16_t status);
/* The backoff is over: the next try picks an endpoint and connects. */
void l7_retry_fire(struct l7_down *d);
/* The per-try timeout fired: the try is abandoned (504 UT if it is not retried). */
void l7_retry_try_timeout(struct l7_down *d);
/* Starts the per-try timeout once the request is complete (a no-op when running or none). */
void l7_retry_try_timer_start(struct l7_down *d);
/* body bytes of the request just queued upstream: kept for a retry while the policy may need them. */
void l7_retry_body_sent(struct l7_exchange *x, const char *p, uint32_t n);
/* Queues the kept body again after a retry's head; true if anything moved. *pending: bytes still to queue. */
bool l7_retry_body_resend(struct l7_down *d, bool *pending);
/* Queues the head of the current try (its x-envoy-attempt-count); false when up->out has no room. */
bool l7_retry_queue_head(struct l7_down *d);
/* The exchange ends: the retry slot and the kept body are given back. */
void l7_retry_end(struct l7_down *d);

/* upstream.c */
/*
 * An idle pooled connection to ep for load's destination (a connection serves one destination), or a new one
 * (connecting, failed after connect_timeout_ms, counted in load); NULL when the socket failed.
 */
struct l7_up *l7_up_get(struct l7_worker *w, const struct l7_endpoint *ep, struct l7_shared *load, bool fresh,
			uint64_t connect_timeout_ms, const struct l7_tunnel_req *origin);
/* The idle pooled connection to ep for load's destination, taken from the pool, or NULL. */
struct l7_up *l7_up_pooled(struct l7_worker *w, const struct l7_endpoint *ep, const struct l7_shared *load);
/* Whether w has any connection (busy, idle or connecting) to ep for load's destination. */
bool l7_up_any(const struct l7_worker *w, const struct l7_endpoint *ep, const struct l7_shared *load);
/* Returns up to its pool (keep-alive) or closes it. */
void l7_up_release(struct l7_up *up, bool reusable);
void l7_up_close(struct l7_up *up);
/* Reads once if up may have bytes and its buffer room; true if bytes came or up reached EOF or an error. */
bool l7_up_read(struct l7_up *up);
/* Writes what up->out holds; false on a write error (up->error set). */
bool l7_up_flush(struct l7_up *up);
/* A mirror copy of a complete request (head and body in bytes) to ep, response dropped. */
void l7_up_shadow(struct l7_worker *w, const struct l7_endpoint *ep, const char *bytes, uint32_t len,
		  const struct l7_tunnel_req *origin);
void l7_up_free(struct l7_up *up);
/* Closes every pooled connection (drain). */
void l7_pool_close_all(struct l7_worker *w);

/* Outlier detection (l7/outlier_report.c): the upstream connect of exchange x failed, or a fresh one succeeded. */
void l7_report_connect_failed(struct l7_worker *w, const struct l7_exchange *x);
void l7_report_connected(struct l7_worker *w, const struct l7_exchange *x);
/* The final response status of x, whose service has outlier detection on: batched, reported within 10 ms. */
void l7_report_response(struct l7_worker *w, const struct l7_exchange *x);
/* Reports what is batched and frees the batch (the worker is going away). */
void l7_report_free(struct l7_worker *w);

/* worker.c */
struct l7_worker *l7_worker_new(struct l7_proxy *p, size_t index, struct l7_stats_shard *shard);
void l7_worker_free(struct l7_worker *w);
void *l7_worker_main(void *arg);
/* Posted work: listen on fd / stop listening and close it / serve a snapshot / drain. */
int l7_worker_post_listen(struct l7_worker *w, int fd, enum l7_listen_op op);
int l7_worker_post_snapshot(struct l7_worker *w, struct xm_snapshot *snap, const struct l7_route_table *routes);
int l7_worker_post_drain(struct l7_worker *w);

#endif
