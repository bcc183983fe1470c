// SPDX-License-Identifier: Apache-2.0
#include "daemon/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "admin/admin.h"
#include "compile/snapshot.h"
#include "config/model.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "core/watch.h"
#include "daemon/agent.h"
#include "daemon/config_thread.h"
#include "datapath/datapath.h"
#include "datapath/l7_proxy_cgroup.h"
#include "datapath/xdp.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "metrics/registry.h"
#include "metrics/thread.h"

/* Initialised first to last, applied in this order, closed last to first (daemon/module.h). */
static const struct xm_module *const module_order[XM_N_MODULES] = {
	&xm_module_sock_lb, /* first: its maps are the ones the others load next to, and it assigns the ids */
	&xm_module_sockmap,   &xm_module_xdp,
	&xm_module_identity,			/* before the proxies that present its certificates */
	&xm_module_peer_auth, &xm_module_hbone, /* after identity: it presents its certificates */
	&xm_module_l7, /* last: the services it captures are published when it applies, and it drains first */
};

const struct xm_agent_opts *daemon_opts(const struct xm_agent *a)
{
	return &a->opts;
}

struct xm_loop *daemon_loop(const struct xm_agent *a)
{
	return a->loop;
}

const struct xm_snapshot *daemon_snapshot(const struct xm_agent *a)
{
	return a->snap;
}

struct xm_snapshot *daemon_snapshot_acquire(struct xm_agent *a)
{
	struct xm_snapshot *s;

	pthread_mutex_lock(&a->snap_lock);
	s = snapshot_get(a->snap);
	pthread_mutex_unlock(&a->snap_lock);
	return s;
}

void *daemon_module_state(const struct xm_agent *a, const struct xm_module *m)
{
	for (size_t i = 0; i < a->n_inited; i++)
		if (a->modules[i] == m)
			return a->states[i];
	return NULL;
}

/* Readers that hold the old snapshot keep it until they put it; the control loop lets go of it here. */
static void publish_snapshot(struct xm_agent *a, struct xm_snapshot *next)
{
	struct xm_snapshot *old;

	pthread_mutex_lock(&a->snap_lock);
	old = a->snap;
	a->snap = next;
	pthread_mutex_unlock(&a->snap_lock);
	snapshot_put(old);
}

static void log_diags(const struct xm_diags *diags)
{
	for (size_t i = 0; i < diags->n; i++) {
		const struct xm_diag *d = &diags->items[i];

		if (d->warning)
			log_warn("config: %s:%d:%d: warning: %s", d->loc.file ? d->loc.file : "?", d->loc.line,
				 d->loc.col, d->msg);
		else
			log_error("config: %s:%d:%d: %s", d->loc.file ? d->loc.file : "?", d->loc.line, d->loc.col,
				  d->msg);
	}
}

/* Every module serves next, in the daemon's order. Returns how many modules kept part of the old state. */
static int apply_modules(struct xm_agent *a, struct xm_snapshot *next)
{
	int failed = 0;
	size_t i;

	/* Additions that must be in place before anything is published (XDP's VIP pre-filter). */
	for (i = 0; i < a->n_inited; i++)
		if (a->states[i] && a->modules[i]->prepare && a->modules[i]->prepare(a->states[i], next))
			log_warn("%s: not prepared for the new config", a->modules[i]->name);
	for (i = 0; i < a->n_inited; i++) {
		if (!a->states[i] || !a->modules[i]->apply || !a->modules[i]->apply(a->states[i], next))
			continue;
		failed++;
		log_warn("%s: the new config is only partly applied", a->modules[i]->name);
	}
	return failed;
}

/* Milliseconds of clock id (monotonic: the apply's share of the loop; thread CPU: its own work). */
static double clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Publishes a build (config_thread.h): every module serves its snapshot, then the daemon swaps it in. A
 * refused config changes nothing: the datapath keeps serving the last good one. Control loop only.
 */
static void apply_build(struct xm_agent *a, struct config_build *b)
{
	double t0 = clock_ms(CLOCK_MONOTONIC), cpu0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
	struct xm_snapshot *next;
	int failed;

	if (b->seq <= a->applied_seq) {
		log_debug("config: build %llu (%s) overtaken by build %llu; dropped", (unsigned long long)b->seq,
			  b->why, (unsigned long long)a->applied_seq);
		return;
	}
	a->applied_seq = b->seq;
	a->last_apply = time(NULL);
	if (!b->snap && b->diags.n) {
		log_diags(&b->diags);
		const struct xm_diag *first = NULL;
		size_t n_err = 0;

		for (size_t i = 0; i < b->diags.n; i++)
			if (!b->diags.items[i].warning && !n_err++)
				first = &b->diags.items[i];
		snprintf(a->last_error, sizeof(a->last_error), "%zu config error(s), first: %s", n_err,
			 first ? first->msg : b->diags.items[0].msg);
		log_error("config rejected (%s): %zu error(s); still serving the previous config", b->why, n_err);
		a->applies_failed++;
		return;
	}
	if (!b->snap) {
		snprintf(a->last_error, sizeof(a->last_error), "%s", strerror(-b->err));
		log_error("config rejected (%s): %s; still serving the previous config", b->why, strerror(-b->err));
		a->applies_failed++;
		return;
	}
	log_diags(&b->diags); /* warnings only: the config applies */
	next = b->snap;
	b->snap = NULL; /* the daemon's reference now */
	next->generation = ++a->generation;
	failed = apply_modules(a, next);
	publish_snapshot(a, next);
	if (failed) {
		snprintf(a->last_error, sizeof(a->last_error), "%d module(s) kept part of their previous state",
			 failed);
		a->applies_failed++;
	} else {
		a->last_error[0] = '\0';
		a->applies_ok++;
	}
	log_info("config applied (%s): generation %llu, %zu service ports%s in %.1f ms of the control loop (CPU %.1f "
		 "ms), built in %.1f ms on the config thread (CPU %.1f ms)",
		 b->why, (unsigned long long)next->generation, next->lb.n_services, failed ? ", with errors" : "",
		 clock_ms(CLOCK_MONOTONIC) - t0, clock_ms(CLOCK_THREAD_CPUTIME_ID) - cpu0, b->ms, b->cpu_ms);
}

static void on_build(struct config_build *b, void *ctx)
{
	struct xm_agent *a = ctx;

	/* Built from half the lists: the start's build, after the wait, has all of it (and a later seq). */
	if (a->kube_syncing)
		log_debug("config: build %llu (%s) during the wait for the first lists; dropped",
			  (unsigned long long)b->seq, b->why);
	else
		apply_build(a, b);
	config_build_free(b);
}

/* The start and an admin reload wait for their build: what they answer depends on it. */
static void agent_reload_now(struct xm_agent *a, const char *why)
{
	struct config_build *b = config_thread_build_now(a->config, why);

	if (!b) {
		log_error("config: out of memory for a build (%s); still serving the previous config", why);
		a->applies_failed++;
		return;
	}
	on_build(b, a);
}

/* The watcher and SIGHUP: built on the config thread, applied when it hands the result back. */
static void on_config_change(void *ctx)
{
	struct xm_agent *a = ctx;

	config_thread_request(a->config, "config changed");
}

/* 500 ms: ejections that end without a connection to notice, garbage past its grace period, neighbours. */
static void on_tick(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct xm_agent *a = ctx;
	uint64_t now = loop_now_ms();

	(void)loop, (void)timer;
	for (size_t i = 0; i < a->n_inited; i++)
		if (a->states[i] && a->modules[i]->tick)
			a->modules[i]->tick(a->states[i], a->snap, now);
}

static void on_signal(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct signalfd_siginfo si;

	(void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		config_thread_request(((struct xm_agent *)ctx)->config, "SIGHUP");
		return;
	}
	log_info("signal %d: stopping", si.ssi_signo);
	((struct xm_agent *)ctx)->stopping = true;
	loop_stop(loop);
}

static void on_admin(const char *command, struct strbuf *out, void *ctx)
{
	struct xm_agent *a = ctx;

	if (!strcmp(command, "status")) {
		daemon_render_status(a, false, out);
		return;
	}
	/* Costs the loop nothing: how long it takes to answer is how long the loop was busy (bench/apply.c). */
	if (!strcmp(command, "ping")) {
		sb_puts(out, "pong\n");
		return;
	}
	if (!strcmp(command, "status json")) {
		daemon_render_status(a, true, out);
		return;
	}
	if (!strcmp(command, "routes") || !strcmp(command, "routes json")) {
		const struct xm_snapshot *snap = daemon_snapshot(a);
		bool json = command[6] != '\0';

		if (snap)
			l7_routes_render(&snap->routes, json, out);
		else
			sb_puts(out, json ? "{\"services\":[]}\n" : "no config applied yet\n");
		return;
	}
	if (!strcmp(command, "reload")) {
		if (a->kube_syncing) {
			sb_puts(out, "error: the agent is starting: it waits for the first lists of the Kubernetes API "
				     "(xmesh status shows which kinds); the first build follows\n");
			return;
		}
		agent_reload_now(a, "admin reload");
		sb_printf(out, "%s\n", a->last_error[0] ? a->last_error : "ok");
		return;
	}
	for (size_t i = 0; i < a->n_inited; i++)
		if (a->states[i] && a->modules[i]->admin && a->modules[i]->admin(a->states[i], command, out))
			return;
	sb_printf(out,
		  "error: unknown command \"%s\" (status, status json, routes, routes json, certs, certs json, reload, "
		  "ping, sockmap on|off|status)\n",
		  command);
}

/* The metrics thread: the daemon's own families, then each module's, all from one snapshot. */
static void collect_metrics(struct xm_scrape *sc, void *ctx)
{
	static const char *const result[1] = { "result" };
	const char *ok[1] = { "ok" }, *rejected[1] = { "rejected" };
	struct xm_agent *a = ctx;
	struct xm_scrape_family *f;
	struct xm_snapshot *snap;

	f = scrape_family(sc, "xmesh_config_applies_total", "counter", "Config applies, by result.");
	scrape_u64(f, result, ok, 1, atomic_load(&a->applies_ok));
	scrape_u64(f, result, rejected, 1, atomic_load(&a->applies_failed));
	if (a->kube) {
		f = scrape_family(
		    sc, "xmesh_config_rejected_objects", "gauge",
		    "Objects from the Kubernetes API left out because they have errors (logged with their "
		    "namespace/name).");
		scrape_u64(f, NULL, NULL, 0, kube_client_rejected(a->kube) + config_thread_api_excluded(a->config));
	}
	snap = daemon_snapshot_acquire(a);
	if (!snap)
		return;
	/* n_inited and states are fixed before the metrics thread starts and until it stops. */
	for (size_t i = 0; i < a->n_inited; i++)
		if (a->states[i] && a->modules[i]->collect)
			a->modules[i]->collect(a->states[i], snap, sc);
	snapshot_put(snap);
}

static int kube_sink(void *ctx, struct api_change *changes, size_t n)
{
	/* 100 ms: the events of a burst (a rollout's EndpointSlice updates) make one build. */
	return config_thread_api_changes(ctx, changes, n, 100);
}

/* --kubernetes / --kubeconfig: the watchers, and a bounded wait for their first lists (the first apply of an
 * empty config would withdraw every service a previous agent left pinned). */
static int start_kube(struct xm_agent *a)
{
	const struct xm_agent_opts *o = &a->opts;
	struct kube_client_opts ko = { .allow_insecure = o->kube_insecure,
				       .watch_timeout_s = o->kube_watch_timeout_s,
				       .backoff_max_ms = o->kube_backoff_max_ms,
				       .absent_retry_s = o->kube_absent_retry_s };
	struct kube_endpoint ep;
	char err[512];
	int rc;

	if (!o->kubernetes && !o->kubeconfig)
		return 0;
	rc = o->kubeconfig ? kubeconfig_load(o->kubeconfig, &ep, err, sizeof(err))
			   : kube_in_cluster(getenv("XMESH_SERVICEACCOUNT_DIR"), &ep, err, sizeof(err));
	if (rc) {
		log_error("kubernetes: %s%s%s", o->kubeconfig ? o->kubeconfig : "", o->kubeconfig ? ": " : "", err);
		return rc;
	}
	a->kube = kube_client_start(&ep, &ko, kube_sink, a->config, err, sizeof(err));
	if (!a->kube) {
		log_error("kubernetes: %s", err);
		return -EINVAL;
	}
	a->kube_sync_until = loop_now_ms() + (o->kube_sync_wait_ms ? o->kube_sync_wait_ms : 30000);
	return 0;
}

static void on_sync_poll(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct xm_agent *a = ctx;

	(void)timer;
	if (kube_client_synced(a->kube) || loop_now_ms() >= a->kube_sync_until)
		loop_stop(loop);
}

/*
 * The wait for the first lists (at most --kube-sync-wait) runs the control loop: `xmesh status` answers with
 * each kind's state, which is when a user needs it; builds the config thread makes meanwhile are dropped
 * (on_build) and a reload is refused. Returns -EINTR when a signal stopped the agent during the wait.
 */
static int wait_kube_sync(struct xm_agent *a)
{
	struct xm_timer *poll;
	int err;

	if (!a->kube)
		return 0;
	poll = loop_timer_add(a->loop, 0, 20, on_sync_poll, a);
	if (!poll)
		return -ENOMEM;
	a->kube_syncing = true;
	err = loop_run(a->loop);
	a->kube_syncing = false;
	loop_timer_cancel(a->loop, poll);
	if (err)
		return err;
	if (a->stopping)
		return -EINTR;
	if (kube_client_synced(a->kube))
		log_info("kubernetes: every kind listed");
	else
		log_warn("kubernetes: not every kind listed yet (xmesh status says which); starting with what is");
	return 0;
}

static int setup_signals(struct xm_agent *a, int *sfd)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	*sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (*sfd < 0)
		return -errno;
	return loop_add_fd(a->loop, *sfd, EPOLLIN, on_signal, a);
}

static int init_modules(struct xm_agent *a)
{
	for (size_t i = 0; i < XM_N_MODULES; i++) {
		int err;

		a->modules[i] = module_order[i];
		err = a->modules[i]->init(a, &a->states[i]);
		a->n_inited = i + 1;
		if (err) {
			a->states[i] = NULL;
			log_error("%s: %s; stopping", a->modules[i]->name, strerror(-err));
			return err;
		}
	}
	return 0;
}

static void close_modules(struct xm_agent *a)
{
	while (a->n_inited) {
		size_t i = --a->n_inited;

		if (a->states[i])
			a->modules[i]->close(a->states[i]);
		a->states[i] = NULL;
	}
}

int daemon_run(const struct xm_agent_opts *opts)
{
	static struct xm_agent agent; /* one per process */
	struct xm_agent *a = &agent;
	int sfd = -1, rc = 1, err;

	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->snap_lock, NULL);
	a->opts = *opts;
	a->copts = (struct xm_compile_opts){ .node_name = opts->node_name,
					     .maglev_size = opts->maglev_size,
					     .trust_domain = opts->trust_domain,
					     .root_namespace = opts->root_namespace };
	a->loop = loop_new();
	if (!a->loop) {
		log_error("event loop: %s", strerror(errno));
		return 1;
	}
	err = setup_signals(a, &sfd);
	if (err) {
		log_error("signals: %s", strerror(-err));
		goto out;
	}
	if (init_modules(a))
		goto out;
	a->config = config_thread_start(a->loop, a->opts.config_paths, a->opts.n_config_paths, &a->copts, on_build, a);
	if (!a->config)
		goto out;
	if (start_kube(a))
		goto out;
	a->watch = watch_new(a->loop, opts->config_paths, opts->n_config_paths, on_config_change, a);
	if (!a->watch)
		goto out;
	/* Before the wait for the API: answers from then on (a client that connects earlier waits). */
	a->admin = admin_listen(a->loop, opts->admin_path, on_admin, a);
	if (!a->admin)
		goto out;
	err = wait_kube_sync(a);
	if (err == -EINTR) {
		rc = 0;
		goto out;
	}
	if (err) {
		log_error("kubernetes: the wait for the first lists: %s", strerror(-err));
		goto out;
	}
	agent_reload_now(a, "start");
	if (!loop_timer_add(a->loop, 500, 500, on_tick, a))
		goto out;
	a->metrics = metrics_thread_start(opts->metrics_addr, collect_metrics, a);
	if (!a->metrics)
		goto out;
	log_info("metrics on http://%s/metrics", opts->metrics_addr);

	metrics_thread_set_ready(a->metrics, true);
	log_info("ready%s", a->snap ? "" : " (config has errors: serving what the pinned maps held)");
	err = loop_run(a->loop);
	rc = err ? 1 : 0;
out:
	metrics_thread_stop(a->metrics); /* first: it reads the modules' state */
	admin_close(a->admin);
	watch_free(a->watch);
	kube_client_stop(a->kube);     /* before the config thread it hands changes to */
	config_thread_stop(a->config); /* before the modules: a build in flight is dropped, never applied */
	close_modules(a);
	publish_snapshot(a, NULL);
	if (opts->detach_on_exit) {
		if (xdp_datapath_remove(opts->bpffs) == 0 && datapath_remove(opts->bpffs) == 0)
			log_info("detached: removed links and maps under %s", opts->bpffs);
		else
			rc = 1;
		if (opts->cgroup && l7_proxy_cgroup_remove(opts->cgroup))
			log_warn("detached: could not remove the L7 proxy's cgroup next to %s", opts->cgroup);
	} else if (rc == 0) {
		log_info("exiting; programs and maps stay pinned under %s", opts->bpffs);
	}
	loop_free(a->loop);
	if (sfd >= 0)
		close(sfd);
	pthread_mutex_destroy(&a->snap_lock);
	return rc;
}
