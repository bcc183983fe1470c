/* SPDX-License-Identifier: Apache-2.0 */
/* The event loop: removal inside a batch, the timer heap, and stop/wake/post from other threads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/post_gate.h"

/* ---- handlers removed inside a batch ---- */

/*
 * Stops the loop from the next batch: a callback that called loop_stop itself could let a loop skip the
 * rest of its batch, which would hide what these tests are about.
 */
static int stopper_fd = -1;

static void on_stopper(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	uint64_t v;

	(void)events, (void)ctx;
	(void)!read(fd, &v, sizeof(v));
	loop_stop(loop);
}

static void stopper_add(struct xm_loop *loop)
{
	stopper_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(stopper_fd, 0);
	cr_assert_eq(loop_add_fd(loop, stopper_fd, EPOLLIN, on_stopper, NULL), 0);
}

static void stop_next_batch(void)
{
	uint64_t one = 1;

	cr_assert_eq(write(stopper_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

static void stopper_del(struct xm_loop *loop)
{
	cr_assert_eq(loop_del_fd(loop, stopper_fd), 0);
	close(stopper_fd);
}

/* A readable eventfd whose handler removes (and frees, as owners do) the other one. */
struct rival {
	int fd;
	int calls;
	struct rival **other; /* the other's slot: NULL once removed */
	struct rival **self;
};

static int make_readable_fd(void)
{
	uint64_t one = 1;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	return fd;
}

static void on_rival(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct rival *r = ctx;
	uint64_t v;

	(void)events;
	(void)!read(fd, &v, sizeof(v));
	r->calls++;
	if (*r->other) {
		struct rival *o = *r->other;

		cr_assert_eq(loop_del_fd(loop, o->fd), 0);
		close(o->fd);
		free(o);
		*r->other = NULL;
	}
	stop_next_batch();
}

Test(loop, handler_removed_by_another_in_the_same_batch)
{
	struct xm_loop *loop = loop_new();
	struct rival *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct rival *slot_a = a, *slot_b = b;

	cr_assert(loop && a && b);
	stopper_add(loop);
	/* Both readable before loop_run: one epoll_wait returns both, whichever runs first frees the other. */
	a->fd = make_readable_fd();
	b->fd = make_readable_fd();
	a->self = &slot_a, a->other = &slot_b;
	b->self = &slot_b, b->other = &slot_a;
	cr_assert_eq(loop_add_fd(loop, a->fd, EPOLLIN, on_rival, a), 0);
	cr_assert_eq(loop_add_fd(loop, b->fd, EPOLLIN, on_rival, b), 0);
	cr_assert_eq(loop_run(loop), 0);
	cr_assert((slot_a == NULL) != (slot_b == NULL), "exactly one of the two removed the other");
	{
		struct rival *left = slot_a ? slot_a : slot_b;

		cr_expect_eq(left->calls, 1, "the survivor ran once");
		cr_assert_eq(loop_del_fd(loop, left->fd), 0);
		close(left->fd);
		free(left);
	}
	stopper_del(loop);
	loop_free(loop);
}

/* The first handler to run removes the other, closes its fd and registers a new fd that reuses the number. */
struct reuse {
	int fd[2];
	int calls[2], newcomer_calls;
	int ran_first;
};

static void on_newcomer(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct reuse *r = ctx;

	(void)loop, (void)fd, (void)events;
	r->newcomer_calls++;
}

static void on_reuse(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct reuse *r = ctx;
	int me = fd == r->fd[0] ? 0 : 1, other = 1 - me, nfd;
	uint64_t v;

	(void)events;
	(void)!read(fd, &v, sizeof(v));
	r->calls[me]++;
	if (r->ran_first < 0) {
		r->ran_first = me;
		cr_assert_eq(loop_del_fd(loop, r->fd[other]), 0);
		close(r->fd[other]);
		nfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); /* the lowest free number: the one just closed */
		cr_assert_eq(nfd, r->fd[other]);
		cr_assert_eq(loop_add_fd(loop, nfd, EPOLLIN, on_newcomer, r), 0);
	}
	stop_next_batch();
}

Test(loop, fd_number_reused_in_the_same_batch)
{
	struct xm_loop *loop = loop_new();
	struct reuse r = { .ran_first = -1 };

	cr_assert_not_null(loop);
	stopper_add(loop);
	r.fd[0] = make_readable_fd();
	r.fd[1] = make_readable_fd();
	cr_assert_eq(loop_add_fd(loop, r.fd[0], EPOLLIN, on_reuse, &r), 0);
	cr_assert_eq(loop_add_fd(loop, r.fd[1], EPOLLIN, on_reuse, &r), 0);
	cr_assert_eq(loop_run(loop), 0);
	cr_expect_eq(r.calls[r.ran_first], 1);
	cr_expect_eq(r.calls[1 - r.ran_first], 0, "the removed handler's pending event was dropped");
	cr_expect_eq(r.newcomer_calls, 0, "the old fd's event did not reach the newcomer on the same number");
	loop_del_fd(loop, r.fd[0]);
	loop_del_fd(loop, r.fd[1]);
	close(r.fd[0]);
	close(r.fd[1]);
	stopper_del(loop);
	loop_free(loop);
}

static void on_remove_self(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	int *calls = ctx;

	(void)events;
	(*calls)++;
	cr_assert_eq(loop_del_fd(loop, fd), 0);
	cr_assert_eq(loop_del_fd(loop, fd), -ENOENT, "removed once only");
	loop_stop(loop);
}

Test(loop, handler_removes_itself)
{
	struct xm_loop *loop = loop_new();
	int fd = make_readable_fd(), calls = 0;

	cr_assert_eq(loop_add_fd(loop, fd, EPOLLIN, on_remove_self, &calls), 0);
	cr_assert_eq(loop_add_fd(loop, fd, EPOLLIN, on_remove_self, &calls), -EEXIST);
	cr_assert_eq(loop_run(loop), 0);
	cr_expect_eq(calls, 1);
	/* Re-adding the same fd after removal works. */
	cr_assert_eq(loop_add_fd(loop, fd, EPOLLIN, on_remove_self, &calls), 0);
	cr_assert_eq(loop_run(loop), 0);
	cr_expect_eq(calls, 2);
	close(fd);
	loop_free(loop);
}

/* ---- timers ---- */

struct order {
	int seen[16];
	int n;
	int stop_after;
};

struct tagged {
	struct order *o;
	int tag;
};

static void on_tagged(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct tagged *tg = ctx;

	(void)t;
	tg->o->seen[tg->o->n++] = tg->tag;
	if (tg->o->n == tg->o->stop_after)
		loop_stop(loop);
}

static uint64_t mono_ms(void)
{
	return loop_now_ms();
}

Test(loop, timers_fire_in_due_order)
{
	struct xm_loop *loop = loop_new();
	struct order o = { .stop_after = 6 };
	/* Added out of order; two pairs share a due time and keep the order they were armed in. */
	const uint64_t due[] = { 60, 20, 40, 20, 5, 40 };
	const int expect[] = { 4, 1, 3, 2, 5, 0 };
	struct tagged tg[6];
	uint64_t start = mono_ms();
	int i;

	for (i = 0; i < 6; i++) {
		tg[i] = (struct tagged){ &o, i };
		cr_assert_not_null(loop_timer_add(loop, due[i], 0, on_tagged, &tg[i]));
	}
	cr_assert_eq(loop_run(loop), 0);
	cr_assert_eq(o.n, 6);
	for (i = 0; i < 6; i++)
		cr_expect_eq(o.seen[i], expect[i], "firing %d: timer %d, expected %d", i, o.seen[i], expect[i]);
	cr_expect_geq(mono_ms() - start, 60, "the last timer waited its 60 ms");
	loop_free(loop); /* frees the fired one-shot timers */
}

struct periodic {
	int fired;
	uint64_t at[8];
};

static void on_periodic(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct periodic *p = ctx;

	p->at[p->fired++] = mono_ms();
	if (p->fired == 5) {
		loop_timer_cancel(loop, t);
		loop_stop(loop);
	}
}

Test(loop, periodic_timer)
{
	struct xm_loop *loop = loop_new();
	struct periodic p = { 0 };
	uint64_t start = mono_ms();
	int i;

	cr_assert_not_null(loop_timer_add(loop, 10, 20, on_periodic, &p));
	cr_assert_eq(loop_run(loop), 0);
	cr_assert_eq(p.fired, 5);
	/* Due times follow the first one by whole intervals: a late firing does not push the later ones. */
	for (i = 0; i < 5; i++)
		cr_expect_geq(p.at[i] - start, 10 + 20 * (uint64_t)i, "firing %d came %llu ms after the start", i,
			      (unsigned long long)(p.at[i] - start));
	loop_free(loop);
}

struct cancels {
	struct xm_timer *victim;
	int victim_calls, self_calls, killer_calls;
};

static void on_victim(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct cancels *c = ctx;

	(void)loop, (void)t;
	c->victim_calls++;
}

static void on_killer(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct cancels *c = ctx;

	(void)t;
	c->killer_calls++;
	loop_timer_cancel(loop, c->victim);
	c->victim = NULL;
}

static void on_cancel_self(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct cancels *c = ctx;

	c->self_calls++;
	loop_timer_cancel(loop, t);
	loop_timer_arm(loop, t, 1); /* ignored: cancelled */
	loop_timer_cancel(loop, t); /* twice is harmless inside the batch */
}

static void on_stop_timer(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	(void)t, (void)ctx;
	loop_stop(loop);
}

Test(loop, cancel_from_callbacks)
{
	struct xm_loop *loop = loop_new();
	struct cancels c = { 0 };

	/* Same due time: the killer was armed first, so it runs first and cancels the victim in the same pass. */
	cr_assert_not_null(loop_timer_add(loop, 10, 0, on_killer, &c));
	c.victim = loop_timer_add(loop, 10, 5, on_victim, &c);
	cr_assert_not_null(c.victim);
	/* Periodic, but cancels itself on its first firing. */
	cr_assert_not_null(loop_timer_add(loop, 5, 5, on_cancel_self, &c));
	cr_assert_not_null(loop_timer_add(loop, 60, 0, on_stop_timer, NULL));
	cr_assert_eq(loop_run(loop), 0);
	cr_expect_eq(c.killer_calls, 1);
	cr_expect_eq(c.victim_calls, 0, "a timer cancelled earlier in the same pass does not fire");
	cr_expect_eq(c.self_calls, 1, "a periodic timer that cancelled itself fires once");
	loop_free(loop);
}

struct rearm {
	int calls;
	uint64_t at[4];
};

static void on_rearm_self(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct rearm *r = ctx;

	r->at[r->calls++] = mono_ms();
	cr_expect(!loop_timer_armed(t), "a one-shot timer is disarmed while its callback runs");
	if (r->calls < 3)
		loop_timer_arm(loop, t, 15);
	else
		loop_stop(loop);
}

static void on_count(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	(void)loop, (void)t;
	(*(int *)ctx)++;
}

Test(loop, rearm_disarm_and_cancel_outside_the_loop)
{
	struct xm_loop *loop = loop_new();
	struct rearm r = { 0 };
	struct xm_timer *parked, *gone;
	int parked_calls = 0;

	/* Disarmed: it never fires, though it outlives the run; cancelled outside a batch: freed at once. */
	parked = loop_timer_add(loop, 1, 0, on_count, &parked_calls);
	gone = loop_timer_add(loop, 1, 0, on_count, &parked_calls);
	loop_timer_disarm(loop, parked);
	cr_expect(!loop_timer_armed(parked));
	loop_timer_cancel(loop, gone);
	loop_timer_cancel(loop, NULL);
	cr_assert_not_null(loop_timer_add(loop, 5, 0, on_rearm_self, &r));
	cr_assert_eq(loop_run(loop), 0);
	cr_assert_eq(r.calls, 3);
	cr_expect_geq(r.at[1] - r.at[0], 15);
	cr_expect_geq(r.at[2] - r.at[1], 15);
	cr_expect_eq(parked_calls, 0);
	/* Re-armed after the run, the parked timer fires on the next one. */
	loop_timer_arm(loop, parked, 1);
	cr_assert_not_null(loop_timer_add(loop, 30, 0, on_stop_timer, NULL));
	cr_assert_eq(loop_run(loop), 0);
	cr_expect_eq(parked_calls, 1);
	loop_free(loop);
}

/*
 * Many timers with pseudo-random due times come out sorted by (due time, arming order): the heap keeps its
 * order through removals from its middle.
 */
struct many {
	uint64_t last_due;
	int last_i;
	int fired, cancelled, bad;
	uint64_t due[200];
	struct xm_timer *t[200];
};

static void on_many(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct many *m = ctx;
	int i;

	for (i = 0; i < 200 && m->t[i] != t; i++)
		;
	cr_assert_lt(i, 200);
	if (m->due[i] < m->last_due || (m->due[i] == m->last_due && i < m->last_i))
		m->bad++;
	m->last_due = m->due[i];
	m->last_i = i;
	m->fired++;
	/* Every firing cancels a later one, exercising removal from the middle of the heap. */
	if (i + 1 < 200 && (i % 4) == 0 && m->t[(i * 7 + 3) % 200]) {
		int v = (i * 7 + 3) % 200;

		if (v != i && loop_timer_armed(m->t[v])) {
			loop_timer_cancel(loop, m->t[v]);
			m->t[v] = NULL;
			m->cancelled++;
		}
	}
}

Test(loop, heap_order_under_churn)
{
	struct xm_loop *loop = loop_new();
	static struct many m;
	unsigned int seed = 12345;
	int i;

	m.last_i = -1;
	for (i = 0; i < 200; i++) {
		uint64_t rel, before;

		seed = seed * 1103515245 + 12345;
		rel = 1 + (seed >> 16) % 80;
		/* The absolute due time is known exactly only when the clock did not tick during the add. */
		do {
			loop_timer_cancel(loop, m.t[i]);
			before = loop_now_ms();
			m.t[i] = loop_timer_add(loop, rel, 0, on_many, &m);
			cr_assert_not_null(m.t[i]);
		} while (loop_now_ms() != before);
		m.due[i] = before + rel;
	}
	cr_assert_not_null(loop_timer_add(loop, 120, 0, on_stop_timer, NULL));
	cr_assert_eq(loop_run(loop), 0);
	cr_expect_eq(m.bad, 0, "%d timers fired before an earlier-due one", m.bad);
	cr_expect_gt(m.cancelled, 10);
	cr_expect_eq(m.fired + m.cancelled, 200, "%d fired, %d cancelled", m.fired, m.cancelled);
	loop_free(loop);
}

/* ---- other threads ---- */

struct runner {
	struct xm_loop *loop;
	pthread_t thread;
	atomic_int returned;
	int rc;
};

static void *run_it(void *arg)
{
	struct runner *r = arg;

	r->rc = loop_run(r->loop);
	atomic_store(&r->returned, 1);
	return NULL;
}

static void start_runner(struct runner *r)
{
	r->loop = loop_new();
	cr_assert_not_null(r->loop);
	atomic_init(&r->returned, 0);
	cr_assert_eq(pthread_create(&r->thread, NULL, run_it, r), 0);
}

/* Joins within timeout_ms; false if the loop is still running. */
static bool join_within(struct runner *r, int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_timedjoin_np(r->thread, NULL, &ts) == 0;
}

Test(loop, stop_from_another_thread)
{
	struct runner r;

	start_runner(&r);
	usleep(50 * 1000); /* the loop is asleep in epoll_wait with no timer: only the eventfd can wake it */
	cr_expect_eq(atomic_load(&r.returned), 0);
	loop_stop(r.loop);
	cr_assert(join_within(&r, 2000), "loop_run returned after loop_stop from another thread");
	cr_expect_eq(r.rc, 0);
	loop_free(r.loop);
}

Test(loop, stop_before_run_returns_at_once_and_is_consumed)
{
	struct xm_loop *loop = loop_new();

	loop_stop(loop);
	cr_assert_eq(loop_run(loop), 0);
	/* The next run runs: stopped by a timer, not by the stale request. */
	cr_assert_not_null(loop_timer_add(loop, 20, 0, on_stop_timer, NULL));
	{
		uint64_t start = mono_ms();

		cr_assert_eq(loop_run(loop), 0);
		cr_expect_geq(mono_ms() - start, 20);
	}
	loop_free(loop);
}

static struct xm_loop *signal_loop;

static void on_sigusr1(int sig)
{
	(void)sig;
	loop_stop(signal_loop);
}

Test(loop, stop_from_a_signal_handler)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	struct runner r;
	sigset_t set;

	start_runner(&r);
	signal_loop = r.loop;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	/* Delivered to this (the test's) thread, not the loop's: the eventfd must carry the stop across. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	cr_assert_eq(pthread_sigmask(SIG_UNBLOCK, &set, NULL), 0);
	usleep(30 * 1000);
	cr_assert_eq(raise(SIGUSR1), 0);
	cr_assert(join_within(&r, 2000), "loop_run returned after loop_stop from a signal handler");
	loop_free(r.loop);
}

struct posted {
	pthread_t loop_thread;
	int order[8];
	atomic_int n;
	bool wrong_thread;
};

static struct posted posted;

static void on_posted(struct xm_loop *loop, void *arg)
{
	int i = atomic_fetch_add(&posted.n, 1);

	(void)loop;
	if (!pthread_equal(pthread_self(), posted.loop_thread))
		posted.wrong_thread = true;
	posted.order[i] = (int)(intptr_t)arg;
}

static void on_posted_stop(struct xm_loop *loop, void *arg)
{
	(void)arg;
	loop_stop(loop);
}

Test(loop, post_runs_on_the_loop_thread_in_order)
{
	struct runner r;
	int i;

	start_runner(&r);
	posted.loop_thread = r.thread;
	atomic_init(&posted.n, 0);
	usleep(20 * 1000);
	for (i = 0; i < 5; i++)
		cr_assert_eq(loop_post(r.loop, on_posted, (void *)(intptr_t)i), 0);
	cr_assert_eq(loop_post(r.loop, on_posted_stop, NULL), 0);
	cr_assert(join_within(&r, 2000), "the posted stop ran");
	cr_assert_eq(atomic_load(&posted.n), 5);
	cr_expect(!posted.wrong_thread, "posted work ran on the loop's thread");
	for (i = 0; i < 5; i++)
		cr_expect_eq(posted.order[i], i);
	/* Work posted after the loop stopped is dropped by loop_free without running (ASan: no leak). */
	cr_assert_eq(loop_post(r.loop, on_posted, (void *)(intptr_t)9), 0);
	loop_free(r.loop);
	cr_expect_eq(atomic_load(&posted.n), 5);
}

static void on_wake_probe(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	(void)loop, (void)t;
	atomic_fetch_add((atomic_int *)ctx, 1);
}

static atomic_int woken_timer_fired;

static void on_woken(struct xm_loop *loop, void *arg)
{
	(void)arg;
	/* A timer added from posted work: the wake-up recomputes epoll_wait's timeout for it. */
	cr_assert_not_null(loop_timer_add(loop, 10, 0, on_wake_probe, &woken_timer_fired));
	cr_assert_not_null(loop_timer_add(loop, 30, 0, on_stop_timer, NULL));
}

Test(loop, wake_from_another_thread)
{
	struct runner r;

	start_runner(&r);
	atomic_init(&woken_timer_fired, 0);
	usleep(20 * 1000);
	loop_wake(r.loop); /* a bare wake: the loop goes back to sleep, still running */
	usleep(20 * 1000);
	cr_expect_eq(atomic_load(&r.returned), 0);
	cr_assert_eq(loop_post(r.loop, on_woken, NULL), 0);
	cr_assert(join_within(&r, 2000), "the timer added on the loop's thread after a wake-up stopped it");
	cr_expect_eq(atomic_load(&woken_timer_fired), 1);
	loop_free(r.loop);
}

/* A paused fd is not watched for the pause, then watched again; loop_mod_fd ends a pause early. */
struct pausing {
	int calls;
	uint64_t at[4];
};

static void on_paused_readable(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct pausing *p = ctx;

	(void)events;
	p->at[p->calls++] = mono_ms();
	/* Still readable (never drained): without the pause this would run again at once. */
	if (p->calls == 1)
		cr_assert_eq(loop_pause_fd(loop, fd, 40), 0);
	else if (p->calls == 2)
		cr_assert_eq(loop_pause_fd(loop, fd, 10000), 0);
	else
		loop_stop(loop);
}

static void on_unpause(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	(void)t;
	cr_assert_eq(loop_mod_fd(loop, *(int *)ctx, EPOLLIN), 0);
}

Test(loop, pause_fd)
{
	struct xm_loop *loop = loop_new();
	struct pausing p = { 0 };
	int fd = make_readable_fd();

	cr_assert_eq(loop_add_fd(loop, fd, EPOLLIN, on_paused_readable, &p), 0);
	cr_assert_not_null(loop_timer_add(loop, 100, 0, on_unpause, &fd));
	cr_assert_eq(loop_run(loop), 0);
	cr_assert_eq(p.calls, 3);
	cr_expect_geq(p.at[1] - p.at[0], 40, "the pause lasted %llu ms", (unsigned long long)(p.at[1] - p.at[0]));
	cr_expect_lt(p.at[2] - p.at[0], 5000, "loop_mod_fd ended the 10 s pause");
	cr_expect_geq(p.at[2] - p.at[0], 100);
	cr_assert_eq(loop_pause_fd(loop, fd, 10), 0);
	cr_assert_eq(loop_del_fd(loop, fd), 0); /* with its resume timer: ASan sees no leak, no late callback */
	cr_assert_eq(loop_pause_fd(loop, fd, 10), -ENOENT);
	close(fd);
	loop_free(loop);
}

static int run_order[8], n_run;

static void run_a(struct xm_loop *loop, void *arg)
{
	(void)loop;
	run_order[n_run++] = (int)(intptr_t)arg;
}

static void run_b(struct xm_loop *loop, void *arg)
{
	(void)loop;
	run_order[n_run++] = 100 + (int)(intptr_t)arg;
}

/* After the loop stopped: only fn's work runs now; the rest stays queued, in order, for the next run. */
Test(loop, run_posted_runs_only_fns_work)
{
	struct xm_loop *loop = loop_new();

	cr_assert_not_null(loop);
	n_run = 0;
	cr_assert_eq(loop_post(loop, run_a, (void *)1), 0);
	cr_assert_eq(loop_post(loop, run_b, (void *)2), 0);
	cr_assert_eq(loop_post(loop, run_a, (void *)3), 0);
	cr_assert_eq(loop_post(loop, run_b, (void *)4), 0);
	loop_run_posted(loop, run_a);
	cr_assert_eq(n_run, 2);
	cr_expect_eq(run_order[0], 1);
	cr_expect_eq(run_order[1], 3);
	cr_assert_eq(loop_post(loop, run_a, (void *)5), 0);
	loop_run_posted(loop, run_b);
	cr_assert_eq(n_run, 4);
	cr_expect_eq(run_order[2], 102);
	cr_expect_eq(run_order[3], 104);
	loop_run_posted(loop, run_a);
	cr_assert_eq(n_run, 5, "kept work stays queued with what came after");
	cr_expect_eq(run_order[4], 5);
	loop_free(loop);
}

/* A closed gate drops posts (fn never runs); the gate lives while a poster holds a reference. */
Test(loop, post_gate_drops_after_close)
{
	struct xm_loop *loop = loop_new();
	struct xm_post_gate *g = loop ? post_gate_new(loop) : NULL;

	cr_assert_not_null(g);
	n_run = 0;
	post_gate_get(g); /* a poster's */
	cr_assert_eq(post_gate_post(g, run_a, (void *)1), 0);
	post_gate_close(g); /* the owner's reference goes; the poster's keeps it */
	cr_expect_eq(post_gate_post(g, run_a, (void *)2), -ESHUTDOWN);
	post_gate_put(g);
	loop_run_posted(loop, run_a);
	cr_expect_eq(n_run, 1);
	cr_expect_eq(run_order[0], 1);
	loop_free(loop);
}

/* ---- loop_defer: after the batch, on the loop's thread, without a wake-up ---- */

struct deferring {
	pthread_t loop_thread;
	int order[8], n;
	bool wrong_thread;
};

static struct deferring dfr;

static void defer_note(int tag)
{
	if (!pthread_equal(pthread_self(), dfr.loop_thread))
		dfr.wrong_thread = true;
	if (dfr.n < 8)
		dfr.order[dfr.n++] = tag;
}

static void on_deferred_last(struct xm_loop *loop, void *arg)
{
	(void)loop, (void)arg;
	defer_note(3);
}

static void on_deferred_stop(struct xm_loop *loop, void *arg)
{
	(void)arg;
	defer_note(2);
	/* Deferred as the loop stops: left over, it becomes posted work (loop_run_posted below runs it). */
	cr_assert_eq(loop_defer(loop, on_deferred_last, NULL), 0);
	loop_stop(loop);
}

static void on_deferred_first(struct xm_loop *loop, void *arg)
{
	(void)arg;
	defer_note(1);
	/* Deferred from deferred work: runs after a non-blocking look at the sockets, with nothing to wake it. */
	cr_assert_eq(loop_defer(loop, on_deferred_stop, NULL), 0);
}

static void on_defer_timer(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	(void)t, (void)ctx;
	dfr.loop_thread = pthread_self();
	cr_assert_eq(loop_defer(loop, on_deferred_first, NULL), 0);
	defer_note(0); /* the deferred work waits for the batch to end */
}

Test(loop, defer_runs_after_the_batch_and_keeps_the_loop_awake)
{
	struct runner r;

	memset(&dfr, 0, sizeof(dfr));
	r.loop = loop_new();
	cr_assert_not_null(r.loop);
	atomic_init(&r.returned, 0);
	/* No other timer and no fd: epoll_wait would sleep for ever if deferred work did not keep it awake. */
	cr_assert_not_null(loop_timer_add(r.loop, 5, 0, on_defer_timer, NULL));
	cr_assert_eq(pthread_create(&r.thread, NULL, run_it, &r), 0);
	cr_assert(join_within(&r, 2000), "the deferred chain ran and stopped the loop");
	cr_expect_eq(dfr.n, 3);
	cr_expect_eq(dfr.order[0], 0);
	cr_expect_eq(dfr.order[1], 1);
	cr_expect_eq(dfr.order[2], 2);
	cr_expect(!dfr.wrong_thread);
	/* The leftover went to the posted queue and woke the eventfd for a later loop_run. */
	loop_run_posted(r.loop, on_deferred_last);
	cr_expect_eq(dfr.n, 4);
	cr_expect_eq(dfr.order[3], 3);
	loop_free(r.loop);
}

Test(loop, defer_from_another_thread_is_a_post)
{
	struct runner r;

	start_runner(&r);
	posted.loop_thread = r.thread;
	usleep(20 * 1000);
	atomic_init(&posted.n, 0);
	posted.wrong_thread = false;
	cr_assert_eq(loop_defer(r.loop, on_posted, (void *)(intptr_t)0), 0);
	cr_assert_eq(loop_defer(r.loop, on_posted_stop, NULL), 0);
	cr_assert(join_within(&r, 2000), "work deferred from another thread was posted and ran");
	cr_expect_eq(atomic_load(&posted.n), 1);
	cr_expect(!posted.wrong_thread);
	loop_free(r.loop);
}
