// SPDX-License-Identifier: Apache-2.0
/*
 * Connections from a worker to endpoints: non-blocking connects, a per-worker idle pool per endpoint and
 * destination (LIFO, so the warmest connection is reused; closed after the cluster's idleTimeout,
 * maxRequestsPerConnection or maxConnectionDuration), and fire-and-forget mirror copies. A destination's
 * connection holds a reference on its cluster's load object and counts in its L7_LOAD_CONNECTIONS while open.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xmesh/hash.h>

#include "core/loop.h"
#include "l7/worker.h"

#define SHADOW_DEADLINE_MS 30000 /* a mirror's copy gets this long to be answered and closed */

static size_t ep_bucket(const struct l7_endpoint *ep)
{
	uint64_t a, b;

	memcpy(&a, ep->addr.bytes, 8);
	memcpy(&b, ep->addr.bytes + 8, 8);
	return (size_t)(xm_mix64(a ^ xm_mix64(b ^ ((uint64_t)ep->port << 8 | ep->family)))) & (L7_POOL_BUCKETS - 1);
}

/* Same address and same way there: a plain connection never serves a tunnelled key, nor one client's another's. */
static bool ep_eq(const struct l7_endpoint *a, const struct l7_endpoint *b)
{
	if (a->port != b->port || a->family != b->family || memcmp(a->addr.bytes, b->addr.bytes, 16) ||
	    a->tunnel != b->tunnel)
		return false;
	return !a->tunnel || (a->src_id && b->src_id && !strcmp(a->src_id, b->src_id));
}

static void opening_unlink(struct l7_up *up)
{
	if (!up->tunnel_handle)
		return;
	if (up->opening_prev)
		up->opening_prev->opening_next = up->opening_next;
	else
		up->w->tunnels_opening = up->opening_next;
	if (up->opening_next)
		up->opening_next->opening_prev = up->opening_prev;
	up->opening_next = up->opening_prev = NULL;
	up->tunnel_handle = 0;
}

/* A connect failure, as a refused TCP connect: the exchange answers 503 UF, retries, outlier detection. */
static void connect_failed(struct l7_up *up)
{
	up->connecting = false;
	up->connect_failed = up->error = true;
	atomic_fetch_add_explicit(&up->w->c.connect_failures, 1, memory_order_relaxed);
	if (up->ep.tunnel)
		atomic_fetch_add_explicit(&up->w->c.tunnel_failures, 1, memory_order_relaxed);
}

/* After up's connect ended (either way): whoever waits on it moves. */
static void connect_settled(struct l7_up *up)
{
	if (up->kind == L7_UP_PRIMARY)
		loop_timer_disarm(up->w->loop, up->timer); /* the connect timeout */
}

static void shadow_progress(struct l7_up *up);

/*
 * The tunnel's answer, on the worker's thread (posted through w->gate). handle, not a pointer: the connection
 * may have been closed meanwhile (connectTimeout, the client left, draining), and then it is no longer among
 * the opening ones and the answer is dropped. The list holds only connections still waiting, which are few
 * (an opening takes a round trip or two), so the walk is short.
 */
static void l7_up_tunnel_done(void *arg, uint64_t handle, const struct xm_tunnel_result *r)
{
	struct l7_worker *w = arg;
	struct l7_up *up;

	if (r->outcome < XM_TUNNEL_OUTCOMES)
		atomic_fetch_add_explicit(&w->c.tunnel_outcomes[r->outcome], 1, memory_order_relaxed);
	for (up = w->tunnels_opening; up && up->tunnel_handle != handle; up = up->opening_next)
		;
	if (!up) {
		atomic_fetch_add_explicit(&w->c.tunnel_late, 1, memory_order_relaxed);
		return;
	}
	opening_unlink(up);
	if (r->outcome == XM_TUNNEL_OPENED)
		up->connecting = false;
	else
		connect_failed(up);
	connect_settled(up);
	up->readable = true; /* edges that came while connecting were not read */
	if (up->kind == L7_UP_SHADOW)
		shadow_progress(up);
	else if (up->down)
		l7_down_progress(up->down);
}

static void pool_unlink(struct l7_up *up)
{
	struct l7_up **head = &up->w->pool[ep_bucket(&up->ep)];

	if (up->pool_prev)
		up->pool_prev->pool_next = up->pool_next;
	else
		*head = up->pool_next;
	if (up->pool_next)
		up->pool_next->pool_prev = up->pool_prev;
	up->pool_next = up->pool_prev = NULL;
	up->pooled = false;
}

bool l7_up_read(struct l7_up *up)
{
	uint32_t room;
	ssize_t n;

	if (!up->readable || up->eof || up->error || l7_buf_full(&up->in))
		return false;
	room = l7_buf_room(&up->in);
	if (!room)
		return false;
	n = read(up->fd, l7_buf_end(&up->in), room);
	if (n > 0) {
		l7_buf_commit(&up->in, (uint32_t)n);
		up->readable = (uint32_t)n == room;
		return true;
	}
	if (n < 0 && errno == EINTR)
		return false;
	up->readable = false;
	if (n == 0)
		up->eof = true;
	else if (errno != EAGAIN)
		up->error = true;
	return n == 0 || up->error;
}

bool l7_up_flush(struct l7_up *up)
{
	while (l7_buf_len(&up->out)) {
		ssize_t n = send(up->fd, l7_buf_peek(&up->out), l7_buf_len(&up->out), MSG_NOSIGNAL);

		if (n > 0) {
			l7_buf_consume(&up->out, (uint32_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		up->error = true;
		return false;
	}
	return true;
}

/* A mirror's connection: write the copy, read and drop the answer until the server closes. */
static void shadow_progress(struct l7_up *up)
{
	if (up->connect_failed || up->error) {
		l7_up_close(up);
		return;
	}
	if (up->connecting)
		return;
	if (!l7_up_flush(up)) {
		l7_up_close(up);
		return;
	}
	do
		l7_buf_consume(&up->in, l7_buf_len(&up->in));
	while (l7_up_read(up));
	if (up->eof || up->error)
		l7_up_close(up);
}

static void on_up_event(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct l7_up *up = ctx;

	(void)loop;
	if (up->connecting && up->ep.tunnel) {
		/* The tunnel's answer decides (l7_up_tunnel_done), and comes before any reset of the socket. */
		if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR))
			up->readable = true;
		return;
	}
	if (up->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) || soerr || (events & EPOLLERR))
			connect_failed(up);
		up->connecting = false;
		connect_settled(up);
	}
	if (!up->connect_failed && (events & EPOLLERR))
		up->error = true;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR))
		up->readable = true;
	if (up->kind == L7_UP_SHADOW) {
		shadow_progress(up);
		return;
	}
	if (up->down) {
		l7_down_progress(up->down);
		return;
	}
	/* Pooled and idle: closed if the server closed it or sent what no request asked for (an edge alone, such
	 * as room to write, is no reason). */
	if (up->error || l7_up_read(up) || up->eof)
		l7_up_close(up);
	else
		l7_buf_trim(&up->in);
}

/* Arms up's timer for ms from now (creating it), remembering when it is due; false when out of memory. */
static bool up_timer_arm(struct l7_up *up, uint64_t ms);

/* When a pooled connection must close: idle for idle_timeout_ms, or maxConnectionDuration after its connect. */
static uint64_t pooled_due(const struct l7_up *up)
{
	uint64_t due = up->idle_since_ms + up->idle_timeout_ms;

	if (up->max_duration_ms && up->born_ms + up->max_duration_ms < due)
		due = up->born_ms + up->max_duration_ms;
	return due;
}

static bool too_old(const struct l7_up *up, uint64_t now)
{
	return up->max_duration_ms && now - up->born_ms >= up->max_duration_ms;
}

/*
 * Pooled: the timer is not moved each time the connection is taken and given back (a heap operation and a
 * clock read per request); when it fires it closes the connection only if it idled idle_timeout_ms since
 * idle_since_ms, else it sets itself to when that would be. In use, a firing does nothing: giving the
 * connection back arms it again.
 */
static void on_up_timer(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct l7_up *up = ctx;
	uint64_t now, due;

	(void)loop, (void)timer;
	if (up->kind == L7_UP_SHADOW) {
		l7_up_close(up);
		return;
	}
	if (up->pooled) {
		now = loop_now_ms();
		due = pooled_due(up);
		if (due <= now || !up_timer_arm(up, due - now))
			l7_up_close(up);
		return;
	}
	if (up->connecting && up->down) {
		/* connectTimeout (for a tunnel: over its handshake and CONNECT): 503 UF as for a refused connect. A
		 * tunnel's answer that comes later finds the connection no longer waiting. */
		opening_unlink(up);
		connect_failed(up);
		l7_down_progress(up->down);
	}
}

static bool up_timer_arm(struct l7_up *up, uint64_t ms)
{
	struct xm_loop *loop = up->w->loop;

	if (!up->timer)
		up->timer = loop_timer_add(loop, ms, 0, on_up_timer, up);
	else
		loop_timer_arm(loop, up->timer, ms);
	up->timer_due_ms = loop_batch_ms(loop) + ms;
	return up->timer != NULL;
}

/* The socket of a TCP connect to ep (started: up->connecting or failed), or -1. */
static int tcp_connect(struct l7_up *up, const struct l7_endpoint *ep)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd;

	memset(&ss, 0, sizeof(ss));
	if (ep->family == XM_FAMILY_V4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(ep->port);
		memcpy(&sin->sin_addr, ep->addr.bytes, 4);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(ep->port);
		memcpy(&sin6->sin6_addr, ep->addr.bytes, 16);
		len = sizeof(*sin6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	up->connecting = true;
	if (connect(fd, (struct sockaddr *)&ss, len) == 0)
		up->connecting = false;
	else if (errno != EINPROGRESS)
		connect_failed(up); /* refused at once: reported like an asynchronous failure, through the same path */
	len = sizeof(ss);
	if (!getsockname(fd, (struct sockaddr *)&ss, &len)) {
		up->local_family = ep->family;
		if (ss.ss_family == AF_INET) {
			memcpy(up->local.bytes, &((struct sockaddr_in *)&ss)->sin_addr, 4);
			up->local_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else {
			memcpy(up->local.bytes, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
			up->local_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	return fd;
}

/*
 * Hands the far end of a socketpair to the tunnel for ep (up->fd is the near one, registered already); the
 * connection is then connecting, among the worker's tunnels_opening under a new handle, until the tunnel's
 * answer (l7_up_tunnel_done). -errno when the tunnel refused at once (ENOENT: no identity, ENOTCONN: no
 * tunnel), and then no answer comes.
 */
static int tunnel_submit(struct l7_up *up, int far, const struct l7_endpoint *ep, const struct l7_tunnel_req *origin)
{
	struct l7_worker *w = up->w;
	const struct l7_proxy_opts *o = &w->proxy->opts;
	struct l7_tunnel_req req = { 0 };
	struct xm_tunnel_done done = { .gate = w->gate, .fn = l7_up_tunnel_done, .arg = w };
	int err;

	if (origin)
		req = *origin;
	req.addr = ep->addr;
	req.port = ep->port;
	req.family = ep->family;
	req.src_id = up->tunnel_id;
	if (!req.traceparent)
		req.traceparent = "";
	up->tunnel_handle = done.handle = ++w->tunnel_handles;
	up->opening_next = w->tunnels_opening;
	if (up->opening_next)
		up->opening_next->opening_prev = up;
	w->tunnels_opening = up;
	up->connecting = true;
	err = o->tunnel(o->tunnel_ctx, far, &req, &done); /* owns far from now on */
	if (err) {
		opening_unlink(up);
		up->connecting = false;
	}
	return err;
}

static struct l7_up *up_connect(struct l7_worker *w, const struct l7_endpoint *ep, struct l7_shared *load,
				enum l7_up_kind kind, uint64_t connect_timeout_ms, const struct l7_tunnel_req *origin)
{
	struct l7_up *up;
	int fd, sv[2] = { -1, -1 }, err;

	/* Never plaintext to an endpoint the snapshot tunnels: without a tunnel or an identity, no connection. */
	if (ep->tunnel && (!w->proxy->opts.tunnel || !ep->src_id)) {
		errno = ep->src_id ? ENOTCONN : ENOENT;
		return NULL;
	}
	up = calloc(1, sizeof(*up));
	if (!up)
		return NULL;
	up->w = w;
	up->ep = *ep;
	up->kind = kind;
	if (ep->tunnel) {
		up->tunnel_id = strdup(ep->src_id);
		up->ep.src_id = up->tunnel_id;
		if (!up->tunnel_id || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
			free(up->tunnel_id);
			free(up);
			return NULL;
		}
		fd = sv[0];
	} else {
		fd = tcp_connect(up, ep);
		if (fd < 0) {
			free(up);
			return NULL;
		}
	}
	up->fd = fd;
	if (loop_add_fd(w->loop, fd, L7_CONN_EVENTS, on_up_event, up)) {
		err = errno;
		goto fail;
	}
	if (up->connecting || up->ep.tunnel) { /* a tunnel is connecting from tunnel_submit on */
		up->timer = loop_timer_add(w->loop, connect_timeout_ms, 0, on_up_timer, up);
		if (!up->timer) {
			err = ENOMEM;
			loop_del_fd(w->loop, fd);
			goto fail;
		}
	}
	if (up->ep.tunnel) {
		err = -tunnel_submit(up, sv[1], ep, origin);
		sv[1] = -1;
		if (err) {
			loop_timer_cancel(w->loop, up->timer);
			loop_del_fd(w->loop, fd);
			goto fail;
		}
		atomic_fetch_add_explicit(&w->c.tunnel_total, 1, memory_order_relaxed);
	}
	up->all_next = w->ups;
	if (w->ups)
		w->ups->all_prev = up;
	w->ups = up;
	up->born_ms = loop_batch_ms(w->loop);
	if (load) {
		/* The caller's table holds a reference: this one keeps the counts alive after it (l7_up_close). */
		atomic_fetch_add_explicit(&load->refs, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&load->v[L7_LOAD_CONNECTIONS], 1, memory_order_relaxed);
		up->load = load;
	}
	atomic_fetch_add_explicit(&w->c.upstream_total, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->c.upstream_active, 1, memory_order_relaxed);
	return up;
fail:
	close(fd);
	if (sv[1] >= 0)
		close(sv[1]);
	free(up->tunnel_id);
	free(up);
	errno = err;
	return NULL;
}

struct l7_up *l7_up_pooled(struct l7_worker *w, const struct l7_endpoint *ep, const struct l7_shared *load)
{
	uint64_t now = loop_batch_ms(w->loop);
	struct l7_up *up, *next;

	for (up = w->pool[ep_bucket(ep)]; up; up = next) {
		next = up->pool_next;
		if (!ep_eq(&up->ep, ep) || up->load != load)
			continue;
		if (too_old(up, now)) {
			l7_up_close(up); /* its timer is a little late */
			continue;
		}
		pool_unlink(up); /* its idle timer stays armed: see on_up_timer */
		return up;
	}
	return NULL;
}

bool l7_up_any(const struct l7_worker *w, const struct l7_endpoint *ep, const struct l7_shared *load)
{
	for (const struct l7_up *up = w->ups; up; up = up->all_next)
		if (up->kind == L7_UP_PRIMARY && up->load == load && ep_eq(&up->ep, ep))
			return true;
	return false;
}

struct l7_up *l7_up_get(struct l7_worker *w, const struct l7_endpoint *ep, struct l7_shared *load, bool fresh,
			uint64_t connect_timeout_ms, const struct l7_tunnel_req *origin)
{
	struct l7_up *up = fresh ? NULL : l7_up_pooled(w, ep, load);

	return up ? up : up_connect(w, ep, load, L7_UP_PRIMARY, connect_timeout_ms, origin);
}

void l7_up_release(struct l7_up *up, bool reusable)
{
	struct l7_worker *w = up->w;

	up->down = NULL;
	if (!reusable || w->draining || (up->max_requests && up->requests >= up->max_requests) || l7_buf_len(&up->in) ||
	    l7_buf_len(&up->out) || up->eof || up->error || too_old(up, loop_batch_ms(w->loop))) {
		l7_up_close(up);
		return;
	}
	l7_buf_trim(&up->in);
	l7_buf_trim(&up->out);
	up->idle_since_ms = loop_batch_ms(w->loop);
	/* Armed from an earlier idle spell, it fires early and sets itself later; too late only if the
	 * timeout shrank (a new snapshot). */
	if ((!up->timer || !loop_timer_armed(up->timer) || up->timer_due_ms > pooled_due(up)) &&
	    !up_timer_arm(up, pooled_due(up) - up->idle_since_ms)) {
		l7_up_close(up);
		return;
	}
	up->pooled = true;
	up->pool_prev = NULL;
	up->pool_next = w->pool[ep_bucket(&up->ep)];
	if (up->pool_next)
		up->pool_next->pool_prev = up;
	w->pool[ep_bucket(&up->ep)] = up;
	if (w->n_waiting)
		l7_admit_kick(w); /* a request waiting for a connection to its destination may take it */
}

void l7_up_close(struct l7_up *up)
{
	struct l7_worker *w = up->w;

	if (up->dead)
		return;
	up->dead = true;
	opening_unlink(up); /* a tunnel's answer still to come is dropped */
	if (up->pooled)
		pool_unlink(up);
	loop_del_fd(w->loop, up->fd);
	close(up->fd);
	loop_timer_cancel(w->loop, up->timer);
	up->timer = NULL;
	if (up->all_prev)
		up->all_prev->all_next = up->all_next;
	else
		w->ups = up->all_next;
	if (up->all_next)
		up->all_next->all_prev = up->all_prev;
	atomic_fetch_sub_explicit(&w->c.upstream_active, 1, memory_order_relaxed);
	if (up->load) {
		atomic_fetch_sub_explicit(&up->load->v[L7_LOAD_CONNECTIONS], 1, memory_order_relaxed);
		l7_shared_put(up->load);
		up->load = NULL;
	}
	if (w->n_waiting)
		l7_admit_kick(w); /* room under maxConnections, or no connection left to wait for */
	up->next_dead = w->dead_ups;
	w->dead_ups = up;
	l7_worker_reap_later(w);
}

void l7_up_shadow(struct l7_worker *w, const struct l7_endpoint *ep, const char *bytes, uint32_t len,
		  const struct l7_tunnel_req *origin)
{
	struct l7_up *up = up_connect(w, ep, NULL, L7_UP_SHADOW, SHADOW_DEADLINE_MS, origin);

	if (!up)
		return;
	if (up->timer)
		loop_timer_arm(w->loop, up->timer, SHADOW_DEADLINE_MS); /* one deadline, the connect included */
	else
		up->timer = loop_timer_add(w->loop, SHADOW_DEADLINE_MS, 0, on_up_timer, up);
	if (!up->timer || !l7_buf_append(&up->out, bytes, len)) {
		l7_up_close(up);
		return;
	}
	atomic_fetch_add_explicit(&w->c.mirrors, 1, memory_order_relaxed);
	shadow_progress(up);
}

void l7_up_free(struct l7_up *up)
{
	free(up->tunnel_id);
	l7_buf_free(&up->in);
	l7_buf_free(&up->out);
	free(up);
}

void l7_pool_close_all(struct l7_worker *w)
{
	for (size_t i = 0; i < L7_POOL_BUCKETS; i++)
		while (w->pool[i])
			l7_up_close(w->pool[i]);
}
