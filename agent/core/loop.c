// SPDX-License-Identifier: Apache-2.0
/*
 * One batch = the events of one epoll_wait, then the timers due by then, then posted work if the eventfd
 * fired. Handlers and timers removed during a batch are only marked dead and unlinked; they are freed
 * when the batch is over, so an event of the same batch that still points at one finds it dead and skips.
 */
#include "core/loop.h"
#include "core/grow.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_BATCH     64
#define TIMER_DISARMED SIZE_MAX

struct xm_loop_handler {
	int fd;
	bool dead;
	uint32_t events;
	xm_loop_cb cb;
	void *ctx;
	struct xm_timer *resume; /* loop_pause_fd's, made on first use */
	struct xm_loop_handler *next_dead;
};

struct xm_timer {
	uint64_t due_ms, interval_ms;
	uint64_t seq;	 /* arming order: equal due times fire in the order they were armed */
	size_t heap_idx; /* TIMER_DISARMED when not in the heap */
	bool dead;
	xm_timer_cb cb;
	void *ctx;
	struct xm_timer *prev, *next; /* every live timer, for loop_free */
	struct xm_timer *next_dead;
};

struct work {
	xm_loop_work_fn fn;
	void *arg;
	struct work *next;
};

struct xm_loop {
	int epfd, wake_fd;
	atomic_bool stop;
	bool in_batch;
	uint64_t batch_ms; /* loop_now_ms() when the batch began */

	struct xm_loop_handler **by_fd; /* live handlers, indexed by fd */
	size_t n_by_fd;
	struct xm_loop_handler wake; /* the eventfd's handler; not in by_fd */
	struct xm_loop_handler *dead_handlers;

	struct xm_timer **heap; /* min-heap on (due_ms, seq), with room for every live timer */
	size_t n_heap, cap_heap, n_timers;
	uint64_t next_seq;
	struct xm_timer *timers;
	struct xm_timer *dead_timers;

	pthread_mutex_t work_lock;
	struct work *work_head, *work_tail;

	/* loop_defer's queue: only the loop's thread inside loop_run touches it (no lock, no eventfd) */
	struct work *defer_head, *defer_tail;
	pthread_t runner; /* the thread in loop_run, while running */
	atomic_bool running;
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t loop_batch_ms(const struct xm_loop *loop)
{
	return loop->in_batch ? loop->batch_ms : loop_now_ms();
}

/* ---- timer heap ---- */

static bool timer_before(const struct xm_timer *a, const struct xm_timer *b)
{
	return a->due_ms != b->due_ms ? a->due_ms < b->due_ms : a->seq < b->seq;
}

static void heap_set(struct xm_loop *loop, size_t i, struct xm_timer *t)
{
	loop->heap[i] = t;
	t->heap_idx = i;
}

static void heap_sift_up(struct xm_loop *loop, size_t i)
{
	struct xm_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void heap_sift_down(struct xm_loop *loop, size_t i)
{
	struct xm_timer *t = loop->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= loop->n_heap)
			break;
		if (child + 1 < loop->n_heap && timer_before(loop->heap[child + 1], loop->heap[child]))
			child++;
		if (!timer_before(loop->heap[child], t))
			break;
		heap_set(loop, i, loop->heap[child]);
		i = child;
	}
	heap_set(loop, i, t);
}

static void heap_remove(struct xm_loop *loop, struct xm_timer *t)
{
	size_t i = t->heap_idx;
	struct xm_timer *last;

	if (i == TIMER_DISARMED)
		return;
	t->heap_idx = TIMER_DISARMED;
	last = loop->heap[--loop->n_heap];
	if (last == t)
		return;
	heap_set(loop, i, last);
	heap_sift_up(loop, i);
	heap_sift_down(loop, last->heap_idx);
}

/* The heap has room for every timer (it grows in loop_timer_add), so pushing cannot fail. */
static void heap_push(struct xm_loop *loop, struct xm_timer *t, uint64_t due_ms)
{
	t->due_ms = due_ms;
	t->seq = loop->next_seq++;
	loop->heap[loop->n_heap] = t;
	t->heap_idx = loop->n_heap++;
	heap_sift_up(loop, t->heap_idx);
}

/* ---- loop ---- */

static void on_wake(struct xm_loop *loop, int fd, uint32_t events, void *ctx);

struct xm_loop *loop_new(void)
{
	struct xm_loop *loop = calloc(1, sizeof(*loop));
	struct epoll_event ev = { .events = EPOLLIN };

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->epfd < 0 || loop->wake_fd < 0)
		goto fail;
	loop->wake.fd = loop->wake_fd;
	loop->wake.cb = on_wake;
	ev.data.ptr = &loop->wake;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0)
		goto fail;
	atomic_init(&loop->stop, false);
	atomic_init(&loop->running, false);
	pthread_mutex_init(&loop->work_lock, NULL);
	return loop;
fail:
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	free(loop);
	return NULL;
}

static void free_dead(struct xm_loop *loop)
{
	while (loop->dead_handlers) {
		struct xm_loop_handler *h = loop->dead_handlers;

		loop->dead_handlers = h->next_dead;
		free(h);
	}
	while (loop->dead_timers) {
		struct xm_timer *t = loop->dead_timers;

		loop->dead_timers = t->next_dead;
		free(t);
	}
}

void loop_free(struct xm_loop *loop)
{
	struct work *w;
	size_t i;

	if (!loop)
		return;
	free_dead(loop);
	for (i = 0; i < loop->n_by_fd; i++)
		free(loop->by_fd[i]);
	free(loop->by_fd);
	while (loop->timers) {
		struct xm_timer *t = loop->timers;

		loop->timers = t->next;
		free(t);
	}
	free(loop->heap);
	while ((w = loop->work_head)) {
		loop->work_head = w->next;
		free(w);
	}
	pthread_mutex_destroy(&loop->work_lock);
	close(loop->wake_fd);
	close(loop->epfd);
	free(loop);
}

int loop_add_fd(struct xm_loop *loop, int fd, uint32_t events, xm_loop_cb cb, void *ctx)
{
	struct epoll_event ev = { .events = events };
	struct xm_loop_handler *h;

	if (fd < 0)
		return -EBADF;
	if ((size_t)fd >= loop->n_by_fd) {
		size_t old = loop->n_by_fd;

		if (XM_GROW(loop->by_fd, loop->n_by_fd, (size_t)fd + 1))
			return -ENOMEM;
		memset(loop->by_fd + old, 0, (loop->n_by_fd - old) * sizeof(*loop->by_fd));
	}
	if (loop->by_fd[fd])
		return -EEXIST;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = fd;
	h->events = events;
	h->cb = cb;
	h->ctx = ctx;
	ev.data.ptr = h;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(h);
		return err;
	}
	loop->by_fd[fd] = h;
	return 0;
}

static struct xm_loop_handler *find_handler(struct xm_loop *loop, int fd)
{
	return fd >= 0 && (size_t)fd < loop->n_by_fd ? loop->by_fd[fd] : NULL;
}

int loop_mod_fd(struct xm_loop *loop, int fd, uint32_t events)
{
	struct xm_loop_handler *h = find_handler(loop, fd);
	struct epoll_event ev = { .events = events };

	if (!h)
		return -ENOENT;
	ev.data.ptr = h;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	h->events = events;
	loop_timer_cancel(loop, h->resume); /* the new events replace a pause */
	h->resume = NULL;
	return 0;
}

static void on_resume(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct xm_loop_handler *h = ctx;
	struct epoll_event ev = { .events = h->events, .data.ptr = h };

	(void)timer;
	epoll_ctl(loop->epfd, EPOLL_CTL_MOD, h->fd, &ev);
}

int loop_pause_fd(struct xm_loop *loop, int fd, uint64_t ms)
{
	struct xm_loop_handler *h = find_handler(loop, fd);
	struct epoll_event ev = { .events = 0 };

	if (!h)
		return -ENOENT;
	if (!h->resume) {
		h->resume = loop_timer_add(loop, ms, 0, on_resume, h);
		if (!h->resume)
			return -ENOMEM;
	} else {
		loop_timer_arm(loop, h->resume, ms);
	}
	ev.data.ptr = h;
	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int loop_del_fd(struct xm_loop *loop, int fd)
{
	struct xm_loop_handler *h = find_handler(loop, fd);

	if (!h)
		return -ENOENT;
	loop->by_fd[fd] = NULL;
	loop_timer_cancel(loop, h->resume);
	/* Fails only when fd was closed first, which already removed it from the epoll set. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	if (!loop->in_batch) {
		free(h);
		return 0;
	}
	h->dead = true;
	h->next_dead = loop->dead_handlers;
	loop->dead_handlers = h;
	return 0;
}

/* ---- timers ---- */

struct xm_timer *loop_timer_add(struct xm_loop *loop, uint64_t first_ms, uint64_t interval_ms, xm_timer_cb cb,
				void *ctx)
{
	struct xm_timer *t;

	if (XM_GROW(loop->heap, loop->cap_heap, loop->n_timers + 1))
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->interval_ms = interval_ms;
	t->cb = cb;
	t->ctx = ctx;
	t->heap_idx = TIMER_DISARMED;
	loop->n_timers++;
	t->next = loop->timers;
	if (loop->timers)
		loop->timers->prev = t;
	loop->timers = t;
	loop_timer_arm(loop, t, first_ms);
	return t;
}

void loop_timer_arm(struct xm_loop *loop, struct xm_timer *t, uint64_t ms)
{
	if (t->dead)
		return;
	heap_remove(loop, t);
	/* At least 1 ms: a callback re-arming its own timer must not keep the current batch going. */
	heap_push(loop, t, loop_now_ms() + (ms ? ms : 1));
}

void loop_timer_disarm(struct xm_loop *loop, struct xm_timer *t)
{
	heap_remove(loop, t);
}

bool loop_timer_armed(const struct xm_timer *t)
{
	return t->heap_idx != TIMER_DISARMED;
}

void loop_timer_cancel(struct xm_loop *loop, struct xm_timer *t)
{
	if (!t || t->dead)
		return;
	heap_remove(loop, t);
	if (t->prev)
		t->prev->next = t->next;
	else
		loop->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	loop->n_timers--;
	if (!loop->in_batch) {
		free(t);
		return;
	}
	t->dead = true;
	t->next_dead = loop->dead_timers;
	loop->dead_timers = t;
}

/* Runs the timers due by now; each one's next due time is set before its callback, which may change it. */
static void run_timers(struct xm_loop *loop)
{
	uint64_t now = loop_now_ms();

	while (loop->n_heap && loop->heap[0]->due_ms <= now) {
		struct xm_timer *t = loop->heap[0];

		heap_remove(loop, t);
		if (t->interval_ms) {
			uint64_t due = t->due_ms + t->interval_ms;

			/* Late by more than an interval (a long callback): skip the missed firings. */
			heap_push(loop, t, due > now ? due : now + t->interval_ms);
		}
		t->cb(loop, t, t->ctx);
	}
}

/* epoll_wait's timeout: until the earliest timer, -1 (forever) without one. */
static int next_timeout(struct xm_loop *loop)
{
	uint64_t now, due;

	if (!loop->n_heap)
		return -1;
	due = loop->heap[0]->due_ms;
	now = loop_now_ms();
	if (due <= now)
		return 0;
	return due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

/* ---- cross-thread ---- */

void loop_wake(struct xm_loop *loop)
{
	uint64_t one = 1;
	int saved = errno;

	/* EAGAIN means the counter is already huge: the loop is woken anyway. */
	(void)!write(loop->wake_fd, &one, sizeof(one));
	errno = saved;
}

void loop_stop(struct xm_loop *loop)
{
	atomic_store(&loop->stop, true);
	loop_wake(loop);
}

int loop_post(struct xm_loop *loop, xm_loop_work_fn fn, void *arg)
{
	struct work *w = malloc(sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->arg = arg;
	w->next = NULL;
	pthread_mutex_lock(&loop->work_lock);
	if (loop->work_tail)
		loop->work_tail->next = w;
	else
		loop->work_head = w;
	loop->work_tail = w;
	pthread_mutex_unlock(&loop->work_lock);
	loop_wake(loop);
	return 0;
}

/* All of it (fn NULL), or only fn's. */
static void run_posted(struct xm_loop *loop, xm_loop_work_fn fn)
{
	struct work *w, *next, *keep = NULL, *keep_last = NULL;

	pthread_mutex_lock(&loop->work_lock);
	w = loop->work_head;
	loop->work_head = loop->work_tail = NULL;
	pthread_mutex_unlock(&loop->work_lock);
	for (; w; w = next) {
		next = w->next;
		if (fn && w->fn != fn) {
			w->next = NULL;
			if (keep_last)
				keep_last->next = w;
			else
				keep = w;
			keep_last = w;
			continue;
		}
		w->fn(loop, w->arg);
		free(w);
	}
	if (!keep)
		return;
	/* Back in front of what was posted meanwhile, in their order. */
	pthread_mutex_lock(&loop->work_lock);
	keep_last->next = loop->work_head;
	if (!loop->work_head)
		loop->work_tail = keep_last;
	loop->work_head = keep;
	pthread_mutex_unlock(&loop->work_lock);
}

void loop_run_posted(struct xm_loop *loop, xm_loop_work_fn fn)
{
	run_posted(loop, fn);
}

int loop_defer(struct xm_loop *loop, xm_loop_work_fn fn, void *arg)
{
	struct work *w;

	if (!atomic_load_explicit(&loop->running, memory_order_acquire) || !pthread_equal(loop->runner, pthread_self()))
		return loop_post(loop, fn, arg);
	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->arg = arg;
	w->next = NULL;
	if (loop->defer_tail)
		loop->defer_tail->next = w;
	else
		loop->defer_head = w;
	loop->defer_tail = w;
	return 0;
}

/* The work deferred so far; what it defers in turn runs after the next (non-blocking) epoll_wait. */
static void run_deferred(struct xm_loop *loop)
{
	struct work *w = loop->defer_head, *next;

	loop->defer_head = loop->defer_tail = NULL;
	for (; w; w = next) {
		next = w->next;
		w->fn(loop, w->arg);
		free(w);
	}
}

/* loop_run returns: deferred work left becomes posted work (loop_run_posted, the next loop_run, loop_free). */
static void defer_to_posted(struct xm_loop *loop)
{
	if (!loop->defer_head)
		return;
	pthread_mutex_lock(&loop->work_lock);
	if (loop->work_tail)
		loop->work_tail->next = loop->defer_head;
	else
		loop->work_head = loop->defer_head;
	loop->work_tail = loop->defer_tail;
	pthread_mutex_unlock(&loop->work_lock);
	loop->defer_head = loop->defer_tail = NULL;
	loop_wake(loop);
}

/* Runs the work posted so far; work posted meanwhile wrote the eventfd again and waits for the next batch. */
static void on_wake(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	uint64_t count;

	(void)events, (void)ctx;
	(void)!read(fd, &count, sizeof(count));
	run_posted(loop, NULL);
}

int loop_run(struct xm_loop *loop)
{
	struct epoll_event events[LOOP_BATCH];
	int n, i;

	loop->runner = pthread_self();
	atomic_store_explicit(&loop->running, true, memory_order_release);
	/* The stop request is consumed: a later loop_run runs again. */
	while (!atomic_exchange(&loop->stop, false)) {
		/* Deferred work waiting: look at the sockets without sleeping, then run it. */
		n = epoll_wait(loop->epfd, events, LOOP_BATCH, loop->defer_head ? 0 : next_timeout(loop));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			atomic_store_explicit(&loop->running, false, memory_order_relaxed);
			defer_to_posted(loop);
			return -errno;
		}
		loop->in_batch = true;
		loop->batch_ms = loop_now_ms();
		/* The whole batch runs even after a stop: edge-triggered events dropped here would be lost. */
		for (i = 0; i < n; i++) {
			struct xm_loop_handler *h = events[i].data.ptr;

			if (!h->dead)
				h->cb(loop, h->fd, events[i].events, h->ctx);
		}
		run_deferred(loop);
		run_timers(loop);
		loop->in_batch = false;
		free_dead(loop);
	}
	atomic_store_explicit(&loop->running, false, memory_order_relaxed);
	defer_to_posted(loop);
	return 0;
}
