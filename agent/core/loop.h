/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small epoll event loop: file descriptors with callbacks, timers in one min-heap (CLOCK_MONOTONIC ms),
 * and an eventfd through which other threads stop it, wake it or post work to it. The control loop
 * (config watcher, admin, metrics, ring buffers) runs on one; L7 workers will each run their own.
 *
 * Threads: everything runs on the loop's thread, except loop_wake, loop_stop and loop_post, which any
 * thread may call (loop_wake and loop_stop also from a signal handler).
 *
 * Removal is safe at any time on the loop's thread: a handler removed (or a timer cancelled) from inside
 * any callback is never called again, and its memory is released after the current batch of events.
 */
#ifndef XMESH_LOOP_H
#define XMESH_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct xm_loop;
struct xm_timer;

/* Called with the epoll events that fired. */
typedef void (*xm_loop_cb)(struct xm_loop *loop, int fd, uint32_t events, void *ctx);
/* Called when a timer is due. */
typedef void (*xm_timer_cb)(struct xm_loop *loop, struct xm_timer *timer, void *ctx);
/* Work posted from another thread, run on the loop's thread. */
typedef void (*xm_loop_work_fn)(struct xm_loop *loop, void *arg);

struct xm_loop *loop_new(void);
/* Frees the loop, its timers and unrun posted work (their fns are not called). Not while it runs. */
void loop_free(struct xm_loop *loop);

/* Watch fd for events (EPOLLIN …). The loop does not own fd. */
int loop_add_fd(struct xm_loop *loop, int fd, uint32_t events, xm_loop_cb cb, void *ctx);
/* Change the events watched on fd. */
int loop_mod_fd(struct xm_loop *loop, int fd, uint32_t events);
/*
 * Watch nothing on fd for ms, then its events again: a listener whose accept() fails for want of file
 * descriptors stays readable, and would otherwise spin the loop.
 */
int loop_pause_fd(struct xm_loop *loop, int fd, uint64_t ms);
/* Stop watching fd; its callback is not called again, not even for events of the current batch. */
int loop_del_fd(struct xm_loop *loop, int fd);

/*
 * A timer due after first_ms, then every interval_ms (0: once). It lives until loop_timer_cancel or
 * loop_free: a one-shot timer that fired stays disarmed and can be re-armed. NULL when out of memory.
 */
struct xm_timer *loop_timer_add(struct xm_loop *loop, uint64_t first_ms, uint64_t interval_ms, xm_timer_cb cb,
				void *ctx);
/* (Re-)arm to fire after ms (at least 1 ms from now), keeping its interval for later firings. */
void loop_timer_arm(struct xm_loop *loop, struct xm_timer *timer, uint64_t ms);
/* Disarm, keeping the handle. */
void loop_timer_disarm(struct xm_loop *loop, struct xm_timer *timer);
bool loop_timer_armed(const struct xm_timer *timer);
/* Disarm and release (NULL is a no-op). Safe from any callback, the timer's own included. */
void loop_timer_cancel(struct xm_loop *loop, struct xm_timer *timer);

/* CLOCK_MONOTONIC in ms, the clock timers run on. */
uint64_t loop_now_ms(void);
/*
 * loop_now_ms() when the current batch of events began (read once per batch), or now outside loop_run: a
 * timestamp for bookkeeping done per event, where the batch's own duration does not matter.
 */
uint64_t loop_batch_ms(const struct xm_loop *loop);

/* Runs until loop_stop(); returns 0, or a negative errno if epoll itself failed. */
int loop_run(struct xm_loop *loop);
/*
 * Makes loop_run return once the current batch of events is done (or at once, when called before
 * loop_run). Any thread; async-signal-safe.
 */
void loop_stop(struct xm_loop *loop);
/* Wakes loop_run from epoll_wait. Any thread; async-signal-safe. */
void loop_wake(struct xm_loop *loop);
/*
 * Runs fn(loop, arg) on the loop's thread, in posting order, soon. Any thread (not from a signal
 * handler: it allocates). Returns 0 or -ENOMEM.
 */
int loop_post(struct xm_loop *loop, xm_loop_work_fn fn, void *arg);
/*
 * loop_post for the loop's own thread inside loop_run: fn(loop, arg) runs once the current batch of events has
 * been handled, before the next epoll_wait sleeps, without the lock and the eventfd write and wake-up a post
 * costs (one system call and one epoll round trip per use on a hot path). Called from any other thread, or
 * outside loop_run, it is loop_post. Returns 0 or -ENOMEM.
 */
int loop_defer(struct xm_loop *loop, xm_loop_work_fn fn, void *arg);
/*
 * The loop's thread, outside loop_run (after it returned): runs the work posted so far whose function is fn
 * now, keeping the rest queued: completions that carry memory, before the loop is freed (loop_free drops
 * posted work without calling it).
 */
void loop_run_posted(struct xm_loop *loop, xm_loop_work_fn fn);

#endif
