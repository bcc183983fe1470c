// SPDX-License-Identifier: Apache-2.0
/* Posting a tunnel's outcome to its submitter (core/tunnel_done.h). */
#include "core/tunnel_done.h"

#include <errno.h>
#include <stdlib.h>

#include "core/post_gate.h"

struct done_msg {
	struct xm_tunnel_done d;
	struct xm_tunnel_result r;
};

/* On the submitter's loop. */
static void deliver(struct xm_loop *loop, void *arg)
{
	struct done_msg *m = arg;

	(void)loop;
	m->d.fn(m->d.arg, m->d.handle, &m->r);
	free(m);
}

void tunnel_done_post(const struct xm_tunnel_done *d, const struct xm_tunnel_result *r)
{
	struct done_msg *m;

	if (!d || !d->gate)
		return;
	m = malloc(sizeof(*m));
	if (m) {
		m->d = *d;
		m->r = *r;
		if (post_gate_post(d->gate, deliver, m))
			free(m);
	}
	post_gate_put(d->gate);
}

void tunnel_done_flush(struct xm_loop *loop)
{
	loop_run_posted(loop, deliver);
}

struct xm_tunnel_result tunnel_result_of(int status)
{
	if (status == 200)
		return (struct xm_tunnel_result){ .outcome = XM_TUNNEL_OPENED, .status = 200 };
	if (status > 0)
		return (struct xm_tunnel_result){ .outcome = XM_TUNNEL_REFUSED, .status = status };
	if (status == -ETIMEDOUT)
		return (struct xm_tunnel_result){ .outcome = XM_TUNNEL_TIMED_OUT, .err = status };
	return (struct xm_tunnel_result){ .outcome = XM_TUNNEL_FAILED, .err = status ? status : -ECONNREFUSED };
}
