// SPDX-License-Identifier: Apache-2.0
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "admin/admin.h"
#include "config/model.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/watch.h"
#include "lbmap/lbmap.h"
#include "metrics/metrics.h"
#include "outlier/events.h"
#include "outlier/outlier.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds of clock id (monotonic: the apply's share of the loop; thread CPU: its own work). */
static double clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Load, validate, compile, publish. A config with any error changes nothing: the datapath keeps
 * serving the last good one.
 */
static void agent_reload(struct xm_agent *a, const char *why)
{
	struct xm_compile_opts copts = { .node_name = a->opts.node_name, .maglev_size = a->opts.maglev_size };
	struct xm_config cfg = { 0 };
	struct xm_diags diags = { 0 };
	struct xm_lbmap_stats stats;
	struct xm_lb_state next;
	double t0 = clock_ms(CLOCK_MONOTONIC), cpu0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
	size_t i;
	int err;

	a->last_apply = time(NULL);
	if (!a->config_cache)
		a->config_cache = config_cache_new(); /* NULL: every file is parsed */
	err = a->config_cache
		  ? config_load_cached(a->config_cache, a->opts.config_paths, a->opts.n_config_paths, &cfg, &diags)
		  : config_load(a->opts.config_paths, a->opts.n_config_paths, &cfg, &diags);
	if (err) {
		for (i = 0; i < diags.n; i++)
			log_error("config: %s:%d:%d: %s", diags.items[i].loc.file ? diags.items[i].loc.file : "?",
				  diags.items[i].loc.line, diags.items[i].loc.col, diags.items[i].msg);
		snprintf(a->last_error, sizeof(a->last_error), "%zu config error(s), first: %s", diags.n,
			 diags.n ? diags.items[0].msg : strerror(-err));
		log_error("config rejected (%s): %zu error(s); still serving the previous config", why, diags.n);
		a->applies_failed++;
		goto out;
	}
	err = compile_lb(&cfg, &copts, &next);
	if (err) {
		snprintf(a->last_error, sizeof(a->last_error), "compile: %s", strerror(-err));
		log_error("config rejected (%s): compile: %s", why, strerror(-err));
		a->applies_failed++;
		goto out;
	}
	/* New VIPs pass the pre-filter before they are published. */
	if (a->xdp.skel)
		xdp_datapath_sync(&a->xdp, a->lbmap, &next, true);
	err = lbmap_apply(a->lbmap, &next, now_ms(), &stats);
	if (a->xdp.skel && xdp_datapath_sync(&a->xdp, a->lbmap, &next, false))
		log_warn("xdp: reverse-NAT table not fully updated");
	if (a->sockmap.skel && sockmap_sync_local_ips(&a->sockmap, &cfg, a->opts.node_name))
		log_warn("sockmap: local addresses not fully published; affected peers use plain TCP");
	lb_state_free(&a->served);
	a->served = next;
	a->have_config = true;
	if (identities_build(&cfg, &a->identities))
		log_warn("metrics: out of memory for pod identities; labels keep the previous ones");
	if (err) {
		snprintf(a->last_error, sizeof(a->last_error), "%u service port(s) kept their previous state",
			 stats.errors);
		a->applies_failed++;
	} else {
		a->last_error[0] = '\0';
		a->applies_ok++;
	}
	log_info(
	    "config applied (%s): %u service ports (%u changed, %u removed), %u backends%s in %.1f ms (CPU %.1f ms)",
	    why, stats.services, stats.changed, stats.removed, stats.backends, err ? ", with errors" : "",
	    clock_ms(CLOCK_MONOTONIC) - t0, clock_ms(CLOCK_THREAD_CPUTIME_ID) - cpu0);
out:
	config_free(&cfg);
	diags_free(&diags);
}

static void count_ejection(struct xm_agent *a, const struct xm_event *ev)
{
	struct xm_ejection_count *p;
	size_t i;

	for (i = 0; i < a->n_ejections; i++) {
		p = &a->ejections[i];
		if (p->svc_id == ev->svc_id && p->backend_id == ev->backend_id && p->reason == ev->reason) {
			p->count++;
			return;
		}
	}
	p = realloc(a->ejections, (a->n_ejections + 1) * sizeof(*p));
	if (!p)
		return;
	a->ejections = p;
	a->ejections[a->n_ejections++] = (struct xm_ejection_count){ ev->svc_id, ev->backend_id, ev->reason, 1 };
}

/* "default/reviews 10.96.0.10:80/TCP" and "10.200.1.12:8080" for an event's ids. */
static void describe_event(const struct xm_agent *a, const struct xm_event *ev, char *svc, size_t svc_len, char *be,
			   size_t be_len)
{
	struct xm_svc_key key;
	struct xm_backend b;
	size_t i;

	snprintf(svc, svc_len, "service id %u", ev->svc_id);
	if (lbmap_svc_key(a->lbmap, ev->svc_id, &key)) {
		char k[80];

		lb_format_key(&key, k, sizeof(k));
		snprintf(svc, svc_len, "%s", k);
		for (i = 0; i < a->served.n_services; i++) {
			const struct xm_lb_service *s = &a->served.services[i];

			if (!memcmp(&s->key, &key, sizeof(key))) {
				snprintf(svc, svc_len, "%s/%s %s", s->ns, s->name, k);
				break;
			}
		}
	}
	snprintf(be, be_len, "backend %u", ev->backend_id);
	if (lbmap_backend(a->lbmap, ev->backend_id, &b)) {
		struct xm_lb_backend lb = { .addr = b.addr, .port = ntohs(b.port), .family = b.family };

		lb_format_backend(&lb, be, be_len);
	}
}

static void on_outlier_event(const struct xm_event *ev, void *ctx)
{
	struct xm_agent *a = ctx;
	char svc[400], be[80];

	describe_event(a, ev, svc, sizeof(svc), be, sizeof(be));
	if (ev->type == XM_EV_EJECT) {
		a->ejections_total++;
		count_ejection(a, ev);
		log_warn("outlier: ejected %s from %s: %s, for %llu ms (times ejected %llu)", be, svc,
			 outlier_reason_name(ev->reason), (unsigned long long)ev->duration_ms,
			 (unsigned long long)ev->times_ejected);
	} else if (ev->type == XM_EV_RETURN) {
		a->returns_total++;
		log_info("outlier: %s returned to %s (times ejected %llu)", be, svc,
			 (unsigned long long)ev->times_ejected);
	}
}

static void on_config_change(void *ctx)
{
	agent_reload(ctx, "config changed");
}

/*
 * Ends expired ejections even where no connection selects the endpoint (selection also ends them, lazily).
 * The tick (500 ms) is at least as frequent as any interval Istio users set in practice (>= 1 s).
 */
static void sweep_ejections(struct xm_agent *a)
{
	struct xm_map_fds fds;
	size_t i, j;

	datapath_map_fds(&a->dp, &fds);
	for (i = 0; i < a->served.n_services; i++) {
		const struct xm_lb_service *s = &a->served.services[i];
		uint32_t svc_id = lbmap_svc_id(a->lbmap, &s->key);
		struct xm_outlier_svc count = { 0 };

		/* One lookup per service port: only those with an ejection in force have endpoints to check. */
		if (!s->outlier_on || !svc_id || bpf_map_lookup_elem(fds.outlier_svc, &svc_id, &count) ||
		    count.ejected <= 0)
			continue;
		for (j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];

			if (b->ready)
				outlier_sweep(fds.outlier, fds.outlier_report_prog, svc_id,
					      lbmap_backend_id(a->lbmap, &b->addr, htons(b->port), b->family));
		}
	}
}

static void on_gc_tick(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct xm_agent *a = ctx;

	(void)loop, (void)fd, (void)events;
	lbmap_gc(a->lbmap, now_ms());
	sweep_ejections(a);
	if (a->xdp.skel && ++a->neigh_ticks >= XM_NEIGH_REFRESH_TICKS) {
		a->neigh_ticks = 0;
		xdp_datapath_neighbours(&a->served);
	}
}

static void on_signal(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct signalfd_siginfo si;

	(void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		agent_reload(ctx, "SIGHUP");
		return;
	}
	log_info("signal %d: stopping", si.ssi_signo);
	loop_stop(loop);
}

static void on_admin(const char *command, struct strbuf *out, void *ctx)
{
	struct xm_agent *a = ctx;

	if (!strcmp(command, "status"))
		daemon_render_status(a, false, out);
	else if (!strcmp(command, "status json"))
		daemon_render_status(a, true, out);
	else if (!strncmp(command, "sockmap", 7) && (!command[7] || command[7] == ' '))
		sockmap_admin(&a->sockmap, command[7] ? command + 8 : "", out);
	else if (!strcmp(command, "reload")) {
		agent_reload(a, "admin reload");
		sb_printf(out, "%s\n", a->last_error[0] ? a->last_error : "ok");
	} else
		sb_printf(out, "error: unknown command \"%s\" (status, status json, reload, sockmap on|off|status)\n",
			  command);
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

int daemon_run(const struct xm_agent_opts *opts)
{
	static struct xm_agent agent; /* large (bpffs paths); one per process */
	struct xm_agent *a = &agent;
	struct xm_map_fds fds;
	int sfd = -1, rc = 1, err;

	memset(a, 0, sizeof(*a));
	a->dp.cgroup_fd = -1;
	a->opts = *opts;
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
	if (datapath_open(&a->dp, opts->bpffs, opts->cgroup))
		goto out;
	/* --no-sockmap still loads it: programs a previous agent left must see the switch go off. */
	a->sockmap.cgroup_fd = -1;
	if (sockmap_open(&a->sockmap, opts->bpffs, opts->cgroup, !opts->no_sockmap, opts->sockmap_excl_ports,
			 opts->n_sockmap_excl_ports)) {
		if (!opts->no_sockmap)
			goto out;
		log_warn("sockmap: not loaded; same-node redirection stays off");
	}
	if (opts->n_ifaces && xdp_datapath_open(&a->xdp, opts->bpffs, opts->ifaces, opts->n_ifaces))
		goto out;
	datapath_map_fds(&a->dp, &fds);
	a->lbmap = lbmap_open(&fds);
	if (!a->lbmap)
		goto out;
	log_info("programs on cgroup %s: %d attached, %d adopted from %s", opts->cgroup, a->dp.n_attached,
		 a->dp.n_adopted, opts->bpffs);

	a->outlier_events = outlier_events_open(a->loop, fds.events, on_outlier_event, a);
	if (!a->outlier_events)
		goto out;
	a->watch = watch_new(a->loop, opts->config_paths, opts->n_config_paths, on_config_change, a);
	if (!a->watch)
		goto out;
	agent_reload(a, "start");
	if (loop_add_timer(a->loop, 500, 500, on_gc_tick, a) < 0)
		goto out;
	a->admin = admin_listen(a->loop, opts->admin_path, on_admin, a);
	if (!a->admin)
		goto out;
	a->metrics = metrics_listen(a->loop, opts->metrics_addr, daemon_render_metrics, a);
	if (!a->metrics)
		goto out;
	log_info("metrics on http://%s/metrics", opts->metrics_addr);

	metrics_set_ready(a->metrics, true);
	log_info("ready%s", a->have_config ? "" : " (config has errors: serving what the pinned maps held)");
	err = loop_run(a->loop);
	rc = err ? 1 : 0;
out:
	metrics_close(a->metrics);
	admin_close(a->admin);
	watch_free(a->watch);
	config_cache_free(a->config_cache);
	identities_free(&a->identities);
	outlier_events_close(a->outlier_events);
	free(a->ejections);
	lbmap_free(a->lbmap);
	lb_state_free(&a->served);
	sockmap_close(&a->sockmap);
	xdp_datapath_close(&a->xdp);
	if (a->dp.sock || a->dp.cgroup_fd >= 0)
		datapath_close(&a->dp);
	if (opts->detach_on_exit) {
		if (xdp_datapath_remove(opts->bpffs) == 0 && datapath_remove(opts->bpffs) == 0)
			log_info("detached: removed links and maps under %s", opts->bpffs);
		else
			rc = 1;
	} else if (rc == 0) {
		log_info("exiting; programs and maps stay pinned under %s", opts->bpffs);
	}
	loop_free(a->loop);
	if (sfd >= 0)
		close(sfd);
	return rc;
}
