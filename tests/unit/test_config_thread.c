// SPDX-License-Identifier: Apache-2.0
/* Config builds off the control loop: results come back on the loop's thread, in order, and refusals too. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "config/cache.h"
#include "config/model.h"
#include "core/loop.h"
#include "daemon/config_thread.h"
#include "test_config.h"

static const char good_yaml[] = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: default\n"
				"spec:\n  clusterIP: 10.96.0.10\n  ports:\n  - port: 80\n    targetPort: 8080\n";

struct delivered {
	struct config_build *b;
	pthread_t thread;
};

static void on_done(struct config_build *b, void *ctx)
{
	struct delivered *d = ctx;

	d->b = b;
	d->thread = pthread_self();
}

static void stop_when_done(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct delivered *d = ctx;
	static int waited;

	(void)timer;
	if (d->b || ++waited > 500) /* 5 s at most */
		loop_stop(loop);
}

static struct config_build *request_and_wait(struct config_thread *t, struct xm_loop *loop, struct delivered *d)
{
	d->b = NULL;
	config_thread_request(t, "test");
	cr_assert_not_null(loop_timer_add(loop, 10, 10, stop_when_done, d));
	loop_run(loop);
	cr_assert_not_null(d->b, "no build delivered within 5 s");
	cr_expect(pthread_equal(d->thread, pthread_self()), "delivered on another thread than the loop's");
	return d->b;
}

Test(config_thread, a_requested_build_comes_back_on_the_loop)
{
	char *path = temp_yaml(good_yaml);
	const char *paths[] = { path };
	struct xm_compile_opts opts = { .node_name = "node1", .maglev_size = 251 };
	struct xm_loop *loop = loop_new();
	struct delivered d = { 0 };
	struct config_thread *t;
	struct config_build *b, *now;

	cr_assert_not_null(loop);
	t = config_thread_start(loop, paths, 1, &opts, on_done, &d);
	cr_assert_not_null(t);
	b = request_and_wait(t, loop, &d);
	cr_expect_eq(b->err, 0);
	cr_assert_not_null(b->snap);
	cr_expect_eq(b->snap->lb.n_services, 1);
	/* A build on demand is numbered after it: the daemon drops a result older than one it applied. */
	now = config_thread_build_now(t, "now");
	cr_assert_not_null(now);
	cr_expect_gt(now->seq, b->seq);
	config_build_free(now);
	config_build_free(b);
	config_thread_stop(t);
	loop_free(loop);
	unlink(path);
	free(path);
}

Test(config_thread, a_refused_config_comes_back_with_its_errors)
{
	char *path =
	    temp_yaml("apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  clusterIP: 10.96.0.300\n"
		      "  ports:\n  - port: 80\n");
	const char *paths[] = { path };
	struct xm_compile_opts opts = { .maglev_size = 251 };
	struct xm_loop *loop = loop_new();
	struct delivered d = { 0 };
	struct config_thread *t = config_thread_start(loop, paths, 1, &opts, on_done, &d);
	struct config_build *b;

	cr_assert_not_null(t);
	b = request_and_wait(t, loop, &d);
	cr_expect_null(b->snap);
	cr_expect_neq(b->err, 0);
	cr_expect_gt(b->diags.n, 0, "the error is reported, with its place");
	config_build_free(b);
	config_thread_stop(t);
	loop_free(loop);
	unlink(path);
	free(path);
}

/* Stopping with a build asked for and never delivered frees it (ASan checks). */
Test(config_thread, stop_with_a_build_in_flight)
{
	char *path = temp_yaml(good_yaml);
	const char *paths[] = { path };
	struct xm_compile_opts opts = { .maglev_size = 251 };
	struct xm_loop *loop = loop_new();
	struct delivered d = { 0 };
	struct config_thread *t = config_thread_start(loop, paths, 1, &opts, on_done, &d);

	cr_assert_not_null(t);
	config_thread_request(t, "test");
	usleep(50000);
	config_thread_stop(t);
	cr_expect_null(d.b, "nothing is delivered without the loop running");
	loop_free(loop);
	unlink(path);
	free(path);
}

struct counted {
	int n;
	struct config_build *last;
	double first_ms; /* monotonic: the first delivery */
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void count_done(struct config_build *b, void *ctx)
{
	struct counted *c = ctx;

	if (!c->n++)
		c->first_ms = mono_ms();
	config_build_free(c->last);
	c->last = b;
}

static void stop_now(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	(void)timer, (void)ctx;
	loop_stop(loop);
}

/* API events arriving within the delay join one build (a rollout's EndpointSlice updates make one apply). */
Test(config_thread, api_changes_within_the_delay_make_one_build)
{
	struct xm_compile_opts opts = { .node_name = "node1", .maglev_size = 251 };
	struct xm_loop *loop = loop_new();
	struct counted c = { 0 };
	struct config_thread *t;
	double t0;

	cr_assert_not_null(loop);
	t = config_thread_start(loop, NULL, 0, &opts, count_done, &c);
	cr_assert_not_null(t);
	t0 = mono_ms();
	for (int i = 0; i < 5; i++) {
		struct api_change ch = { .key = NULL, .objs = calloc(1, sizeof(struct xm_config)) };
		char key[32];

		snprintf(key, sizeof(key), "Service/n/s%d", i);
		ch.key = strdup(key);
		cr_assert(ch.key && ch.objs);
		cr_assert_eq(config_thread_api_changes(t, &ch, 1, 200), 0);
		usleep(10000); /* 5 batches over ~50 ms, all within the 200 ms */
	}
	cr_assert_not_null(loop_timer_add(loop, 600, 0, stop_now, NULL));
	loop_run(loop);
	cr_expect_eq(c.n, 1, "%d builds for 5 batches within the delay", c.n);
	cr_assert_not_null(c.last);
	cr_expect_str_eq(c.last->why, "API changes");
	cr_expect_geq(c.first_ms - t0, 200.0, "built %.0f ms after the first change", c.first_ms - t0);
	config_build_free(c.last);
	config_thread_stop(t);
	loop_free(loop);
}
