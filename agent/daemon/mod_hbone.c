// SPDX-License-Identifier: Apache-2.0
/*
 * The HBONE tunnel's server side (--hbone, off by default): the agent serves HBONE on port 15008 for the pod
 * IPs of this node. Inbound TCP to <local pod IP>:15008 arriving on an uplink is steered to the agent's
 * listener by policy routing (datapath/hbone_steer.h); the server presents the destination pod's workload
 * certificate, verifies the client against the trust bundle and trust domain (verify_peer), admits
 * CONNECTs whose :authority is a pod of this node at the address the client dialled, and connects to the pod
 * with SO_MARK = XM_MTLS_AGENT_MARK so that a STRICT port lets it in.
 *
 * Threads: the tunnel runs on a loop thread of its own (the "hbone" thread), started at the first apply that
 * carries the trust bundle; the control loop never waits for it. Its callbacks read the snapshot this module
 * applied last (serving(): from the start of its apply, not from the daemon's publication after every module
 * applied, so that a connection accepted during the apply that starts the listeners, e.g. one queued while
 * the agent restarted, finds its pod) and the identity store (any thread).
 *
 * The client side (daemon/hbone_outbound.c) runs on the same thread: the pool, the outbound listener on this
 * node's InternalIP at XM_HBONE_OUTBOUND_PORT that the kernel's connect hook sends this node's pods' connections
 * to pods of other nodes to (xm_hbone_proxy, kept pointing at it; xm_hbone_dsts, kept in step with
 * snapshot->mtls_remote at each apply), and the hand-off of other modules' sockets (daemon/tunnel.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <xmesh/hbone.h>
#include <xmesh/mtls.h>

#include "compile/snapshot.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/hbone_outbound.h"
#include "daemon/listen_handover.h"
#include "daemon/module.h"
#include "daemon/tunnel.h"
#include "datapath/hbone_capture.h"
#include "datapath/hbone_steer.h"
#include "datapath/pins.h"
#include "hbone/hbone.h"
#include "identity/identity.h"
#include "metrics/registry.h"
#include "metrics/tunnel_tcp.h"

/* How long a stopping agent splices open streams: the L7 proxy's drain (l7/proxy.h drain_timeout_ms). */
#define HBONE_DRAIN_TIMEOUT_MS 10000
/* How long the listening sockets wait for the next agent before the capture is turned off (as the L7's). */
#define HBONE_HANDOVER_WAIT_S 10

struct hbone_mod {
	struct xm_agent *agent;
	const char *const *ifaces;
	size_t n_ifaces;
	char node[256];
	char trust_domain[XM_TRUST_DOMAIN_MAX + 1];
	struct xm_trust_bundle *bundle; /* a reference, from the first snapshot that carries it */
	int lfd;
	bool steering;
	struct xm_loop *loop;
	struct hbone_server *srv;
	pthread_t thread;
	bool running;
	bool warned;		    /* said once that there is no trust bundle */
	struct xm_cert *presenting; /* the hbone thread's: the certificate handed to the last handshake */
	struct hbone_counters ctr;
	atomic_ullong no_cert; /* connections dropped: the local address is no pod of this node with a certificate */
	struct tunnel_tcp_table *tcp; /* istio_tcp_* of tunnelled streams: the hbone thread adds, the scrape reads */
	/* The client side (hbone_outbound.h). */
	int proxy_map, dsts_map, origdst_map; /* xm_hbone_proxy, xm_hbone_dsts, xm_hbone_origdst */
	struct hbone_outbound *ob;
	_Atomic(struct hbone_outbound *) ob_pub; /* ob, for other threads (tunnel_submit, metrics) */
	struct xm_snapshot *published;		 /* whose mtls_remote xm_hbone_dsts holds; NULL: unknown */
	struct sockaddr_in listening;		 /* where the outbound listener is (port 0: none) */
	bool capturing;				 /* xm_hbone_proxy points at it */
	bool warned_no_node;
	/* Restart. */
	char handover_path[4096]; /* <admin>.hbone: where the listening sockets wait across a restart */
	bool detach_on_exit;	  /* the datapath goes with the agent: nothing to hand over */
	int taken_ob;		  /* the outbound listener a previous agent handed over, until start adopts it */
	struct sockaddr_in taken_ob_addr;
	atomic_int drained_ob; /* set by the hbone thread's drain: its outbound listener (-1: none), or -2 */
	pthread_mutex_t snap_mu;
	struct xm_snapshot *snap; /* the snapshot being applied or in force, for the hbone thread's callbacks */
};

/* Any thread: the snapshot this module serves, with a reference (snapshot_put); NULL before the first apply. */
static struct xm_snapshot *serving(struct hbone_mod *m)
{
	struct xm_snapshot *s;

	pthread_mutex_lock(&m->snap_mu);
	s = snapshot_get(m->snap);
	pthread_mutex_unlock(&m->snap_mu);
	return s;
}

/* The pod of this node at addr (IPv4), its SPIFFE URI in uri; false when addr is no such pod. */
static bool local_pod(const struct hbone_mod *m, const struct xm_snapshot *s, const struct sockaddr_storage *addr,
		      char *uri, size_t len)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
	union xm_addr a = { 0 };
	const struct xm_identity *id;

	if (!s || addr->ss_family != AF_INET)
		return false;
	a.v4 = sin->sin_addr.s_addr;
	id = identities_find(&s->identities, &a, XM_FAMILY_V4);
	if (!id || !id->wl || strcmp(id->wl->node, m->node))
		return false;
	return spiffe_format(uri, len, m->trust_domain, id->wl->ns, id->wl->service_account) == 0;
}

/* hbone thread: the certificate of the pod whose IP the client dialled. */
static int hb_cert(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
		   STACK_OF(X509) * *chain)
{
	struct hbone_mod *m = ctx;
	struct xm_snapshot *s = serving(m);
	struct xm_cert *c = NULL;
	char uri[XM_SPIFFE_MAX + 1];

	if (local_pod(m, s, local, uri, sizeof(uri)) && s->certs)
		c = identity_store_get(s->certs, uri);
	snapshot_put(s);
	if (!c) {
		atomic_fetch_add_explicit(&m->no_cert, 1, memory_order_relaxed);
		return -ENOENT;
	}
	/* The server hands them to OpenSSL (which takes references) before the next connection comes. */
	cert_put(m->presenting);
	m->presenting = c;
	*cert = cert_leaf(c);
	*key = cert_key(c);
	*chain = cert_chain(c);
	return 0;
}

/* hbone thread: the client's chain (already verified by OpenSSL) through the agent's own peer check. */
static int hb_verify(void *ctx, const char *expected, X509 *leaf, STACK_OF(X509) * chain, char *peer_id,
		     size_t peer_id_len)
{
	struct hbone_mod *m = ctx;
	struct xm_spiffe_id id;

	if (verify_peer(m->bundle, leaf, chain, m->trust_domain, (int64_t)time(NULL),
			expected ? XM_PEER_SERVER : XM_PEER_CLIENT, &id) != XM_VERIFY_OK)
		return -EACCES;
	/* The client side: the server must be the destination pod's workload (ztunnel's identity check). */
	if (expected && strcmp(id.uri, expected))
		return -EACCES;
	snprintf(peer_id, peer_id_len, "%s", id.uri);
	return 0;
}

/* hbone thread: the workload of this node at addr (a captured connection's client). */
static int ob_local_workload(void *ctx, const struct sockaddr_storage *addr, char *id, size_t len)
{
	struct hbone_mod *m = ctx;
	struct xm_snapshot *s = serving(m);
	bool ok = local_pod(m, s, addr, id, len);

	snapshot_put(s);
	return ok ? 0 : -ENOENT;
}

/* Any thread: the certificate of a workload of this node. */
static struct xm_cert *ob_certificate(void *ctx, const char *id)
{
	struct hbone_mod *m = ctx;
	struct xm_snapshot *s = serving(m);
	struct xm_cert *c = s && s->certs ? identity_store_get(s->certs, id) : NULL;

	snapshot_put(s);
	return c;
}

/* hbone thread: the identity a destination pod (of any node) proves, as its node's agent mints it. */
static int ob_peer_identity(void *ctx, const struct sockaddr_storage *target, char *id, size_t len)
{
	struct hbone_mod *m = ctx;
	struct xm_snapshot *s = serving(m);
	union xm_addr a = { 0 };
	const struct xm_identity *pod;
	int err = -ENOENT;

	if (s && target->ss_family == AF_INET) {
		a.v4 = ((const struct sockaddr_in *)target)->sin_addr.s_addr;
		pod = identities_find(&s->identities, &a, XM_FAMILY_V4);
		if (pod && pod->wl && !spiffe_format(id, len, m->trust_domain, pod->wl->ns, pod->wl->service_account))
			err = 0;
	}
	snapshot_put(s);
	return err;
}

/*
 * hbone thread: a CONNECT's target must be a pod of this node, at the address the client dialled (ztunnel's
 * IPMismatch check). PeerAuthentication: a verified mTLS peer satisfies every mode (STRICT and PERMISSIVE
 * accept mutual TLS; DISABLE only stops requiring it), so nothing here answers 401 yet; an
 * AuthorizationPolicy would.
 */
static int hb_admit(void *ctx, const struct hbone_admit *req)
{
	struct hbone_mod *m = ctx;
	struct xm_snapshot *s = serving(m);
	const struct sockaddr_in *t = (const struct sockaddr_in *)req->target;
	const struct sockaddr_in *l = (const struct sockaddr_in *)req->local;
	char uri[XM_SPIFFE_MAX + 1];
	int status = 200;

	if (req->target->ss_family != AF_INET || req->local->ss_family != AF_INET ||
	    t->sin_addr.s_addr != l->sin_addr.s_addr || !local_pod(m, s, req->target, uri, sizeof(uri)))
		status = 400;
	snapshot_put(s);
	return status;
}

/* hbone thread: the istio_tcp_* series (reporter destination, mutual_tls) a stream about to open counts in. */
static struct hbone_stream_counts *hb_account(void *ctx, const struct hbone_admit *req)
{
	struct hbone_mod *m = ctx;
	struct xm_snapshot *s = serving(m);
	struct tunnel_tcp_labels l;

	tunnel_tcp_resolve(s, req->peer_id, req->target, req->forwarded, &l);
	snapshot_put(s);
	return tunnel_tcp_series(m->tcp, &l);
}

static void *hbone_thread(void *arg)
{
	struct hbone_mod *m = arg;
	int err = loop_run(m->loop);

	if (err)
		log_error("hbone: event loop: %s", strerror(-err));
	return NULL;
}

static int listen_hbone(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(HBONE_PORT) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	/*
	 * IP_TRANSPARENT: the connections it accepts answer from a pod's IP, which is no address of this node;
	 * without it the routing of the SYN-ACK refuses that source (IpOutNoRoutes). Needs CAP_NET_ADMIN.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 1024)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * The listening sockets a stopping agent left with its holder: the 15008 one becomes lfd (-1 when none), the
 * outbound one waits in m->taken_ob for start. Others (none expected) are closed.
 */
static int take_listeners(struct hbone_mod *m)
{
	int fds[LISTEN_HANDOVER_MAX_FDS], lfd = -1;
	size_t n = 0;
	int err = listen_handover_receive(m->handover_path, fds, LISTEN_HANDOVER_MAX_FDS, &n);

	if (err) {
		if (err != -ENOENT)
			log_warn("hbone: listening sockets of the previous agent at %s: %s", m->handover_path,
				 strerror(-err));
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_in a;
		socklen_t len = sizeof(a);

		if (getsockname(fds[i], (struct sockaddr *)&a, &len) || a.sin_family != AF_INET) {
			close(fds[i]);
		} else if (ntohs(a.sin_port) == HBONE_PORT && lfd < 0) {
			lfd = fds[i];
		} else if (ntohs(a.sin_port) == XM_HBONE_OUTBOUND_PORT && m->taken_ob < 0) {
			m->taken_ob = fds[i];
			m->taken_ob_addr = a;
		} else {
			close(fds[i]);
		}
	}
	log_info("hbone: took over %s%s of the previous agent", lfd >= 0 ? "the 15008 listener" : "no 15008 listener",
		 m->taken_ob >= 0 ? " and the outbound listener" : "");
	return lfd;
}

static void close_maps(struct hbone_mod *m)
{
	int *fds[] = { &m->proxy_map, &m->dsts_map, &m->origdst_map };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

static int hbone_mod_init(struct xm_agent *a, void **state)
{
	const struct xm_agent_opts *o = daemon_opts(a);
	struct hbone_mod *m;
	int err;

	*state = NULL;
	if (!o->hbone) {
		/* A previous agent's capture may still point at its listener: pods' connections go direct again. */
		int fd = pins_open(o->bpffs, "xm_hbone_proxy");

		if (fd >= 0) {
			hbone_capture_set_proxy(fd, NULL);
			close(fd);
		}
		return 0;
	}
	if (!o->n_ifaces) {
		log_error("hbone: --hbone needs the uplinks (--iface): inbound HBONE is steered from them");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m || !(m->tcp = tunnel_tcp_new(0))) {
		free(m);
		return -ENOMEM;
	}
	m->agent = a;
	m->ifaces = o->ifaces;
	m->n_ifaces = o->n_ifaces;
	m->lfd = -1;
	m->taken_ob = -1;
	atomic_init(&m->drained_ob, -2);
	pthread_mutex_init(&m->snap_mu, NULL);
	snprintf(m->handover_path, sizeof(m->handover_path), "%s.hbone", o->admin_path ? o->admin_path : "");
	m->detach_on_exit = o->detach_on_exit;
	m->proxy_map = pins_open(o->bpffs, "xm_hbone_proxy");
	m->dsts_map = pins_open(o->bpffs, "xm_hbone_dsts");
	m->origdst_map = pins_open(o->bpffs, "xm_hbone_origdst");
	if (m->proxy_map < 0 || m->dsts_map < 0 || m->origdst_map < 0) {
		err = m->proxy_map < 0 ? m->proxy_map : m->dsts_map < 0 ? m->dsts_map : m->origdst_map;
		log_error("hbone: the capture's maps (xm_hbone_proxy, xm_hbone_dsts, xm_hbone_origdst) under %s: %s",
			  o->bpffs, strerror(-err));
		close_maps(m);
		tunnel_tcp_free(m->tcp);
		free(m);
		return err;
	}
	snprintf(m->node, sizeof(m->node), "%s", o->node_name ? o->node_name : "");
	snprintf(m->trust_domain, sizeof(m->trust_domain), "%s",
		 o->trust_domain ? o->trust_domain : XM_DEFAULT_TRUST_DOMAIN);
	m->lfd = o->admin_path ? take_listeners(m) : -1;
	if (m->taken_ob >= 0) {
		/* The capture points at the listener we hold: connects queue there until start adopts it. */
		m->capturing = true;
	} else {
		/* Nobody listens until the client starts: connects go direct meanwhile (a STRICT pod refuses them). */
		hbone_capture_set_proxy(m->proxy_map, NULL);
	}
	if (m->lfd < 0)
		m->lfd = listen_hbone();
	if (m->lfd < 0) {
		err = m->lfd;
		log_error("hbone: listening on 0.0.0.0:%d: %s", HBONE_PORT, strerror(-err));
		if (m->taken_ob >= 0) {
			hbone_capture_set_proxy(m->proxy_map, NULL);
			close(m->taken_ob);
		}
		tunnel_tcp_free(m->tcp);
		close_maps(m);
		free(m);
		return err;
	}
	m->loop = loop_new();
	if (!m->loop) {
		if (m->taken_ob >= 0) {
			hbone_capture_set_proxy(m->proxy_map, NULL);
			close(m->taken_ob);
		}
		close(m->lfd);
		tunnel_tcp_free(m->tcp);
		close_maps(m);
		free(m);
		return -ENOMEM;
	}
	err = hbone_steer_install(m->ifaces, m->n_ifaces);
	if (err) {
		log_error("hbone: steering port %d to the agent (policy routing, table %d): %s", HBONE_PORT,
			  XM_HBONE_STEER_TABLE, strerror(-err));
		hbone_steer_remove(m->ifaces, m->n_ifaces);
		if (m->taken_ob >= 0) {
			hbone_capture_set_proxy(m->proxy_map, NULL);
			close(m->taken_ob);
		}
		loop_free(m->loop);
		close(m->lfd);
		tunnel_tcp_free(m->tcp);
		close_maps(m);
		free(m);
		return err;
	}
	m->steering = true;
	*state = m;
	return 0;
}

static int start(struct hbone_mod *m, const struct xm_snapshot *next)
{
	struct hbone_server_config cfg = {
		.verify = hb_verify,
		.cert = hb_cert,
		.admit = hb_admit,
		.account = hb_account,
		.ctx = m,
		.target_mark = XM_MTLS_AGENT_MARK,
	};
	struct hbone_outbound_config oc = {
		.loop = m->loop,
		.verify = hb_verify,
		.verify_ctx = m,
		.ops = { .local_workload = ob_local_workload,
			 .certificate = ob_certificate,
			 .peer_identity = ob_peer_identity,
			 .ctx = m },
		.origdst_fd = m->origdst_map,
	};
	int err;

	if (!m->bundle)
		m->bundle = bundle_get((struct xm_trust_bundle *)next->trust_bundle);
	cfg.trust = oc.trust = bundle_store(m->bundle);
	m->srv = hbone_server_new(m->loop, m->lfd, &cfg, &m->ctr);
	m->ob = m->srv ? hbone_outbound_new(&oc, &m->ctr) : NULL;
	if (!m->ob) {
		hbone_server_free(m->srv);
		m->srv = NULL;
		return -ENOMEM;
	}
	if (m->taken_ob >= 0) {
		/* The previous agent's listener, with what queued there during the restart. */
		err = hbone_outbound_adopt(m->ob, m->taken_ob);
		m->taken_ob = -1;
		if (err)
			log_warn("hbone: the outbound listener handed over: %s; listening anew", strerror(-err));
		else
			m->listening = m->taken_ob_addr;
	}
	err = pthread_create(&m->thread, NULL, hbone_thread, m);
	if (err) {
		hbone_outbound_free(m->ob);
		m->ob = NULL;
		hbone_server_free(m->srv);
		m->srv = NULL;
		return -err;
	}
	m->running = true;
	atomic_store_explicit(&m->ob_pub, m->ob, memory_order_release);
	log_info("hbone: serving HBONE on port %d for this node's pods (TCP to a pod IP:%d from %zu uplink(s))",
		 HBONE_PORT, HBONE_PORT, m->n_ifaces);
	return 0;
}

static void set_capture(struct hbone_mod *m, bool on)
{
	struct l7_capture_proxy cp = {
		.addr4.v4 = m->listening.sin_addr.s_addr,
		.v4 = true,
		.port = ntohs(m->listening.sin_port),
	};

	if (on == m->capturing)
		return;
	if (hbone_capture_set_proxy(m->proxy_map, on ? &cp : NULL)) {
		log_warn("hbone: could not %s the capture (xm_hbone_proxy)", on ? "turn on" : "turn off");
		return;
	}
	m->capturing = on;
	if (on)
		log_info("hbone: capturing this node's pods' connections to tunnelled pods of other nodes at %s:%d",
			 inet_ntoa(m->listening.sin_addr), XM_HBONE_OUTBOUND_PORT);
}

/*
 * The client side's part of an apply: the destinations first (a pod that turns DISABLE stops being captured
 * with this apply, one that turns tunnelled starts), then the listener on this node's InternalIP, then the
 * capture pointed at it once it listens.
 */
static int outbound_apply(struct hbone_mod *m, struct xm_snapshot *next)
{
	struct sockaddr_in want = { .sin_family = AF_INET, .sin_port = htons(XM_HBONE_OUTBOUND_PORT) };
	union xm_addr node;
	bool have = local_addrs_node_ip(&next->local, XM_FAMILY_V4, &node);
	int err = 0, r;

	want.sin_addr.s_addr = node.v4;
	r = hbone_capture_sync(m->dsts_map, m->published ? &m->published->mtls_remote : NULL, &next->mtls_remote);
	if (r) {
		log_warn("hbone: updating the tunnelled destinations (xm_hbone_dsts): %s", strerror(-r));
		err = r;
	}
	snapshot_put(m->published);
	m->published = r ? NULL : snapshot_get(next);
	if (!have) {
		if (!m->warned_no_node)
			log_warn("hbone: no IPv4 InternalIP of this node (--node) in the config: pods' connections to "
				 "other nodes are not tunnelled");
		m->warned_no_node = true;
		set_capture(m, false);
		return err;
	}
	m->warned_no_node = false;
	if (m->listening.sin_addr.s_addr != want.sin_addr.s_addr || !m->listening.sin_port) {
		set_capture(m, false); /* not at the old address while the new one is not there */
		r = hbone_outbound_listen(m->ob, &want);
		if (r) {
			log_error("hbone: the outbound listener on %s:%d: %s", inet_ntoa(want.sin_addr),
				  XM_HBONE_OUTBOUND_PORT, strerror(-r));
			memset(&m->listening, 0, sizeof(m->listening));
			return r;
		}
		m->listening = want;
	}
	set_capture(m, true);
	return err;
}

static int hbone_mod_apply(void *state, struct xm_snapshot *next)
{
	struct hbone_mod *m = state;
	struct xm_snapshot *old;
	int err;

	pthread_mutex_lock(&m->snap_mu);
	old = m->snap;
	m->snap = snapshot_get(next);
	pthread_mutex_unlock(&m->snap_mu);
	snapshot_put(old);

	if (!m->running) {
		if (!next->trust_bundle || !next->certs) {
			if (!m->warned)
				log_warn("hbone: no trust bundle (the identity module is off): not serving");
			m->warned = true;
			/* A listener taken over would never be served: connects go direct instead. */
			set_capture(m, false);
			return 0;
		}
		err = start(m, next);
		if (err)
			return err;
	}
	return outbound_apply(m, next);
}

bool tunnel_available(struct xm_agent *a)
{
	struct hbone_mod *m = daemon_module_state(a, &xm_module_hbone);

	return m && hbone_outbound_available(atomic_load_explicit(&m->ob_pub, memory_order_acquire));
}

int tunnel_submit(struct xm_agent *a, int fd, const struct xm_tunnel_req *req)
{
	struct hbone_mod *m = daemon_module_state(a, &xm_module_hbone);
	struct hbone_outbound *ob = m ? atomic_load_explicit(&m->ob_pub, memory_order_acquire) : NULL;

	if (!ob) {
		close(fd);
		return -ENOTCONN;
	}
	return hbone_outbound_submit(ob, fd, req);
}

static void hbone_mod_status(void *state, const struct xm_snapshot *cur, bool json, struct strbuf *out)
{
	struct hbone_mod *m = state;
	unsigned long long open = atomic_load(&m->ctr.connections_open[HBONE_SIDE_SERVER]),
			   streams = atomic_load(&m->ctr.streams_opened[HBONE_SIDE_SERVER]);

	(void)cur;
	if (json) {
		sb_printf(out, ",\"hbone\":{\"server\":%s,\"connections\":%llu,\"streams\":%llu",
			  m->running ? "true" : "false", open, streams);
		sb_printf(out, ",\"client\":{\"running\":%s,\"capturing\":%s", m->ob ? "true" : "false",
			  m->capturing ? "true" : "false");
		if (m->ob) {
			sb_puts(out, ",");
			hbone_outbound_status(m->ob, &m->ctr, true, out);
		}
		sb_puts(out, "}}");
		return;
	}
	sb_printf(out, "hbone: server %s on port %d, %llu TLS connection(s) open, %llu stream(s) opened\n",
		  m->running ? "serving" : "not started", HBONE_PORT, open, streams);
	if (m->ob)
		hbone_outbound_status(m->ob, &m->ctr, false, out);
	else
		sb_puts(out, "hbone: client not started (no trust bundle)\n");
	sb_printf(out, "hbone: capture %s\n", m->capturing ? "on" : "off (pods' connections to other nodes go direct)");
}

static void hbone_mod_collect(void *state, const struct xm_snapshot *cur, struct xm_scrape *sc)
{
	static const char *const sr[2] = { "side", "result" }, *const rs[1] = { "reason" };
	struct hbone_mod *m = state;
	struct xm_scrape_family *f;

	(void)cur;
	f = scrape_family(sc, "xmesh_tls_handshakes_total", "counter",
			  "TLS handshakes of the HBONE tunnel, by side (server, client) and result.");
	for (int s = 0; s < HBONE_SIDES; s++)
		for (int r = 0; r < HBONE_HS_RESULTS; r++) {
			const char *v[2] = { hbone_side_name(s), hbone_hs_result_name(r) };

			scrape_u64(f, sr, v, 2, atomic_load(&m->ctr.handshakes[s][r]));
		}
	f = scrape_family(sc, "xmesh_tls_resumptions_total", "counter",
			  "TLS handshakes of the HBONE tunnel that resumed a session (also counted as successes).");
	for (int s = 0; s < HBONE_SIDES; s++) {
		const char *v[1] = { hbone_side_name(s) };

		scrape_u64(f, sr, v, 1, atomic_load(&m->ctr.resumed[s]));
	}
	f = scrape_family(sc, "xmesh_tls_tickets_rejected_total", "counter",
			  "Session tickets not offered (client) or not accepted (server) because a check failed: a "
			  "full handshake followed.");
	for (int s = 0; s < HBONE_SIDES; s++) {
		const char *v[1] = { hbone_side_name(s) };

		scrape_u64(f, sr, v, 1, atomic_load(&m->ctr.tickets_rejected[s]));
	}
	f = scrape_family(sc, "xmesh_hbone_connections_dropped_total", "counter",
			  "Connections to port 15008 closed before TLS: the address dialled is no pod of this node "
			  "with a workload certificate.");
	scrape_u64(f, NULL, NULL, 0, atomic_load(&m->no_cert));
	f = scrape_family(sc, "xmesh_hbone_streams_refused_total", "counter",
			  "HBONE CONNECT streams that did not open, by reason.");
	for (int r = 0; r < HBONE_REFUSALS; r++) {
		const char *v[1] = { hbone_refusal_name(r) };

		scrape_u64(f, rs, v, 1, atomic_load(&m->ctr.streams_refused[r]));
	}
	tunnel_tcp_collect(m->tcp, sc);
	hbone_outbound_collect(atomic_load_explicit(&m->ob_pub, memory_order_acquire), &m->ctr, sc);
}

/* hbone thread: stop accepting, refuse new streams, let the open ones run (hbone_server_drain, _outbound_drain). */
static void drain_on_loop(struct xm_loop *loop, void *arg)
{
	struct hbone_mod *m = arg;

	(void)loop;
	hbone_server_drain(m->srv);
	atomic_store(&m->drained_ob, hbone_outbound_drain(m->ob));
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned long long tls_open(struct hbone_mod *m)
{
	return atomic_load(&m->ctr.connections_open[HBONE_SIDE_SERVER]) +
	       atomic_load(&m->ctr.connections_open[HBONE_SIDE_CLIENT]);
}

/*
 * Restart, control thread: the hbone thread drains; the listening sockets go to a holder for the next agent
 * (unless the datapath goes with us); then the open streams get until the deadline to end. Returns whether a
 * holder keeps the sockets (then the capture and the steering stay).
 */
static bool drain_and_hand_over(struct hbone_mod *m)
{
	uint64_t start = now_ms(), deadline = start + HBONE_DRAIN_TIMEOUT_MS;
	int fds[2], ob_fd;
	size_t n = 0;
	bool held = false;
	pid_t pid;

	if (loop_post(m->loop, drain_on_loop, m)) {
		log_warn("hbone: could not post the drain: open streams are reset");
		return false;
	}
	while ((ob_fd = atomic_load(&m->drained_ob)) == -2 && now_ms() < start + 1000)
		usleep(1000);
	if (ob_fd == -2) {
		log_warn("hbone: the tunnel's thread did not drain in 1 s: open streams are reset");
		return false;
	}
	if (!m->detach_on_exit) {
		fds[n++] = m->lfd;
		if (ob_fd >= 0 && m->capturing)
			fds[n++] = ob_fd;
		/* Nobody coming back: capture off, and the steering goes as it would have at our exit. */
		struct listen_handover_undo undo = { .capture_map_fd = m->proxy_map };
		uint8_t nl[LISTEN_HANDOVER_NETLINK_MAX];
		int nl_len = m->steering ? hbone_steer_removal(m->ifaces, m->n_ifaces, nl, sizeof(nl)) : 0;

		if (nl_len > 0) {
			undo.netlink = nl;
			undo.netlink_len = (size_t)nl_len;
		} else if (nl_len < 0) {
			log_warn("hbone: the steering's removal for the holder: %s; it stays if no agent comes back",
				 strerror(-nl_len));
		}
		pid = listen_handover_spawn(m->handover_path, fds, n, &undo, HBONE_HANDOVER_WAIT_S, "xmesh-hbone-hold");
		if (pid > 0) {
			held = true;
			log_info("hbone: %zu listening sockets held for the next agent by pid %d on %s (%u s)", n,
				 (int)pid, m->handover_path, HBONE_HANDOVER_WAIT_S);
		} else {
			log_warn("hbone: handing the listening sockets over: %s; pods' connections go direct",
				 strerror(-(int)pid));
		}
	}
	if (!held)
		set_capture(m, false);
	log_info("hbone: draining %llu TLS connection(s) (at most %d ms)", tls_open(m), HBONE_DRAIN_TIMEOUT_MS);
	while (tls_open(m) && now_ms() < deadline)
		usleep(10000);
	if (tls_open(m))
		log_warn("hbone: %llu TLS connection(s) still open after the drain deadline: their streams are reset",
			 tls_open(m));
	else
		log_info("hbone: drained in %llu ms", (unsigned long long)(now_ms() - start));
	return held;
}

static void hbone_mod_close(void *state)
{
	struct hbone_mod *m = state;
	bool held = false;

	hbone_outbound_stop(m->ob); /* tunnel_submit refuses from now on */
	if (m->running) {
		held = drain_and_hand_over(m);
		loop_stop(m->loop);
		pthread_join(m->thread, NULL);
	}
	/* Without a holder, capture off: new connects go direct, not to a listener about to close. */
	if (!held)
		set_capture(m, false);
	if (m->taken_ob >= 0)
		close(m->taken_ob);
	atomic_store(&m->ob_pub, NULL);
	hbone_outbound_free(m->ob);
	snapshot_put(m->published);
	snapshot_put(m->snap);
	pthread_mutex_destroy(&m->snap_mu);
	close_maps(m);
	hbone_server_free(m->srv);
	cert_put(m->presenting);
	loop_free(m->loop);
	/* Kept while a holder has the 15008 listener: a peer's connect waits there instead of meeting the pod. */
	if (m->steering && !held)
		hbone_steer_remove(m->ifaces, m->n_ifaces);
	close(m->lfd);
	bundle_put(m->bundle);
	tunnel_tcp_free(m->tcp);
	free(m);
}

const struct xm_module xm_module_hbone = {
	.name = "hbone",
	.init = hbone_mod_init,
	.apply = hbone_mod_apply,
	.status = hbone_mod_status,
	.collect = hbone_mod_collect,
	.close = hbone_mod_close,
};
