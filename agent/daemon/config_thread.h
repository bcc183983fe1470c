/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure half of an apply — read the files (through the parse cache), validate, compile into a snapshot —
 * on a thread of its own, so that at 10,000 services the control loop spends only the publishing part of
 * an apply (a few ms) and keeps answering admin, outlier events and the watcher meanwhile. Builds carry a
 * sequence number: the daemon drops a result older than one it already applied.
 */
#ifndef XMESH_DAEMON_CONFIG_THREAD_H
#define XMESH_DAEMON_CONFIG_THREAD_H

#include <stddef.h>
#include <stdint.h>

#include "compile/compile.h"
#include "config/model.h"

struct xm_loop;
struct xm_snapshot;

/* One build: either diags/err (the config was refused) or a snapshot with one reference. */
struct config_build {
	uint64_t seq;
	char why[64];
	int err;		  /* 0, or why no snapshot: the load's error (diags says more) or -ENOMEM */
	struct xm_diags diags;	  /* the config's errors when the load failed */
	struct xm_snapshot *snap; /* NULL when refused */
	double ms, cpu_ms;	  /* wall clock and CPU of the build */
};

void config_build_free(struct config_build *b);

struct config_thread;

/*
 * Starts the thread. paths and opts must outlive it. Results of config_thread_request are handed to done
 * on loop's thread (ctrl), one at a time, newest last; a result that a newer one overtook before delivery is
 * dropped. NULL on failure (logged).
 */
struct config_thread *config_thread_start(struct xm_loop *ctrl, const char *const *paths, size_t n_paths,
					  const struct xm_compile_opts *opts,
					  void (*done)(struct config_build *b, void *ctx), void *ctx);

/* Asks for a build (coalesced with one already asked for and not started). Returns at once. */
void config_thread_request(struct config_thread *t, const char *why);

/*
 * Changes to the objects from the Kubernetes API (config/cache.h), taken (each change's key and objects) and
 * applied to the parse cache at the start of the next build, which is asked for delay_ms after the first
 * change not yet built (events arriving meanwhile join it). Returns at once; -ENOMEM drops the changes.
 */
struct api_change;
int config_thread_api_changes(struct config_thread *t, struct api_change *changes, size_t n, unsigned delay_ms);

/* API objects the last build left out because of errors involving other objects (logged by the thread). */
size_t config_thread_api_excluded(struct config_thread *t);

/*
 * Builds now, on the config thread, and waits for it (the start, an admin reload: their answers depend on
 * it). Returns the result, which the caller frees, or NULL without memory. A build in progress finishes
 * first.
 */
struct config_build *config_thread_build_now(struct config_thread *t, const char *why);

/* Stops and joins the thread; an undelivered result is freed. NULL is fine. */
void config_thread_stop(struct config_thread *t);

#endif
