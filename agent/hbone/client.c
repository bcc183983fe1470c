// SPDX-License-Identifier: Apache-2.0
/*
 * The HBONE client: a pool of TLS connections keyed as ztunnel keys it (src/proxy/pool.rs WorkloadKey:
 * source identity, destination identities, destination address), each carrying up to max_streams CONNECT
 * streams; a request finds a connection of its key with room or opens another. A connection without
 * streams closes after the idle timeout (ztunnel's pool_unused_release_timeout).
 *
 * Retiring: a connection that presented an older certificate than a request's (a renewal, a CA reload's re-mint),
 * or one that hbone_client_recheck's caller names (its server no longer trusted), takes no new stream; its open
 * streams go on, it sends GOAWAY as a draining client does and closes once they ended. ztunnel keys its pool by
 * identity and makes new connections with the new certificate; the same here, without cutting a stream.
 *
 * Resumption: the newest TLS 1.3 session ticket of each pool key is kept (at most HBONE_TICKET_CACHE_MAX
 * keys, the least recently stored dropped first) and offered on that key's next connection, only while the
 * request presents the certificate the session began with and after the server's certificate of the session
 * passed the full handshake's checks again (tls.c hb_tls_recheck). A ticket that fails either is dropped.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/loop.h"
#include "hbone/internal.h"

/* The newest session of one pool key. */
struct hb_ticket {
	struct hb_ticket *prev, *next; /* most recently stored first */
	char src_id[HBONE_ID_MAX], dst_id[HBONE_ID_MAX];
	struct sockaddr_storage dst;
	SSL_SESSION *sess;
	X509 *own;		     /* the certificate we presented when the session began */
	X509 *peer;		     /* the server's certificate, as verified then */
	STACK_OF(X509) * peer_chain; /* what the server sent with it */
};

struct hbone_client {
	struct xm_loop *loop;
	struct hbone_client_config cfg;
	struct hbone_counters *ctr;
	SSL_CTX *tls;
	struct hb_verify verify;
	struct hb_conn *conns;
	size_t n_conns;
	struct hb_ticket *tickets, *tickets_tail;
	size_t n_tickets;
	bool draining; /* hbone_client_drain: no new stream */
};

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	{
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
	}
}

static void submit(struct hb_conn *c, struct hbone_stream *s)
{
	nghttp2_data_provider prd = hb_stream_provider;
	int32_t id;

	prd.source.ptr = s;
	id = nghttp2_submit_request(c->h2, NULL, s->req_nv, s->req_nvlen, &prd, s);
	free(s->req_nv);
	free(s->req_buf);
	s->req_nv = NULL;
	s->req_buf = NULL;
	if (id < 0) {
		if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
			c->goaway = true; /* stream ids ran out: the pool opens another connection */
		s->status = -EIO;
		s->ev_open = true;
		hb_stream_mark_closed(s, -EIO);
		return;
	}
	s->id = id;
}

/* ---- session tickets ---- */

static struct hb_ticket *ticket_find(struct hbone_client *cl, const char *src_id, const char *dst_id,
				     const struct sockaddr_storage *dst)
{
	struct hb_ticket *t;

	for (t = cl->tickets; t; t = t->next)
		if (!strcmp(t->src_id, src_id) && !strcmp(t->dst_id, dst_id) && same_addr(&t->dst, dst))
			return t;
	return NULL;
}

static void ticket_unlink(struct hbone_client *cl, struct hb_ticket *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		cl->tickets = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		cl->tickets_tail = t->prev;
	t->prev = t->next = NULL;
}

static void ticket_push(struct hbone_client *cl, struct hb_ticket *t)
{
	t->prev = NULL;
	t->next = cl->tickets;
	if (cl->tickets)
		cl->tickets->prev = t;
	else
		cl->tickets_tail = t;
	cl->tickets = t;
}

static void ticket_clear(struct hb_ticket *t)
{
	SSL_SESSION_free(t->sess);
	X509_free(t->own);
	X509_free(t->peer);
	sk_X509_pop_free(t->peer_chain, X509_free);
	t->sess = NULL;
	t->own = t->peer = NULL;
	t->peer_chain = NULL;
}

static void ticket_drop(struct hbone_client *cl, struct hb_ticket *t)
{
	ticket_unlink(cl, t);
	ticket_clear(t);
	free(t);
	cl->n_tickets--;
}

int hb_client_ticket_new(struct hb_conn *c, SSL_SESSION *sess)
{
	struct hbone_client *cl = c->owner;
	X509 *own = c->ssl ? SSL_get_certificate(c->ssl) : NULL;
	struct hb_ticket *t;

	/* only a session whose server certificate we verified (or re-checked) on this connection */
	if (!cl || cl->cfg.no_resumption || !own || !c->peer_leaf || !c->peer_id[0] || !SSL_SESSION_is_resumable(sess))
		return 0;
	/*
	 * A copy: the connection's own session object is marked not resumable by OpenSSL when the connection ends
	 * without close_notify (ssl_clear_bad_session), which says nothing about a TLS 1.3 ticket.
	 */
	sess = SSL_SESSION_dup(sess);
	if (!sess)
		return 0;
	t = ticket_find(cl, c->src_id, c->dst_id, &c->dst);
	if (t) {
		ticket_unlink(cl, t);
		ticket_clear(t);
	} else {
		if (cl->n_tickets >= HBONE_TICKET_CACHE_MAX)
			ticket_drop(cl, cl->tickets_tail);
		t = calloc(1, sizeof(*t));
		if (!t) {
			SSL_SESSION_free(sess);
			return 0;
		}
		memcpy(t->src_id, c->src_id, sizeof(t->src_id));
		memcpy(t->dst_id, c->dst_id, sizeof(t->dst_id));
		t->dst = c->dst;
		cl->n_tickets++;
	}
	t->sess = sess;
	t->own = X509_up_ref(own) ? own : NULL;
	t->peer = X509_up_ref(c->peer_leaf) ? c->peer_leaf : NULL;
	t->peer_chain = c->peer_chain ? X509_chain_up_ref(c->peer_chain) : NULL;
	ticket_push(cl, t);
	if (!t->own || !t->peer)
		ticket_drop(cl, t);
	return 0; /* OpenSSL's reference stays OpenSSL's */
}

/*
 * Offers the key's ticket on c when it may be: the request presents the certificate the session began with
 * (after a renewal the new certificate makes a full handshake), the session has not expired, and the server
 * certificate of the session passes the checks of a full handshake again now. Otherwise it is dropped.
 */
static void ticket_offer(struct hbone_client *cl, struct hb_conn *c, const struct hbone_open *req)
{
	struct hb_ticket *t = ticket_find(cl, req->src_id, req->dst_id, req->dst);
	int64_t now = (int64_t)time(NULL), life;
	SSL_SESSION *offer = NULL;

	if (!t)
		return;
	/* the lifetime the server gave the ticket (OpenSSL's client keeps it apart from the session's timeout) */
	life = (int64_t)SSL_SESSION_get_ticket_lifetime_hint(t->sess);
	if (!req->cert || X509_cmp(t->own, req->cert) || now >= (int64_t)SSL_SESSION_get_time(t->sess) + life ||
	    !SSL_SESSION_is_resumable(t->sess) ||
	    hb_tls_recheck(c->ssl, &cl->verify, c, t->peer, t->peer_chain, c->resumed_id, sizeof(c->resumed_id)) ||
	    !(offer = SSL_SESSION_dup(t->sess)) || !SSL_set_session(c->ssl, offer)) {
		SSL_SESSION_free(offer);
		c->resumed_id[0] = '\0';
		hb_count(&cl->ctr->tickets_rejected[HBONE_SIDE_CLIENT], 1);
		ticket_drop(cl, t);
		return;
	}
	SSL_SESSION_free(offer); /* c->ssl holds it */
	hb_conn_set_peer(c, t->peer, t->peer_chain);
	c->ticket_offered = true;
}

/* Draining: the streams it has go on, then it closes (nghttp2 wants no more I/O after a GOAWAY and its last
 * stream). */
static void goaway_draining(struct hb_conn *c)
{
	c->goaway = true; /* never chosen for a new stream again */
	if (c->state != HB_READY || !c->h2 || c->drain_final)
		return;
	nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
			      NGHTTP2_NO_ERROR, NULL, 0);
	c->drain_final = true;
	hb_conn_kick(c);
}

static void cl_ready(struct hb_conn *c, bool ok, int err)
{
	struct hbone_stream *s, *last = NULL;

	(void)err;
	if (c->ticket_offered && (!ok || !SSL_session_reused(c->ssl))) {
		struct hbone_client *cl = c->owner;
		struct hb_ticket *t;

		/* the server declined the key's ticket, or the handshake failed: it is not offered again (a ticket
		 * of this connection's session replaces it once the server sends one) */
		if (cl && (t = ticket_find(cl, c->src_id, c->dst_id, &c->dst)))
			ticket_drop(cl, t);
		/* declined: a full handshake instead (also a ticket the server cannot know any more, e.g. spent) */
		if (cl && ok)
			hb_count(&cl->ctr->tickets_rejected[HBONE_SIDE_CLIENT], 1);
	}
	if (!ok)
		return;
	/* in the order they were opened (the list is newest first) */
	for (s = c->streams; s; s = s->next)
		last = s;
	for (s = last; s; s = s->prev)
		if (s->id == 0 && !s->h2_closed && !s->detached)
			submit(c, s);
	if (c->retired || (c->owner && ((struct hbone_client *)c->owner)->draining))
		goaway_draining(c);
}

static void cl_conn_gone(struct hb_conn *c)
{
	struct hbone_client *cl = c->owner;

	if (!cl)
		return;
	if (c->pool_prev)
		c->pool_prev->pool_next = c->pool_next;
	else if (cl->conns == c)
		cl->conns = c->pool_next;
	if (c->pool_next)
		c->pool_next->pool_prev = c->pool_prev;
	c->pool_next = c->pool_prev = NULL;
	c->owner = NULL;
	cl->n_conns--;
}

static const struct hb_conn_ops client_ops = {
	.on_ready = cl_ready,
	.on_free = cl_conn_gone,
};

/*
 * Retiring: no new stream on c from now on (the pool opens another), its open streams go on, then it closes: a
 * GOAWAY as a draining client sends, at once or once the handshake is over (cl_ready).
 */
static void retire(struct hbone_client *cl, struct hb_conn *c, enum hbone_retire_reason why)
{
	X509 *own = c->ssl ? SSL_get_certificate(c->ssl) : NULL;
	struct hb_ticket *t;

	if (c->goaway || c->state == HB_DEAD)
		return;
	/* the key's ticket of the same certificate (ours, or the untrusted server's) would only be refused later */
	t = ticket_find(cl, c->src_id, c->dst_id, &c->dst);
	if (t && (why == HBONE_RETIRED_OWN_CERT ? own && !X509_cmp(t->own, own)
						: c->peer_leaf && !X509_cmp(t->peer, c->peer_leaf)))
		ticket_drop(cl, t);
	c->retired = true;
	hb_count(&cl->ctr->retired[why], 1);
	goaway_draining(c);
}

/* Is a strictly older than b? (notBefore: a renewed or re-minted certificate begins later.) */
static bool cert_older(X509 *a, X509 *b)
{
	int day, sec;

	if (!ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(a), X509_get0_notBefore(b)))
		return false;
	return day > 0 || (day == 0 && sec > 0);
}

/*
 * Whether c, of req's pool key, may carry req: it presented req's certificate, or a newer one of the same
 * identity (a request that took its certificate just before a renewal). One that presented an older certificate
 * is retired: the stream goes on a new connection presenting the current one.
 */
static bool own_cert_current(struct hbone_client *cl, struct hb_conn *c, const struct hbone_open *req)
{
	X509 *own = c->ssl ? SSL_get_certificate(c->ssl) : NULL;

	if (!own || !req->cert || own == req->cert || !X509_cmp(own, req->cert))
		return true;
	if (cert_older(req->cert, own))
		return true;
	retire(cl, c, HBONE_RETIRED_OWN_CERT);
	return false;
}

static struct hb_conn *pool_find(struct hbone_client *cl, const struct hbone_open *req)
{
	struct hb_conn *c, *next;

	for (c = cl->conns; c; c = next) {
		uint32_t limit = c->max_streams;

		next = c->pool_next; /* retire may end c (a connection without streams closes) */

		/* ztunnel: min(its own limit, what the server advertises) */
		if (c->h2) {
			uint32_t remote =
			    nghttp2_session_get_remote_settings(c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

			if (remote < limit)
				limit = remote;
		}
		if (c->state == HB_DEAD || c->goaway || c->n_streams >= limit)
			continue;
		if (!strcmp(c->src_id, req->src_id) && !strcmp(c->dst_id, req->dst_id) &&
		    same_addr(&c->dst, req->dst) && own_cert_current(cl, c, req))
			return c;
	}
	return NULL;
}

static struct hb_conn *pool_connect(struct hbone_client *cl, const struct hbone_open *req)
{
	struct hb_conn *c;
	socklen_t len = req->dst->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int one = 1;

	if (strlen(req->src_id) >= HBONE_ID_MAX || strlen(req->dst_id) >= HBONE_ID_MAX)
		return NULL;
	c = hb_conn_new(cl->loop, HBONE_SIDE_CLIENT, &client_ops, cl, cl->ctr);
	if (!c)
		return NULL;
	strcpy(c->src_id, req->src_id);
	strcpy(c->dst_id, req->dst_id);
	c->dst = *req->dst;
	c->max_streams = cl->cfg.max_streams_per_conn;
	c->idle_timeout_ms = cl->cfg.idle_timeout_ms;
	c->hs_timeout_ms = cl->cfg.connect_timeout_ms;
	c->tls_wait_ms = cl->cfg.handshake_timeout_ms;
	c->ping_interval_ms = cl->cfg.ping_interval_ms;
	c->ping_timeout_ms = cl->cfg.ping_timeout_ms;
	c->fd = socket(req->dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto fail;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)req->dst, len) && errno != EINPROGRESS)
		goto fail;
	c->ssl = hb_tls_new(cl->tls, c);
	if (!c->ssl || hb_tls_use_cert(c->ssl, req->cert, req->key, req->chain))
		goto fail;
	if (!cl->cfg.no_resumption)
		ticket_offer(cl, c, req);
	c->state = HB_TCP_CONNECTING;
	if (hb_conn_attach(c))
		goto fail;
	c->pool_next = cl->conns;
	if (cl->conns)
		cl->conns->pool_prev = c;
	cl->conns = c;
	cl->n_conns++;
	return c;
fail:
	hb_count(&cl->ctr->handshakes[HBONE_SIDE_CLIENT][HBONE_HS_FAILURE], 1);
	hb_conn_destroy(c);
	return NULL;
}

/* :method, :authority, then Forwarded, baggage and traceparent as ztunnel's create_hbone_request. */
static int build_request(struct hbone_stream *s, const struct hbone_open *req)
{
	char authority[64], client[64], tp[64];
	char *fwd = NULL;
	const char *names[5], *values[5];
	size_t n = 0, total = 0, i;
	char *p;

	if (hbone_format_authority(req->target, authority, sizeof(authority)) < 0)
		return -EINVAL;
	names[n] = ":method", values[n++] = "CONNECT";
	names[n] = ":authority", values[n++] = authority;
	if (req->client) {
		if (hbone_format_authority(req->client, client, sizeof(client)) < 0)
			return -EINVAL;
		if (req->forwarded_host ? asprintf(&fwd, "for=\"%s\";host=%s", client, req->forwarded_host) < 0
					: asprintf(&fwd, "for=\"%s\"", client) < 0)
			return -ENOMEM;
		names[n] = "forwarded", values[n++] = fwd;
	}
	if (req->baggage)
		names[n] = "baggage", values[n++] = req->baggage;
	if (req->traceparent) {
		names[n] = "traceparent", values[n++] = req->traceparent;
	} else {
		uint8_t r[24];

		if (RAND_bytes(r, sizeof(r)) != 1) {
			free(fwd);
			return -EIO;
		}
		p = tp + snprintf(tp, sizeof(tp), "00-");
		for (i = 0; i < 16; i++)
			p += snprintf(p, 3, "%02x", r[i]);
		*p++ = '-';
		for (i = 16; i < 24; i++)
			p += snprintf(p, 3, "%02x", r[i]);
		snprintf(p, 4, "-00");
		names[n] = "traceparent", values[n++] = tp;
	}
	for (i = 0; i < n; i++)
		total += strlen(names[i]) + strlen(values[i]) + 2;
	s->req_nv = calloc(n, sizeof(*s->req_nv));
	s->req_buf = malloc(total);
	if (!s->req_nv || !s->req_buf) {
		free(fwd);
		return -ENOMEM;
	}
	p = s->req_buf;
	for (i = 0; i < n; i++) {
		size_t nl = strlen(names[i]), vl = strlen(values[i]);

		memcpy(p, names[i], nl + 1);
		s->req_nv[i].name = (uint8_t *)p;
		s->req_nv[i].namelen = nl;
		p += nl + 1;
		memcpy(p, values[i], vl + 1);
		s->req_nv[i].value = (uint8_t *)p;
		s->req_nv[i].valuelen = vl;
		p += vl + 1;
		s->req_nv[i].flags = NGHTTP2_NV_FLAG_NONE;
	}
	s->req_nvlen = n;
	free(fwd);
	return 0;
}

struct hbone_stream *hbone_client_open(struct hbone_client *cl, const struct hbone_open *req,
				       const struct hbone_stream_ops *ops, void *ctx)
{
	struct hbone_stream *s = calloc(1, sizeof(*s));
	struct hb_conn *c;

	if (cl->draining) {
		free(s);
		return NULL;
	}
	if (!s)
		return NULL;
	s->target_fd = -1;
	s->ops = ops;
	s->ctx = ctx;
	if (build_request(s, req)) {
		free(s->req_nv);
		free(s->req_buf);
		free(s);
		return NULL;
	}
	c = pool_find(cl, req);
	if (!c)
		c = pool_connect(cl, req);
	if (!c) {
		free(s->req_nv);
		free(s->req_buf);
		free(s);
		return NULL;
	}
	hb_stream_link(c, s);
	if (c->state == HB_READY)
		submit(c, s);
	hb_conn_kick(c);
	return s;
}

struct hbone_client *hbone_client_new(struct xm_loop *loop, const struct hbone_client_config *cfg,
				      struct hbone_counters *counters)
{
	struct hbone_client *cl = calloc(1, sizeof(*cl));

	if (!cl)
		return NULL;
	cl->loop = loop;
	cl->cfg = *cfg;
	cl->ctr = counters;
	if (!cl->cfg.max_streams_per_conn)
		cl->cfg.max_streams_per_conn = HBONE_MAX_STREAMS;
	if (!cl->cfg.idle_timeout_ms)
		cl->cfg.idle_timeout_ms = HBONE_POOL_IDLE_MS;
	if (!cl->cfg.connect_timeout_ms)
		cl->cfg.connect_timeout_ms = HBONE_CONNECT_TIMEOUT_MS;
	if (!cl->cfg.ping_interval_ms)
		cl->cfg.ping_interval_ms = HBONE_PING_INTERVAL_MS;
	if (!cl->cfg.ping_timeout_ms)
		cl->cfg.ping_timeout_ms = HBONE_PING_TIMEOUT_MS;
	cl->verify = (struct hb_verify){ cfg->verify, cfg->ctx };
	cl->tls = hb_tls_ctx_new(false, cfg->trust, &cl->verify);
	if (!cl->tls) {
		free(cl);
		return NULL;
	}
	return cl;
}

void hbone_client_free(struct hbone_client *cl)
{
	if (!cl)
		return;
	while (cl->conns)
		hb_conn_fail(cl->conns, -ECONNABORTED);
	while (cl->tickets)
		ticket_drop(cl, cl->tickets);
	SSL_CTX_free(cl->tls);
	free(cl);
}

void hbone_client_drain(struct hbone_client *cl)
{
	if (!cl)
		return;
	cl->draining = true;
	for (struct hb_conn *c = cl->conns; c; c = c->pool_next)
		goaway_draining(c);
}

size_t hbone_client_recheck(struct hbone_client *cl, hbone_stale_fn stale, void *ctx)
{
	struct hb_conn *c, *next;
	size_t n = 0;

	for (c = cl->conns; c; c = next) {
		struct hbone_pooled p = {
			.src_id = c->src_id,
			.dst_id = c->dst_id,
			.own = c->ssl ? SSL_get_certificate(c->ssl) : NULL,
			.peer = c->state == HB_READY ? c->peer_leaf : NULL,
			.peer_chain = c->state == HB_READY ? c->peer_chain : NULL,
		};
		enum hbone_retire_reason why = HBONE_RETIRED_OWN_CERT;

		next = c->pool_next;
		if (c->goaway || c->state == HB_DEAD || !p.own || !stale(ctx, &p, &why) ||
		    (unsigned)why >= HBONE_RETIRE_REASONS)
			continue;
		retire(cl, c, why);
		n++;
	}
	return n;
}

size_t hbone_client_connections(const struct hbone_client *cl)
{
	return cl->n_conns;
}

SSL_CTX *hb_client_tls(struct hbone_client *cl)
{
	return cl->tls;
}

size_t hbone_client_tickets(const struct hbone_client *cl)
{
	return cl->n_tickets;
}

SSL_SESSION *hb_client_ticket_session(struct hbone_client *cl, const char *src_id, const char *dst_id,
				      const struct sockaddr_storage *dst)
{
	struct hb_ticket *t = ticket_find(cl, src_id, dst_id, dst);

	return t ? t->sess : NULL;
}
