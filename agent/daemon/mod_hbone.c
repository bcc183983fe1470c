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
 * the agent restarted, finds its pod) and the identity store (any thread). An apply whose AuthorizationPolicies,
 * or what they read of the pods (labels, namespace, principal at an address), differ posts one walk
 * (recheck_on_loop) to the hbone thread, which owns the streams: it ends those now denied.
 *
 * The client side (daemon/hbone_outbound.c) runs on the same thread: the pool, the outbound listeners on this
 * node's InternalIPs (one per family the node has) at XM_HBONE_OUTBOUND_PORT that the kernel's connect hook
 * sends this node's pods' connections to pods of other nodes to (xm_hbone_proxy, kept pointing at them;
 * xm_hbone_dsts, kept in step with snapshot->mtls_remote at each apply), and the hand-off of other modules'
 * sockets (daemon/tunnel.h).
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

#include "compile/authz_change.h"
#include "compile/snapshot.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/hbone_authz.h"
#include "daemon/hbone_baggage.h"
#include "daemon/hbone_outbound.h"
#include "daemon/listen_handover.h"
#include "daemon/module.h"
#include "daemon/tunnel.h"
#include "datapath/hbone_capture.h"
#include "datapath/hbone_steer.h"
#include "datapath/pins.h"
#include "datapath/sock_ends.h"
#include "hbone/hbone.h"
#include "identity/identity.h"
#include "metrics/authz_denied.h"
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
	const char *cluster_id;		/* --cluster-id, in the baggage of CONNECTs */
	struct xm_trust_bundle *bundle; /* the hbone thread's reference: the roots verify_peer checks against */
	/*
	 * After a CA reload (identity_store_bundle): the TLS contexts' store gains the new roots (it only grows,
	 * so the chains it already passed stay passed) and bundle, which every handshake's hb_verify checks
	 * last, becomes the new one, so a root that left root-cert.pem is refused from then on.
	 */
	X509_STORE *tls_trust;
	struct xm_trust_bundle *offered;	    /* control loop: the last bundle handed to the hbone thread */
	uint64_t certs_seen;			    /* control loop: the store's generation the pool was rechecked at */
	atomic_bool certs_recheck_posted;	    /* a recheck_certs is on its way to the hbone thread */
	_Atomic(struct xm_trust_bundle *) incoming; /* handed over, for the hbone thread to take */
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
	struct authz_denied denied;   /* xmesh_authz_denied_total: the hbone thread adds, the scrape reads */
	struct authz_denied closed;   /* xmesh_authz_closed_total: streams a policy change ended (the same) */
	/* The re-check walk a change asked for: the streams it may affect (merged while one waits), posted once. */
	pthread_mutex_t recheck_mu;
	struct authz_recheck_scope recheck_pending;
	bool recheck_posted;
	/* The client side (hbone_outbound.h). */
	int proxy_map, dsts_map, origdst_map; /* xm_hbone_proxy, xm_hbone_dsts, xm_hbone_origdst */
	struct hbone_outbound *ob;
	_Atomic(struct hbone_outbound *) ob_pub; /* ob, for other threads (tunnel_submit, metrics) */
	struct xm_snapshot *published;		 /* whose mtls_remote xm_hbone_dsts holds; NULL: unknown */
	struct sockaddr_in listening;		 /* where the outbound listener is (port 0: none) */
	struct sockaddr_in6 listening6;		 /* where the IPv6 one is (port 0: none) */
	bool capturing, capturing6;		 /* xm_hbone_proxy points at each */
	bool warned_no_node;
	/* Restart. */
	char handover_path[4096];	    /* <admin>.hbone: where the listening sockets wait across a restart */
	bool detach_on_exit;		    /* the datapath goes with the agent: nothing to hand over */
	int taken_ob[HBONE_OB_FAMILIES];    /* outbound listeners handed over: [0] IPv4, [1] IPv6 (-1: none) */
	struct sockaddr_in taken_ob_addr;   /* where the IPv4 one listens, until start adopts it */
	struct sockaddr_in6 taken_ob_addr6; /* where the IPv6 one listens */
	/* The hbone thread's drain: its outbound listeners per family (-1: none), valid once drained is set. */
	int drained_ob[HBONE_OB_FAMILIES];
	atomic_bool drained;
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

/*
 * addr's IP as the snapshot keys it: IPv4 (also v4-mapped, as the dual-stack 15008 listener sees IPv4) or
 * IPv6; false for any other family.
 */
static bool ip_of(const struct sockaddr_storage *addr, union xm_addr *a, uint8_t *family)
{
	uint16_t port;

	return sock_ends_addr_of(addr, a, &port, family) == 0;
}

/* The pod of this node at addr (IPv4 or IPv6), its SPIFFE URI in uri; false when addr is no such pod. */
static bool local_pod(const struct hbone_mod *m, const struct xm_snapshot *s, const struct sockaddr_storage *addr,
		      char *uri, size_t len)
{
	const struct xm_identity *id;
	union xm_addr a;
	uint8_t family;

	if (!s || !ip_of(addr, &a, &family))
		return false;
	id = identities_find(&s->identities, &a, family);
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

/* hbone thread: a peer's chain through the agent's own peer check, against the bundle in force now. */
static int check_peer(struct hbone_mod *m, const char *expected, X509 *leaf, STACK_OF(X509) * chain, char *peer_id,
		      size_t peer_id_len)
{
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

/* hbone thread: the peer's chain (already verified by OpenSSL) in a handshake or before a resumption. */
static int hb_verify(void *ctx, const char *expected, X509 *leaf, STACK_OF(X509) * chain, char *peer_id,
		     size_t peer_id_len)
{
	int err = check_peer(ctx, expected, leaf, chain, peer_id, peer_id_len);
	BIGNUM *bn;
	char *hex;

	/* which certificate each peer presented (tests/e2e/test_hbone_pool_rotation.sh reads it) */
	if (err || !xm_log_enabled(XM_LOG_DEBUG))
		return err;
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	log_debug("hbone: %s %s verified, certificate serial %s", expected ? "server" : "client", peer_id,
		  hex ? hex : "?");
	OPENSSL_free(hex);
	BN_free(bn);
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
	union xm_addr a;
	const struct xm_identity *pod;
	uint8_t family;
	int err = -ENOENT;

	if (s && ip_of(target, &a, &family)) {
		pod = identities_find(&s->identities, &a, family);
		if (pod && pod->wl && !spiffe_format(id, len, m->trust_domain, pod->wl->ns, pod->wl->service_account))
			err = 0;
	}
	snapshot_put(s);
	return err;
}

/* hbone thread: the baggage of the local pod at client and the hostname of the Service it dialled. */
static void ob_request_meta(void *ctx, const struct sockaddr_storage *client, uint32_t svc_id, char *baggage,
			    size_t baggage_len, char *host, size_t host_len)
{
	struct hbone_mod *m = ctx;
	struct xm_snapshot *s = serving(m);
	const struct xm_lb_service *svc = s && svc_id ? snapshot_service(s, svc_id) : NULL;
	const struct xm_identity *id = NULL;
	union xm_addr a;
	uint8_t family;

	if (s && ip_of(client, &a, &family))
		id = identities_find(&s->identities, &a, family);
	if (!id || !id->wl || strcmp(id->wl->node, m->node) ||
	    workload_baggage(id->wl, m->cluster_id, baggage, baggage_len) < 0)
		baggage[0] = '\0';
	if (!svc || service_hostname(svc, host, host_len) < 0)
		host[0] = '\0';
	snapshot_put(s);
}

/*
 * hbone thread: a CONNECT's target must be a pod of this node, at the address the client dialled (ztunnel's
 * IPMismatch check). PeerAuthentication: a verified mTLS peer satisfies every mode (STRICT and PERMISSIVE
 * accept mutual TLS; DISABLE only stops requiring it). Then AuthorizationPolicy: 401 when it denies.
 */
static int hb_admit(void *ctx, const struct hbone_admit *req)
{
	struct hbone_mod *m = ctx;
	struct xm_snapshot *s = serving(m);
	char uri[XM_SPIFFE_MAX + 1];
	union xm_addr t, l;
	uint8_t tf, lf;
	int status = 200;

	/* The local address of an IPv4 connection is v4-mapped (the listener is dual-stack): compared as IPv4. */
	if (!ip_of(req->target, &t, &tf) || !ip_of(req->local, &l, &lf) || tf != lf || memcmp(&t, &l, sizeof(t)) ||
	    !local_pod(m, s, req->target, uri, sizeof(uri)))
		status = 400;
	else
		status = hbone_authz_check(s, m->trust_domain, req, &m->denied);
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

/* hbone thread: one walk of hbone_server_recheck, with the snapshot taken once for all its streams. */
struct recheck_walk {
	struct hbone_mod *m;
	const struct xm_snapshot *s;
	const struct authz_recheck_scope *scope;
	size_t judged, skipped;
};

/*
 * hbone thread: a stream admitted before a change, against the policies in force now; one the change cannot
 * affect (its addresses' identities are the same, the policies too) keeps its decision without an evaluation.
 */
static int hb_recheck(void *ctx, const struct hbone_admit *req)
{
	struct recheck_walk *w = ctx;

	if (!hbone_authz_recheck_affected(w->scope, req)) {
		w->skipped++;
		return 200;
	}
	w->judged++;
	return hbone_authz_recheck(w->s, w->m->trust_domain, req, &w->m->closed);
}

/*
 * hbone thread: the AuthorizationPolicy set or what it reads of the pods changed; every admitted stream is
 * checked against the snapshot served now (the newest: changes that came meanwhile are covered by this one
 * walk) and the denied ones end.
 */
static void recheck_on_loop(struct xm_loop *loop, void *arg)
{
	struct hbone_mod *m = arg;
	struct authz_recheck_scope scope;
	struct xm_snapshot *s;
	struct recheck_walk w = { .m = m, .scope = &scope };
	size_t ended;

	(void)loop;
	pthread_mutex_lock(&m->recheck_mu); /* a change applied from now on posts again */
	scope = m->recheck_pending;
	m->recheck_pending = (struct authz_recheck_scope){ 0 };
	m->recheck_posted = false;
	pthread_mutex_unlock(&m->recheck_mu);
	if (m->srv) {
		s = serving(m);
		w.s = s;
		ended = hbone_server_recheck(m->srv, hb_recheck, &w);
		snapshot_put(s);
		if (ended)
			log_info("hbone: AuthorizationPolicy re-checked: %zu stream(s) no longer allowed were closed "
				 "(%zu judged, %zu the change could not affect)",
				 ended, w.judged, w.skipped);
	}
	authz_recheck_scope_free(&scope);
}

/* Control loop: asks the hbone thread for a walk over the streams scope may affect (merged into one waiting). */
static void request_recheck(struct hbone_mod *m, const struct authz_recheck_scope *scope)
{
	bool post;

	pthread_mutex_lock(&m->recheck_mu);
	authz_recheck_scope_merge(&m->recheck_pending, scope); /* -ENOMEM: it becomes "all" */
	post = !m->recheck_posted;
	m->recheck_posted = true;
	pthread_mutex_unlock(&m->recheck_mu);
	if (post && loop_post(m->loop, recheck_on_loop, m)) {
		pthread_mutex_lock(&m->recheck_mu);
		m->recheck_posted = false; /* the scope waits for the next change's post */
		pthread_mutex_unlock(&m->recheck_mu);
		log_warn("hbone: out of memory; open streams are checked against the new AuthorizationPolicies at "
			 "the next change");
	}
}

static void *hbone_thread(void *arg)
{
	struct hbone_mod *m = arg;
	int err = loop_run(m->loop);

	if (err)
		log_error("hbone: event loop: %s", strerror(-err));
	return NULL;
}

/*
 * [::]:15008, dual-stack (IPv4 arrives v4-mapped), or 0.0.0.0:15008 where the host has no IPv6. One socket
 * for both families: one listener to serve, hand over and drain.
 */
static int listen_hbone(void)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(HBONE_PORT) };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(HBONE_PORT) };
	int one = 1, off = 0, fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	bool v6 = fd >= 0;

	if (!v6 && errno == EAFNOSUPPORT)
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/*
	 * IP(V6)_TRANSPARENT: the connections it accepts answer from a pod's IP, which is no address of this node;
	 * without it the routing of the SYN-ACK refuses that source (IpOutNoRoutes). Needs CAP_NET_ADMIN. The
	 * IPv6 option sets the socket's one flag, which the IPv4 (v4-mapped) connections use too.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (v6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) ||
		      setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) ||
		      bind(fd, (struct sockaddr *)&sin6, sizeof(sin6))
		: setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) ||
		      bind(fd, (struct sockaddr *)&sin, sizeof(sin))) ||
	    listen(fd, 1024)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * The listening sockets a stopping agent left with its holder: the 15008 one (dual-stack, or IPv4 only on a
 * host without IPv6) becomes lfd (-1 when none), the outbound ones wait in m->taken_ob[family] for start.
 * Others (none expected) are closed.
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
		struct sockaddr_storage a;
		socklen_t len = sizeof(a);
		uint16_t port = 0;
		int f = -1;

		if (getsockname(fds[i], (struct sockaddr *)&a, &len) == 0 &&
		    (a.ss_family == AF_INET || a.ss_family == AF_INET6)) {
			f = a.ss_family == AF_INET6 ? 1 : 0;
			port = ntohs(f ? ((struct sockaddr_in6 *)&a)->sin6_port : ((struct sockaddr_in *)&a)->sin_port);
		}
		if (f >= 0 && port == HBONE_PORT && lfd < 0) {
			lfd = fds[i];
		} else if (f >= 0 && port == XM_HBONE_OUTBOUND_PORT && m->taken_ob[f] < 0) {
			m->taken_ob[f] = fds[i];
			if (f)
				memcpy(&m->taken_ob_addr6, &a, sizeof(m->taken_ob_addr6));
			else
				memcpy(&m->taken_ob_addr, &a, sizeof(m->taken_ob_addr));
		} else {
			close(fds[i]);
		}
	}
	log_info("hbone: took over %s%s%s of the previous agent", lfd >= 0 ? "the 15008 listener" : "no 15008 listener",
		 m->taken_ob[0] >= 0 ? ", the IPv4 outbound listener" : "",
		 m->taken_ob[1] >= 0 ? ", the IPv6 outbound listener" : "");
	return lfd;
}

/* Init failed: the outbound listeners taken over are closed, and the capture that pointed at them is off. */
static void drop_taken(struct hbone_mod *m)
{
	bool any = false;

	for (int f = 0; f < HBONE_OB_FAMILIES; f++) {
		if (m->taken_ob[f] >= 0) {
			close(m->taken_ob[f]);
			any = true;
		}
		m->taken_ob[f] = -1;
	}
	if (any)
		hbone_capture_set_proxy(m->proxy_map, NULL);
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
	pthread_mutex_init(&m->denied.lock, NULL);
	pthread_mutex_init(&m->closed.lock, NULL);
	m->ifaces = o->ifaces;
	m->n_ifaces = o->n_ifaces;
	m->lfd = -1;
	m->taken_ob[0] = m->taken_ob[1] = -1;
	atomic_init(&m->drained, false);
	pthread_mutex_init(&m->recheck_mu, NULL);
	atomic_init(&m->certs_recheck_posted, false);
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
	m->cluster_id = o->cluster_id ? o->cluster_id : XM_DEFAULT_CLUSTER_ID;
	snprintf(m->node, sizeof(m->node), "%s", o->node_name ? o->node_name : "");
	snprintf(m->trust_domain, sizeof(m->trust_domain), "%s",
		 o->trust_domain ? o->trust_domain : XM_DEFAULT_TRUST_DOMAIN);
	m->lfd = o->admin_path ? take_listeners(m) : -1;
	if (m->taken_ob[0] >= 0 || m->taken_ob[1] >= 0) {
		/* The capture points at the listeners we hold (the previous agent's families): connects queue
		 * there until start adopts them. */
		m->capturing = m->taken_ob[0] >= 0;
		m->capturing6 = m->taken_ob[1] >= 0;
	} else {
		/* Nobody listens until the client starts: connects go direct meanwhile (a STRICT pod refuses them). */
		hbone_capture_set_proxy(m->proxy_map, NULL);
	}
	if (m->lfd < 0)
		m->lfd = listen_hbone();
	if (m->lfd < 0) {
		err = m->lfd;
		log_error("hbone: listening on [::]:%d: %s", HBONE_PORT, strerror(-err));
		drop_taken(m);
		tunnel_tcp_free(m->tcp);
		close_maps(m);
		free(m);
		return err;
	}
	m->loop = loop_new();
	if (!m->loop) {
		drop_taken(m);
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
		drop_taken(m);
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
			 .request_meta = ob_request_meta,
			 .ctx = m },
		.origdst_fd = m->origdst_map,
	};
	int err;

	if (!m->bundle)
		m->bundle = bundle_get((struct xm_trust_bundle *)next->trust_bundle);
	if (!m->tls_trust)
		m->tls_trust = X509_STORE_new();
	if (!m->tls_trust || bundle_add_roots(m->bundle, m->tls_trust))
		return -ENOMEM;
	cfg.trust = oc.trust = m->tls_trust;
	m->srv = hbone_server_new(m->loop, m->lfd, &cfg, &m->ctr);
	m->ob = m->srv ? hbone_outbound_new(&oc, &m->ctr) : NULL;
	if (!m->ob) {
		hbone_server_free(m->srv);
		m->srv = NULL;
		return -ENOMEM;
	}
	for (int f = 0; f < HBONE_OB_FAMILIES; f++) {
		if (m->taken_ob[f] < 0)
			continue;
		/* The previous agent's listener, with what queued there during the restart, in its family's slot. */
		err = hbone_outbound_adopt(m->ob, m->taken_ob[f]);
		m->taken_ob[f] = -1;
		if (err)
			log_warn("hbone: the %s outbound listener handed over: %s; listening anew", f ? "IPv6" : "IPv4",
				 strerror(-err));
		else if (f)
			m->listening6 = m->taken_ob_addr6;
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

/* xm_hbone_proxy to the listeners of the families asked (both false: capture off). */
static void set_capture(struct hbone_mod *m, bool v4, bool v6)
{
	struct l7_capture_proxy cp = {
		.addr4.v4 = m->listening.sin_addr.s_addr,
		.v4 = v4,
		.v6 = v6,
		.port = XM_HBONE_OUTBOUND_PORT,
	};
	char ip6[INET6_ADDRSTRLEN];

	if (v4 == m->capturing && v6 == m->capturing6)
		return;
	memcpy(cp.addr6.bytes, &m->listening6.sin6_addr, sizeof(cp.addr6.bytes));
	if (hbone_capture_set_proxy(m->proxy_map, v4 || v6 ? &cp : NULL)) {
		log_warn("hbone: could not %s the capture (xm_hbone_proxy)", v4 || v6 ? "turn on" : "turn off");
		return;
	}
	m->capturing = v4;
	m->capturing6 = v6;
	if (v4)
		log_info("hbone: capturing this node's pods' connections to tunnelled pods of other nodes at %s:%d",
			 inet_ntoa(m->listening.sin_addr), XM_HBONE_OUTBOUND_PORT);
	if (v6)
		log_info("hbone: capturing this node's pods' IPv6 connections to tunnelled pods of other nodes at "
			 "[%s]:%d",
			 inet_ntop(AF_INET6, &m->listening6.sin6_addr, ip6, sizeof(ip6)), XM_HBONE_OUTBOUND_PORT);
}

/*
 * The outbound listener of one family on this node's InternalIP of that family: made (again) when the address
 * is new; true when it listens there. A family the node has no InternalIP of is not captured.
 */
static bool outbound_listener(struct hbone_mod *m, const struct xm_snapshot *next, uint8_t family, int *err)
{
	union xm_addr node;
	char ip[INET6_ADDRSTRLEN];
	int r;

	if (!local_addrs_node_ip(&next->local, family, &node))
		return false;
	if (family == XM_FAMILY_V4) {
		struct sockaddr_in want = { .sin_family = AF_INET, .sin_port = htons(XM_HBONE_OUTBOUND_PORT) };

		want.sin_addr.s_addr = node.v4;
		if (m->listening.sin_port && m->listening.sin_addr.s_addr == want.sin_addr.s_addr)
			return true;
		set_capture(m, false, m->capturing6); /* not at the old address while the new one is not there */
		r = hbone_outbound_listen(m->ob, &want);
		memset(&m->listening, 0, sizeof(m->listening));
		if (!r)
			m->listening = want;
	} else {
		struct sockaddr_in6 want = { .sin6_family = AF_INET6, .sin6_port = htons(XM_HBONE_OUTBOUND_PORT) };

		memcpy(&want.sin6_addr, node.v6, sizeof(want.sin6_addr));
		if (m->listening6.sin6_port &&
		    !memcmp(&m->listening6.sin6_addr, &want.sin6_addr, sizeof(want.sin6_addr)))
			return true;
		set_capture(m, m->capturing, false);
		r = hbone_outbound_listen6(m->ob, &want);
		memset(&m->listening6, 0, sizeof(m->listening6));
		if (!r)
			m->listening6 = want;
	}
	if (r) {
		inet_ntop(family == XM_FAMILY_V4 ? AF_INET : AF_INET6, node.bytes, ip, sizeof(ip));
		log_error("hbone: the outbound listener on %s port %d: %s", ip, XM_HBONE_OUTBOUND_PORT, strerror(-r));
		*err = r;
		return false;
	}
	return true;
}

/*
 * The client side's part of an apply: the destinations first (a pod that turns DISABLE stops being captured
 * with this apply, one that turns tunnelled starts), then a listener on each InternalIP of this node (IPv4,
 * IPv6), then the capture pointed at those that listen.
 */
static int outbound_apply(struct hbone_mod *m, struct xm_snapshot *next)
{
	int err = 0, r;
	bool v4, v6;

	r = hbone_capture_sync(m->dsts_map, m->published ? &m->published->mtls_remote : NULL, &next->mtls_remote);
	if (r) {
		log_warn("hbone: updating the tunnelled destinations (xm_hbone_dsts): %s", strerror(-r));
		err = r;
	}
	snapshot_put(m->published);
	m->published = r ? NULL : snapshot_get(next);
	v4 = outbound_listener(m, next, XM_FAMILY_V4, &err);
	v6 = outbound_listener(m, next, XM_FAMILY_V6, &err);
	if (!v4 && !v6 && !err) {
		if (!m->warned_no_node)
			log_warn("hbone: no InternalIP of this node (--node) in the config: pods' connections to "
				 "other nodes are not tunnelled");
		m->warned_no_node = true;
	} else {
		m->warned_no_node = false;
	}
	set_capture(m, v4, v6);
	return err;
}

/* hbone thread: what recheck_pool asks of each pooled connection. */
struct pool_check {
	struct hbone_mod *m;
	bool peers; /* the trust bundle changed: check the servers too */
};

/*
 * hbone thread: a pooled connection that presented a certificate the store has replaced since (a renewal, a
 * re-mint after a CA reload), or, after a bundle reload, whose server fails the check a new handshake would make.
 */
static bool pooled_stale(void *ctx, const struct hbone_pooled *p, enum hbone_retire_reason *why)
{
	struct pool_check *pc = ctx;
	struct xm_cert *cur = ob_certificate(pc->m, p->src_id);
	bool replaced = cur && X509_cmp(cert_leaf(cur), p->own);
	char id[HBONE_ID_MAX];

	cert_put(cur);
	if (replaced) {
		*why = HBONE_RETIRED_OWN_CERT;
		return true;
	}
	if (pc->peers && p->peer && check_peer(pc->m, p->dst_id, p->peer, p->peer_chain, id, sizeof(id))) {
		*why = HBONE_RETIRED_PEER_UNTRUSTED;
		return true;
	}
	return false;
}

/* hbone thread: pooled connections made with what changed take no new stream (hbone_client_recheck). */
static void recheck_pool(struct hbone_mod *m, bool peers)
{
	struct pool_check pc = { .m = m, .peers = peers };
	size_t n = m->ob ? hbone_outbound_recheck(m->ob, pooled_stale, &pc) : 0;

	if (n)
		log_info("hbone: %zu pooled connection(s) retired (%s): new streams go on new connections", n,
			 peers ? "certificates or trust bundle changed" : "certificates renewed");
}

/* hbone thread: the store's certificates changed (a mint, a renewal, a CA reload's re-mint). */
static void recheck_certs(struct xm_loop *loop, void *arg)
{
	struct hbone_mod *m = arg;

	(void)loop;
	atomic_store(&m->certs_recheck_posted, false);
	recheck_pool(m, false);
}

/* hbone thread: the bundle of a reloaded CA replaces the one handshakes are checked against. */
static void take_bundle(struct xm_loop *loop, void *arg)
{
	struct hbone_mod *m = arg;
	struct xm_trust_bundle *b = atomic_exchange(&m->incoming, NULL), *old = m->bundle;

	(void)loop;
	if (!b)
		return;
	if (bundle_add_roots(b, m->tls_trust)) {
		log_warn("hbone: out of memory adding the new trusted roots; the previous bundle stays");
		bundle_put(b);
		return;
	}
	m->bundle = b;
	bundle_put(old);
	log_info("hbone: peers are verified against the reloaded trust bundle (%zu root(s))", bundle_n_roots(b));
	recheck_pool(m, true);
}

/* Control loop: a reloaded CA publishes its bundle in the store; hand it to the hbone thread. */
static void hbone_mod_tick(void *state, const struct xm_snapshot *cur, uint64_t now_ms)
{
	struct hbone_mod *m = state;
	struct xm_trust_bundle *b;
	uint64_t gen;

	(void)now_ms;
	if (!m->running || !cur || !cur->certs)
		return;
	gen = identity_store_generation(cur->certs);
	if (gen != m->certs_seen && !atomic_exchange(&m->certs_recheck_posted, true)) {
		if (loop_post(m->loop, recheck_certs, m))
			atomic_store(&m->certs_recheck_posted, false); /* out of memory: tried again at the next tick */
		else
			m->certs_seen = gen;
	}
	b = identity_store_bundle(cur->certs);
	if (!b || b == m->offered || (!m->offered && b == m->bundle)) {
		bundle_put(b);
		return;
	}
	bundle_put(m->offered);
	m->offered = bundle_get(b);
	bundle_put(atomic_exchange(&m->incoming, b)); /* one not taken yet is superseded */
	if (loop_post(m->loop, take_bundle, m))
		log_warn("hbone: out of memory; the reloaded trust bundle is taken at the next change");
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
	/*
	 * The hbone thread owns the streams: it walks them (ztunnel closes what a policy change denies; here also
	 * what a pod's labels, namespace or principal change denies under the same policies).
	 */
	if (m->running && old) {
		struct authz_recheck_scope scope;

		authz_recheck_scope(old, next, &scope); /* -ENOMEM: "all" */
		if (!authz_recheck_scope_empty(&scope))
			request_recheck(m, &scope);
		authz_recheck_scope_free(&scope);
	}
	snapshot_put(old);

	if (!m->running) {
		if (!next->trust_bundle || !next->certs) {
			if (!m->warned)
				log_warn("hbone: no trust bundle (the identity module is off): not serving");
			m->warned = true;
			/* A listener taken over would never be served: connects go direct instead. */
			set_capture(m, false, false);
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

int tunnel_submit(struct xm_agent *a, int fd, const struct xm_tunnel_req *req, const struct xm_tunnel_done *done)
{
	struct hbone_mod *m = daemon_module_state(a, &xm_module_hbone);
	struct hbone_outbound *ob = m ? atomic_load_explicit(&m->ob_pub, memory_order_acquire) : NULL;

	if (!ob) {
		close(fd);
		return -ENOTCONN;
	}
	return hbone_outbound_submit(ob, fd, req, done);
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
		sb_printf(out, ",\"client\":{\"running\":%s,\"capturing\":%s,\"capturing6\":%s",
			  m->ob ? "true" : "false", m->capturing ? "true" : "false", m->capturing6 ? "true" : "false");
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
	if (m->capturing || m->capturing6)
		sb_printf(out, "hbone: capture on (%s%s%s)\n", m->capturing ? "IPv4" : "",
			  m->capturing && m->capturing6 ? ", " : "", m->capturing6 ? "IPv6" : "");
	else
		sb_puts(out, "hbone: capture off (pods' connections to other nodes go direct)\n");
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
	authz_denied_collect(&m->denied, sc);
	authz_closed_collect(&m->closed, sc);
	hbone_outbound_collect(atomic_load_explicit(&m->ob_pub, memory_order_acquire), &m->ctr, sc);
}

/* hbone thread: stop accepting, refuse new streams, let the open ones run (hbone_server_drain, _outbound_drain). */
static void drain_on_loop(struct xm_loop *loop, void *arg)
{
	struct hbone_mod *m = arg;

	(void)loop;
	hbone_server_drain(m->srv);
	hbone_outbound_drain(m->ob, m->drained_ob);
	atomic_store(&m->drained, true); /* drained_ob is read after this (sequentially consistent) */
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
	uint64_t start = loop_now_ms(), deadline = start + HBONE_DRAIN_TIMEOUT_MS;
	int fds[1 + HBONE_OB_FAMILIES];
	size_t n = 0;
	bool held = false;
	pid_t pid;

	if (loop_post(m->loop, drain_on_loop, m)) {
		log_warn("hbone: could not post the drain: open streams are reset");
		return false;
	}
	while (!atomic_load(&m->drained) && loop_now_ms() < start + 1000)
		usleep(1000);
	if (!atomic_load(&m->drained)) {
		log_warn("hbone: the tunnel's thread did not drain in 1 s: open streams are reset");
		return false;
	}
	if (!m->detach_on_exit) {
		/* 15008 (both families on one socket), and the outbound listener of each family captured. */
		fds[n++] = m->lfd;
		if (m->drained_ob[0] >= 0 && m->capturing)
			fds[n++] = m->drained_ob[0];
		if (m->drained_ob[1] >= 0 && m->capturing6)
			fds[n++] = m->drained_ob[1];
		/* Nobody coming back: capture off (both families), and the steering (IPv4 and IPv6 rules and routes)
		 * goes as it would have at our exit. */
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
		set_capture(m, false, false);
	log_info("hbone: draining %llu TLS connection(s) (at most %d ms)", tls_open(m), HBONE_DRAIN_TIMEOUT_MS);
	while (tls_open(m) && loop_now_ms() < deadline)
		usleep(10000);
	if (tls_open(m))
		log_warn("hbone: %llu TLS connection(s) still open after the drain deadline: their streams are reset",
			 tls_open(m));
	else
		log_info("hbone: drained in %llu ms", (unsigned long long)(loop_now_ms() - start));
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
		set_capture(m, false, false);
	for (int f = 0; f < HBONE_OB_FAMILIES; f++)
		if (m->taken_ob[f] >= 0)
			close(m->taken_ob[f]);
	atomic_store(&m->ob_pub, NULL);
	hbone_outbound_free(m->ob);
	snapshot_put(m->published);
	snapshot_put(m->snap);
	pthread_mutex_destroy(&m->snap_mu);
	authz_recheck_scope_free(&m->recheck_pending);
	pthread_mutex_destroy(&m->recheck_mu);
	close_maps(m);
	hbone_server_free(m->srv);
	cert_put(m->presenting);
	loop_free(m->loop);
	/* Kept while a holder has the 15008 listener: a peer's connect waits there instead of meeting the pod. */
	if (m->steering && !held)
		hbone_steer_remove(m->ifaces, m->n_ifaces);
	close(m->lfd);
	bundle_put(m->bundle);
	bundle_put(m->offered);
	bundle_put(atomic_load(&m->incoming));
	X509_STORE_free(m->tls_trust);
	tunnel_tcp_free(m->tcp);
	authz_denied_fini(&m->denied);
	authz_denied_fini(&m->closed);
	free(m);
}

const struct xm_module xm_module_hbone = {
	.name = "hbone",
	.init = hbone_mod_init,
	.apply = hbone_mod_apply,
	.tick = hbone_mod_tick,
	.status = hbone_mod_status,
	.collect = hbone_mod_collect,
	.close = hbone_mod_close,
};
