// SPDX-License-Identifier: Apache-2.0
#include "daemon/config_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "config/cache.h"
#include "config/fields.h"
#include "core/background.h"
#include "core/log.h"
#include "core/loop.h"

struct config_thread {
	struct xm_loop *ctrl;
	const char *const *paths;
	size_t n_paths;
	struct xm_compile_opts opts;
	void (*done)(struct config_build *b, void *ctx);
	void *ctx;
	pthread_t thread;
	pthread_mutex_t build_lock; /* one build at a time: guards cache and seq */
	struct xm_config_cache *cache;
	uint64_t seq;
	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t wake, built_now;
	bool requested, stop, now_requested, now_done;
	char why[64], now_why[64];
	struct config_build *now_result; /* for config_thread_build_now, which waits for it */
	struct config_build *mailbox;	 /* built, not yet delivered to ctrl */
	struct api_change *pending;	 /* API changes for the next build */
	size_t n_pending;
	double due_ms;		    /* monotonic: when the requested build may start (API events coalesce until then) */
	atomic_size_t api_excluded; /* API objects the last build left out (cross-object errors) */
};

static double clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void config_build_free(struct config_build *b)
{
	if (!b)
		return;
	diags_free(&b->diags);
	snapshot_put(b->snap);
	free(b);
}

/*
 * API objects left out for errors that involve other objects (config/cache.h): logged when they start and
 * stop being left out, not at every build. Under build_lock.
 */
static void report_excluded(struct config_thread *t)
{
	if (!t->cache)
		return;
	for (size_t i = 0; i < t->cache->n_api; i++) {
		struct api_entry *e = t->cache->api[i];

		if (e->excluded && !e->was_excluded)
			log_error("kubernetes: %s rejected (the other objects apply): %s", e->key, e->why);
		else if (!e->excluded && e->was_excluded)
			log_info("kubernetes: %s applies again", e->key);
		e->was_excluded = e->excluded;
	}
	atomic_store(&t->api_excluded, t->cache->n_excluded);
}

/* Load (unchanged files come from the cache), validate, compile. Under build_lock. */
static struct config_build *build(struct config_thread *t, const char *why)
{
	struct config_build *b = calloc(1, sizeof(*b));
	struct xm_config cfg = { 0 };
	double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);

	if (!b)
		return NULL;
	pthread_mutex_lock(&t->build_lock);
	b->seq = ++t->seq;
	snprintf(b->why, sizeof(b->why), "%s", why);
	if (!t->cache)
		t->cache = config_cache_new(); /* NULL: every file is parsed */
	pthread_mutex_lock(&t->lock);
	struct api_change *changes = t->pending;
	size_t n_changes = t->n_pending;

	t->pending = NULL;
	t->n_pending = 0;
	pthread_mutex_unlock(&t->lock);
	if (n_changes && (!t->cache || cache_api_apply(t->cache, changes, n_changes)))
		log_error("config: out of memory for objects from the API; some changes are not applied");
	if (n_changes && !t->cache)
		api_changes_free(changes, n_changes);
	free(changes);
	b->err = t->cache ? config_load_cached(t->cache, t->paths, t->n_paths, &cfg, &b->diags)
			  : config_load(t->paths, t->n_paths, &cfg, &b->diags);
	if (!b->err)
		b->snap = snapshot_build(&cfg, &t->opts, &b->err);
	config_free(&cfg);
	report_excluded(t);
	pthread_mutex_unlock(&t->build_lock);
	b->ms = clock_ms(CLOCK_MONOTONIC) - t0;
	b->cpu_ms = clock_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
	return b;
}

/* On the control loop: the newest result, if it was not delivered yet. */
static void deliver(struct xm_loop *loop, void *arg)
{
	struct config_thread *t = arg;
	struct config_build *b;

	(void)loop;
	pthread_mutex_lock(&t->lock);
	b = t->mailbox;
	t->mailbox = NULL;
	pthread_mutex_unlock(&t->lock);
	if (b)
		t->done(b, t->ctx);
}

static void *run(void *arg)
{
	struct config_thread *t = arg;
	char why[64];

	thread_set_background("config");

	for (;;) {
		struct config_build *b, *old;

		pthread_mutex_lock(&t->lock);
		while (!t->requested && !t->now_requested && !t->stop)
			pthread_cond_wait(&t->wake, &t->lock);
		if (t->stop) {
			pthread_mutex_unlock(&t->lock);
			return NULL;
		}
		if (t->now_requested) {
			memcpy(why, t->now_why, sizeof(why));
			t->now_requested = false;
			pthread_mutex_unlock(&t->lock);
			b = build(t, why);
			pthread_mutex_lock(&t->lock);
			t->now_result = b; /* NULL: no memory, which build_now reports */
			t->now_done = true;
			pthread_cond_signal(&t->built_now);
			pthread_mutex_unlock(&t->lock);
			continue;
		}
		if (t->due_ms > clock_ms(CLOCK_MONOTONIC)) {
			double due = t->due_ms;
			struct timespec ts = { .tv_sec = (time_t)(due / 1e3),
					       .tv_nsec = (long)((due - (double)(time_t)(due / 1e3) * 1e3) * 1e6) };

			pthread_cond_timedwait(&t->wake, &t->lock, &ts);
			pthread_mutex_unlock(&t->lock);
			continue; /* woken early (a build_now, stop) or due: look again */
		}
		t->requested = false;
		t->due_ms = 0;
		memcpy(why, t->why, sizeof(why));
		pthread_mutex_unlock(&t->lock);

		b = build(t, why);
		if (!b) {
			log_error("config: out of memory for a build (%s); still serving the previous config", why);
			continue;
		}
		pthread_mutex_lock(&t->lock);
		old = t->mailbox; /* overtaken before the loop took it: the newer one supersedes it */
		t->mailbox = b;
		pthread_mutex_unlock(&t->lock);
		config_build_free(old);
		if (!old && loop_post(t->ctrl, deliver, t))
			log_error("config: cannot hand a build to the control loop; it waits for the next one");
	}
}

struct config_thread *config_thread_start(struct xm_loop *ctrl, const char *const *paths, size_t n_paths,
					  const struct xm_compile_opts *opts,
					  void (*done)(struct config_build *b, void *ctx), void *ctx)
{
	struct config_thread *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return NULL;
	*t = (struct config_thread){
		.ctrl = ctrl, .paths = paths, .n_paths = n_paths, .opts = *opts, .done = done, .ctx = ctx
	};
	pthread_mutex_init(&t->build_lock, NULL);
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the coalescing deadline is monotonic */
	pthread_cond_init(&t->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&t->built_now, NULL);
	err = pthread_create(&t->thread, NULL, run, t);
	if (err) {
		log_error("config: start thread: %s", strerror(err));
		pthread_cond_destroy(&t->wake);
		pthread_cond_destroy(&t->built_now);
		pthread_mutex_destroy(&t->lock);
		pthread_mutex_destroy(&t->build_lock);
		free(t);
		return NULL;
	}
	return t;
}

void config_thread_request(struct config_thread *t, const char *why)
{
	pthread_mutex_lock(&t->lock);
	if (!t->requested)
		snprintf(t->why, sizeof(t->why), "%s", why);
	t->requested = true;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
}

int config_thread_api_changes(struct config_thread *t, struct api_change *changes, size_t n, unsigned delay_ms)
{
	struct api_change *grown;

	if (!n)
		return 0;
	pthread_mutex_lock(&t->lock);
	grown = realloc(t->pending, (t->n_pending + n) * sizeof(*t->pending));
	if (!grown) {
		pthread_mutex_unlock(&t->lock);
		api_changes_free(changes, n);
		return -ENOMEM;
	}
	t->pending = grown;
	memcpy(t->pending + t->n_pending, changes, n * sizeof(*changes));
	t->n_pending += n;
	if (!t->requested) {
		snprintf(t->why, sizeof(t->why), "%s", "API changes");
		t->due_ms = clock_ms(CLOCK_MONOTONIC) + delay_ms;
	}
	t->requested = true;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

struct config_build *config_thread_build_now(struct config_thread *t, const char *why)
{
	struct config_build *b;

	/* On the config thread all the same: every build allocates from one thread's heap (one arena). */
	pthread_mutex_lock(&t->lock);
	snprintf(t->now_why, sizeof(t->now_why), "%s", why);
	t->now_requested = true;
	t->now_done = false;
	pthread_cond_signal(&t->wake);
	while (!t->now_done)
		pthread_cond_wait(&t->built_now, &t->lock);
	b = t->now_result;
	t->now_result = NULL;
	pthread_mutex_unlock(&t->lock);
	return b;
}

void config_thread_stop(struct config_thread *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	/* A result posted but not delivered: the loop has stopped, its post is dropped with the loop. */
	config_build_free(t->mailbox);
	api_changes_free(t->pending, t->n_pending);
	free(t->pending);
	config_cache_free(t->cache);
	pthread_cond_destroy(&t->wake);
	pthread_cond_destroy(&t->built_now);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->build_lock);
	free(t);
}

size_t config_thread_api_excluded(struct config_thread *t)
{
	return t ? atomic_load(&t->api_excluded) : 0;
}
