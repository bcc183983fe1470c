// SPDX-License-Identifier: Apache-2.0
/* A closable way to post to a loop (core/post_gate.h): a mutex taken by posters and the closer only. */
#include "core/post_gate.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct xm_post_gate {
	pthread_mutex_t mu;
	struct xm_loop *loop; /* NULL once closed */
	atomic_uint refs;
};

struct xm_post_gate *post_gate_new(struct xm_loop *loop)
{
	struct xm_post_gate *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	pthread_mutex_init(&g->mu, NULL);
	g->loop = loop;
	atomic_init(&g->refs, 1);
	return g;
}

struct xm_post_gate *post_gate_get(struct xm_post_gate *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void post_gate_put(struct xm_post_gate *g)
{
	if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&g->mu);
	free(g);
}

int post_gate_post(struct xm_post_gate *g, xm_loop_work_fn fn, void *arg)
{
	int err = -ESHUTDOWN;

	pthread_mutex_lock(&g->mu);
	if (g->loop)
		err = loop_post(g->loop, fn, arg);
	pthread_mutex_unlock(&g->mu);
	return err;
}

void post_gate_close(struct xm_post_gate *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->loop = NULL;
	pthread_mutex_unlock(&g->mu);
	post_gate_put(g);
}
