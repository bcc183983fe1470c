// SPDX-License-Identifier: Apache-2.0
#include "metrics/thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/background.h"
#include "core/log.h"
#include "core/loop.h"

struct xm_metrics_thread {
	struct xm_loop *loop;
	struct xm_metrics *metrics;
	pthread_t thread;
};

static void *run(void *arg)
{
	struct xm_metrics_thread *t = arg;
	int err;

	thread_set_background("metrics");
	err = loop_run(t->loop);

	if (err)
		log_error("metrics: event loop: %s", strerror(-err));
	return NULL;
}

static void cleanup(struct xm_metrics_thread *t)
{
	metrics_close(t->metrics);
	loop_free(t->loop);
	free(t);
}

struct xm_metrics_thread *metrics_thread_start(const char *addr, xm_metrics_collect_cb collect, void *ctx)
{
	struct xm_metrics_thread *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return NULL;
	t->loop = loop_new();
	if (!t->loop) {
		log_error("metrics: event loop: %s", strerror(errno));
		cleanup(t);
		return NULL;
	}
	t->metrics = metrics_listen(t->loop, addr, collect, ctx);
	if (!t->metrics) {
		cleanup(t);
		return NULL;
	}
	err = pthread_create(&t->thread, NULL, run, t);
	if (err) {
		log_error("metrics: start thread: %s", strerror(err));
		cleanup(t);
		return NULL;
	}
	return t;
}

void metrics_thread_set_ready(struct xm_metrics_thread *t, bool ready)
{
	if (t)
		metrics_set_ready(t->metrics, ready);
}

void metrics_thread_stop(struct xm_metrics_thread *t)
{
	if (!t)
		return;
	loop_stop(t->loop); /* thread-safe: wakes the metrics loop */
	pthread_join(t->thread, NULL);
	cleanup(t);
}
