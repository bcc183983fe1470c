// SPDX-License-Identifier: Apache-2.0
/*
 * The L7 proxy as a module: starts the workers, listens on this node's InternalIPs, points the kernel's
 * capture at the listeners, hands each snapshot to the workers, reports requests and drains on the way out.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <xmesh/outlier.h>
#include <xmesh/sockmap.h>

#include "compile/snapshot.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/module.h"
#include "daemon/tunnel.h"
#include "datapath/l7_capture.h"
#include "datapath/l7_proxy_cgroup.h"
#include "datapath/pins.h"
#include "datapath/sockmap.h"
#include "l7/access_log.h"
#include "l7/span_export.h"
#include "daemon/listen_handover.h"
#include "l7/proxy.h"
#include "l7/stats.h"
#include "outlier/outlier.h"

/* How long a stopped agent's listening sockets wait for the next one before HTTP goes back to L4. */
#define HANDOVER_WAIT_S 10

struct l7_mod {
	struct l7_proxy *proxy;
	struct l7_access_log *log;
	struct l7_span_export *spans;		   /* --trace-endpoint; NULL: spans are not exported */
	int proxy_map, origdst, pairs, sk_storage; /* pinned maps; -1 when absent */
	int outlier, outlier_svc;		   /* the kernel's ejections, read by the balancers */
	int outlier_ids;			   /* xm_outlier_ids: where a VIP's service port keeps them */
	int outlier_report;			   /* xm_outlier_report: the proxy's connect outcomes go in */
	int proxy_cgroup;	 /* where listeners are made, sockmap's sockops attached; -1: the agent's own cgroup */
	int proxy_cgroup_unused; /* the proxy cgroup after making a socket there failed */
	struct l7_capture_proxy captured; /* what xm_l7_proxy holds now */
	bool capturing;
	char handover_path[4096]; /* next to the admin socket: where a restart's listening sockets wait */
	bool detach_on_exit;	  /* the datapath goes with the agent: no capture to keep, nothing to hand over */
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The capture's original destination of an accepted connection; then the socket joins the sockmap. */
static int resolve_captured(void *ctx, int listen_fd, int fd, struct xm_svc_key *vip, uint32_t *svc_id)
{
	struct l7_mod *m = ctx;
	int err;

	(void)listen_fd;
	err = l7_capture_lookup(m->origdst, fd, vip, svc_id);
	if (err)
		return err;
	/*
	 * Best effort: without it the pod <-> proxy hop takes the TCP/IP stack. A listener in the proxy cgroup
	 * had sockops insert the socket at setup already, before the client could send.
	 */
	if (__atomic_load_n(&m->proxy_cgroup, __ATOMIC_ACQUIRE) < 0 && m->pairs >= 0 && m->sk_storage >= 0)
		(void)l7_capture_sockmap_add(m->pairs, m->sk_storage, fd);
	return 0;
}

/*
 * The kernel's answers, per worker thread, for EJECTED_TTL_NS: a balancer asks on every pick of a service with
 * outlier detection on, and a map lookup is a system call (about 1 µs). An ejection (or its end) reaches the
 * proxy's picks within the TTL, well inside the outlier detection's own interval (1 s at the least).
 */
#define EJECTED_TTL_NS 1000000ULL
#define EJECTED_MEMO   256 /* direct-mapped, per thread */

struct ejected_memo {
	uint64_t key;	/* svc_id << 32 | backend_id + 1; 0: empty */
	uint64_t at_ns; /* when asked */
	uint64_t value; /* a service: 1 if any endpoint is ejected; an endpoint: ejected until (ns) */
	uint32_t oid;	/* a service: its outlier id (the key of its state, shared by its service port's VIPs) */
};

static __thread struct ejected_memo svc_memo[EJECTED_MEMO], backend_memo[EJECTED_MEMO];

static struct ejected_memo *memo_slot(struct ejected_memo *table, uint64_t key)
{
	return &table[(key * 0x9e3779b97f4a7c15ULL) >> 56];
}

/*
 * The kernel's outlier state, as the socket LB's selection sees it: asked by a worker's balancer only for
 * services with outlier detection on. Two map lookups (the service's count first, usually zero), remembered
 * for EJECTED_TTL_NS.
 */
static bool endpoint_ejected(void *ctx, uint32_t svc_id, uint32_t backend_id)
{
	struct l7_mod *m = ctx;
	struct xm_outlier_key key = { .svc_id = svc_id, .backend_id = backend_id };
	uint64_t svc_key = (uint64_t)svc_id << 32 | 1, be_key = (uint64_t)svc_id << 32 | ((uint64_t)backend_id + 1);
	struct ejected_memo *sm = memo_slot(svc_memo, svc_key), *bm;
	struct xm_outlier_state st;
	struct xm_outlier_svc svc;
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (sm->key != svc_key || now - sm->at_ns >= EJECTED_TTL_NS) {
		*sm = (struct ejected_memo){ .key = svc_key, .at_ns = now, .oid = svc_id };
		/* 0 or unreadable: the VIP's own id, as the kernel's xm_outlier_id() reads it. */
		if (bpf_map_lookup_elem(m->outlier_ids, &svc_id, &sm->oid) || !sm->oid)
			sm->oid = svc_id;
		sm->value = !bpf_map_lookup_elem(m->outlier_svc, &sm->oid, &svc) && svc.ejected > 0;
	}
	if (!sm->value)
		return false;
	key.svc_id = sm->oid;
	bm = memo_slot(backend_memo, be_key);
	if (bm->key != be_key || now - bm->at_ns >= EJECTED_TTL_NS) {
		*bm = (struct ejected_memo){ .key = be_key, .at_ns = now };
		if (!bpf_map_lookup_elem(m->outlier, &key, &st))
			bm->value = st.ejected_until_ns;
	}
	return bm->value > now;
}

/*
 * An upstream connect's outcome into the kernel's outlier state, through the program sockops' events take
 * (outlier/outlier.h). This thread's next pick of the service asks the kernel again rather than its memo: the
 * failure may just have ejected the endpoint, and the next request must not go there.
 */
/*
 * The proxy's upstreams to pods of other nodes (docs/l7.md "Upstreams through the tunnel"): the far end of
 * the proxy's socketpair goes to the node's HBONE client, presenting the client pod's certificate. IPv4 and
 * IPv6 endpoints, as the tunnel.
 */
static int tunnel_upstream(void *ctx, int fd, const struct l7_tunnel_req *t, const struct xm_tunnel_done *done)
{
	struct xm_agent *a = ctx;
	struct xm_tunnel_req req;
	struct sockaddr_in *sin;

	if (!tunnel_available(a)) {
		close(fd);
		return -ENOTCONN;
	}
	memset(&req, 0, sizeof(req));
	if ((t->family != XM_FAMILY_V4 && t->family != XM_FAMILY_V6) || strlen(t->src_id) >= sizeof(req.src_id)) {
		close(fd);
		return -EINVAL;
	}
	if (t->family == XM_FAMILY_V4) {
		sin = (struct sockaddr_in *)&req.target;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(t->port);
		memcpy(&sin->sin_addr, t->addr.bytes, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&req.target;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(t->port);
		memcpy(&sin6->sin6_addr, t->addr.bytes, 16);
	}
	if (t->client_family == XM_FAMILY_V4) {
		sin = (struct sockaddr_in *)&req.client;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(t->client_port);
		memcpy(&sin->sin_addr, t->client_addr.bytes, 4);
	} else if (t->client_family == XM_FAMILY_V6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&req.client;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(t->client_port);
		memcpy(&sin6->sin6_addr, t->client_addr.bytes, 16);
	}
	memcpy(req.src_id, t->src_id, strlen(t->src_id) + 1);
	if (t->traceparent && strlen(t->traceparent) < sizeof(req.traceparent))
		memcpy(req.traceparent, t->traceparent, strlen(t->traceparent) + 1);
	return tunnel_submit(a, fd, &req, done);
}

static void report_connect(void *ctx, uint32_t svc_id, uint32_t backend_id, enum l7_connect_outcome outcome,
			   uint16_t status)
{
	static const enum xm_outlier_report_kind kinds[] = {
		[L7_CONNECT_FAILED] = XM_REPORT_LOCAL_FAILURE,
		[L7_CONNECT_SUCCEEDED] = XM_REPORT_SUCCESS,
		[L7_HTTP_STATUS] = XM_REPORT_HTTP,
	};
	struct l7_mod *m = ctx;
	uint64_t svc_key = (uint64_t)svc_id << 32 | 1, be_key = (uint64_t)svc_id << 32 | ((uint64_t)backend_id + 1);
	int err = outlier_report(m->outlier_report, svc_id, backend_id, kinds[outcome], status);

	if (err)
		log_debug("l7: outlier report for service %u endpoint %u: %s", svc_id, backend_id, strerror(-err));
	memo_slot(svc_memo, svc_key)->key = 0;
	memo_slot(backend_memo, be_key)->key = 0;
}

/*
 * A listening socket in the proxy cgroup. If the kernel refuses (clone3 into a cgroup needs 5.7), the socket
 * is made here and the proxy goes back to adding accepted sockets to the sockmap itself.
 */
static int socket_in_proxy_cgroup(void *ctx, int domain, int type)
{
	struct l7_mod *m = ctx;
	int cg = __atomic_load_n(&m->proxy_cgroup, __ATOMIC_ACQUIRE), fd = -EBADF;

	if (cg >= 0)
		fd = l7_capture_socket_in_cgroup(cg, domain, type);
	if (fd >= 0)
		return fd;
	if (cg >= 0) {
		log_warn("l7: listener in the proxy cgroup: %s; accepted sockets join the sockmap after accept",
			 strerror(-fd));
		/* closed with the module: a worker may be reading it in resolve_captured */
		__atomic_store_n(&m->proxy_cgroup, -1, __ATOMIC_RELEASE);
		m->proxy_cgroup_unused = cg;
	}
	fd = socket(domain, type, 0);
	return fd < 0 ? -errno : fd;
}

/*
 * The proxy cgroup, if the sockmap module prepared it (attached sockops there, or the served cgroup's own
 * sockops reaches it): listeners made there have their accepted sockets in the sockhash from the start.
 */
static void open_proxy_cgroup(struct l7_mod *m, const struct xm_agent_opts *o)
{
	char path[PATH_MAX], link[PATH_MAX];

	if (m->pairs < 0 || !o->cgroup || l7_proxy_cgroup_path(o->cgroup, path, sizeof(path)))
		return;
	snprintf(link, sizeof(link), "%s/links/%s", o->bpffs, XM_SOCKMAP_L7_PROXY_OPS_LINK);
	if (!l7_proxy_cgroup_inherits(o->cgroup, path) && access(link, F_OK))
		return;
	m->proxy_cgroup = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->proxy_cgroup < 0)
		log_warn("l7: proxy cgroup %s: %s; accepted sockets join the sockmap after accept", path,
			 strerror(errno));
	else
		log_info("l7: listeners in cgroup %s (sockmap's sockops there)", path);
}

/* Every finished request: its access-log line and its span, each queued without blocking. */
static void on_record(void *ctx, size_t worker, const struct l7_record *r)
{
	struct l7_mod *m = ctx;

	l7_access_log_write(m->log, worker, r);
	l7_span_export_record(m->spans, worker, r);
}

static void set_capture(struct l7_mod *m, const struct l7_capture_proxy *cp)
{
	bool on = cp && (cp->v4 || cp->v6);

	if (on == m->capturing && (!on || !memcmp(cp, &m->captured, sizeof(*cp))))
		return;
	if (l7_capture_set_proxy(m->proxy_map, on ? cp : NULL)) {
		log_warn("l7: could not point the capture at the proxy; HTTP services stay balanced at L4");
		return;
	}
	m->capturing = on;
	if (on)
		m->captured = *cp;
	else
		memset(&m->captured, 0, sizeof(m->captured));
}

/*
 * Every proxied connection takes two descriptors (client and upstream): the usual soft limit of 1024 would
 * cap the proxy near 500 connections. Raised to the hard limit, for the whole agent.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		log_warn("l7: could not raise the open-files limit to %llu", (unsigned long long)rl.rlim_max);
}

/* The listening sockets a stopping agent left with its holder (daemon/listen_handover.h), if any. */
static bool take_listeners(struct l7_mod *m)
{
	int fds[LISTEN_HANDOVER_MAX_FDS];
	size_t n = 0;
	int err = listen_handover_receive(m->handover_path, fds, LISTEN_HANDOVER_MAX_FDS, &n);

	if (err) {
		if (err != -ENOENT)
			log_warn("l7: listening sockets of the previous agent at %s: %s", m->handover_path,
				 strerror(-err));
		return false;
	}
	log_info("l7: took over %zu listening sockets of the previous agent", n);
	l7_proxy_adopt(m->proxy, fds, n);
	return n > 0;
}

static void l7_mod_free(struct l7_mod *m)
{
	l7_proxy_free(m->proxy);
	l7_access_log_close(m->log);
	l7_span_export_close(m->spans);
	close_fd(&m->proxy_map);
	close_fd(&m->origdst);
	close_fd(&m->pairs);
	close_fd(&m->sk_storage);
	close_fd(&m->outlier);
	close_fd(&m->outlier_svc);
	close_fd(&m->outlier_ids);
	close_fd(&m->outlier_report);
	close_fd(&m->proxy_cgroup);
	close_fd(&m->proxy_cgroup_unused);
	free(m);
}

static int l7_mod_init(struct xm_agent *a, void **state)
{
	const struct xm_agent_opts *o = daemon_opts(a);
	struct l7_mod *m = calloc(1, sizeof(*m));
	struct l7_proxy_opts po = { 0 };
	int err;

	*state = NULL;
	if (!m)
		return -ENOMEM;
	m->origdst = m->pairs = m->sk_storage = m->outlier = m->outlier_svc = m->outlier_report = m->proxy_cgroup = -1;
	m->outlier_ids = -1;
	m->proxy_cgroup_unused = -1;
	m->proxy_map = pins_open(o->bpffs, "xm_l7_proxy");
	if (m->proxy_map < 0) {
		err = m->proxy_map;
		log_error("l7: the capture's map xm_l7_proxy under %s: %s", o->bpffs, strerror(-err));
		m->proxy_map = -1;
		l7_mod_free(m);
		return err;
	}
	if (o->proxy_workers == 0) {
		/* An earlier agent's proxy may be pinned in the map: HTTP goes back to L4 now. */
		l7_capture_set_proxy(m->proxy_map, NULL);
		log_info("l7: proxy off (--proxy-workers 0): HTTP services are balanced at L4");
		l7_mod_free(m);
		return 0;
	}
	m->origdst = pins_open(o->bpffs, "xm_l7_origdst");
	if (m->origdst < 0) {
		err = m->origdst;
		log_error("l7: the capture's map xm_l7_origdst under %s: %s", o->bpffs, strerror(-err));
		m->origdst = -1;
		l7_mod_free(m);
		return err;
	}
	m->pairs = pins_open(o->bpffs, "xm_sock_pairs");
	m->sk_storage = m->pairs >= 0 ? pins_open(o->bpffs, "xm_sockmap_sk") : -1;
	if (m->pairs < 0 || m->sk_storage < 0) {
		close_fd(&m->pairs);
		m->sk_storage = -1;
		log_info("l7: sockmap not loaded; the pod <-> proxy hop takes the TCP/IP stack");
	}
	open_proxy_cgroup(m, o);
	m->outlier = pins_open(o->bpffs, "xm_outlier");
	m->outlier_svc = m->outlier >= 0 ? pins_open(o->bpffs, "xm_outlier_svc") : -1;
	m->outlier_ids = m->outlier_svc >= 0 ? pins_open(o->bpffs, "xm_outlier_ids") : -1;
	if (m->outlier < 0 || m->outlier_svc < 0 || m->outlier_ids < 0) {
		close_fd(&m->outlier);
		close_fd(&m->outlier_svc);
		m->outlier_ids = -1;
		log_warn("l7: outlier maps not found; the proxy's balancers see no ejection");
	}
	m->outlier_report = pins_open(o->bpffs, XM_OUTLIER_REPORT_PIN);
	if (m->outlier_report < 0) {
		log_warn("l7: %s/%s: %s; the proxy's failed upstream connects eject nothing", o->bpffs,
			 XM_OUTLIER_REPORT_PIN, strerror(-m->outlier_report));
		m->outlier_report = -1;
	}
	if (o->access_log) {
		m->log = l7_access_log_open(
		    o->access_log, (enum l7_log_format)o->access_log_format,
		    o->proxy_workers > 0 ? (size_t)o->proxy_workers : (size_t)sysconf(_SC_NPROCESSORS_ONLN), &err);
		if (!m->log) {
			log_error("l7: --access-log %s: %s", o->access_log, strerror(-err));
			l7_mod_free(m);
			return err;
		}
	}
	if (o->trace_endpoint) {
		m->spans = l7_span_export_open(o->trace_endpoint, o->node_name ? o->node_name : "",
					       o->proxy_workers > 0 ? (size_t)o->proxy_workers
								    : (size_t)sysconf(_SC_NPROCESSORS_ONLN),
					       L7_SPAN_RING_BYTES, &err);
		if (!m->spans) {
			log_error("l7: --trace-endpoint %s: %s", o->trace_endpoint, strerror(-err));
			l7_mod_free(m);
			return err;
		}
	}
	raise_fd_limit();
	po.n_workers = o->proxy_workers > 0 ? (size_t)o->proxy_workers : 0;
	po.port = o->proxy_port ? o->proxy_port : L7_PROXY_DEFAULT_PORT;
	po.resolve = resolve_captured;
	po.resolve_ctx = m;
	if (m->proxy_cgroup >= 0) {
		po.make_socket = socket_in_proxy_cgroup;
		po.socket_ctx = m;
	}
	if (m->outlier_svc >= 0) {
		po.ejected = endpoint_ejected;
		po.ejected_ctx = m;
	}
	if (m->outlier_report >= 0) {
		po.report = report_connect;
		po.report_ctx = m;
	}
	po.trace_sampling_percent = o->trace_sampling_percent;
	if (o->hbone) {
		/* Never plaintext to a pod of another node that the tunnel carries: without the tunnel's client
		 * (no trust bundle yet) such a request is answered 503 UF. */
		po.tunnel = tunnel_upstream;
		po.tunnel_ctx = a;
	}
	if (m->log || m->spans) {
		po.on_record = on_record;
		po.record_ctx = m;
	}
	m->proxy = l7_proxy_new(&po, &err);
	if (!m->proxy) {
		log_error("l7: proxy workers: %s", strerror(-err));
		l7_mod_free(m);
		return err;
	}
	snprintf(m->handover_path, sizeof(m->handover_path), "%s.l7", o->admin_path);
	m->detach_on_exit = o->detach_on_exit;
	if (take_listeners(m)) {
		/* A previous agent's sockets: connects keep queueing on them until the first apply serves them. */
		m->capturing = true;
	} else {
		/* Until listeners are up, a captured connect would find nobody: L4 until the first apply. */
		l7_capture_set_proxy(m->proxy_map, NULL);
	}
	log_info("l7: proxy with %zu workers, port %u", l7_proxy_workers(m->proxy), po.port);
	*state = m;
	return 0;
}

/* This node's InternalIPs (the first of each family): where every pod can reach the proxy. */
static size_t node_addresses(const struct xm_snapshot *s, struct l7_proxy_addr out[2])
{
	static const uint8_t families[2] = { XM_FAMILY_V4, XM_FAMILY_V6 };
	size_t n = 0;

	for (size_t f = 0; f < 2; f++)
		if (local_addrs_node_ip(&s->local, families[f], &out[n].addr))
			out[n++].family = families[f];
	return n;
}

static int l7_mod_apply(void *state, struct xm_snapshot *next)
{
	struct l7_mod *m = state;
	struct l7_proxy_addr addrs[2];
	struct l7_capture_proxy cp = { 0 };
	size_t n = node_addresses(next, addrs);
	int err;

	/* Workers first: a connection captured for a new service finds its routes. */
	err = l7_proxy_apply(m->proxy, next, &next->routes);
	if (!n && next->routes.n_services)
		log_warn("l7: no InternalIP of this node (--node) in the config: HTTP services stay at L4");
	if (l7_proxy_listen(m->proxy, addrs, n))
		err = -EIO;
	/* Capture only the families whose listener is up. */
	cp.port = l7_proxy_port(m->proxy);
	for (size_t i = 0; i < n; i++) {
		if (!l7_proxy_listening(m->proxy, &addrs[i]))
			continue;
		if (addrs[i].family == XM_FAMILY_V4) {
			cp.addr4 = addrs[i].addr;
			cp.v4 = true;
		} else {
			cp.addr6 = addrs[i].addr;
			cp.v6 = true;
		}
	}
	set_capture(m, &cp);
	return err;
}

struct status_ctx {
	struct strbuf *out;
	bool json, first;
};

static void status_service(void *ctx, const char *service, uint64_t requests)
{
	struct status_ctx *c = ctx;

	if (c->json) {
		sb_puts(c->out, c->first ? "" : ",");
		sb_json_str(c->out, service);
		sb_printf(c->out, ":%llu", (unsigned long long)requests);
	} else {
		sb_printf(c->out, "http: %s: %llu requests\n", service, (unsigned long long)requests);
	}
	c->first = false;
}

static void l7_mod_status(void *state, const struct xm_snapshot *cur, bool json, struct strbuf *out)
{
	struct l7_mod *m = state;
	struct status_ctx c = { .out = out, .json = json, .first = true };
	struct l7_stats_shard *const *shards;
	size_t n;

	(void)cur;
	shards = l7_proxy_shards(m->proxy, &n);
	if (json)
		sb_printf(out, ",\"l7\":{\"workers\":%zu,\"port\":%u,\"capturing\":%s,\"requests\":{",
			  l7_proxy_workers(m->proxy), l7_proxy_port(m->proxy), m->capturing ? "true" : "false");
	else
		sb_printf(out, "l7 proxy: %zu workers, port %u, capture %s\n", l7_proxy_workers(m->proxy),
			  l7_proxy_port(m->proxy), m->capturing ? "on" : "off (HTTP balanced at L4)");
	l7_stats_per_service(shards, n, status_service, &c);
	if (json)
		sb_puts(out, "}}");
}

static void l7_mod_collect(void *state, const struct xm_snapshot *cur, struct xm_scrape *sc)
{
	struct l7_mod *m = state;
	struct l7_stats_shard *const *shards;
	size_t n;

	(void)cur;
	shards = l7_proxy_shards(m->proxy, &n);
	l7_stats_collect(shards, n, sc);
	if (m->log)
		l7_access_log_collect(m->log, sc);
	l7_span_export_collect(m->spans, sc);
	l7_proxy_collect(m->proxy, sc);
}

/*
 * Restart: the listening sockets go to a holder that gives them to the next agent (connects queue meanwhile);
 * if that fails, new connects go back to L4 (the kernel balances them while no proxy runs). Then the workers
 * finish what they have: in-flight requests complete, keep-alive connections close after their next response.
 */
static void l7_mod_close(void *state)
{
	struct l7_mod *m = state;

	/* The capture keeps pointing at sockets a holder keeps for the next agent; without a holder, L4. */
	if (!m->capturing || m->detach_on_exit ||
	    l7_proxy_handover(m->proxy, m->handover_path, m->proxy_map, HANDOVER_WAIT_S))
		set_capture(m, NULL);
	l7_mod_free(m);
}

const struct xm_module xm_module_l7 = {
	.name = "l7",
	.init = l7_mod_init,
	.apply = l7_mod_apply,
	.status = l7_mod_status,
	.collect = l7_mod_collect,
	.close = l7_mod_close,
};
