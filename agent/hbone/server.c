// SPDX-License-Identifier: Apache-2.0
/*
 * The HBONE server (port 15008 in production): TLS with a required client certificate, then HTTP/2 CONNECT
 * streams. Each request is checked (CONNECT, an "IP:port" :authority), the caller admits it (local pod,
 * policy), the target is connected, and only then does the 200 go out, as ztunnel does
 * (src/proxy/inbound.rs): 400 bad request or non-local target, 401 denied, 503 target refused.
 * Then bytes are spliced both ways, each direction held to the stream's window and buffer.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "hbone/internal.h"

#define TARGET_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

struct hbone_server {
	struct xm_loop *loop;
	int listen_fd;
	struct hbone_server_config cfg;
	struct hbone_counters *ctr;
	SSL_CTX *tls;
	struct hb_verify verify;
	struct hb_conn *conns;
	size_t n_conns;
	struct xm_timer *drain_timer; /* hbone_server_drain: each tick moves every connection one GOAWAY on */
};

/* What the admit and account callbacks are asked about: the stream's request on its connection. */
static struct hbone_admit admit_req(const struct hb_conn *c, const struct hbone_stream *s)
{
	return (struct hbone_admit){
		.peer_id = c->peer_id,
		.target = &s->target,
		.local = &c->local,
		.peer = &c->peer,
		.forwarded = s->forwarded,
		.baggage = s->baggage,
		.traceparent = s->traceparent,
	};
}

/* ---- responses ---- */

static void respond(struct hbone_stream *s, int status, int refusal)
{
	struct hb_conn *c = s->conn;
	char code[4];
	nghttp2_nv nv = { (uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE };
	nghttp2_data_provider prd = hb_stream_provider;

	snprintf(code, sizeof(code), "%03d", status);
	s->status = status;
	if (status == 200) {
		struct hbone_server *srv = c->owner;

		prd.source.ptr = s;
		s->opened = true;
		hb_count(&c->ctr->streams_opened[HBONE_SIDE_SERVER], 1);
		if (srv && srv->cfg.account) {
			struct hbone_admit a = admit_req(c, s);

			s->counts = srv->cfg.account(srv->cfg.ctx, &a);
			if (s->counts)
				hb_count(&s->counts->opened, 1);
		}
		nghttp2_submit_response(c->h2, s->id, &nv, 1, &prd);
		return;
	}
	if (refusal >= 0)
		hb_count(&c->ctr->streams_refused[refusal], 1);
	nghttp2_submit_response(c->h2, s->id, &nv, 1, NULL);
}

/* ---- splicing between the stream and the target ---- */

static void reset_stream(struct hbone_stream *s, uint32_t code)
{
	struct hb_conn *c = s->conn;

	if (!s->h2_closed && c->h2)
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, code);
}

/* rx → target: what rx holds in one sendmsg (up to HB_TARGET_IOV blocks), not one send per 16 KiB block */
#define HB_TARGET_IOV 16

static void pump_to_target(struct hbone_stream *s)
{
	while (s->rx.len && s->target_writable) {
		struct iovec iov[HB_TARGET_IOV];
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = hb_bufq_iov(&s->rx, iov, HB_TARGET_IOV) };
		ssize_t w = sendmsg(s->target_fd, &mh, MSG_NOSIGNAL);

		if (w > 0) {
			if (s->counts)
				hb_count(&s->counts->received, (uint64_t)w);
			hb_bufq_consume(&s->rx, (size_t)w);
			hb_stream_consumed(s, (size_t)w);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			s->target_writable = false;
			break;
		}
		reset_stream(s, NGHTTP2_CONNECT_ERROR);
		return;
	}
	if (!s->rx.len && s->rx_eof && !s->target_wr_shut) {
		shutdown(s->target_fd, SHUT_WR);
		s->target_wr_shut = true;
	}
	if (!s->rx.len && s->h2_closed && !s->notified_close)
		s->ev_close = true;
}

/* target → tx */
static void pump_from_target(struct hbone_stream *s)
{
	bool grew = false;

	while (s->target_readable && !s->target_eof && s->tx.len < HBONE_STREAM_BUFFER && !s->h2_closed) {
		uint8_t *p;
		size_t room = hb_bufq_reserve(&s->tx, &p);
		ssize_t r;

		if (!room)
			break;
		/* Never beyond HBONE_STREAM_BUFFER, whatever room the block has. */
		if (room > HBONE_STREAM_BUFFER - s->tx.len)
			room = HBONE_STREAM_BUFFER - s->tx.len;
		r = read(s->target_fd, p, room);
		if (r > 0) {
			if (s->counts)
				hb_count(&s->counts->sent, (uint64_t)r);
			hb_bufq_commit(&s->tx, (size_t)r);
			grew = true;
			/* Short: the socket is empty, the next EPOLLIN says more came (tls_edge.c has the why). */
			if ((size_t)r < room && !s->target_closing) {
				s->target_readable = false;
				break;
			}
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			s->target_readable = false;
			break;
		}
		if (r == 0) {
			s->target_eof = true;
			s->tx_eof = true;
			grew = true;
			break;
		}
		reset_stream(s, NGHTTP2_CONNECT_ERROR);
		return;
	}
	if (s->tx.len >= HBONE_STREAM_BUFFER)
		s->want_writable = true;
	if (grew)
		hb_stream_tx_ready(s);
}

static void splice_on_readable(struct hbone_stream *s, void *ctx)
{
	(void)ctx;
	if (s->opened && s->target_fd >= 0 && !s->target_connecting)
		pump_to_target(s);
}

static void splice_on_writable(struct hbone_stream *s, void *ctx)
{
	(void)ctx;
	if (s->opened && s->target_fd >= 0)
		pump_from_target(s);
}

static const struct hbone_stream_ops splice_ops = {
	.on_readable = splice_on_readable,
	.on_writable = splice_on_writable,
};

/*
 * Ends the stream's target connection: with a reset (SO_LINGER 0) when a re-check denied it, as a denied
 * client's splice resets its socket; plainly after a failed connect.
 */
static void close_target(struct hbone_stream *s, bool reset)
{
	struct hb_conn *c = s->conn;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	loop_timer_cancel(c->loop, s->target_timer);
	s->target_timer = NULL;
	s->target_connecting = false;
	if (s->target_fd < 0)
		return;
	loop_del_fd(c->loop, s->target_fd);
	if (reset)
		setsockopt(s->target_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(s->target_fd);
	s->target_fd = -1;
}

static void target_connected(struct hbone_stream *s, int err)
{
	if (err) {
		close_target(s, false);
		respond(s, 503, HBONE_REFUSED_TARGET);
		return;
	}
	s->target_connecting = false;
	loop_timer_cancel(s->conn->loop, s->target_timer);
	s->target_timer = NULL;
	respond(s, 200, -1);
	pump_from_target(s);
	pump_to_target(s);
}

static void on_target_event(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct hbone_stream *s = ctx;
	struct hb_conn *c = s->conn;

	(void)loop;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR))
		s->target_readable = true;
	if (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))
		s->target_closing = true; /* reads go on until 0 or the error */
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		s->target_writable = true;
	if (s->target_connecting) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) || soerr || (events & EPOLLERR))
			target_connected(s, soerr ? -soerr : -ECONNREFUSED);
		else
			target_connected(s, 0);
	} else if (!s->h2_closed || s->rx.len) {
		pump_to_target(s);
		pump_from_target(s);
	}
	hb_conn_progress(c);
}

static void on_target_timeout(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct hbone_stream *s = ctx;
	struct hb_conn *c = s->conn;

	(void)loop, (void)t;
	if (!s->target_connecting)
		return;
	target_connected(s, -ETIMEDOUT);
	hb_conn_progress(c);
}

static void connect_target(struct hbone_server *srv, struct hbone_stream *s, const struct sockaddr_storage *ss)
{
	struct hb_conn *c = s->conn;
	socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		respond(s, 503, HBONE_REFUSED_TARGET);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (srv->cfg.target_mark)
		setsockopt(fd, SOL_SOCKET, SO_MARK, &srv->cfg.target_mark, sizeof(srv->cfg.target_mark));
	if (connect(fd, (const struct sockaddr *)ss, len) && errno != EINPROGRESS) {
		close(fd);
		respond(s, 503, HBONE_REFUSED_TARGET);
		return;
	}
	s->target_fd = fd;
	s->target_connecting = true;
	s->target_timer = loop_timer_add(c->loop, srv->cfg.connect_timeout_ms, 0, on_target_timeout, s);
	if (!s->target_timer || loop_add_fd(c->loop, fd, TARGET_EVENTS, on_target_event, s)) {
		loop_timer_cancel(c->loop, s->target_timer);
		s->target_timer = NULL;
		close(fd);
		s->target_fd = -1;
		s->target_connecting = false;
		respond(s, 503, HBONE_REFUSED_TARGET);
	}
}

/* ---- nghttp2 server hooks ---- */

static int srv_begin_headers(struct hb_conn *c, const nghttp2_frame *f)
{
	struct hbone_stream *s;

	if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	s->id = f->hd.stream_id;
	s->target_fd = -1;
	s->ops = &splice_ops;
	s->ctx = s;
	hb_stream_link(c, s);
	nghttp2_session_set_stream_user_data(c->h2, s->id, s);
	return 0;
}

static void copy_value(char *dst, size_t cap, const uint8_t *v, size_t len, bool *bad)
{
	if (len >= cap) {
		if (bad)
			*bad = true;
		len = cap - 1;
	}
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && !memcmp(name, want, len);
}

static int srv_header(struct hb_conn *c, struct hbone_stream *s, const uint8_t *name, size_t namelen,
		      const uint8_t *value, size_t valuelen)
{
	if (s->requested)
		return 0; /* trailers */
	s->header_bytes += (uint32_t)(namelen + valuelen + 32);
	if (s->header_bytes > c->max_header_list) {
		if (!s->too_large)
			hb_count(&c->ctr->streams_refused[HBONE_REFUSED_HEADERS], 1);
		s->too_large = true;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (name_is(name, namelen, ":method"))
		s->is_connect = valuelen == 7 && !memcmp(value, "CONNECT", 7);
	else if (name_is(name, namelen, ":authority"))
		copy_value(s->authority, sizeof(s->authority), value, valuelen, &s->bad_header);
	else if (name_is(name, namelen, "forwarded"))
		copy_value(s->forwarded, sizeof(s->forwarded), value, valuelen, NULL);
	else if (name_is(name, namelen, "baggage"))
		copy_value(s->baggage, sizeof(s->baggage), value, valuelen, NULL);
	else if (name_is(name, namelen, "traceparent"))
		copy_value(s->traceparent, sizeof(s->traceparent), value, valuelen, NULL);
	return 0;
}

static int srv_request(struct hb_conn *c, struct hbone_stream *s)
{
	struct hbone_server *srv = c->owner;
	struct hbone_admit a;
	int verdict;

	if (s->requested)
		return 0;
	s->requested = true;
	if (!s->is_connect || s->bad_header || hbone_parse_authority(s->authority, strlen(s->authority), &s->target)) {
		respond(s, 400, HBONE_REFUSED_BAD_REQUEST);
		return 0;
	}
	a = admit_req(c, s);
	verdict = srv->cfg.admit(srv->cfg.ctx, &a);
	if (verdict == 200)
		connect_target(srv, s, &s->target);
	else if (verdict == 400)
		respond(s, 400, HBONE_REFUSED_NOT_LOCAL);
	else
		respond(s, 401, HBONE_REFUSED_DENIED);
	return 0;
}

static void srv_invalid_headers(struct hb_conn *c, const nghttp2_frame *f)
{
	(void)f;
	/* nghttp2 refuses a HEADERS beyond the advertised SETTINGS_MAX_CONCURRENT_STREAMS with a GOAWAY. */
	if (c->n_streams >= c->max_streams)
		hb_count(&c->ctr->streams_refused[HBONE_REFUSED_STREAM_LIMIT], 1);
}

static void srv_conn_gone(struct hb_conn *c)
{
	struct hbone_server *srv = c->owner;

	if (!srv)
		return;
	if (c->pool_prev)
		c->pool_prev->pool_next = c->pool_next;
	else if (srv->conns == c)
		srv->conns = c->pool_next;
	if (c->pool_next)
		c->pool_next->pool_prev = c->pool_prev;
	c->pool_next = c->pool_prev = NULL;
	c->owner = NULL;
	srv->n_conns--;
}

static const struct hb_conn_ops server_ops = {
	.on_free = srv_conn_gone,
	.on_begin_headers = srv_begin_headers,
	.on_header = srv_header,
	.on_request = srv_request,
	.on_invalid_headers = srv_invalid_headers,
};

static struct hb_conn *srv_conn_new(struct hbone_server *srv)
{
	struct hb_conn *c = hb_conn_new(srv->loop, HBONE_SIDE_SERVER, &server_ops, srv, srv->ctr);

	if (!c)
		return NULL;
	c->max_streams = srv->cfg.max_streams;
	c->max_header_list = srv->cfg.max_header_list;
	c->hs_timeout_ms = srv->cfg.handshake_timeout_ms;
	c->ping_interval_ms = srv->cfg.ping_interval_ms;
	c->ping_timeout_ms = srv->cfg.ping_timeout_ms;
	c->pool_next = srv->conns;
	if (srv->conns)
		srv->conns->pool_prev = c;
	srv->conns = c;
	srv->n_conns++;
	return c;
}

/* ---- accepting ---- */

static void serve_fd(struct hbone_server *srv, int fd, const struct sockaddr_storage *peer)
{
	struct hb_conn *c = srv_conn_new(srv);
	socklen_t len = sizeof(struct sockaddr_storage);
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = NULL;
	int one = 1;

	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->peer = *peer;
	getsockname(fd, (struct sockaddr *)&c->local, &len);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = HB_HANDSHAKING;
	if (srv->cfg.cert(srv->cfg.ctx, &c->local, &cert, &key, &chain) || !(c->ssl = hb_tls_new(srv->tls, c)) ||
	    hb_tls_use_cert(c->ssl, cert, key, chain) || hb_conn_attach(c)) {
		hb_count(&srv->ctr->handshakes[HBONE_SIDE_SERVER][HBONE_HS_FAILURE], 1);
		hb_conn_fail(c, -EACCES);
	}
}

static void on_accept(struct xm_loop *loop, int lfd, uint32_t events, void *ctx)
{
	struct hbone_server *srv = ctx;

	(void)events;
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				loop_pause_fd(loop, lfd, 100);
			return;
		}
		serve_fd(srv, fd, &peer);
	}
}

struct hbone_server *hbone_server_new(struct xm_loop *loop, int listen_fd, const struct hbone_server_config *cfg,
				      struct hbone_counters *counters)
{
	struct hbone_server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return NULL;
	srv->loop = loop;
	srv->listen_fd = listen_fd;
	srv->cfg = *cfg;
	srv->ctr = counters;
	if (!srv->cfg.max_streams)
		srv->cfg.max_streams = HBONE_MAX_STREAMS;
	if (!srv->cfg.max_header_list)
		srv->cfg.max_header_list = HBONE_SERVER_HEADER_LIST;
	if (!srv->cfg.handshake_timeout_ms)
		srv->cfg.handshake_timeout_ms = HBONE_HANDSHAKE_TIMEOUT_MS;
	if (!srv->cfg.connect_timeout_ms)
		srv->cfg.connect_timeout_ms = HBONE_CONNECT_TIMEOUT_MS;
	if (!srv->cfg.ping_interval_ms)
		srv->cfg.ping_interval_ms = HBONE_PING_INTERVAL_MS;
	if (!srv->cfg.ping_timeout_ms)
		srv->cfg.ping_timeout_ms = HBONE_PING_TIMEOUT_MS;
	srv->verify = (struct hb_verify){ cfg->verify, cfg->ctx };
	srv->tls = hb_tls_ctx_new(true, cfg->trust, &srv->verify);
	if (!srv->tls || (listen_fd >= 0 && loop_add_fd(loop, listen_fd, EPOLLIN, on_accept, srv))) {
		SSL_CTX_free(srv->tls);
		free(srv);
		return NULL;
	}
	return srv;
}

/* Drain tick: a ready connection gets the GOAWAY notice, and on the next tick the final GOAWAY. */
static void drain_tick(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct hbone_server *srv = ctx;

	(void)loop, (void)t;
	for (struct hb_conn *c = srv->conns; c; c = c->pool_next) {
		if (c->state != HB_READY || !c->h2 || c->drain_final)
			continue;
		if (!c->drain_noticed) {
			nghttp2_submit_shutdown_notice(c->h2);
			c->drain_noticed = true;
		} else {
			nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
					      NGHTTP2_NO_ERROR, NULL, 0);
			c->drain_final = true;
			c->goaway = true; /* its end, once the streams ended, is a clean one */
		}
		hb_conn_kick(c);
	}
}

void hbone_server_drain(struct hbone_server *srv)
{
	if (!srv || srv->drain_timer)
		return;
	if (srv->listen_fd >= 0)
		loop_del_fd(srv->loop, srv->listen_fd);
	srv->listen_fd = -1;
	srv->drain_timer = loop_timer_add(srv->loop, 0, HBONE_DRAIN_NOTICE_MS, drain_tick, srv);
}

void hbone_server_free(struct hbone_server *srv)
{
	if (!srv)
		return;
	loop_timer_cancel(srv->loop, srv->drain_timer);
	while (srv->conns)
		hb_conn_fail(srv->conns, -ECONNABORTED);
	if (srv->listen_fd >= 0)
		loop_del_fd(srv->loop, srv->listen_fd);
	SSL_CTX_free(srv->tls);
	free(srv);
}

size_t hbone_server_connections(const struct hbone_server *srv)
{
	return srv->n_conns;
}

/* ---- re-admission (hbone_server_recheck) ---- */

/* Whether recheck is to be asked about s: admitted, and neither refused nor over yet. */
static bool recheckable(const struct hbone_stream *s)
{
	return !s->revoked && !s->h2_closed && s->target_fd >= 0 && (s->opened || s->target_connecting);
}

size_t hbone_server_recheck(struct hbone_server *srv, hbone_admit_fn recheck, void *ctx)
{
	size_t ended = 0;

	for (struct hb_conn *c = srv->conns; c; c = c->pool_next) {
		size_t before = ended;

		if (c->state != HB_READY)
			continue;
		for (struct hbone_stream *s = c->streams; s; s = s->next) {
			struct hbone_admit a;
			bool connecting;

			if (!recheckable(s))
				continue;
			a = admit_req(c, s);
			if (recheck(ctx, &a) == 200)
				continue;
			connecting = s->target_connecting;
			s->revoked = true;
			close_target(s, true);
			if (connecting) {
				respond(s, 401, HBONE_REFUSED_DENIED); /* the 200 had not gone out yet */
			} else {
				/* Queued bytes of either direction are dropped with the stream. */
				reset_stream(s, NGHTTP2_CONNECT_ERROR);
			}
			ended++;
		}
		if (ended != before)
			hb_conn_kick(c);
	}
	return ended;
}

struct hb_conn *hb_server_conn_mem(struct hbone_server *srv, const char *peer_id)
{
	struct hb_conn *c = srv_conn_new(srv);

	if (!c)
		return NULL;
	c->mem = true;
	c->state = HB_READY;
	snprintf(c->peer_id, sizeof(c->peer_id), "%s", peer_id);
	if (hb_conn_start_h2(c)) {
		hb_conn_fail(c, -ENOMEM);
		return NULL;
	}
	return c;
}

struct hb_conn *hb_server_conns(struct hbone_server *srv)
{
	return srv->conns;
}

SSL_CTX *hb_server_tls(struct hbone_server *srv)
{
	return srv->tls;
}
