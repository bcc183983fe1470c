// SPDX-License-Identifier: Apache-2.0
/*
 * A client connection to the proxy: reads into a bounded buffer, parses request heads one at a time (pipelined
 * requests wait for the previous response to leave), hands each to the exchange, and closes gracefully
 * (flush, shut the write side, drop what the client still sends for a moment: no RST eats the last response).
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

#include "core/loop.h"
#include "l7/record.h"
#include "l7/worker.h"

#define LINGER_MS	2000	/* after our last byte: how long a client may keep sending before the close */
#define DEFAULT_IDLE_MS 3600000 /* Envoy's idle_timeout for downstream connections */

static uint64_t idle_ms(const struct l7_down *d)
{
	return d->w->proxy->opts.idle_timeout_ms ? d->w->proxy->opts.idle_timeout_ms : DEFAULT_IDLE_MS;
}

/*
 * The idle timer is not moved per request (a heap operation and a clock read each time): it stays armed
 * and, when it fires, closes the connection only if it has idled idle_ms since idle_since_ms; otherwise it
 * sets itself to when that would be. Lingering arms it exactly.
 */
static void on_down_timer(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct l7_down *d = ctx;
	uint64_t now, due;

	switch (d->state) {
	case L7_DOWN_LINGER:
		l7_down_close(d);
		return;
	case L7_DOWN_HEAD: /* between requests, or in the middle of a head */
		if (l7_buf_len(&d->out))
			break; /* the last response is still leaving */
		now = loop_now_ms();
		due = d->idle_since_ms + idle_ms(d);
		if (due <= now)
			l7_down_close(d);
		else
			loop_timer_arm(loop, timer, due - now);
		return;
	default:
		break;
	}
	/* Busy: the idle time starts again when the exchange ends. */
	loop_timer_arm(loop, timer, idle_ms(d));
}

static void down_read(struct l7_down *d)
{
	uint32_t room = l7_buf_room(&d->in);
	ssize_t n;

	if (!room)
		return;
	n = read(d->fd, l7_buf_end(&d->in), room);
	if (n > 0)
		l7_buf_commit(&d->in, (uint32_t)n);
	else if (n == 0)
		d->eof = true;
	else if (errno != EAGAIN && errno != EINTR)
		d->error = true;
}

/* Writes what d->out holds; false on a write error. Sets *sent when bytes left. */
static bool down_flush_sent(struct l7_down *d, bool *sent)
{
	while (l7_buf_len(&d->out)) {
		ssize_t n = send(d->fd, l7_buf_peek(&d->out), l7_buf_len(&d->out), MSG_NOSIGNAL);

		if (n > 0) {
			l7_buf_consume(&d->out, (uint32_t)n);
			*sent = true;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
	return true;
}

bool l7_down_flush(struct l7_down *d)
{
	bool sent = false;

	if (!down_flush_sent(d, &sent))
		d->error = true;
	return !d->error;
}

static void down_update_events(struct l7_down *d)
{
	uint32_t want = 0;

	if (!d->eof && !d->error && d->state != L7_DOWN_CLOSING && !l7_buf_full(&d->in))
		want |= EPOLLIN;
	if (l7_buf_len(&d->out))
		want |= EPOLLOUT;
	if (want != d->events && !loop_mod_fd(d->w->loop, d->fd, want))
		d->events = want;
}

/* Between requests: the next head, or idling. True if the state changed. */
static bool head_step(struct l7_down *d)
{
	struct h1_request req;
	enum h1_error err = H1_E_NONE;
	uint32_t len = l7_buf_len(&d->in);
	int n;

	if (l7_buf_len(&d->out))
		return false; /* the previous response is still leaving: responses stay in order */
	if (!len) {
		if (d->eof) {
			l7_down_close(d);
			return false;
		}
		/* Draining: a connection that was served closes; one accepted just now gets its request answered. */
		if ((d->w->draining || d->close_after) && d->requests) {
			d->state = L7_DOWN_CLOSING;
			return true;
		}
		l7_buf_trim(&d->in);
		l7_buf_trim(&d->out);
		d->idle_since_ms = loop_batch_ms(d->w->loop);
		if (!loop_timer_armed(d->timer))
			loop_timer_arm(d->w->loop, d->timer, idle_ms(d));
		return false;
	}
	n = h1_parse_request(l7_buf_peek(&d->in), len, &req, &err);
	if (n == 0 && l7_buf_full(&d->in)) {
		n = -1;
		err = H1_E_TOO_LARGE;
	}
	if (n == 0) {
		if (d->eof) /* a partial head, and the client is gone */
			l7_down_close(d);
		return false;
	}
	d->requests++;
	if (n < 0) {
		l7_exchange_bad_request(d, err);
		return true;
	}
	d->state = L7_DOWN_EXCHANGE;
	l7_exchange_start(d, &req, (uint32_t)n);
	return true;
}

static bool closing_step(struct l7_down *d)
{
	if (l7_buf_len(&d->out))
		return false;
	shutdown(d->fd, SHUT_WR);
	d->state = L7_DOWN_LINGER;
	loop_timer_arm(d->w->loop, d->timer, LINGER_MS);
	return true;
}

static void linger_step(struct l7_down *d)
{
	l7_buf_consume(&d->in, l7_buf_len(&d->in));
	if (d->eof || d->error)
		l7_down_close(d);
}

/* One pass of the connection's state machine; true if anything moved or changed. */
static bool down_step(struct l7_down *d)
{
	switch (d->state) {
	case L7_DOWN_HEAD:
		return head_step(d);
	case L7_DOWN_EXCHANGE:
		return l7_exchange_step(d);
	case L7_DOWN_TUNNEL:
		return l7_tunnel_step(d);
	case L7_DOWN_CLOSING:
		return closing_step(d);
	case L7_DOWN_LINGER:
		linger_step(d);
		return false;
	}
	return false;
}

/*
 * The state machine runs until it is stuck, and only then are the buffers written: a response head and its
 * body leave in one send (one segment, one wakeup of the client), not one send each. Writing makes room,
 * which may unstick it (a body bigger than a buffer, the next pipelined request): then it runs again.
 */
void l7_down_progress(struct l7_down *d)
{
	for (;;) {
		bool sent = false;

		while (!d->dead && !d->error && down_step(d))
			;
		if (d->dead)
			return;
		if (!d->error && !down_flush_sent(d, &sent))
			d->error = true;
		if (d->x.up && !d->x.up->connecting && !d->x.up->error && l7_buf_len(&d->x.up->out)) {
			uint32_t queued = l7_buf_len(&d->x.up->out);

			/* Room made may move more body; an error is the exchange's to notice now. */
			if (!l7_up_flush(d->x.up) || l7_buf_len(&d->x.up->out) < queued)
				sent = true;
		}
		if (d->error) {
			l7_down_close(d);
			return;
		}
		if (!sent)
			break;
	}
	down_update_events(d);
	if (d->x.up && !d->x.up->dead)
		l7_up_update_events(d->x.up);
}

static void on_down_event(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct l7_down *d = ctx;

	(void)loop, (void)fd;
	if (events & EPOLLERR)
		d->error = true;
	if ((events & (EPOLLIN | EPOLLHUP)) && !d->eof && !d->error)
		down_read(d);
	l7_down_progress(d);
}

void l7_down_accept(struct l7_worker *w, int fd, const struct sockaddr_storage *peer, const struct xm_svc_key *vip,
		    uint32_t svc_id)
{
	struct l7_down *d = calloc(1, sizeof(*d));
	int one = 1;

	if (!d) {
		close(fd);
		return;
	}
	d->fd = fd;
	d->w = w;
	d->vip = *vip;
	d->svc_id = svc_id;
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;

		d->family = XM_FAMILY_V4;
		memcpy(d->peer.bytes, &sin->sin_addr, 4);
		d->peer_port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;

		d->family = XM_FAMILY_V6;
		memcpy(d->peer.bytes, &sin6->sin6_addr, 16);
		d->peer_port = ntohs(sin6->sin6_port);
	}
	inet_ntop(d->family == XM_FAMILY_V4 ? AF_INET : AF_INET6, d->peer.bytes, d->peer_str, sizeof(d->peer_str));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	d->idle_since_ms = loop_batch_ms(w->loop);
	d->timer = loop_timer_add(w->loop, idle_ms(d), 0, on_down_timer, d);
	if (!d->timer || loop_add_fd(w->loop, fd, EPOLLIN, on_down_event, d)) {
		loop_timer_cancel(w->loop, d->timer);
		close(fd);
		free(d);
		return;
	}
	d->events = EPOLLIN;
	d->next = w->conns;
	if (w->conns)
		w->conns->prev = d;
	w->conns = d;
	w->n_conns++;
	atomic_fetch_add_explicit(&w->c.downstream_total, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->c.downstream_active, 1, memory_order_relaxed);
}

void l7_down_close(struct l7_down *d)
{
	struct l7_worker *w = d->w;

	if (d->dead)
		return;
	if (d->state == L7_DOWN_EXCHANGE || d->state == L7_DOWN_TUNNEL)
		l7_exchange_abort(d, L7_RF_DC);
	d->dead = true;
	loop_del_fd(w->loop, d->fd);
	close(d->fd);
	loop_timer_cancel(w->loop, d->timer);
	d->timer = NULL;
	if (d->prev)
		d->prev->next = d->next;
	else
		w->conns = d->next;
	if (d->next)
		d->next->prev = d->prev;
	w->n_conns--;
	atomic_fetch_sub_explicit(&w->c.downstream_active, 1, memory_order_relaxed);
	d->next_dead = w->dead_downs;
	w->dead_downs = d;
	l7_worker_reap_later(w);
	if (w->draining && !w->n_conns)
		loop_stop(w->loop);
}

void l7_down_drain(struct l7_down *d)
{
	d->close_after = true;
	if (d->state == L7_DOWN_HEAD && d->requests && !l7_buf_len(&d->in) && !l7_buf_len(&d->out))
		l7_down_close(d);
}

void l7_down_free(struct l7_down *d)
{
	l7_buf_free(&d->in);
	l7_buf_free(&d->out);
	free(d);
}
