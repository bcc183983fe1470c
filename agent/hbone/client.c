// SPDX-License-Identifier: Apache-2.0
/*
 * The HBONE client: a pool of TLS connections keyed as ztunnel keys it (src/proxy/pool.rs WorkloadKey:
 * source identity, destination identities, destination address), each carrying up to max_streams CONNECT
 * streams; a request finds a connection of its key with room or opens another. A connection without
 * streams closes after the idle timeout (ztunnel's pool_unused_release_timeout).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/loop.h"
#include "hbone/internal.h"

struct hbone_client {
	struct xm_loop *loop;
	struct hbone_client_config cfg;
	struct hbone_counters *ctr;
	SSL_CTX *tls;
	struct hb_verify verify;
	struct hb_conn *conns;
	size_t n_conns;
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

static void cl_ready(struct hb_conn *c, bool ok, int err)
{
	struct hbone_stream *s, *last = NULL;

	(void)err;
	if (!ok)
		return;
	/* in the order they were opened (the list is newest first) */
	for (s = c->streams; s; s = s->next)
		last = s;
	for (s = last; s; s = s->prev)
		if (s->id == 0 && !s->h2_closed && !s->detached)
			submit(c, s);
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

static struct hb_conn *pool_find(struct hbone_client *cl, const struct hbone_open *req)
{
	struct hb_conn *c;

	for (c = cl->conns; c; c = c->pool_next) {
		uint32_t limit = c->max_streams;

		/* ztunnel: min(its own limit, what the server advertises) */
		if (c->h2) {
			uint32_t remote =
			    nghttp2_session_get_remote_settings(c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

			if (remote < limit)
				limit = remote;
		}
		if (c->state == HB_DEAD || c->goaway || c->n_streams >= limit)
			continue;
		if (!strcmp(c->src_id, req->src_id) && !strcmp(c->dst_id, req->dst_id) && same_addr(&c->dst, req->dst))
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
	SSL_CTX_free(cl->tls);
	free(cl);
}

size_t hbone_client_connections(const struct hbone_client *cl)
{
	return cl->n_conns;
}
