// SPDX-License-Identifier: Apache-2.0
/* Closing the established plaintext connections a policy change denies (daemon/plain_sweep.h). */
#include "daemon/plain_sweep.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ifaddrs.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compile/plain_judge.h"
#include "compile/snapshot.h"
#include "core/background.h"
#include "core/grow.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "datapath/nl_raw.h"
#include "datapath/pod_netns.h"
#include "datapath/sock_diag.h"

static const char *const default_dirs[] = { "/run/netns", "/var/run/netns", NULL };

struct plain_sweeper {
	pthread_mutex_t mu;
	pthread_cond_t idle;
	const char *const *dirs;
	int node_ns;			      /* the agent's network namespace: where each sweep starts */
	struct xm_snapshot *waiting;	      /* the next sweep's tables */
	struct xm_local_ip_key *waiting_pods; /* and the pod addresses it visits: sorted, unique */
	size_t n_waiting_pods;
	bool running;
	/* counts, under mu */
	struct plain_close_count *counts;
	size_t n_counts, cap_counts;
	struct plain_sweep_problems problems;
	uint64_t sweeps, judged, closed, last_ms, last_judged, last_closed;
	size_t last_netns, last_pods, last_missing;
	bool unsupported_logged;
	uint64_t missing_logged_ms; /* when pods without a namespace were last logged (sweep threads only) */
};

/* Pods whose namespace is not found are counted every sweep, logged at most once a minute. */
#define MISSING_LOG_MS 60000

struct plain_sweeper *plain_sweeper_new(const char *const *dirs)
{
	struct plain_sweeper *sw = calloc(1, sizeof(*sw));

	if (!sw)
		return NULL;
	pthread_mutex_init(&sw->mu, NULL);
	pthread_cond_init(&sw->idle, NULL);
	sw->dirs = dirs ? dirs : default_dirs;
	sw->node_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (sw->node_ns < 0) {
		free(sw);
		return NULL;
	}
	return sw;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_local_ip_key));
}

/* An address as the judge takes it: a v4-mapped IPv6 address is the IPv4 one (dual-stack sockets). */
static struct xm_local_ip_key norm(uint8_t af, const __be32 a[4])
{
	struct xm_local_ip_key k;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(&k, 0, sizeof(k));
	if (af == AF_INET) {
		memcpy(k.addr.bytes, a, 4);
		k.family = XM_FAMILY_V4;
	} else if (!memcmp(a, mapped, sizeof(mapped))) {
		memcpy(k.addr.bytes, (const uint8_t *)a + 12, 4);
		k.family = XM_FAMILY_V4;
	} else {
		memcpy(k.addr.bytes, a, 16);
		k.family = XM_FAMILY_V6;
	}
	return k;
}

/* The addresses of the calling thread's namespace, sorted (getifaddrs asks the namespace it runs in). */
static int ns_addrs(struct xm_local_ip_key **out, size_t *n_out)
{
	struct ifaddrs *ifa, *i;
	struct xm_local_ip_key *v = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	*n_out = 0;
	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i; i = i->ifa_next) {
		int af = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;

		if (af != AF_INET && af != AF_INET6)
			continue;
		if (XM_GROW(v, cap, n + 1)) {
			freeifaddrs(ifa);
			free(v);
			return -ENOMEM;
		}
		v[n++] = norm(af, af == AF_INET ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
						: (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr);
	}
	freeifaddrs(ifa);
	if (n)
		qsort(v, n, sizeof(*v), key_cmp);
	*out = v;
	*n_out = n;
	return 0;
}

/* The sockets of one namespace: the listeners apart (few), to tell accepted connections cheaply. */
struct socks {
	struct xm_diag_sock *v, *listeners;
	size_t n, cap, n_listeners, cap_listeners;
};

static int keep_sock(const struct xm_diag_sock *s, void *arg)
{
	struct socks *ss = arg;

	if (s->state == TCP_LISTEN) {
		if (XM_GROW(ss->listeners, ss->cap_listeners, ss->n_listeners + 1))
			return -ENOMEM;
		ss->listeners[ss->n_listeners++] = *s;
		return 0;
	}
	if (XM_GROW(ss->v, ss->cap, ss->n + 1))
		return -ENOMEM;
	ss->v[ss->n++] = *s;
	return 0;
}

/*
 * Whether s was accepted (the kernel judged its SYN going to the pod) rather than opened by the pod: a
 * listener of the namespace holds its local port, on its address or on every address.
 */
static bool accepted(const struct socks *ss, const struct xm_diag_sock *s, const struct xm_local_ip_key *local)
{
	static const __be32 any[4];

	for (size_t i = 0; i < ss->n_listeners; i++) {
		const struct xm_diag_sock *l = &ss->listeners[i];
		struct xm_local_ip_key lk;

		if (l->id.idiag_sport != s->id.idiag_sport)
			continue;
		if (!memcmp(l->id.idiag_src, any, l->family == AF_INET ? 4 : 16))
			return true;
		lk = norm(l->family, l->id.idiag_src);
		if (!key_cmp(&lk, local))
			return true;
	}
	return false;
}

static void count_close(struct plain_sweeper *sw, const struct xm_local_ip_key *pod, uint16_t port, bool strict,
			uint32_t policy)
{
	struct plain_close_count *c;

	pthread_mutex_lock(&sw->mu);
	for (size_t i = 0; i < sw->n_counts; i++) {
		c = &sw->counts[i];
		if (c->family == pod->family && c->port == port && c->strict == strict && c->policy == policy &&
		    !memcmp(c->addr.bytes, pod->addr.bytes, sizeof(c->addr.bytes))) {
			c->n++;
			pthread_mutex_unlock(&sw->mu);
			return;
		}
	}
	if (!XM_GROW(sw->counts, sw->cap_counts, sw->n_counts + 1)) {
		c = &sw->counts[sw->n_counts++];
		memset(c, 0, sizeof(*c));
		c->addr = pod->addr;
		c->family = pod->family;
		c->port = port;
		c->strict = strict;
		c->policy = policy;
		c->n = 1;
	}
	pthread_mutex_unlock(&sw->mu);
}

struct sweep_run {
	struct plain_sweeper *sw;
	const struct plain_rules *rules;
	const struct xm_local_ip_key *pods;
	size_t n_pods;
	bool *found; /* per pod: its namespace was visited */
	uint64_t judged, closed, failed, unsupported;
};

/* The TCP states a sweep lists: all but TIME_WAIT and CLOSE (LISTEN only to tell accepted connections). */
#define SWEEP_STATES (((1u << 12) - 1) & ~((1u << TCP_TIME_WAIT) | (1u << TCP_CLOSE)))

/* One namespace, entered: its connections to guarded pod addresses, judged; the refused ones destroyed. */
static void sweep_netns(struct sweep_run *r, const char *name)
{
	struct xm_local_ip_key *addrs;
	struct socks ss = { 0 };
	size_t n_addrs;
	bool any = false;
	int fd, err;

	if (ns_addrs(&addrs, &n_addrs))
		return;
	for (size_t i = 0; i < n_addrs; i++) {
		const struct xm_local_ip_key *at =
		    r->n_pods ? bsearch(&addrs[i], r->pods, r->n_pods, sizeof(*r->pods), key_cmp) : NULL;

		if (at) {
			r->found[at - r->pods] = true;
			any = true;
		}
	}
	free(addrs);
	if (!any)
		return;
	fd = nl_raw_open(NETLINK_SOCK_DIAG);
	if (fd < 0) {
		log_warn("authz: closing denied plaintext connections: sock_diag in netns %s: %s", name, strerror(-fd));
		return;
	}
	err = sock_diag_dump_tcp(fd, AF_INET, SWEEP_STATES, keep_sock, &ss);
	if (!err)
		err = sock_diag_dump_tcp(fd, AF_INET6, SWEEP_STATES, keep_sock, &ss);
	if (err && err != -ENOENT) /* an IPv6-less kernel answers the AF_INET6 dump with ENOENT */
		log_warn("authz: closing denied plaintext connections: listing sockets in netns %s: %s", name,
			 strerror(-err));
	for (size_t i = 0; i < ss.n; i++) {
		const struct xm_diag_sock *s = &ss.v[i];
		struct xm_local_ip_key local, remote;
		enum plain_verdict v;
		uint16_t port = ntohs(s->id.idiag_sport);
		uint32_t policy;

		local = norm(s->family, s->id.idiag_src);
		if (!plain_pods_has(r->pods, r->n_pods, &local) || !accepted(&ss, s, &local))
			continue;
		remote = norm(s->family, s->id.idiag_dst);
		if (remote.family != local.family)
			continue;
		r->judged++;
		v = plain_judge(r->rules, local.family, &local.addr, port, &remote.addr, &policy);
		if (v != PLAIN_STRICT && v != PLAIN_DENIED)
			continue;
		err = sock_diag_destroy_tcp(fd, s);
		if (!err) {
			r->closed++;
			count_close(r->sw, &local, port, v == PLAIN_STRICT, policy);
		} else if (err == -EOPNOTSUPP) {
			r->unsupported++;
		} else if (err != -ENOENT) { /* ENOENT: closed meanwhile */
			r->failed++;
			if (r->failed == 1)
				log_warn("authz: closing a denied plaintext connection in netns %s: %s", name,
					 strerror(-err));
		}
	}
	free(ss.v);
	free(ss.listeners);
	close(fd);
}

static void log_missing(const struct sweep_run *r, size_t missing)
{
	char first[INET6_ADDRSTRLEN] = "";

	for (size_t i = 0; i < r->n_pods && !*first; i++)
		if (!r->found[i])
			inet_ntop(r->pods[i].family == XM_FAMILY_V4 ? AF_INET : AF_INET6, r->pods[i].addr.bytes, first,
				  sizeof(first));
	log_warn("authz: closing denied plaintext connections: no network namespace found for %zu pod address(es) "
		 "(%s first); their connections stay until they end (are /run/netns or /var/run/netns mounted?)",
		 missing, first);
}

/*
 * One sweep against snap's tables of the pods (sorted, unique; freed here), on the calling (sweep) thread: it
 * may end in any pod's namespace.
 */
static void sweep(struct plain_sweeper *sw, const struct xm_snapshot *snap, struct xm_local_ip_key *pods, size_t n_pods)
{
	struct xm_local_ip_key *node_ips = NULL;
	struct plain_rules rules = { .authz = &snap->authz_plain, .mtls = &snap->mtls, .local = &snap->local };
	struct sweep_run r = { .sw = sw, .rules = &rules };
	struct pod_netns *ns = NULL;
	uint64_t t0 = loop_now_ms();
	size_t n_node = 0, missing = 0;
	long n_ns = 0;
	bool log_unsupported = false;

	if (!n_pods) {
		free(pods);
		return;
	}
	r.pods = pods;
	r.n_pods = n_pods;
	r.found = calloc(r.n_pods, sizeof(*r.found));
	/* Still in the agent's namespace: the node's own addresses, and the pods' namespaces */
	if (!r.found || ns_addrs(&node_ips, &n_node))
		goto out;
	rules.node_ips = node_ips;
	rules.n_node_ips = n_node;
	n_ns = pod_netns_find(sw->dirs, &ns);
	if (n_ns < 0) {
		log_warn("authz: closing denied plaintext connections: listing the pods' namespaces: %s",
			 strerror((int)-n_ns));
		n_ns = 0;
	}
	for (long i = 0; i < n_ns; i++) {
		if (setns(ns[i].fd, CLONE_NEWNET)) {
			log_warn("authz: closing denied plaintext connections: entering netns %s: %s", ns[i].name,
				 strerror(errno));
			continue;
		}
		sweep_netns(&r, ns[i].name);
	}
	for (size_t i = 0; i < r.n_pods; i++)
		missing += !r.found[i];
out:
	pthread_mutex_lock(&sw->mu);
	sw->sweeps++;
	sw->judged += r.judged;
	sw->closed += r.closed;
	sw->last_judged = r.judged;
	sw->last_closed = r.closed;
	sw->last_netns = (size_t)n_ns;
	sw->last_pods = r.n_pods;
	sw->last_missing = missing;
	sw->last_ms = loop_now_ms() - t0;
	sw->problems.netns_not_found += missing;
	sw->problems.destroy_unsupported += r.unsupported;
	sw->problems.destroy_failed += r.failed;
	if (r.unsupported && !sw->unsupported_logged)
		log_unsupported = sw->unsupported_logged = true;
	pthread_mutex_unlock(&sw->mu);
	if (log_unsupported)
		log_warn(
		    "authz: the kernel cannot destroy sockets (SOCK_DESTROY: %s; CONFIG_INET_DIAG_DESTROY is off): "
		    "plaintext connections a policy change denies stay open until they end",
		    strerror(EOPNOTSUPP));
	if (missing && (!sw->missing_logged_ms || loop_now_ms() - sw->missing_logged_ms >= MISSING_LOG_MS)) {
		sw->missing_logged_ms = loop_now_ms(); /* sweep threads only, one at a time */
		log_missing(&r, missing);
	}
	log_info("authz: plaintext connections after the policy change: %" PRIu64 " judged, %" PRIu64
		 " closed, %zu pod address(es) in %ld netns, %zu not found, in %" PRIu64 " ms",
		 r.judged, r.closed, r.n_pods, n_ns, missing, loop_now_ms() - t0);
	pod_netns_close(ns, n_ns > 0 ? (size_t)n_ns : 0);
	free(node_ips);
	free(pods);
	free(r.found);
}

/*
 * The sweep thread: sweeps while a request waits, then exits. Each sweep starts from the agent's namespace
 * (node_ns): the thread ends every sweep inside some pod's and never runs anything else.
 */
static void *sweep_thread(void *arg)
{
	struct plain_sweeper *sw = arg;

	thread_set_background("plaintext sweep");
	pthread_mutex_lock(&sw->mu);
	while (sw->waiting) {
		struct xm_snapshot *snap = sw->waiting;
		struct xm_local_ip_key *pods = sw->waiting_pods;
		size_t n_pods = sw->n_waiting_pods;

		sw->waiting = NULL;
		sw->waiting_pods = NULL;
		sw->n_waiting_pods = 0;
		pthread_mutex_unlock(&sw->mu);
		if (setns(sw->node_ns, CLONE_NEWNET)) {
			log_warn("authz: closing denied plaintext connections: back to the node's netns: %s",
				 strerror(errno));
			free(pods);
		} else {
			sweep(sw, snap, pods, n_pods);
		}
		snapshot_put(snap);
		pthread_mutex_lock(&sw->mu);
	}
	sw->running = false;
	pthread_cond_broadcast(&sw->idle);
	pthread_mutex_unlock(&sw->mu);
	return NULL;
}

/* a ∪ b (both sorted, unique) into a new array; NULL on -ENOMEM. */
static struct xm_local_ip_key *pods_union(const struct xm_local_ip_key *a, size_t na, const struct xm_local_ip_key *b,
					  size_t nb, size_t *n)
{
	struct xm_local_ip_key *v = malloc((na + nb ? na + nb : 1) * sizeof(*v));
	size_t i = 0, j = 0;

	*n = 0;
	if (!v)
		return NULL;
	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 : key_cmp(&a[i], &b[j]);

		v[(*n)++] = c <= 0 ? a[i] : b[j];
		i += c <= 0;
		j += c >= 0;
	}
	return v;
}

void plain_sweeper_request(struct plain_sweeper *sw, struct xm_snapshot *snap, const struct xm_local_ip_key *pods,
			   size_t n_pods)
{
	struct xm_snapshot *dropped;
	struct xm_local_ip_key *merged;
	pthread_attr_t attr;
	pthread_t t;
	size_t n;

	pthread_mutex_lock(&sw->mu);
	/* A sweep still waiting: the newer tables judge, the pods of both are visited. */
	merged = pods_union(sw->waiting_pods, sw->n_waiting_pods, pods, n_pods, &n);
	if (!merged) {
		pthread_mutex_unlock(&sw->mu);
		log_warn("authz: closing denied plaintext connections: out of memory, this change is not swept");
		return;
	}
	free(sw->waiting_pods);
	sw->waiting_pods = merged;
	sw->n_waiting_pods = n;
	dropped = sw->waiting;
	sw->waiting = snapshot_get(snap);
	if (!sw->running) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		sw->running = !pthread_create(&t, &attr, sweep_thread, sw);
		pthread_attr_destroy(&attr);
		if (!sw->running) {
			log_warn("authz: closing denied plaintext connections: no thread for the sweep");
			snapshot_put(sw->waiting);
			sw->waiting = NULL;
			free(sw->waiting_pods);
			sw->waiting_pods = NULL;
			sw->n_waiting_pods = 0;
		}
	}
	pthread_mutex_unlock(&sw->mu);
	snapshot_put(dropped); /* superseded: the newer tables judge the same connections */
}

int plain_sweeper_counts(struct plain_sweeper *sw, struct plain_close_count **out, size_t *n,
			 struct plain_sweep_problems *p)
{
	int err = 0;

	pthread_mutex_lock(&sw->mu);
	*n = sw->n_counts;
	*p = sw->problems;
	*out = malloc((sw->n_counts ? sw->n_counts : 1) * sizeof(**out));
	if (*out && sw->n_counts) /* counts is NULL until the first close */
		memcpy(*out, sw->counts, sw->n_counts * sizeof(**out));
	else if (!*out)
		err = -ENOMEM;
	pthread_mutex_unlock(&sw->mu);
	return err;
}

void plain_sweeper_status(struct plain_sweeper *sw, bool json, struct strbuf *out)
{
	pthread_mutex_lock(&sw->mu);
	if (json)
		sb_printf(out,
			  ",\"plaintext_sweeps\":{\"sweeps\":%" PRIu64 ",\"judged\":%" PRIu64 ",\"closed\":%" PRIu64
			  ",\"last_ms\":%" PRIu64 ",\"last_netns\":%zu,\"last_pods\":%zu,\"last_netns_not_found\":%zu}",
			  sw->sweeps, sw->judged, sw->closed, sw->last_ms, sw->last_netns, sw->last_pods,
			  sw->last_missing);
	else
		sb_printf(out,
			  "plaintext sweeps: %" PRIu64 " (%" PRIu64 " connections judged, %" PRIu64
			  " closed); last: %zu pod address(es) in %zu netns, %zu not found, %" PRIu64 " ms\n",
			  sw->sweeps, sw->judged, sw->closed, sw->last_pods, sw->last_netns, sw->last_missing,
			  sw->last_ms);
	pthread_mutex_unlock(&sw->mu);
}

void plain_sweeper_wait(struct plain_sweeper *sw)
{
	pthread_mutex_lock(&sw->mu);
	while (sw->running)
		pthread_cond_wait(&sw->idle, &sw->mu);
	pthread_mutex_unlock(&sw->mu);
}

void plain_sweeper_free(struct plain_sweeper *sw)
{
	if (!sw)
		return;
	pthread_mutex_lock(&sw->mu);
	snapshot_put(sw->waiting);
	sw->waiting = NULL;
	free(sw->waiting_pods);
	sw->waiting_pods = NULL;
	sw->n_waiting_pods = 0;
	while (sw->running)
		pthread_cond_wait(&sw->idle, &sw->mu);
	pthread_mutex_unlock(&sw->mu);
	if (sw->node_ns >= 0)
		close(sw->node_ns);
	free(sw->counts);
	pthread_cond_destroy(&sw->idle);
	pthread_mutex_destroy(&sw->mu);
	free(sw);
}
