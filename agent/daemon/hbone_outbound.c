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
#include "core/post_gate.h"
#include "core/strbuf.h"
#include "core/tunnel_done.h"
#include "datapath/hbone_capture.h"
#include "identity/identity.h"
#include "metrics/registry.h"

#define ACCEPT_BATCH 64 /* connections accepted per wake-up: the listener stays readable for the rest */
#define OB_FAMILIES  HBONE_OB_FAMILIES
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
	struct xm_tunnel_done done; /* gate NULL: the submitter wants no answer */
};

struct hbone_outbound {
	struct xm_loop *loop;
	struct hbone_client *cl;
	struct hbone_outbound_ops ops;
	int origdst_fd;
	uint16_t hbone_port;
	struct hbone_outbound_stats st;
	int lfd[OB_FAMILIES]; /* the loop's: the listeners it accepts on, per family */

	pthread_mutex_t mu; /* what follows */
	struct ob_sub *head, **tail;
	int next_lfd[OB_FAMILIES]; /* made by the control thread, not taken over by the loop yet; -1: none */
	bool kick_posted;
	bool stopped;
	bool draining;		   /* the loop accepts no more: a listener handed in later is only kept */
	struct sockaddr_in addr;   /* where the newest IPv4 listener is */
	struct sockaddr_in6 addr6; /* where the newest IPv6 listener is */
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

static void tell(const struct xm_tunnel_done *done, struct xm_tunnel_result r)
{
	if (done && done->gate)
		tunnel_done_post(done, &r);
}

/*
 * Loop thread: what a carried connection asked for, kept while it is carried, to carry it again after a
 * refusal with the same request (headers included) and to tell its submitter how it ended once, at the end.
 */
struct ob_carried {
	struct hbone_outbound *ob;
	char src_id[HBONE_ID_MAX], dst_id[HBONE_ID_MAX];
	struct sockaddr_storage target, client;
	bool has_client;
	char traceparent[sizeof(((struct xm_tunnel_req *)0)->traceparent)];
	char baggage[HBONE_BAGGAGE_MAX], host[HBONE_FORWARDED_VALUE_MAX]; /* request_meta's, asked once */
	int refusals;
	struct xm_tunnel_done done; /* gate NULL: the submitter wants no answer */
	bool told;		    /* done's one answer went out (tunnel_done_post drops the gate's reference) */
};

#define CARRY_TRIES 3 /* refused streams carried again on another connection before the reset */

/* The submitter hears how the opening ended: once, at the final outcome (a refusal carried again is none). */
static void answer(struct ob_carried *k, int status)
{
	if (k->told)
		return;
	k->told = true;
	tell(&k->done, tunnel_result_of(status));
}

/* The stream's answer: the submitter hears it now, before the socket is reset on a refusal. */
static void carried_opened(void *ctx, int status)
{
	answer(ctx, status);
}

/* The splice ended: without an answer first (the socket reset, the client freed), that is the answer. */
static void carried_done(void *ctx, int err)
{
	struct ob_carried *k = ctx;

	answer(k, err ? err : -ECONNRESET);
	free(k);
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
		.baggage = k->baggage[0] ? k->baggage : NULL,
		.forwarded_host = k->host[0] ? k->host : NULL,
	};
	struct hbone_splice *sp;

	if (dst.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&dst)->sin6_port = htons(ob->hbone_port);
	else
		((struct sockaddr_in *)&dst)->sin_port = htons(ob->hbone_port);
	/* A new TLS connection takes its own references to the certificate before this returns. */
	sp = hbone_splice_open(ob->cl, ob->loop, fd, &req, carried_done, k);
	if (sp) {
		hbone_splice_on_open(sp, carried_opened);
		hbone_splice_on_refused(sp, carry_again);
	} else {
		/* fd closed by splice_open, carried_done not called; a draining pool opens nothing new */
		count(&ob->st.refused[HBONE_OB_OUT_OF_MEMORY]);
		answer(k, ob->draining ? -ENOTCONN : -ENOMEM);
		free(k);
	}
	cert_put(cert);
}

/*
 * Loop thread: the stream was refused before the peer processed it (a GOAWAY crossing it as the peer's agent
 * drains, or its stream limit): nothing was read from fd, so it goes again, on a connection with room. The
 * submitter has heard nothing yet: it hears the outcome of the last try.
 */
static void carry_again(void *ctx, int fd)
{
	struct ob_carried *k = ctx;
	struct hbone_outbound *ob = k->ob;
	struct xm_cert *cert = ++k->refusals < CARRY_TRIES ? ob->ops.certificate(ob->ops.ctx, k->src_id) : NULL;

	if (!cert) {
		reset_fd(fd); /* as a refused stream always was */
		answer(k, -EAGAIN);
		free(k);
		return;
	}
	carry_as(ob, fd, cert, k);
}

/*
 * Loop thread: one stream for fd, presenting cert (src_id's), requiring dst_id at target's IP; the request's
 * headers as ztunnel's: Forwarded for= the client (;host= the Service dialled, svc_id), baggage of the client.
 * done (NULL or no gate: none) hears how its opening ended.
 */
static void carry(struct hbone_outbound *ob, int fd, struct xm_cert *cert, const char *src_id, const char *dst_id,
		  const struct sockaddr_storage *target, const struct sockaddr_storage *client, uint32_t svc_id,
		  const char *traceparent, const struct xm_tunnel_done *done)
{
	struct ob_carried *k = calloc(1, sizeof(*k));

	if (!k) {
		cert_put(cert);
		refuse(ob, fd, HBONE_OB_OUT_OF_MEMORY);
		tell(done, tunnel_result_of(-ENOMEM));
		return;
	}
	k->ob = ob;
	snprintf(k->src_id, sizeof(k->src_id), "%s", src_id);
	snprintf(k->dst_id, sizeof(k->dst_id), "%s", dst_id);
	k->target = *target;
	if (client) {
		k->client = *client;
		k->has_client = true;
		if (ob->ops.request_meta)
			ob->ops.request_meta(ob->ops.ctx, client, svc_id, k->baggage, sizeof(k->baggage), k->host,
					     sizeof(k->host));
	}
	if (traceparent)
		snprintf(k->traceparent, sizeof(k->traceparent), "%s", traceparent);
	if (done)
		k->done = *done;
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
	carry(ob, fd, cert, src_id, dst_id, &cap.target, &cap.client, cap.svc_id, NULL, NULL);
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
		tell(&s->done, tunnel_result_of(-ENOENT));
		return;
	}
	carry(ob, s->fd, s->cert, s->req.src_id, dst_id, &s->req.target,
	      s->req.client.ss_family ? &s->req.client : NULL, 0, s->req.traceparent, &s->done);
}

static void kick(struct xm_loop *loop, void *arg)
{
	struct hbone_outbound *ob = arg;
	struct ob_sub *list;
	int lfd[OB_FAMILIES];

	pthread_mutex_lock(&ob->mu);
	list = ob->head;
	ob->head = NULL;
	ob->tail = &ob->head;
	for (int f = 0; f < OB_FAMILIES; f++) {
		lfd[f] = ob->next_lfd[f];
		ob->next_lfd[f] = -1;
	}
	ob->kick_posted = false;
	pthread_mutex_unlock(&ob->mu);

	for (int f = 0; f < OB_FAMILIES; f++) {
		if (lfd[f] < 0)
			continue;
		if (ob->lfd[f] >= 0) {
			loop_del_fd(loop, ob->lfd[f]);
			close(ob->lfd[f]);
		}
		ob->lfd[f] = lfd[f];
		if (ob->draining)
			; /* kept for hbone_outbound_drain's caller, not accepted on */
		else if (loop_add_fd(loop, lfd[f], EPOLLIN, on_listener, ob))
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

int hbone_outbound_submit(struct hbone_outbound *ob, int fd, const struct xm_tunnel_req *req,
			  const struct xm_tunnel_done *done)
{
	struct ob_sub *s;
	struct xm_cert *cert;
	int fl, err;

	if (!hbone_outbound_available(ob)) {
		close(fd);
		return -ENOTCONN;
	}
	count(&ob->st.submitted);
	if ((req->target.ss_family != AF_INET && req->target.ss_family != AF_INET6) || !req->src_id[0] ||
	    !memchr(req->src_id, 0, sizeof(req->src_id)) || !memchr(req->traceparent, 0, sizeof(req->traceparent)) ||
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
	if (done && done->gate) {
		s->done = *done;
		post_gate_get(done->gate); /* dropped by the answer's post */
	}
	pthread_mutex_lock(&ob->mu);
	err = ob->stopped ? -ENOTCONN : kick_locked(ob);
	if (!err) {
		*ob->tail = s;
		ob->tail = &s->next;
	}
	pthread_mutex_unlock(&ob->mu);
	if (err) {
		post_gate_put(s->done.gate); /* no answer comes: the caller hears err */
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
	for (int f = 0; f < OB_FAMILIES; f++)
		ob->lfd[f] = ob->next_lfd[f] = -1;
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

/* Hands the listening fd (IPv4 or IPv6) to the loop as its family's listener, replacing the previous one. */
static int install_listener(struct hbone_outbound *ob, int fd)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	int f, err;

	if (getsockname(fd, (struct sockaddr *)&bound, &blen))
		err = -errno;
	else if (bound.ss_family != AF_INET && bound.ss_family != AF_INET6)
		err = -EAFNOSUPPORT;
	else
		err = 0;
	if (err) {
		close(fd);
		return err;
	}
	f = bound.ss_family == AF_INET6 ? 1 : 0;
	pthread_mutex_lock(&ob->mu);
	err = kick_locked(ob);
	if (!err) {
		if (ob->next_lfd[f] >= 0)
			close(ob->next_lfd[f]);
		ob->next_lfd[f] = fd;
		if (f == 1)
			memcpy(&ob->addr6, &bound, sizeof(ob->addr6));
		else
			memcpy(&ob->addr, &bound, sizeof(ob->addr));
	}
	pthread_mutex_unlock(&ob->mu);
	if (err)
		close(fd);
	return err;
}

/* A listener at addr (len bytes: IPv4 or IPv6) handed to the loop as its family's. */
static int listen_family(struct hbone_outbound *ob, const struct sockaddr *addr, socklen_t len)
{
	int one = 1, err, fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	/* IPV6_V6ONLY: the IPv6 node address only, however the host's bindv6only is set. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (addr->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
	    bind(fd, addr, len) || listen(fd, 1024)) {
		err = -errno;
		close(fd);
		return err;
	}
	return install_listener(ob, fd);
}

int hbone_outbound_listen(struct hbone_outbound *ob, const struct sockaddr_in *addr)
{
	return listen_family(ob, (const struct sockaddr *)addr, sizeof(*addr));
}

int hbone_outbound_listen6(struct hbone_outbound *ob, const struct sockaddr_in6 *addr)
{
	return listen_family(ob, (const struct sockaddr *)addr, sizeof(*addr));
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

int hbone_outbound_drain(struct hbone_outbound *ob, int lfds[HBONE_OB_FAMILIES])
{
	int next[OB_FAMILIES], n = 0;

	pthread_mutex_lock(&ob->mu);
	ob->stopped = true;
	ob->draining = true;
	for (int f = 0; f < OB_FAMILIES; f++) {
		next[f] = ob->next_lfd[f]; /* a listener the loop has not taken yet is the newest */
		ob->next_lfd[f] = -1;
	}
	pthread_mutex_unlock(&ob->mu);
	for (int f = 0; f < OB_FAMILIES; f++) {
		if (ob->lfd[f] >= 0)
			loop_del_fd(ob->loop, ob->lfd[f]);
		if (next[f] >= 0) {
			if (ob->lfd[f] >= 0)
				close(ob->lfd[f]);
			ob->lfd[f] = next[f];
		}
		lfds[f] = ob->lfd[f];
		n += ob->lfd[f] >= 0;
	}
	hbone_client_drain(ob->cl);
	return n;
}

size_t hbone_outbound_recheck(struct hbone_outbound *ob, hbone_stale_fn stale, void *ctx)
{
	return ob->draining ? 0 : hbone_client_recheck(ob->cl, stale, ctx);
}

struct sockaddr_in hbone_outbound_address(const struct hbone_outbound *ob)
{
	struct sockaddr_in a;

	pthread_mutex_lock((pthread_mutex_t *)&ob->mu);
	a = ob->addr;
	pthread_mutex_unlock((pthread_mutex_t *)&ob->mu);
	return a;
}

struct sockaddr_in6 hbone_outbound_address6(const struct hbone_outbound *ob)
{
	struct sockaddr_in6 a;

	pthread_mutex_lock((pthread_mutex_t *)&ob->mu);
	a = ob->addr6;
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
		tell(&s->done, tunnel_result_of(-ENOTCONN));
		free(s);
	}
	for (int f = 0; f < OB_FAMILIES; f++) {
		if (ob->next_lfd[f] >= 0)
			close(ob->next_lfd[f]);
		if (ob->lfd[f] >= 0) {
			loop_del_fd(ob->loop, ob->lfd[f]);
			close(ob->lfd[f]);
		}
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
	struct sockaddr_in6 a6 = hbone_outbound_address6(ob);
	char ip[INET_ADDRSTRLEN] = "", ip6[INET6_ADDRSTRLEN] = "";
	unsigned long long conns = atomic_load(&ctr->connections_open[HBONE_SIDE_CLIENT]),
			   streams = atomic_load(&ctr->streams_opened[HBONE_SIDE_CLIENT]),
			   hs = atomic_load(&ctr->handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]),
			   captured = atomic_load(&ob->st.captured), submitted = atomic_load(&ob->st.submitted),
			   refused = 0;

	if (a.sin_port)
		inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
	if (a6.sin6_port)
		inet_ntop(AF_INET6, &a6.sin6_addr, ip6, sizeof(ip6));
	for (int r = 0; r < HBONE_OB_REFUSALS; r++)
		refused += atomic_load(&ob->st.refused[r]);
	if (json) {
		sb_printf(out,
			  "\"listener\":\"%s:%u\",\"listener6\":\"[%s]:%u\",\"connections\":%llu,\"handshakes\":%llu,"
			  "\"streams\":%llu,\"captured\":%llu,\"submitted\":%llu,\"refused\":{",
			  ip, ntohs(a.sin_port), ip6, ntohs(a6.sin6_port), conns, hs, streams, captured, submitted);
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
		sb_printf(out, "; outbound listener %s:%u", ip, ntohs(a.sin_port));
	if (a6.sin6_port)
		sb_printf(out, "%s [%s]:%u", a.sin_port ? " and" : "; outbound listener", ip6, ntohs(a6.sin6_port));
	if (!a.sin_port && !a6.sin6_port)
		sb_puts(out, "; no outbound listener (no InternalIP of this node)");
	sb_puts(out, "\n");
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
	f = scrape_family(
	    sc, "xmesh_hbone_client_connections_retired_total", "counter",
	    "Pooled HBONE client connections that took no new stream from then on (their open streams went "
	    "on), by reason: the certificate they presented was replaced (own_certificate_replaced), or "
	    "the server's certificate failed the check against a reloaded trust bundle (peer_untrusted).");
	for (int r = 0; r < HBONE_RETIRE_REASONS; r++) {
		const char *v[1] = { hbone_retire_reason_name(r) };

		scrape_u64(f, rs, v, 1, ctr ? atomic_load(&ctr->retired[r]) : 0);
	}
	f = scrape_family(sc, "xmesh_hbone_outbound_refused_total", "counter",
			  "Connections the HBONE client reset instead of carrying, by reason.");
	for (int r = 0; r < HBONE_OB_REFUSALS; r++) {
		const char *v[1] = { refusal_names[r] };

		scrape_u64(f, rs, v, 1, ob ? atomic_load(&ob->st.refused[r]) : 0);
	}
}
