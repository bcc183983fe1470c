/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's own state: private to daemon.c and its renderer status.c; modules keep theirs. */
#ifndef XMESH_DAEMON_AGENT_H
#define XMESH_DAEMON_AGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "daemon/daemon.h"
#include "compile/snapshot.h"
#include "daemon/module.h"

#define XM_N_MODULES 7

struct xm_agent {
	struct xm_agent_opts opts;
	struct xm_loop *loop;
	const struct xm_module *modules[XM_N_MODULES];
	void *states[XM_N_MODULES]; /* NULL: the module is off (or not initialised) */
	size_t n_inited;
	struct xm_watch *watch;
	struct xm_compile_opts copts;
	struct config_thread *config; /* builds snapshots off the control loop */
	struct kube_client *kube;     /* --kubernetes / --kubeconfig: the API watchers; NULL without */
	bool kube_syncing;	  /* the start waits for the first lists: the admin socket answers, no build applies */
	uint64_t kube_sync_until; /* monotonic ms: the end of that wait */
	bool stopping;		  /* SIGTERM/SIGINT: loop_run returned to stop (also during the wait) */
	uint64_t applied_seq;	  /* the newest build applied (or refused): older results are dropped */
	struct xm_admin *admin;
	struct xm_metrics_thread *metrics;
	pthread_mutex_t snap_lock; /* guards the swap of snap against daemon_snapshot_acquire */
	struct xm_snapshot *snap;  /* in force; NULL until a config applied */
	uint64_t generation;
	atomic_ullong applies_ok, applies_failed;
	time_t last_apply; /* wall clock of the last attempt */
	char last_error[1024];
};

/* `xmesh status`: the agent's lines, then each module's. */
struct strbuf;
void daemon_render_status(struct xm_agent *a, bool json, struct strbuf *out);

#endif
