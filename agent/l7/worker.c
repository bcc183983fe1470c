// SPDX-License-Identifier: Apache-2.0
/*
 * One proxy worker: its thread and loop, its listeners' accept path, the snapshot it serves (held per request
 * without atomics), deferred frees, and draining. Everything runs on the worker's thread; other threads only
 * post work to it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/post_gate.h"
#include "core/tunnel_done.h"
#include "l7/stats.h"
#include "l7/worker.h"

#define ACCEPT_BATCH	64
#define ACCEPT_PAUSE_MS 100 /* out of file descriptors: let the loop breathe before trying again */
#define REAP_DELAY_MS	1

static void on_reap(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct l7_worker *w = ctx;

	(void)loop, (void)timer;
	while (w->dead_downs) {
		struct l7_down *d = w->dead_downs;

		w->dead_downs = d->next_dead;
		l7_down_free(d);
	}
	while (w->dead_ups) {
		struct l7_up *u = w->dead_ups;

		w->dead_ups = u->next_dead;
		l7_up_free(u);
	}
}

/* A timer callback runs with no connection on the stack: the only safe moment to free one. */
void l7_worker_reap_later(struct l7_worker *w)
{
	if (!loop_timer_armed(w->reaper))
		loop_timer_arm(w->loop, w->reaper, REAP_DELAY_MS);
}

struct l7_exchange_text *l7_text_get(struct l7_worker *w)
{
	struct l7_exchange_text *t = w->free_texts;

	if (t) {
		w->free_texts = t->next_free;
		w->n_free_texts--;
	} else {
		t = malloc(sizeof(*t));
		if (!t)
			t = &w->spare_text;
	}
	t->xff[0] = t->set_cookie[0] = t->method[0] = t->path[0] = '\0';
	t->authority[0] = t->user_agent[0] = t->request_id[0] = '\0';
	t->trace_headers[0] = '\0';
	t->trace.has_context = false;
	return t;
}

void l7_text_put(struct l7_worker *w, struct l7_exchange_text *t)
{
	if (!t || t == &w->spare_text)
		return;
	if (w->n_free_texts >= L7_TEXT_CACHE) {
		free(t);
		return;
	}
	t->next_free = w->free_texts;
	w->free_texts = t;
	w->n_free_texts++;
}

static void free_texts(struct l7_worker *w)
{
	while (w->free_texts) {
		struct l7_exchange_text *t = w->free_texts;

		w->free_texts = t->next_free;
		free(t);
	}
	w->n_free_texts = 0;
}

struct l7_snap_hold *l7_worker_hold(struct l7_worker *w)
{
	if (w->hold)
		w->hold->users++;
	return w->hold;
}

static void hold_free(struct l7_snap_hold *h)
{
	snapshot_put(h->snap);
	free(h);
}

void l7_worker_release(struct l7_worker *w, struct l7_snap_hold *h)
{
	(void)w;
	if (!h)
		return;
	if (!--h->users && h->retired)
		hold_free(h);
}

static void on_accept(struct xm_loop *loop, int lfd, uint32_t events, void *ctx)
{
	struct l7_worker *w = ctx;
	struct l7_proxy *p = w->proxy;

	(void)events;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct xm_svc_key vip;
		uint32_t svc_id = 0;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				loop_pause_fd(loop, lfd, ACCEPT_PAUSE_MS);
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			return;
		}
		memset(&vip, 0, sizeof(vip));
		if (p->opts.resolve(p->opts.resolve_ctx, lfd, fd, &vip, &svc_id)) {
			atomic_fetch_add_explicit(&w->c.unresolved, 1, memory_order_relaxed);
			close(fd);
			continue;
		}
		l7_down_accept(w, fd, &ss, &vip, svc_id);
	}
}

struct listen_msg {
	struct l7_worker *w;
	int fd;
	enum l7_listen_op op;
};

static void do_listen(struct xm_loop *loop, void *arg)
{
	struct listen_msg *m = arg;

	if (m->op == L7_LISTEN_ADD) {
		if (m->w->draining || loop_add_fd(loop, m->fd, EPOLLIN, on_accept, m->w))
			log_warn("l7 worker %zu: not accepting on listener fd %d", m->w->index, m->fd);
	} else {
		/* Connections already in the accept queue are taken and served, not reset with the socket. */
		if (m->op == L7_LISTEN_REMOVE && !m->w->draining)
			on_accept(loop, m->fd, EPOLLIN, m->w);
		loop_del_fd(loop, m->fd);
		close(m->fd);
	}
	free(m);
}

int l7_worker_post_listen(struct l7_worker *w, int fd, enum l7_listen_op op)
{
	struct listen_msg *m = malloc(sizeof(*m));

	if (!m)
		return -ENOMEM;
	*m = (struct listen_msg){ .w = w, .fd = fd, .op = op };
	if (loop_post(w->loop, do_listen, m)) {
		free(m);
		return -ENOMEM;
	}
	return 0;
}

struct snap_msg {
	struct l7_worker *w;
	struct l7_snap_hold *hold;
};

static void do_snapshot(struct xm_loop *loop, void *arg)
{
	struct snap_msg *m = arg;
	struct l7_worker *w = m->w;
	struct l7_snap_hold *old = w->hold;

	(void)loop;
	m->hold->epoch = ++w->epochs;
	w->hold = m->hold;
	l7_balancer_reset(w->balancer);
	if (old) {
		old->retired = true;
		if (!old->users)
			hold_free(old);
	}
	free(m);
}

int l7_worker_post_snapshot(struct l7_worker *w, struct xm_snapshot *snap, const struct l7_route_table *routes)
{
	struct snap_msg *m = malloc(sizeof(*m));
	struct l7_snap_hold *h = calloc(1, sizeof(*h));

	if (!m || !h)
		goto fail;
	h->snap = snapshot_get(snap);
	h->routes = routes;
	*m = (struct snap_msg){ .w = w, .hold = h };
	if (loop_post(w->loop, do_snapshot, m)) {
		snapshot_put(h->snap);
		goto fail;
	}
	return 0;
fail:
	free(m);
	free(h);
	return -ENOMEM;
}

static void close_everything(struct l7_worker *w)
{
	while (w->conns)
		l7_down_close(w->conns);
	while (w->ups)
		l7_up_close(w->ups);
}

/*
 * The loop's thread (or any, the loop never ran), its loop stopped and every connection closed: the tunnel's
 * answers stop coming (the hbone thread outlives the workers), and those already posted run now, finding no
 * connection (loop_free would leak their memory).
 */
static void close_gate(struct l7_worker *w)
{
	if (!w->gate)
		return;
	post_gate_close(w->gate);
	w->gate = NULL;
	tunnel_done_flush(w->loop);
}

static void on_drain_deadline(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct l7_worker *w = ctx;

	(void)timer;
	if (w->n_conns)
		log_warn("l7 worker %zu: %zu connection(s) still busy after the drain timeout; closing them", w->index,
			 w->n_conns);
	close_everything(w);
	loop_stop(loop);
}

static void do_drain(struct xm_loop *loop, void *arg)
{
	struct l7_worker *w = arg;
	struct l7_down *d, *next;

	if (w->draining)
		return;
	w->draining = true;
	l7_pool_close_all(w);
	for (d = w->conns; d; d = next) {
		next = d->next;
		l7_down_drain(d);
	}
	if (!w->n_conns) {
		loop_stop(loop);
		return;
	}
	w->drain_timer = loop_timer_add(loop, w->proxy->opts.drain_timeout_ms ? w->proxy->opts.drain_timeout_ms : 10000,
					0, on_drain_deadline, w);
	if (!w->drain_timer)
		on_drain_deadline(loop, NULL, w);
}

int l7_worker_post_drain(struct l7_worker *w)
{
	return loop_post(w->loop, do_drain, w);
}

struct l7_worker *l7_worker_new(struct l7_proxy *p, size_t index, struct l7_stats_shard *shard)
{
	struct l7_worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->proxy = p;
	w->index = index;
	w->shard = shard;
	l7_rng_seed(&w->rng);
	w->loop = loop_new();
	w->balancer = l7_balancer_new(l7_rng_next(&w->rng), p->opts.ejected, p->opts.ejected_ctx);
	w->gate = w->loop ? post_gate_new(w->loop) : NULL;
	if (!w->loop || !w->balancer || !w->gate)
		goto fail;
	w->reaper = loop_timer_add(w->loop, REAP_DELAY_MS, 0, on_reap, w);
	if (!w->reaper)
		goto fail;
	loop_timer_disarm(w->loop, w->reaper);
	return w;
fail:
	l7_worker_free(w);
	return NULL;
}

void *l7_worker_main(void *arg)
{
	struct l7_worker *w = arg;
	int err = loop_run(w->loop);

	if (err)
		log_error("l7 worker %zu: event loop: %s", w->index, strerror(-err));
	close_everything(w);
	close_gate(w);
	on_reap(w->loop, NULL, w);
	l7_buf_cache_drain();
	return NULL;
}

/* After the thread stopped (or never started). */
void l7_worker_free(struct l7_worker *w)
{
	if (!w)
		return;
	if (w->loop) {
		close_everything(w);
		close_gate(w);
		on_reap(w->loop, NULL, w);
		l7_buf_cache_drain(); /* this thread's: what a worker that never ran released here */
	}
	if (w->hold) {
		w->hold->retired = true;
		if (!w->hold->users)
			hold_free(w->hold);
	}
	free_texts(w);
	l7_report_free(w);
	l7_admit_free(w);
	l7_balancer_free(w->balancer);
	loop_free(w->loop);
	free(w);
}
