// SPDX-License-Identifier: Apache-2.0
/*
 * DestinationRule connectionPool limits, as Envoy's HTTP/1.1 connection pool and per-cluster resource manager
 * apply them (source/common/conn_pool/conn_pool_base.cc; docs/l7.md "Circuit breaking"):
 *
 * - a request takes an idle pooled connection to its endpoint if there is one (then http2MaxRequests, Envoy's
 *   max_requests, is checked: overflow is 503 UO);
 * - else it is a pending request (http1MaxPendingRequests, Envoy's max_pending_requests: overflow is 503 UO at
 *   once) until a connection is ready for it: a new one when the destination has fewer than tcp.maxConnections
 *   open or opening across all workers, or when this worker has no connection at all to the endpoint for the
 *   destination (Envoy's progress rule: the pool makes one anyway, counting upstream_cx_overflow, so that a
 *   pending request always has a connection to wait for); otherwise it waits on the worker for one of them.
 *
 * Counts live in the cluster's load object (l7/shared_state.h), shared by all workers. Pending and requests are
 * counted only while the destination sets their limit (Istio's default is 2^32-1: nothing to count). A waiting
 * request is served when a connection of its destination frees on its worker (given back to the pool, or closed:
 * l7_admit_kick), and looks again every RECHECK_MS for room freed by another worker's connections.
 */
#include <errno.h>

#include "core/loop.h"
#include "l7/record.h"
#include "l7/worker.h"

#define RECHECK_MS		   5	   /* waiting requests look for room freed on other workers */
#define DEFAULT_POOL_IDLE_MS	   3600000 /* Istio's connectionPool.http.idleTimeout default: 1 h */
#define DEFAULT_CONNECT_TIMEOUT_MS 10000   /* Istio's connectionPool.tcp.connectTimeout default: 10 s */

enum overflow_kind {
	OVERFLOW_PENDING,
	OVERFLOW_REQUESTS,
};

/* Takes one of slot when below max (0: unlimited, nothing counted); false at the limit. */
static bool take(struct l7_shared *load, enum l7_load_slot slot, uint32_t max, bool *counted)
{
	*counted = false;
	if (!max || !load)
		return true;
	if (atomic_fetch_add_explicit(&load->v[slot], 1, memory_order_relaxed) >= (long long)max) {
		atomic_fetch_sub_explicit(&load->v[slot], 1, memory_order_relaxed);
		return false;
	}
	*counted = true;
	return true;
}

static void give(struct l7_shared *load, enum l7_load_slot slot, bool *counted)
{
	if (*counted && load)
		atomic_fetch_sub_explicit(&load->v[slot], 1, memory_order_relaxed);
	*counted = false;
}

/* Envoy's local reply for a pool overflow (router: reset reason "overflow", flag UO). */
static void overflow(struct l7_down *d, enum overflow_kind kind)
{
	static const char body[] = "upstream connect error or disconnect/reset before headers. reset reason: overflow";
	struct l7_worker *w = d->w;

	atomic_fetch_add_explicit(kind == OVERFLOW_PENDING ? &w->c.overflow_pending : &w->c.overflow_requests, 1,
				  memory_order_relaxed);
	d->x.details = "upstream_reset_before_response_started{overflow}";
	l7_exchange_local_reply(d, 503, L7_RF_UO, NULL, body, sizeof(body) - 1);
}

void l7_up_apply_policy(struct l7_up *up, const struct l7_cluster *c)
{
	const struct xm_connection_pool *pool = &c->policy.pool;

	up->max_requests = pool->http_max_requests_per_conn;
	/* Istio: http.idleTimeout, else tcp.idleTimeout, else 1 h. */
	up->idle_timeout_ms = pool->http_idle_timeout_ms  ? pool->http_idle_timeout_ms
			      : pool->tcp_idle_timeout_ms ? pool->tcp_idle_timeout_ms
							  : DEFAULT_POOL_IDLE_MS;
	up->max_duration_ms = pool->tcp_max_connection_duration_ms;
}

/* x's request is attached to up (its pending count stays until up is connected: Envoy's pending request). */
static void bind(struct l7_down *d, struct l7_up *up)
{
	struct l7_exchange *x = &d->x;

	x->up = up;
	up->down = d;
	l7_up_apply_policy(up, x->cluster);
	if (!up->connecting)
		give(x->cluster->load, L7_LOAD_PENDING, &x->counted_pending);
}

enum attempt {
	ATTEMPT_BOUND,	 /* x->up set */
	ATTEMPT_WAIT,	 /* no connection may be made now */
	ATTEMPT_REPLIED, /* ended with a local reply */
};

/* A connection for the pending request of d: pooled, or new when the limit (or Envoy's progress rule) allows. */
static enum attempt attempt(struct l7_down *d, const struct l7_endpoint *ep, bool first)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	struct l7_shared *load = x->cluster->load;
	const struct xm_connection_pool *pool = &x->cluster->policy.pool;
	struct l7_up *up = l7_up_pooled(w, ep, load);

	if (!up && pool->tcp_max_connections && load &&
	    atomic_load_explicit(&load->v[L7_LOAD_CONNECTIONS], memory_order_relaxed) >=
		(long long)pool->tcp_max_connections) {
		if (first) /* once per request, not per look */
			atomic_fetch_add_explicit(&w->c.overflow_connections, 1, memory_order_relaxed);
		if (l7_up_any(w, ep, load))
			return ATTEMPT_WAIT;
		/* None here to wait for: made anyway, as Envoy's pool does. */
	}
	if (!take(load, L7_LOAD_REQUESTS, pool->http2_max_requests, &x->counted_request)) {
		if (up)
			l7_up_release(up, true);
		overflow(d, OVERFLOW_REQUESTS);
		return ATTEMPT_REPLIED;
	}
	if (!up) {
		struct l7_tunnel_req origin;
		char traceparent[64];

		l7_exchange_tunnel_origin(d, &origin, traceparent);
		up = l7_up_get(w, ep, load, true,
			       pool->tcp_connect_timeout_ms ? pool->tcp_connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS,
			       &origin);
	}
	if (!up) {
		/* A tunnelled endpoint the client cannot reach in mTLS (no identity, no tunnel) is never sent
		 * plaintext: 503 UF as a failed connect, counted apart, not held against the endpoint. */
		const char *refused = l7_tunnel_refused(d, errno);

		if (!refused)
			atomic_fetch_add_explicit(&w->c.connect_failures, 1, memory_order_relaxed);
		/* No socket: a connect failure to retry (another try comes from the backoff timer), else 503 UF. */
		l7_admit_done(d);
		if (!l7_retry_failed(d, L7_RETRY_CAUSE_CONNECT_FAILURE, 0)) {
			if (refused)
				d->x.details = refused;
			l7_exchange_local_reply(d, 503, L7_RF_UF, NULL, "upstream connect error", 22);
		}
		return ATTEMPT_REPLIED;
	}
	bind(d, up);
	return ATTEMPT_BOUND;
}

static void wait_unlink(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;

	if (!x->waiting)
		return;
	if (x->wait_prev)
		x->wait_prev->x.wait_next = x->wait_next;
	else
		w->wait_head = x->wait_next;
	if (x->wait_next)
		x->wait_next->x.wait_prev = x->wait_prev;
	else
		w->wait_tail = x->wait_prev;
	x->wait_next = x->wait_prev = NULL;
	x->waiting = false;
	w->n_waiting--;
}

/* Each waiting exchange, oldest first, takes a connection if one may be had now; the rest look again later. */
static void on_admit_timer(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct l7_worker *w = ctx;
	struct l7_down *d, *next;

	(void)loop, (void)timer;
	for (d = w->wait_head; d; d = next) {
		struct l7_endpoint ep = d->x.wait_ep;

		/* Serving d never ends another exchange: next stays linked. */
		next = d->x.wait_next;
		switch (attempt(d, &ep, false)) {
		case ATTEMPT_WAIT:
			continue;
		case ATTEMPT_BOUND:
			wait_unlink(d);
			break;
		case ATTEMPT_REPLIED: /* its end unlinked it */
			break;
		}
		if (!d->dead)
			l7_down_progress(d);
	}
	if (w->n_waiting)
		loop_timer_arm(w->loop, w->admit_timer, RECHECK_MS);
}

void l7_admit_kick(struct l7_worker *w)
{
	if (w->admit_timer)
		loop_timer_arm(w->loop, w->admit_timer, 0);
}

bool l7_admit(struct l7_down *d, const struct l7_endpoint *ep)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	struct l7_shared *load;
	struct l7_up *up;

	l7_admit_done(d); /* another attempt (a retry): the previous one's counts go back first */
	load = x->cluster->load;
	up = l7_up_pooled(w, ep, load);

	if (up) {
		if (!take(load, L7_LOAD_REQUESTS, x->cluster->policy.pool.http2_max_requests, &x->counted_request)) {
			l7_up_release(up, true);
			overflow(d, OVERFLOW_REQUESTS);
			return false;
		}
		bind(d, up);
		return true;
	}
	/* No ready connection: a pending request until one is ready for it. */
	if (!take(load, L7_LOAD_PENDING, x->cluster->policy.pool.http1_max_pending_requests, &x->counted_pending)) {
		overflow(d, OVERFLOW_PENDING);
		return false;
	}
	switch (attempt(d, ep, true)) {
	case ATTEMPT_BOUND:
		return true;
	case ATTEMPT_REPLIED:
		return false;
	case ATTEMPT_WAIT:
		break;
	}
	if (!w->admit_timer) {
		w->admit_timer = loop_timer_add(w->loop, RECHECK_MS, 0, on_admit_timer, w);
		if (!w->admit_timer) {
			overflow(d, OVERFLOW_PENDING); /* out of memory: cannot wait */
			return false;
		}
	} else if (!loop_timer_armed(w->admit_timer)) {
		loop_timer_arm(w->loop, w->admit_timer, RECHECK_MS);
	}
	x->waiting = true;
	x->wait_ep = *ep;
	x->wait_next = NULL;
	x->wait_prev = w->wait_tail;
	if (w->wait_tail)
		w->wait_tail->x.wait_next = d;
	else
		w->wait_head = d;
	w->wait_tail = d;
	w->n_waiting++;
	return true;
}

void l7_admit_done(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_shared *load = x->cluster ? x->cluster->load : NULL;

	wait_unlink(d);
	give(load, L7_LOAD_PENDING, &x->counted_pending);
	give(load, L7_LOAD_REQUESTS, &x->counted_request);
}

void l7_admit_connected(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;

	give(x->cluster ? x->cluster->load : NULL, L7_LOAD_PENDING, &x->counted_pending);
}

bool l7_admit_wait_step(struct l7_down *d)
{
	l7_exchange_timeout_start(d);
	if (d->eof && d->x.waiting) {
		l7_exchange_abort(d, L7_RF_DC);
		l7_down_close(d);
	}
	return false;
}

void l7_admit_free(struct l7_worker *w)
{
	loop_timer_cancel(w->loop, w->admit_timer);
	w->admit_timer = NULL;
}
