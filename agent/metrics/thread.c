// SPDX-License-Identifier: Apache-2.0
#include "metrics/thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"

struct xm_metrics_thread {
	struct xm_loop *loop;
	struct xm_metrics *metrics;
	pthread_t thread;
	int stop_fd; /* an eventfd: written by the stopping thread, read on the metrics loop */
};

static void on_stop(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	uint64_t v;

	(void)events, (void)ctx;
	if (read(fd, &v, sizeof(v)) == sizeof(v))
		loop_stop(loop);
}

static void *run(void *arg)
{
	struct xm_metrics_thread *t = arg;
	int err = loop_run(t->loop);

	if (err)
		log_error("metrics: event loop: %s", strerror(-err));
	return NULL;
}

static void cleanup(struct xm_metrics_thread *t)
{
	metrics_close(t->metrics);
	loop_free(t->loop);
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	free(t);
}

struct xm_metrics_thread *metrics_thread_start(const char *addr, xm_metrics_collect_cb collect, void *ctx)
{
	struct xm_metrics_thread *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return NULL;
	t->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	t->loop = loop_new();
	if (t->stop_fd < 0 || !t->loop || loop_add_fd(t->loop, t->stop_fd, EPOLLIN, on_stop, t) < 0) {
		log_error("metrics: thread setup: %s", strerror(errno));
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
	uint64_t one = 1;

	if (!t)
		return;
	if (write(t->stop_fd, &one, sizeof(one)) != sizeof(one))
		log_warn("metrics: could not signal the metrics thread: %s", strerror(errno));
	pthread_join(t->thread, NULL);
	cleanup(t);
}
