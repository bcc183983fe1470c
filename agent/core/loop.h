/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small epoll event loop: file descriptors with callbacks, and timers as timerfds. The control loop
 * (config watcher, admin, metrics, ring buffers) runs on one; L7 workers will each run their own.
 */
#ifndef XMESH_LOOP_H
#define XMESH_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct xm_loop;
struct xm_loop_handler;

/* Called with the epoll events that fired. */
typedef void (*xm_loop_cb)(struct xm_loop *loop, int fd, uint32_t events, void *ctx);

struct xm_loop *loop_new(void);
void loop_free(struct xm_loop *loop);

/* Watch fd for events (EPOLLIN …). The loop does not own fd. */
int loop_add_fd(struct xm_loop *loop, int fd, uint32_t events, xm_loop_cb cb, void *ctx);
int loop_del_fd(struct xm_loop *loop, int fd);

/* A timer firing every interval_ms (0: once, after first_ms). Returns its fd (owned by the loop). */
int loop_add_timer(struct xm_loop *loop, uint64_t first_ms, uint64_t interval_ms, xm_loop_cb cb, void *ctx);
/* Re-arm a timer made by loop_add_timer to fire once after ms. */
int loop_arm_timer(int timer_fd, uint64_t ms);

/* Runs until loop_stop(); returns 0, or a negative errno if epoll itself failed. */
int loop_run(struct xm_loop *loop);
void loop_stop(struct xm_loop *loop);

#endif
