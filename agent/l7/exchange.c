// SPDX-License-Identifier: Apache-2.0
/*
 * One request on a downstream connection, Envoy's router in small: route, pick a destination and an
 * endpoint, forward the rewritten head and stream the body both ways through bounded buffers (a full buffer
 * stops the reads that fill it), relay 1xx, switch to a tunnel after 101, answer locally when there is
 * nothing to forward to (404 NR, 503 UH/UF/UC, 502, redirect, directResponse, a fault's abort), and record the
 * result. Fault delays and the route timeout run on the exchange's timer (fault.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "compile/peer_auth.h"
#include "compile/snapshot.h"
#include "core/loop.h"
#include "l7/ratelimit.h"
#include "l7/record.h"
#include "l7/rewrite.h"
#include "l7/stats.h"
#include "l7/worker.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000 /* Istio's connectionPool.tcp.connectTimeout default: 10 s */

static uint64_t connect_timeout(const struct l7_cluster *c)
{
	return c->policy.pool.tcp_connect_timeout_ms ? c->policy.pool.tcp_connect_timeout_ms
						     : DEFAULT_CONNECT_TIMEOUT_MS;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void copy_span(char *dst, size_t cap, struct h1_str s)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;

	if (n)
		memcpy(dst, s.p, n);
	dst[n] = '\0';
}

/* user-agent and x-request-id (the first of each) for the record, in one pass over the fields. */
static void copy_record_headers(struct l7_exchange *x, const struct h1_request *req)
{
	bool ua = false, id = false;

	for (uint32_t i = 0; i < req->n_headers && !(ua && id); i++) {
		const struct h1_header *h = &req->headers[i];

		if (!ua && h->name.len == 10 && h1_name_eq(h->name, "user-agent")) {
			copy_span(x->t->user_agent, sizeof(x->t->user_agent), h->value);
			ua = true;
		} else if (!id && h->name.len == 12 && h1_name_eq(h->name, "x-request-id")) {
			copy_span(x->t->request_id, sizeof(x->t->request_id), h->value);
			id = true;
		}
	}
}

/*
 * Moves body bytes from `from` to `to` (NULL: dropped) under the body's framing; a chunked body goes as it
 * came, or only its payload when dechunk (then to is not NULL). Returns the bytes taken from `from`, or -1 on
 * a chunked-framing error. *done once the body ended (for CLOSE: at eof with nothing left).
 */
static long move_body(struct l7_buf *from, struct l7_buf *to, enum h1_body kind, uint64_t *remaining,
		      struct h1_chunked *ck, bool dechunk, bool eof, bool *done, uint64_t *bytes)
{
	uint32_t avail = l7_buf_len(from), n;
	enum h1_error err;
	size_t payload;
	long r;

	if (kind == H1_BODY_NONE || (kind == H1_BODY_LENGTH && !*remaining)) {
		*done = true;
		return 0;
	}
	n = to ? l7_buf_room(to) : avail;
	n = n < avail ? n : avail;
	switch (kind) {
	case H1_BODY_LENGTH:
		if (n > *remaining)
			n = (uint32_t)*remaining;
		*remaining -= n;
		*bytes += n;
		*done = !*remaining;
		break;
	case H1_BODY_CHUNKED:
		if (!n)
			break;
		if (dechunk) {
			/* The payload is never longer than the bytes that carry it: room for n is room enough. */
			r = h1_chunked_decode(ck, l7_buf_peek(from), n, l7_buf_end(to), &payload, &err);
			if (r < 0)
				return -1;
			l7_buf_commit(to, (uint32_t)payload);
			l7_buf_consume(from, (uint32_t)r);
			*bytes = ck->data_bytes;
			*done = ck->done;
			return r;
		}
		r = h1_chunked_scan(ck, l7_buf_peek(from), n, &err);
		if (r < 0)
			return -1;
		n = (uint32_t)r;
		*bytes = ck->data_bytes;
		*done = ck->done;
		break;
	default: /* CLOSE */
		*bytes += n;
		break;
	}
	if (to && n) {
		memcpy(l7_buf_end(to), l7_buf_peek(from), n);
		l7_buf_commit(to, n);
	}
	l7_buf_consume(from, n);
	if (kind == H1_BODY_CLOSE && eof && !l7_buf_len(from))
		*done = true;
	return n;
}

static void fill_record(struct l7_down *d, struct l7_record *r)
{
	static const struct l7_exchange_text none;
	struct l7_exchange *x = &d->x;
	const struct l7_exchange_text *t = x->t ? x->t : &none;

	memset(r, 0, sizeof(*r));
	r->start_unix_ns = x->start_unix_ns;
	r->duration_ns = clock_ns(CLOCK_MONOTONIC) - x->start_mono_ns;
	r->status = x->status;
	r->flags = x->flags;
	r->request_bytes = x->req_bytes;
	r->response_bytes = x->resp_bytes;
	r->method = t->method;
	r->path = t->path;
	r->authority = t->authority;
	r->user_agent = t->user_agent;
	memcpy(r->request_id, t->request_id, sizeof(r->request_id));
	if (t->trace.has_context) {
		l7_trace_hex(t->trace.trace_id, sizeof(t->trace.trace_id), r->trace_id);
		l7_trace_hex(t->trace.span_id, sizeof(t->trace.span_id), r->span_id);
		if (t->trace.has_parent)
			l7_trace_hex(t->trace.parent_id, sizeof(t->trace.parent_id), r->parent_span_id);
		r->sampled = t->trace.sampled == L7_TRACE_SAMPLED;
	}
	r->protocol = x->http10 ? "HTTP/1.0" : "HTTP/1.1";
	r->source = x->source;
	r->cluster = x->cluster;
	r->upstream = x->endpoint;
	r->upstream_wl = x->endpoint_wl;
	r->downstream_addr = d->peer;
	r->downstream_port = d->peer_port;
	r->downstream_family = d->family;
	r->request_head_bytes = x->req_head_bytes;
	r->response_head_bytes = x->resp_head_bytes;
	r->upstream_service_ns = x->upstream_service_ns;
	r->forwarded_for = t->xff[0] ? t->xff : NULL;
	r->details = x->details;
	r->route = x->route;
	r->attempts = x->attempt;
	r->downstream_local_addr = d->vip.vip;
	r->downstream_local_port = ntohs(d->vip.port);
	r->downstream_local_family = d->vip.family;
	r->upstream_local_addr = x->up_local;
	r->upstream_local_port = x->up_local_port;
	r->upstream_local_family = x->up_local_family;
	r->tunnelled = x->tunnelled;
	/* The hold is released after the record: its snapshot outlives it, and l7_stats_record's memo works. */
	r->snapshot_generation = x->hold ? x->hold->snap->generation : 0;
}

/* x-forwarded-for as l7_rewrite_request writes it: the values received, then the client (cut to fit). */
static void forwarded_for(const struct h1_request *req, const char *client, char *buf, size_t cap)
{
	size_t n = 0, k;

	for (uint32_t i = 0; i < req->n_headers; i++) {
		const struct h1_header *h = &req->headers[i];

		if (h->name.len != 15 || !h->value.len || !h1_name_eq(h->name, "x-forwarded-for"))
			continue;
		k = h->value.len < cap - 1 - n ? h->value.len : cap - 1 - n;
		memcpy(buf + n, h->value.p, k);
		n += k;
		k = cap - 1 - n < 2 ? cap - 1 - n : 2;
		memcpy(buf + n, ", ", k);
		n += k;
	}
	k = strlen(client);
	k = k < cap - 1 - n ? k : cap - 1 - n;
	memcpy(buf + n, client, k);
	buf[n + k] = '\0';
}

void l7_exchange_finish(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	struct l7_record r;

	l7_exchange_timer_stop(d);
	l7_admit_done(d);
	l7_retry_end(d);
	fill_record(d, &r);
	l7_stats_record(w->shard, &r);
	if (w->proxy->opts.on_record)
		w->proxy->opts.on_record(w->proxy->opts.record_ctx, w->index, &r);
	if (x->counted_active)
		l7_active_add(x->endpoint->id, -1);
	x->counted_active = false;
	if (x->up) {
		bool reusable = x->resp_done && x->req_done && x->resp_keep_alive && x->resp_body != H1_BODY_CLOSE &&
				x->resp_body != H1_BODY_TUNNEL && x->head_sent;

		l7_up_release(x->up, reusable);
		x->up = NULL;
	}
	free(x->head);
	x->head = NULL;
	l7_worker_release(w, x->hold);
	x->hold = NULL;
	l7_text_put(w, x->t);
	x->t = NULL;
	if (!x->keep_alive || !x->req_done)
		d->close_after = true;
	d->state = d->close_after ? L7_DOWN_CLOSING : L7_DOWN_HEAD;
}

void l7_exchange_abort(struct l7_down *d, uint32_t flags)
{
	struct l7_exchange *x = &d->x;

	x->flags |= flags;
	if (x->up) {
		l7_up_close(x->up);
		x->up = NULL;
	}
	d->close_after = true;
	l7_exchange_finish(d);
}

void l7_exchange_local_reply(struct l7_down *d, uint16_t status, uint32_t flags, const char *extra, const char *body,
			     size_t body_len)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	bool close = d->close_after || !x->keep_alive || !x->req_done || w->draining || d->eof;
	char extra_10[1600];
	int n;

	if (x->up) {
		l7_up_close(x->up);
		x->up = NULL;
	}
	/* An HTTP/1.0 client that asked for keep-alive is told it keeps the connection, as on a relayed response. */
	if (x->http10 && !close) {
		n = snprintf(extra_10, sizeof(extra_10), "%sconnection: keep-alive\r\n", extra ? extra : "");
		if (n > 0 && (size_t)n < sizeof(extra_10))
			extra = extra_10;
		else
			close = true;
	}
	n = l7_local_reply(status, extra, body, body_len, close, w->scratch, sizeof(w->scratch));
	if (n < 0 || !l7_buf_append(&d->out, w->scratch, (uint32_t)n)) {
		l7_exchange_abort(d, flags);
		return;
	}
	x->status = status;
	x->flags |= flags;
	x->resp_bytes = body_len;
	x->resp_head_bytes = (uint64_t)n - body_len;
	x->resp_done = true;
	x->local = true;
	if (close)
		d->close_after = true;
	l7_exchange_finish(d);
}

void l7_exchange_bad_request(struct l7_down *d, enum h1_error err)
{
	struct l7_exchange *x = &d->x;

	atomic_fetch_add_explicit(&d->w->c.parse_errors[err < H1_E_MAX ? err : 0], 1, memory_order_relaxed);
	memset(x, 0, sizeof(*x));
	x->start_mono_ns = clock_ns(CLOCK_MONOTONIC);
	x->start_unix_ns = clock_ns(CLOCK_REALTIME);
	x->t = l7_text_get(d->w);
	memcpy(x->t->method, "-", 2);
	memcpy(x->t->path, "-", 2);
	x->details = h1_error_name(err);
	d->state = L7_DOWN_EXCHANGE;
	d->close_after = true;
	l7_buf_consume(&d->in, l7_buf_len(&d->in));
	if (err == H1_E_VERSION_NOT_SUPPORTED)
		l7_exchange_local_reply(d, 505, L7_RF_BAD_REQUEST, NULL, NULL, 0);
	else if (err == H1_E_TOO_LARGE || err == H1_E_TOO_MANY_HEADERS)
		l7_exchange_local_reply(d, 431, L7_RF_BAD_REQUEST, NULL, NULL, 0);
	else
		l7_exchange_local_reply(d, 400, L7_RF_BAD_REQUEST, NULL, "Bad Request", 11);
}

/* "scheme://authority[:port]/path?query" for a redirect (Istio's HTTPRedirect). */
static void redirect_location(const struct h1_request *req, const struct l7_route *route, char *buf, size_t cap)
{
	const char *uri = route->redirect_uri;
	struct h1_str host = req->host;
	char path[1024], port[8] = "";
	int host_len;

	if (uri)
		snprintf(path, sizeof(path), "%s%s%.*s", uri, req->query.len && !strchr(uri, '?') ? "?" : "",
			 strchr(uri, '?') ? 0 : (int)req->query.len, req->query.p);
	else
		snprintf(path, sizeof(path), "%.*s%s%.*s", (int)req->path.len, req->path.p, req->query.len ? "?" : "",
			 (int)req->query.len, req->query.p);
	if (route->redirect_authority)
		host = (struct h1_str){ route->redirect_authority, (uint32_t)strlen(route->redirect_authority) };
	host_len = (int)host.len;
	if (route->redirect_port) {
		/* The port replaces the one in the authority ("[v6]:port" keeps its brackets). */
		for (int i = host_len - 1; i >= 0 && host.p[i] != ']'; i--)
			if (host.p[i] == ':') {
				host_len = i;
				break;
			}
		snprintf(port, sizeof(port), ":%u", route->redirect_port);
	}
	snprintf(buf, cap, "location: %s://%.*s%s%s\r\n", route->redirect_scheme ? route->redirect_scheme : "http",
		 host_len, host.p, port, path);
}

static void endpoint_of(const struct xm_lb_backend *b, struct l7_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->addr = b->addr;
	ep->port = b->port;
	ep->family = b->family;
}

void l7_exchange_endpoint(const struct l7_down *d, const struct xm_lb_backend *b, struct l7_endpoint *ep)
{
	const struct l7_exchange *x = &d->x;

	endpoint_of(b, ep);
	if (!d->w->proxy->opts.tunnel || !x->hold ||
	    !mtls_remote_tunnelled(&x->hold->snap->mtls_remote, &ep->addr, ep->family, ep->port))
		return;
	ep->tunnel = true;
	/* The agent connects for the client pod and presents its certificate: a client that is no pod has none. */
	ep->src_id = x->source && x->source->principal[0] ? x->source->principal : NULL;
}

void l7_exchange_tunnel_origin(const struct l7_down *d, struct l7_tunnel_req *o, char *traceparent)
{
	const struct l7_trace_ctx *tc = d->x.t ? &d->x.t->trace : NULL;
	char trace[33], span[17];

	memset(o, 0, sizeof(*o));
	o->client_addr = d->peer;
	o->client_port = d->peer_port;
	o->client_family = d->family;
	traceparent[0] = '\0';
	if (tc && tc->has_context) {
		l7_trace_hex(tc->trace_id, sizeof(tc->trace_id), trace);
		l7_trace_hex(tc->span_id, sizeof(tc->span_id), span);
		snprintf(traceparent, 64, "00-%s-%s-%s", trace, span, tc->sampled == L7_TRACE_SAMPLED ? "01" : "00");
	}
	o->traceparent = traceparent;
}

const char *l7_tunnel_refused(struct l7_down *d, int err)
{
	struct l7_worker *w = d->w;

	if (err == ENOENT) {
		atomic_fetch_add_explicit(&w->c.tunnel_no_identity, 1, memory_order_relaxed);
		return "upstream_reset_before_response_started{connection_failure,tunnel:no_client_identity}";
	}
	if (err == ENOTCONN) {
		atomic_fetch_add_explicit(&w->c.tunnel_unavailable, 1, memory_order_relaxed);
		return "upstream_reset_before_response_started{connection_failure,tunnel:unavailable}";
	}
	return NULL;
}

/* A shadow copy when the route mirrors and the sample says so; only requests whose body is already here. */
static void mirror_request(struct l7_down *d, const struct h1_request *req, uint32_t head_len,
			   const struct l7_request_view *view)
{
	const struct l7_route *route = d->x.route;
	struct l7_worker *w = d->w;
	struct l7_req_rewrite rw = {
		.route = route,
		.client_addr = d->peer_str,
		.request_id = d->x.t->request_id,
		.trace_headers = d->x.t->trace_headers[0] ? d->x.t->trace_headers : NULL,
		.host_suffix = "-shadow",
		.default_authority = route->mirror->host_fqdn,
		.close = true,
	};
	uint64_t body = req->body == H1_BODY_LENGTH ? req->content_length : 0;
	struct l7_tunnel_req origin;
	char traceparent[64];
	struct l7_pick pick;
	struct l7_endpoint ep;
	int n;

	if (route->mirror_percent < 100.0 && (double)l7_rng_below(&w->rng, 1000000) >= route->mirror_percent * 10000.0)
		return;
	/* A chunked body, or one not yet all received, is not copied: the primary never waits for a mirror. */
	if (req->body == H1_BODY_CHUNKED || l7_buf_len(&d->in) - head_len < body)
		return;
	l7_balance_pick(w->balancer, route->mirror, view, &d->peer, d->family, &pick);
	if (pick.index < 0)
		return;
	n = l7_rewrite_request(req, &rw, w->scratch, sizeof(w->scratch));
	if (n < 0 || (uint64_t)n + body > sizeof(w->scratch))
		return;
	memcpy(w->scratch + n, l7_buf_peek(&d->in) + head_len, body);
	l7_exchange_endpoint(d, route->mirror->endpoints[pick.index], &ep);
	l7_exchange_tunnel_origin(d, &origin, traceparent);
	l7_up_shadow(w, &ep, w->scratch, (uint32_t)(n + body), &origin);
}

/* The proxy's span for this request and the trace headers it forwards (docs/l7.md "Tracing"). */
static void start_span(struct l7_exchange *x, struct l7_worker *w, const struct h1_request *req)
{
	struct l7_trace_ctx in;

	l7_trace_from_headers(req->headers, req->n_headers, &in);
	l7_trace_child(&in, &w->rng, w->proxy->opts.trace_sampling_percent, &x->t->trace);
	if (l7_trace_write_headers(&x->t->trace, x->t->trace_headers, sizeof(x->t->trace_headers)) < 0)
		x->t->trace_headers[0] = '\0';
}

static struct l7_request_view request_view(const struct l7_down *d, const struct h1_request *req)
{
	return (struct l7_request_view){
		.method = req->method,
		.path = req->path,
		.query = req->query,
		.host = req->host.len ? req->host : (struct h1_str){ "", 0 }, /* never a NULL span (HTTP/1.0) */
		.headers = req->headers,
		.n_headers = req->n_headers,
		.port = ntohs(d->vip.port),
		.source = d->x.source,
	};
}

/* What the selected route does with the request, after any fault delay: abort, redirect, answer or forward. */
static void route_action(struct l7_down *d, const struct h1_request *req, uint32_t head_len)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	struct l7_request_view view = request_view(d, req);
	struct l7_req_rewrite rw;
	struct l7_pick pick;
	char extra[1400];
	uint16_t abort_status;
	int n;

	abort_status = l7_fault_abort(d);
	if (abort_status) {
		x->details = "fault_filter_abort"; /* Envoy's %RESPONSE_CODE_DETAILS% */
		l7_buf_consume(&d->in, head_len);
		l7_exchange_local_reply(d, abort_status, L7_RF_FI, NULL, "fault filter abort", 18);
		return;
	}
	if (x->route->action == L7_ACTION_REDIRECT) {
		redirect_location(req, x->route, extra, sizeof(extra));
		l7_buf_consume(&d->in, head_len);
		l7_exchange_local_reply(d, x->route->redirect_code ? x->route->redirect_code : 301, 0, extra, NULL, 0);
		return;
	}
	if (x->route->action == L7_ACTION_DIRECT_RESPONSE) {
		l7_buf_consume(&d->in, head_len);
		l7_exchange_local_reply(d, x->route->direct_status, 0, NULL, x->route->direct_body,
					x->route->direct_body ? x->route->direct_body_len : 0);
		return;
	}
	x->dest = l7_route_pick_destination(x->route, l7_rng_below(&w->rng, 100));
	x->cluster = x->dest ? x->dest->cluster : NULL;
	pick.index = -1;
	pick.set_cookie[0] = '\0';
	if (x->cluster)
		l7_balance_pick(w->balancer, x->cluster, &view, &d->peer, d->family, &pick);
	if (pick.index < 0) {
		l7_buf_consume(&d->in, head_len);
		l7_exchange_local_reply(d, 503, L7_RF_UH, NULL, "no healthy upstream", 19);
		return;
	}
	x->endpoint = x->cluster->endpoints[pick.index];
	x->endpoint_wl = x->cluster->endpoint_wl ? x->cluster->endpoint_wl[pick.index] : NULL;
	if (l7_ratelimit_check(d, req, x->cluster, pick.index)) { /* 429 RL (l7/ratelimit.c) */
		l7_buf_consume(&d->in, head_len);
		return;
	}
	if (pick.set_cookie[0])
		memcpy(x->t->set_cookie, pick.set_cookie, sizeof(x->t->set_cookie));
	rw = (struct l7_req_rewrite){
		.route = x->route,
		.dest = x->dest,
		.client_addr = d->peer_str,
		.request_id = x->t->request_id,
		.trace_headers = x->t->trace_headers[0] ? x->t->trace_headers : NULL,
		.default_authority = x->cluster->host_fqdn,
		.attempt_count = true,
	};
	n = l7_rewrite_request(req, &rw, w->scratch, sizeof(w->scratch));
	x->head = n > 0 ? malloc((size_t)n) : NULL;
	if (!x->head) {
		l7_buf_consume(&d->in, head_len);
		l7_exchange_local_reply(d, n < 0 ? 431 : 503, 0, NULL, NULL, 0);
		return;
	}
	memcpy(x->head, w->scratch, (size_t)n);
	x->head_len = (uint32_t)n;
	forwarded_for(req, d->peer_str, x->t->xff, sizeof(x->t->xff));
	if (x->route->mirror && x->route->mirror->n_endpoints)
		mirror_request(d, req, head_len, &view);
	l7_buf_consume(&d->in, head_len);
	l7_retry_begin(d);
	l7_exchange_connect(d);
}

void l7_exchange_connect(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_endpoint ep;

	l7_exchange_endpoint(d, x->endpoint, &ep);
	if (!l7_admit(d, &ep)) /* a connection, or a wait for one, under the connectionPool limits */
		return;
	if (l7_balance_counts_active(x->cluster)) {
		l7_active_add(x->endpoint->id, 1);
		x->counted_active = true;
	}
}

static void route_request(struct l7_down *d, const struct h1_request *req, uint32_t head_len)
{
	struct l7_exchange *x = &d->x;
	const struct l7_route_table *routes = x->hold ? x->hold->routes : NULL;
	struct l7_request_view view = request_view(d, req);

	x->service = routes ? d->service : NULL;
	x->route = x->service && !req->is_connect ? l7_route_select(routes, x->service, &view) : NULL;
	if (!x->route) {
		l7_buf_consume(&d->in, head_len);
		l7_exchange_local_reply(d, 404, L7_RF_NR, NULL, NULL, 0);
		return;
	}
	if (l7_fault_delay(d, head_len))
		return;
	route_action(d, req, head_len);
}

void l7_exchange_resume(struct l7_down *d)
{
	struct h1_request req;
	enum h1_error err = H1_E_NONE;
	int n = h1_parse_request(l7_buf_peek(&d->in), l7_buf_len(&d->in), &req, &err);

	if (n != (int)d->x.delay_head_len) { /* the head parsed before: only a bug gets here */
		l7_exchange_abort(d, 0);
		return;
	}
	route_action(d, &req, (uint32_t)n);
}

void l7_exchange_start(struct l7_down *d, const struct h1_request *req, uint32_t head_len)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	memset(x, 0, sizeof(*x));
	x->t = l7_text_get(w);
	x->start_mono_ns = clock_ns(CLOCK_MONOTONIC);
	x->start_unix_ns = clock_ns(CLOCK_REALTIME);
	x->hold = l7_worker_hold(w);
	x->req_head_bytes = head_len;
	copy_span(x->t->method, sizeof(x->t->method), req->method);
	copy_span(x->t->path, sizeof(x->t->path), req->target);
	copy_span(x->t->authority, sizeof(x->t->authority), req->host);
	copy_record_headers(x, req);
	if (!x->t->request_id[0])
		l7_uuid4(&w->rng, x->t->request_id);
	start_span(x, w, req);
	x->is_head = req->is_head;
	x->is_connect = req->is_connect;
	x->http10 = req->minor_version == 0;
	x->keep_alive = req->keep_alive && !w->draining && !d->close_after;
	x->expect_continue = req->expect_continue;
	x->upgrade = req->upgrade;
	x->req_body = req->body;
	x->req_remaining = req->content_length;
	h1_chunked_init(&x->req_chunk);
	x->req_done = req->body == H1_BODY_NONE || (req->body == H1_BODY_LENGTH && !req->content_length);
	if (x->hold && d->lookup_epoch != x->hold->epoch) {
		const struct xm_identity *id = identities_find(&x->hold->snap->identities, &d->peer, d->family);

		d->source = id ? id->wl : NULL;
		d->service = x->hold->routes ? l7_service_find(x->hold->routes, &d->vip) : NULL;
		d->lookup_epoch = x->hold->epoch;
	}
	x->source = x->hold ? d->source : NULL;
	route_request(d, req, head_len);
}

/* The upstream went away before any response byte: resend once on a fresh connection if it was a reused one
 * and nothing of the body left the buffer yet, else 503 (UF when the connect failed, UC otherwise). */
static void upstream_lost(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_up *up = x->up;
	struct l7_endpoint ep;
	struct l7_tunnel_req origin;
	char traceparent[64];
	bool reused = up->requests > 1 || (up->requests == 1 && !x->head_sent);

	if (!up->connect_failed && reused && x->head && !x->resent && !x->req_body_sent) {
		x->resent = true;
		atomic_fetch_add_explicit(&d->w->c.resends, 1, memory_order_relaxed);
		l7_up_close(up);
		x->head_sent = false;
		l7_exchange_endpoint(d, x->endpoint, &ep);
		l7_exchange_tunnel_origin(d, &origin, traceparent);
		x->up = l7_up_get(d->w, &ep, x->cluster->load, true, connect_timeout(x->cluster), &origin);
		if (x->up) {
			x->up->down = d;
			l7_up_apply_policy(x->up, x->cluster);
			return;
		}
	}
	if (up && !up->connect_failed)
		atomic_fetch_add_explicit(&d->w->c.upstream_resets, 1, memory_order_relaxed);
	/* Refused, timed out, or gone before a response byte: a local-origin failure, as sockops counts one. */
	if (x->up)
		l7_report_connect_failed(d->w, x);
	if (l7_retry_failed(d, up && up->connect_failed ? L7_RETRY_CAUSE_CONNECT_FAILURE : L7_RETRY_CAUSE_RESET, 0))
		return;
	/* Envoy's bodies, byte for byte (no terminating NUL: the lengths were once one too many). */
	static const char failure[] = "upstream connect error or disconnect/reset before headers. reset reason: "
				      "connection failure",
			  termination[] = "upstream connect error or disconnect/reset before headers. reset reason: "
					  "connection termination";

	if (up && up->connect_failed)
		l7_exchange_local_reply(d, 503, L7_RF_UF, NULL, failure, sizeof(failure) - 1);
	else
		l7_exchange_local_reply(d, 503, L7_RF_UC, NULL, termination, sizeof(termination) - 1);
}

static bool response_head_step(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	struct l7_up *up = x->up;
	struct h1_response resp;
	struct l7_resp_rewrite rw = { 0 };
	enum h1_error err = H1_E_NONE;
	uint32_t len = l7_buf_len(&up->in);
	bool close, dechunk, reported = false;
	int n, k;

	if (!len) {
		if (up->eof || up->error) {
			if (x->resp_started) {
				l7_report_connect_failed(w, x);
				if (!l7_retry_failed(d, L7_RETRY_CAUSE_RESET, 0))
					l7_exchange_local_reply(d, 503, L7_RF_UC, NULL, NULL, 0);
				return true;
			}
			upstream_lost(d);
			return true;
		}
		return false;
	}
	x->resp_started = true;
	n = h1_parse_response(l7_buf_peek(&up->in), len, x->is_head, x->is_connect, &resp, &err);
	if (n == 0 && !up->eof && !up->error && !l7_buf_full(&up->in))
		return false;
	if (n <= 0 || (resp.status == 101 && !x->upgrade)) {
		atomic_fetch_add_explicit(&w->c.bad_responses, 1, memory_order_relaxed);
		/* Envoy resets the stream on an upstream protocol error: retried as a reset. */
		if (!l7_retry_failed(d, L7_RETRY_CAUSE_RESET, 0))
			l7_exchange_local_reply(d, n == 0 ? 503 : 502, n == 0 ? L7_RF_UC : 0, NULL, NULL, 0);
		return true;
	}
	if (resp.status < 200 && resp.status != 101) {
		/* 1xx: relayed (100 only to a client that asked for it), then the real response follows. */
		if (resp.status != 100 || x->expect_continue) {
			k = l7_rewrite_response(&resp, &rw, w->scratch, sizeof(w->scratch));
			if (k < 0 || !l7_buf_append(&d->out, w->scratch, (uint32_t)k))
				return false;
		}
		l7_buf_consume(&up->in, (uint32_t)n);
		return true;
	}
	/* A final status the retry policy names: the response is dropped with its connection, the request tried
	 * again (outlier detection sees this try's status first). */
	if (x->attempt && x->route->retry.attempts &&
	    l7_retry_wanted(&x->route->retry, L7_RETRY_CAUSE_STATUS, resp.status)) {
		x->status = resp.status;
		if (x->cluster->svc && x->cluster->svc->outlier_on)
			l7_report_response(w, x);
		if (l7_retry_failed(d, L7_RETRY_CAUSE_STATUS, resp.status))
			return true;
		reported = true;
	}
	/* HTTP/1.0 has no chunked coding (RFC 9112 §6.1): such a client gets the payload, delimited by the close. */
	dechunk = x->http10 && resp.body == H1_BODY_CHUNKED;
	close = d->close_after || !x->keep_alive || w->draining || !x->req_done || resp.body == H1_BODY_CLOSE ||
		d->eof || dechunk;
	rw = (struct l7_resp_rewrite){
		.route = x->route,
		.dest = x->dest,
		.set_cookie = x->t->set_cookie,
		.close = close,
		.keep_alive_10 = x->http10 && !close,
		.dechunk = dechunk,
	};
	k = l7_rewrite_response(&resp, &rw, w->scratch, sizeof(w->scratch));
	if (k < 0) {
		atomic_fetch_add_explicit(&w->c.bad_responses, 1, memory_order_relaxed);
		l7_exchange_local_reply(d, 502, 0, NULL, NULL, 0);
		return true;
	}
	if (!l7_buf_append(&d->out, w->scratch, (uint32_t)k))
		return false; /* parsed again once the client took what is queued */
	l7_buf_consume(&up->in, (uint32_t)n);
	x->resp_head_bytes = (uint64_t)k;
	x->upstream_service_ns = clock_ns(CLOCK_MONOTONIC) - x->upstream_sent_ns;
	free(x->head); /* an answer arrived: no resend any more */
	x->head = NULL;
	x->status = resp.status;
	x->resp_head_done = true;
	if (!reported && x->cluster && x->cluster->svc && x->cluster->svc->outlier_on)
		l7_report_response(w, x);
	x->resp_body = resp.body;
	x->resp_remaining = resp.content_length;
	x->resp_keep_alive = resp.keep_alive;
	x->resp_dechunk = dechunk;
	h1_chunked_init(&x->resp_chunk);
	if (close)
		d->close_after = true;
	if (resp.body == H1_BODY_TUNNEL)
		d->state = L7_DOWN_TUNNEL;
	else if (resp.body == H1_BODY_NONE || (resp.body == H1_BODY_LENGTH && !resp.content_length))
		x->resp_done = true;
	return true;
}

bool l7_exchange_step(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_up *up = x->up;
	bool moved = false;
	long n;

	if (x->delayed || x->backing_off)
		return l7_fault_delay_step(d); /* waiting on the timer: only a client that left ends it */
	if (!up)
		return x->waiting && l7_admit_wait_step(d);
	l7_exchange_timeout_start(d);
	l7_retry_try_timer_start(d);
	if (up->connect_failed) {
		upstream_lost(d);
		return true;
	}
	if (up->connecting)
		return false;
	if (x->counted_pending)
		l7_admit_connected(d);
	if (!x->head_sent) {
		if (!l7_retry_queue_head(d))
			return false;
		x->head_sent = true;
		x->upstream_sent_ns = clock_ns(CLOCK_MONOTONIC);
		x->up_local = up->local;
		x->up_local_port = up->local_port;
		x->up_local_family = up->local_family;
		x->tunnelled = up->ep.tunnel;
		if (!up->requests)
			l7_report_connected(d->w, x); /* a fresh connection is up (tunnelled: its stream opened) */
		up->requests++;
		moved = true;
	}
	if (x->body_resent < x->body_len) {
		bool pending;

		moved |= l7_retry_body_resend(d, &pending); /* a retry sends the body kept so far first */
		if (pending)
			return response_head_step(d) || moved;
	}
	if (!x->req_done) {
		n = move_body(&d->in, &up->out, x->req_body, &x->req_remaining, &x->req_chunk, false, d->eof,
			      &x->req_done, &x->req_bytes);
		if (n > 0 && x->keep_body)
			l7_retry_body_sent(x, l7_buf_end(&up->out) - n, (uint32_t)n);
		if (n < 0) {
			atomic_fetch_add_explicit(&d->w->c.parse_errors[H1_E_BAD_CHUNK], 1, memory_order_relaxed);
			l7_exchange_abort(d, L7_RF_BAD_REQUEST);
			return true;
		}
		x->req_body_sent += (uint64_t)n;
		moved |= n > 0;
		if (!x->req_done && d->eof && !l7_buf_len(&d->in)) {
			l7_exchange_abort(d, L7_RF_DC); /* the client went away in the middle of its body */
			return true;
		}
	}
	if (!x->resp_head_done)
		return response_head_step(d) || moved;
	if (d->state == L7_DOWN_TUNNEL)
		return true;
	if (!x->resp_done) {
		n = move_body(&up->in, &d->out, x->resp_body, &x->resp_remaining, &x->resp_chunk, x->resp_dechunk,
			      up->eof, &x->resp_done, &x->resp_bytes);
		if (n < 0 || (!x->resp_done && (up->error || (up->eof && !l7_buf_len(&up->in))))) {
			atomic_fetch_add_explicit(&d->w->c.upstream_resets, 1, memory_order_relaxed);
			l7_exchange_abort(d, L7_RF_UC); /* cut short: the client sees the connection close */
			return true;
		}
		moved |= n > 0;
	}
	if (x->resp_done) {
		l7_down_flush(d); /* the client has its response before the bookkeeping */
		l7_exchange_finish(d);
		return true;
	}
	return moved;
}

bool l7_tunnel_step(struct l7_down *d)
{
	struct l7_up *up = d->x.up;
	bool moved = false;
	uint32_t n;

	if (!up || up->error) {
		l7_exchange_abort(d, up ? L7_RF_UC : 0);
		return true;
	}
	n = l7_buf_len(&d->in);
	if (n && l7_buf_room(&up->out)) {
		n = n < l7_buf_room(&up->out) ? n : l7_buf_room(&up->out);
		memcpy(l7_buf_end(&up->out), l7_buf_peek(&d->in), n);
		l7_buf_commit(&up->out, n);
		l7_buf_consume(&d->in, n);
		d->x.req_bytes += n;
		moved = true;
	}
	n = l7_buf_len(&up->in);
	if (n && l7_buf_room(&d->out)) {
		n = n < l7_buf_room(&d->out) ? n : l7_buf_room(&d->out);
		memcpy(l7_buf_end(&d->out), l7_buf_peek(&up->in), n);
		l7_buf_commit(&d->out, n);
		l7_buf_consume(&up->in, n);
		d->x.resp_bytes += n;
		moved = true;
	}
	/* Either side finished and all it sent was delivered: the tunnel is over. */
	if ((d->eof && !l7_buf_len(&d->in) && !l7_buf_len(&up->out)) ||
	    (up->eof && !l7_buf_len(&up->in) && !l7_buf_len(&d->out))) {
		d->x.resp_done = d->x.req_done = true;
		l7_exchange_abort(d, 0);
		return true;
	}
	return moved;
}
