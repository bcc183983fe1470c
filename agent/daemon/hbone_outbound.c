// SPDX-License-Identifier: Apache-2.0
/*
 * The HBONE tunnel's client side on the hbone thread (daemon/hbone_outbound.h): captured connections accepted
 * on the outbound listener and sockets handed over by other threads, each carried by one CONNECT stream on
 * the pool.
 *
 * Hand-off: other threads append to a queue under a mutex and post one "kick" to the loop (loop_post) while
 * none is pending; the kick takes the whole queue, and the listener that the control thread made. Whatever
 * is still queued when the loop stopped is reset by hbone_outbound_free, so no descriptor is lost.
 */
#include "daemon/hbone_outbound.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <xmesh/hbone.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "datapath/hbone_capture.h"
#include "identity/identity.h"
#include "metrics/registry.h"

#define ACCEPT_BATCH 64 /* connections accepted per wake-up: the listener stays readable for the rest */
/*
 * Once TCP is connected, how long the TLS handshake may wait: a peer agent that restarts leaves our connect in
 * its held listener's queue for its drain (at most 10 s) plus its start (seconds), so ztunnel's 10 s for TCP and
 * TLS together would reset streams a restart should only delay. A dead peer still fails at the TCP connect.
 */
#define HBONE_OB_HANDSHAKE_WAIT_MS 30000

struct ob_sub {
	struct ob_sub *next;
	int fd;
	struct xm_cert *cert;
	struct xm_tunnel_req req;
};

struct hbone_outbound {
	struct xm_loop *loop;
	struct hbone_client *cl;
	struct hbone_outbound_ops ops;
	int origdst_fd;
	uint16_t hbone_port;
	struct hbone_outbound_stats st;
	int lfd; /* the loop's: the listener it accepts on */

	pthread_mutex_t mu; /* what follows */
	struct ob_sub *head, **tail;
	int next_lfd; /* made by the control thread, not taken over by the loop yet; -1: none */
	bool kick_posted;
	bool stopped;
	bool draining;		 /* the loop accepts no more: a listener handed in later is only kept */
	struct sockaddr_in addr; /* where the newest listener is */
};

static const char *const refusal_names[HBONE_OB_REFUSALS] = {
	[HBONE_OB_NO_ORIGDST] = "no_origdst",	      [HBONE_OB_NOT_LOCAL_POD] = "not_local_pod",
	[HBONE_OB_NO_CERTIFICATE] = "no_certificate", [HBONE_OB_UNKNOWN_TARGET] = "unknown_target",
	[HBONE_OB_BAD_REQUEST] = "bad_request",	      [HBONE_OB_OUT_OF_MEMORY] = "out_of_memory",
};

const char *hbone_ob_refusal_name(enum hbone_ob_refusal r)
{
	return r < HBONE_OB_REFUSALS ? refusal_names[r] : "unknown";
}

static void count(atomic_ullong *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* The application hears a reset, as when the tunnel fails later on. */
static void reset_fd(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void refuse(struct hbone_outbound *ob, int fd, enum hbone_ob_refusal why)
{
	count(&ob->st.refused[why]);
	reset_fd(fd);
}

/* What a carried connection asked for: kept while it is carried, to carry it again after a refusal. */
struct ob_carried {
	struct hbone_outbound *ob;
	char src_id[HBONE_ID_MAX], dst_id[HBONE_ID_MAX];
	struct sockaddr_storage target, client;
	bool has_client;
	char traceparent[sizeof(((struct xm_tunnel_req *)0)->traceparent)];
	int refusals;
};

#define CARRY_TRIES 3 /* refused streams carried again on another connection before the reset */

static void carried_done(void *ctx, int err)
{
	(void)err;
	free(ctx);
}

static void carry_again(void *ctx, int fd);

/* Loop thread: one stream for fd, presenting cert (src_id's, our reference taken), requiring dst_id. */
static void carry_as(struct hbone_outbound *ob, int fd, struct xm_cert *cert, struct ob_carried *k)
{
	struct sockaddr_storage dst = k->target;
	struct hbone_open req = {
		.src_id = k->src_id,
		.dst_id = k->dst_id,
		.dst = &dst,
		.cert = cert_leaf(cert),
		.key = cert_key(cert),
		.chain = cert_chain(cert),
		.target = &k->target,
		.client = k->has_client ? &k->client : NULL,
		.traceparent = k->traceparent[0] ? k->traceparent : NULL,
	};
	struct hbone_splice *sp;

	((struct sockaddr_in *)&dst)->sin_port = htons(ob->hbone_port);
	/* A new TLS connection takes its own references to the certificate before this returns. */
	sp = hbone_splice_open(ob->cl, ob->loop, fd, &req, carried_done, k);
	if (sp) {
		hbone_splice_on_refused(sp, carry_again);
	} else {
		count(&ob->st.refused[HBONE_OB_OUT_OF_MEMORY]); /* fd closed by splice_open */
		free(k);
	}
	cert_put(cert);
}

/*
 * Loop thread: the stream was refused before the peer processed it (a GOAWAY crossing it as the peer's agent
 * drains, or its stream limit): nothing was read from fd, so it goes again, on a connection with room.
 */
static void carry_again(void *ctx, int fd)
{
	struct ob_carried *k = ctx;
	struct hbone_outbound *ob = k->ob;
	struct xm_cert *cert = ++k->refusals < CARRY_TRIES ? ob->ops.certificate(ob->ops.ctx, k->src_id) : NULL;

	if (!cert) {
		free(k);
		reset_fd(fd); /* as a refused stream always was */
		return;
	}
	carry_as(ob, fd, cert, k);
}

static void carry(struct hbone_outbound *ob, int fd, struct xm_cert *cert, const char *src_id, const char *dst_id,
		  const struct sockaddr_storage *target, const struct sockaddr_storage *client, const char *traceparent)
{
	struct ob_carried *k = calloc(1, sizeof(*k));

	if (!k) {
		cert_put(cert);
		refuse(ob, fd, HBONE_OB_OUT_OF_MEMORY);
		return;
	}
	k->ob = ob;
	snprintf(k->src_id, sizeof(k->src_id), "%s", src_id);
	snprintf(k->dst_id, sizeof(k->dst_id), "%s", dst_id);
	k->target = *target;
	if (client) {
		k->client = *client;
		k->has_client = true;
	}
	if (traceparent)
		snprintf(k->traceparent, sizeof(k->traceparent), "%s", traceparent);
	carry_as(ob, fd, cert, k);
}

/* Loop thread: a connection the kernel sent to the outbound listener. */
static void captured(struct hbone_outbound *ob, int fd)
{
	struct hbone_captured cap;
	char src_id[HBONE_ID_MAX], dst_id[HBONE_ID_MAX];
	struct xm_cert *cert;

	count(&ob->st.captured);
	if (ob->origdst_fd < 0 || hbone_capture_lookup(ob->origdst_fd, fd, &cap)) {
		refuse(ob, fd, HBONE_OB_NO_ORIGDST);
		return;
	}
	if (ob->ops.local_workload(ob->ops.ctx, &cap.client, src_id, sizeof(src_id))) {
		refuse(ob, fd, HBONE_OB_NOT_LOCAL_POD);
		return;
	}
	if (ob->ops.peer_identity(ob->ops.ctx, &cap.target, dst_id, sizeof(dst_id))) {
		refuse(ob, fd, HBONE_OB_UNKNOWN_TARGET);
		return;
	}
	cert = ob->ops.certificate(ob->ops.ctx, src_id);
	if (!cert) {
		refuse(ob, fd, HBONE_OB_NO_CERTIFICATE);
		return;
	}
	carry(ob, fd, cert, src_id, dst_id, &cap.target, &cap.client, NULL);
}

static void on_listener(struct xm_loop *loop, int lfd, uint32_t events, void *ctx)
{
	struct hbone_outbound *ob = ctx;

	(void)events;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			captured(ob, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			log_warn("hbone: accepting a captured connection: %s", strerror(errno));
			loop_pause_fd(loop, lfd, 100);
		}
		return;
	}
}

/* Loop thread: a socket handed over (its certificate already taken). */
static void submitted(struct hbone_outbound *ob, struct ob_sub *s)
{
	char dst_id[HBONE_ID_MAX];

	if (ob->ops.peer_identity(ob->ops.ctx, &s->req.target, dst_id, sizeof(dst_id))) {
		cert_put(s->cert);
		refuse(ob, s->fd, HBONE_OB_UNKNOWN_TARGET);
		return;
	}
	carry(ob, s->fd, s->cert, s->req.src_id, dst_id, &s->req.target,
	      s->req.client.ss_family ? &s->req.client : NULL, s->req.traceparent);
}

static void kick(struct xm_loop *loop, void *arg)
{
	struct hbone_outbound *ob = arg;
	struct ob_sub *list;
	int lfd;

	pthread_mutex_lock(&ob->mu);
	list = ob->head;
	ob->head = NULL;
	ob->tail = &ob->head;
	lfd = ob->next_lfd;
	ob->next_lfd = -1;
	ob->kick_posted = false;
	pthread_mutex_unlock(&ob->mu);

	if (lfd >= 0) {
		if (ob->lfd >= 0) {
			loop_del_fd(loop, ob->lfd);
			close(ob->lfd);
		}
		ob->lfd = lfd;
		if (ob->draining)
			; /* kept for hbone_outbound_drain's caller, not accepted on */
		else if (loop_add_fd(loop, lfd, EPOLLIN, on_listener, ob))
			log_error("hbone: the outbound listener cannot be watched: captured connections wait");
	}
	while (list) {
		struct ob_sub *s = list;

		list = s->next;
		submitted(ob, s);
		free(s);
	}
}

/* With ob->mu held: makes sure a kick is coming. */
static int kick_locked(struct hbone_outbound *ob)
{
	int err;

	if (ob->kick_posted)
		return 0;
	err = loop_post(ob->loop, kick, ob);
	if (!err)
		ob->kick_posted = true;
	return err;
}

int hbone_outbound_submit(struct hbone_outbound *ob, int fd, const struct xm_tunnel_req *req)
{
	struct ob_sub *s;
	struct xm_cert *cert;
	int fl, err;

	if (!hbone_outbound_available(ob)) {
		close(fd);
		return -ENOTCONN;
	}
	count(&ob->st.submitted);
	if (req->target.ss_family != AF_INET || !req->src_id[0] || !memchr(req->src_id, 0, sizeof(req->src_id)) ||
	    !memchr(req->traceparent, 0, sizeof(req->traceparent)) ||
	    (req->client.ss_family && req->client.ss_family != AF_INET && req->client.ss_family != AF_INET6)) {
		refuse(ob, fd, HBONE_OB_BAD_REQUEST);
		return -EINVAL;
	}
	cert = ob->ops.certificate(ob->ops.ctx, req->src_id);
	if (!cert) {
		refuse(ob, fd, HBONE_OB_NO_CERTIFICATE);
		return -ENOENT;
	}
	fl = fcntl(fd, F_GETFL);
	s = calloc(1, sizeof(*s));
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) || !s) {
		err = s ? -errno : -ENOMEM;
		free(s);
		cert_put(cert);
		refuse(ob, fd, HBONE_OB_OUT_OF_MEMORY);
		return err;
	}
	s->fd = fd;
	s->cert = cert;
	s->req = *req;
	pthread_mutex_lock(&ob->mu);
	err = ob->stopped ? -ENOTCONN : kick_locked(ob);
	if (!err) {
		*ob->tail = s;
		ob->tail = &s->next;
	}
	pthread_mutex_unlock(&ob->mu);
	if (err) {
		free(s);
		cert_put(cert);
		close(fd);
	}
	return err;
}

bool hbone_outbound_available(const struct hbone_outbound *ob)
{
	bool ok;

	if (!ob)
		return false;
	pthread_mutex_lock((pthread_mutex_t *)&ob->mu);
	ok = !ob->stopped;
	pthread_mutex_unlock((pthread_mutex_t *)&ob->mu);
	return ok;
}

struct hbone_outbound *hbone_outbound_new(const struct hbone_outbound_config *cfg, struct hbone_counters *counters)
{
	struct hbone_outbound *ob = calloc(1, sizeof(*ob));
	struct hbone_client_config cc = {
		.trust = cfg->trust,
		.verify = cfg->verify,
		.ctx = cfg->verify_ctx,
		.handshake_timeout_ms = HBONE_OB_HANDSHAKE_WAIT_MS,
	};

	if (!ob)
		return NULL;
	ob->loop = cfg->loop;
	ob->ops = cfg->ops;
	ob->origdst_fd = cfg->origdst_fd;
	ob->hbone_port = cfg->hbone_port ? cfg->hbone_port : HBONE_PORT;
	ob->lfd = ob->next_lfd = -1;
	ob->tail = &ob->head;
	pthread_mutex_init(&ob->mu, NULL);
	ob->cl = hbone_client_new(cfg->loop, &cc, counters);
	if (!ob->cl) {
		pthread_mutex_destroy(&ob->mu);
		free(ob);
		return NULL;
	}
	return ob;
}

/* Hands the listening fd to the loop (owned from now on). */
static int install_listener(struct hbone_outbound *ob, int fd)
{
	struct sockaddr_in bound;
	socklen_t len = sizeof(bound);
	int err;

	if (getsockname(fd, (struct sockaddr *)&bound, &len) || bound.sin_family != AF_INET) {
		err = errno ? -errno : -EAFNOSUPPORT;
		close(fd);
		return err;
	}
	pthread_mutex_lock(&ob->mu);
	err = kick_locked(ob);
	if (!err) {
		if (ob->next_lfd >= 0)
			close(ob->next_lfd);
		ob->next_lfd = fd;
		ob->addr = bound;
	}
	pthread_mutex_unlock(&ob->mu);
	if (err)
		close(fd);
	return err;
}

int hbone_outbound_listen(struct hbone_outbound *ob, const struct sockaddr_in *addr)
{
	int one = 1, err, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) || listen(fd, 1024)) {
		err = -errno;
		close(fd);
		return err;
	}
	return install_listener(ob, fd);
}

int hbone_outbound_adopt(struct hbone_outbound *ob, int fd)
{
	int fl = fcntl(fd, F_GETFL);

	/* The accept loop expects a non-blocking socket (the previous agent's was; the flag is the socket's). */
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return install_listener(ob, fd);
}

int hbone_outbound_drain(struct hbone_outbound *ob)
{
	int lfd;

	pthread_mutex_lock(&ob->mu);
	ob->stopped = true;
	ob->draining = true;
	lfd = ob->next_lfd; /* a listener the loop has not taken yet is the newest */
	ob->next_lfd = -1;
	pthread_mutex_unlock(&ob->mu);
	if (ob->lfd >= 0)
		loop_del_fd(ob->loop, ob->lfd);
	if (lfd >= 0) {
		if (ob->lfd >= 0)
			close(ob->lfd);
		ob->lfd = lfd;
	}
	hbone_client_drain(ob->cl);
	return ob->lfd;
}

struct sockaddr_in hbone_outbound_address(const struct hbone_outbound *ob)
{
	struct sockaddr_in a;

	pthread_mutex_lock((pthread_mutex_t *)&ob->mu);
	a = ob->addr;
	pthread_mutex_unlock((pthread_mutex_t *)&ob->mu);
	return a;
}

void hbone_outbound_stop(struct hbone_outbound *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->mu);
	ob->stopped = true;
	pthread_mutex_unlock(&ob->mu);
}

void hbone_outbound_free(struct hbone_outbound *ob)
{
	if (!ob)
		return;
	hbone_outbound_stop(ob);
	while (ob->head) {
		struct ob_sub *s = ob->head;

		ob->head = s->next;
		cert_put(s->cert);
		reset_fd(s->fd);
		free(s);
	}
	if (ob->next_lfd >= 0)
		close(ob->next_lfd);
	if (ob->lfd >= 0) {
		loop_del_fd(ob->loop, ob->lfd);
		close(ob->lfd);
	}
	hbone_client_free(ob->cl); /* open streams end, their sockets reset */
	pthread_mutex_destroy(&ob->mu);
	free(ob);
}

const struct hbone_outbound_stats *hbone_outbound_stats(const struct hbone_outbound *ob)
{
	return &ob->st;
}

void hbone_outbound_status(const struct hbone_outbound *ob, const struct hbone_counters *ctr, bool json,
			   struct strbuf *out)
{
	struct sockaddr_in a = hbone_outbound_address(ob);
	char ip[INET_ADDRSTRLEN] = "";
	unsigned long long conns = atomic_load(&ctr->connections_open[HBONE_SIDE_CLIENT]),
			   streams = atomic_load(&ctr->streams_opened[HBONE_SIDE_CLIENT]),
			   hs = atomic_load(&ctr->handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]),
			   captured = atomic_load(&ob->st.captured), submitted = atomic_load(&ob->st.submitted),
			   refused = 0;

	if (a.sin_port)
		inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
	for (int r = 0; r < HBONE_OB_REFUSALS; r++)
		refused += atomic_load(&ob->st.refused[r]);
	if (json) {
		sb_printf(out,
			  "\"listener\":\"%s:%u\",\"connections\":%llu,\"handshakes\":%llu,\"streams\":%llu,"
			  "\"captured\":%llu,\"submitted\":%llu,\"refused\":{",
			  ip, ntohs(a.sin_port), conns, hs, streams, captured, submitted);
		for (int r = 0; r < HBONE_OB_REFUSALS; r++)
			sb_printf(out, "%s\"%s\":%llu", r ? "," : "", refusal_names[r],
				  (unsigned long long)atomic_load(&ob->st.refused[r]));
		sb_puts(out, "}");
		return;
	}
	sb_printf(out,
		  "hbone: client: %llu TLS connection(s) in the pool (%llu handshake(s)), %llu stream(s) opened; "
		  "%llu captured, %llu handed over, %llu refused",
		  conns, hs, streams, captured, submitted, refused);
	for (int r = 0; r < HBONE_OB_REFUSALS; r++) {
		unsigned long long v = atomic_load(&ob->st.refused[r]);

		if (v)
			sb_printf(out, " %s=%llu", refusal_names[r], v);
	}
	if (a.sin_port)
		sb_printf(out, "; outbound listener %s:%u\n", ip, ntohs(a.sin_port));
	else
		sb_puts(out, "; no outbound listener (no InternalIP of this node)\n");
}

void hbone_outbound_collect(const struct hbone_outbound *ob, const struct hbone_counters *ctr, struct xm_scrape *sc)
{
	static const char *const rs[1] = { "reason" };
	struct xm_scrape_family *f;

	f = scrape_family(sc, "xmesh_hbone_client_connections", "gauge",
			  "TLS connections in the HBONE client's pool (connecting ones too).");
	scrape_u64(f, NULL, NULL, 0, ctr ? atomic_load(&ctr->connections_open[HBONE_SIDE_CLIENT]) : 0);
	f = scrape_family(
	    sc, "xmesh_hbone_outbound_connections_total", "counter",
	    "Connections given to the HBONE client: captured by the kernel (source=\"capture\") or handed "
	    "over by another part of the agent (source=\"handoff\").");
	{
		static const char *const sn[1] = { "source" };
		const char *cap[1] = { "capture" }, *hand[1] = { "handoff" };

		scrape_u64(f, sn, cap, 1, ob ? atomic_load(&ob->st.captured) : 0);
		scrape_u64(f, sn, hand, 1, ob ? atomic_load(&ob->st.submitted) : 0);
	}
	f = scrape_family(sc, "xmesh_hbone_outbound_refused_total", "counter",
			  "Connections the HBONE client reset instead of carrying, by reason.");
	for (int r = 0; r < HBONE_OB_REFUSALS; r++) {
		const char *v[1] = { refusal_names[r] };

		scrape_u64(f, rs, v, 1, ob ? atomic_load(&ob->st.refused[r]) : 0);
	}
}
