/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a tunnelled connection's opening ended, told to the thread that asked for it (daemon/tunnel.h's
 * tunnel_submit, l7/proxy.h's l7_tunnel_fn): the tunnel's thread posts the outcome once it is known, on the
 * submitter's loop, through a gate (core/post_gate.h) so that a submitter that went away is never touched.
 */
#ifndef XMESH_CORE_TUNNEL_DONE_H
#define XMESH_CORE_TUNNEL_DONE_H

#include <stdint.h>

struct xm_loop;
struct xm_post_gate;

enum xm_tunnel_outcome {
	XM_TUNNEL_OPENED,    /* the CONNECT got 200: bytes flow from now on */
	XM_TUNNEL_REFUSED,   /* the peer answered another :status (503: its target refused; 400, 401 ...) */
	XM_TUNNEL_FAILED,    /* no stream: no route, TCP/TLS failure, wrong peer identity, unknown target, reset */
	XM_TUNNEL_TIMED_OUT, /* the TCP connect or the TLS handshake took too long */
	XM_TUNNEL_OUTCOMES
};

struct xm_tunnel_result {
	enum xm_tunnel_outcome outcome;
	int status; /* the CONNECT's :status (200 when opened, the refusal's), 0 when none came */
	int err;    /* FAILED, TIMED_OUT: a negative errno; else 0 */
};

/*
 * fn(arg, handle, result) runs once on the gate's loop, unless the gate was closed first. arg is long-lived
 * (the worker); handle names the connection and is no pointer: the submitter looks it up, so an answer that
 * comes after the connection was closed finds nothing (never a dangling pointer).
 */
typedef void (*xm_tunnel_done_fn)(void *arg, uint64_t handle, const struct xm_tunnel_result *r);

struct xm_tunnel_done {
	struct xm_post_gate *gate; /* the submitter's loop; tunnel_submit takes a reference when it returns 0 */
	xm_tunnel_done_fn fn;
	void *arg;
	uint64_t handle;
};

/*
 * The tunnel's side, any thread: posts r to d (copied: d may go now) and drops the reference d holds on its
 * gate. Once per accepted submission. A post that fails (closed gate, no memory) is dropped: the submitter's
 * connect timeout is its answer then.
 */
void tunnel_done_post(const struct xm_tunnel_done *d, const struct xm_tunnel_result *r);
/*
 * The submitter's loop thread, after closing its gate and before freeing the loop: runs the answers posted
 * before the gate closed (they find no connection; their memory is freed).
 */
void tunnel_done_flush(struct xm_loop *loop);
/* The result of a stream's on_open status (200, another :status or a negative errno). */
struct xm_tunnel_result tunnel_result_of(int status);

#endif
