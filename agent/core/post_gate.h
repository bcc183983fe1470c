/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A loop that other threads post to, and that its owner may free while they still hold a way to it: the
 * owner closes the gate first, after which posts are dropped instead of touching a freed loop. Reference
 * counted: each thread that may post later holds a reference (post_gate_get), the owner holds the first.
 *
 * Used for the tunnel's completions (core/tunnel_done.h): the hbone thread outlives the L7 workers it answers
 * (modules close in reverse order), so a plain loop pointer could dangle.
 */
#ifndef XMESH_CORE_POST_GATE_H
#define XMESH_CORE_POST_GATE_H

#include "core/loop.h"

struct xm_post_gate;

/* A gate to loop, with the owner's reference. NULL when out of memory. */
struct xm_post_gate *post_gate_new(struct xm_loop *loop);
/* Any thread: one more reference (a lock-free increment). Returns g. */
struct xm_post_gate *post_gate_get(struct xm_post_gate *g);
/* Any thread: drops a reference; the last one frees the gate. NULL is a no-op. */
void post_gate_put(struct xm_post_gate *g);
/* Any thread: loop_post(fn, arg) unless the gate is closed; 0, -ESHUTDOWN (closed: fn never runs) or -ENOMEM. */
int post_gate_post(struct xm_post_gate *g, xm_loop_work_fn fn, void *arg);
/*
 * The owner, before freeing the loop: no post reaches it from now on (one in progress is waited for). Work
 * posted before stays queued: loop_run_posted runs it. Drops the owner's reference.
 */
void post_gate_close(struct xm_post_gate *g);

#endif
