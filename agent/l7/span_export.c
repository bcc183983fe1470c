// SPDX-License-Identifier: Apache-2.0
/*
 * The span exporter: per-worker rings of span JSON lines (core/spsc_ring.h) drained by one background thread
 * that joins up to L7_SPAN_BATCH of them into a JSON array and POSTs it to the collector over HTTP/1.1.
 */
#include "l7/span_export.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/background.h"
#include "core/loop.h"
#include "core/log.h"
#include "core/spsc_ring.h"
#include "http/h1.h"
#include "metrics/registry.h"

/* How often the exporter looks at the rings. */
#define POLL_MS 50

struct span_ring {
	struct xm_spsc_ring q;
	uint64_t dropped;	/* worker only, read relaxed by the metrics thread */
	char span[L7_SPAN_MAX]; /* the worker's formatting space */
};

struct l7_span_export {
	char host[256], port[16], path[1024], node_id[256];
	size_t n_rings;
	struct span_ring *rings;
	char *body; /* "[span,span,...]" being built */
	size_t body_len, pending;
	uint64_t first_pending_ms;
	_Atomic bool stop;
	_Atomic uint64_t exported, failed;
	pthread_t thread;
	bool started;
};

static inline void bump(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

int l7_span_parse_url(const char *url, char *host, size_t host_len, char *port, size_t port_len, char *path,
		      size_t path_len)
{
	const char *h = url, *end, *colon, *slash;
	size_t n;

	if (strncmp(h, "http://", 7))
		return -EINVAL;
	h += 7;
	slash = strchr(h, '/');
	end = slash ? slash : h + strlen(h);
	if (*h == '[') { /* [IPv6]:port */
		const char *close = memchr(h, ']', (size_t)(end - h));

		if (!close)
			return -EINVAL;
		n = (size_t)(close - h - 1);
		colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
		if (close + 1 < end && !colon)
			return -EINVAL;
		h++;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		n = (size_t)((colon ? colon : end) - h);
	}
	if (!n || n >= host_len)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	if (colon) {
		size_t pn = (size_t)(end - colon - 1);
		char *e;
		long v;

		if (!pn || pn >= port_len)
			return -EINVAL;
		memcpy(port, colon + 1, pn);
		port[pn] = '\0';
		v = strtol(port, &e, 10);
		if (*e || v < 1 || v > 65535)
			return -EINVAL;
	} else {
		if (port_len < 3)
			return -EINVAL;
		strcpy(port, "80");
	}
	if (strlen(slash ? slash : "/") >= path_len)
		return -EINVAL;
	strcpy(path, slash ? slash : "/");
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return -EINVAL; /* no byte that would end the request line or a header early */
	return 0;
}

void l7_span_export_record(struct l7_span_export *e, size_t worker, const struct l7_record *r)
{
	struct span_ring *ring;
	size_t n, queued;

	if (!e || !r->sampled || !r->trace_id[0] || worker >= e->n_rings)
		return;
	ring = &e->rings[worker];
	n = l7_span_format(r, e->node_id, ring->span, sizeof(ring->span) - 1);
	if (n >= sizeof(ring->span) - 1) {
		bump(&ring->dropped);
		return;
	}
	ring->span[n++] = '\n'; /* the separator: escaped JSON holds no raw newline */
	if (!xm_spsc_ring_push(&ring->q, ring->span, n, &queued)) {
		bump(&ring->dropped);
		return;
	}
}

/* Byte i of the queued bytes described by iov. */
static char at(const struct iovec iov[2], size_t i)
{
	return i < iov[0].iov_len ? ((char *)iov[0].iov_base)[i] : ((char *)iov[1].iov_base)[i - iov[0].iov_len];
}

/* Moves whole spans from the rings into the body until it holds L7_SPAN_BATCH. */
static void gather(struct l7_span_export *e)
{
	for (size_t i = 0; i < e->n_rings && e->pending < L7_SPAN_BATCH; i++) {
		struct iovec iov[2];
		size_t len = xm_spsc_ring_peek(&e->rings[i].q, iov), start = 0;

		for (size_t j = 0; j < len && e->pending < L7_SPAN_BATCH; j++) {
			if (at(iov, j) != '\n')
				continue;
			if (!e->pending)
				e->first_pending_ms = loop_now_ms();
			e->body[e->body_len++] = e->pending ? ',' : '[';
			for (size_t k = start; k < j; k++)
				e->body[e->body_len++] = at(iov, k);
			e->pending++;
			start = j + 1;
		}
		xm_spsc_ring_consume(&e->rings[i].q, start);
	}
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* One POST of body to the collector: its status, or -errno. Blocking with timeouts: this is the exporter's thread. */
static int post(const struct l7_span_export *e, const char *body, size_t len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	struct timeval tv = { .tv_sec = L7_SPAN_POST_TIMEOUT_MS / 1000,
			      .tv_usec = (L7_SPAN_POST_TIMEOUT_MS % 1000) * 1000 };
	char head[1600], resp_buf[8192];
	size_t got = 0;
	int fd = -1, rc, n;

	if (getaddrinfo(e->host, e->port, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		/* SO_SNDTIMEO bounds connect() too (socket(7)). */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -ECONNREFUSED;
	n = snprintf(head, sizeof(head),
		     "POST %s HTTP/1.1\r\nhost: %s:%s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
		     "connection: close\r\n\r\n",
		     e->path, e->host, e->port, len);
	rc = -EIO;
	if (n > 0 && (size_t)n < sizeof(head) && send_all(fd, head, (size_t)n) && send_all(fd, body, len)) {
		for (;;) {
			struct h1_response resp;
			enum h1_error err;
			ssize_t r = recv(fd, resp_buf + got, sizeof(resp_buf) - got, 0);
			int k;

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
			k = h1_parse_response(resp_buf, got, false, false, &resp, &err);
			if (k > 0 && resp.status >= 200) {
				rc = resp.status;
				break;
			}
			if (k < 0 || got == sizeof(resp_buf))
				break;
		}
	}
	close(fd);
	return rc;
}

/* Posts the pending batch; its spans count as exported on a 2xx, else failed (and false). */
static bool flush(struct l7_span_export *e)
{
	static _Atomic bool warned;
	int status;

	e->body[e->body_len++] = ']';
	status = post(e, e->body, e->body_len);
	if (status >= 200 && status < 300) {
		atomic_fetch_add(&e->exported, e->pending);
	} else {
		atomic_fetch_add(&e->failed, e->pending);
		if (!atomic_exchange(&warned, true))
			log_warn("trace export: POST http://%s:%s%s: %s%d; spans are counted failed while it fails",
				 e->host, e->port, e->path, status < 0 ? "error " : "status ", status);
	}
	e->body_len = 0;
	e->pending = 0;
	return status >= 200 && status < 300;
}

/* Stopping with a collector that fails: what is still queued is not worth a timeout each. */
static void fail_queued(struct l7_span_export *e)
{
	for (size_t i = 0; i < e->n_rings; i++) {
		struct iovec iov[2];
		size_t len = xm_spsc_ring_peek(&e->rings[i].q, iov), spans = 0;

		for (size_t j = 0; j < len; j++)
			spans += at(iov, j) == '\n';
		xm_spsc_ring_consume(&e->rings[i].q, len);
		atomic_fetch_add(&e->failed, spans);
	}
}

static bool rings_empty(struct l7_span_export *e)
{
	for (size_t i = 0; i < e->n_rings; i++)
		if (!xm_spsc_ring_empty(&e->rings[i].q))
			return false;
	return true;
}

static void *exporter_main(void *arg)
{
	struct l7_span_export *e = arg;

	thread_set_background("trace export");
	for (;;) {
		bool stopping = atomic_load(&e->stop);

		gather(e);
		if (e->pending && (e->pending >= L7_SPAN_BATCH ||
				   loop_now_ms() - e->first_pending_ms >= L7_SPAN_FLUSH_MS || stopping)) {
			if (!flush(e) && stopping) {
				fail_queued(e);
				break;
			}
			continue;
		}
		if (stopping && rings_empty(e))
			break;
		poll(NULL, 0, POLL_MS);
	}
	return NULL;
}

static void free_export(struct l7_span_export *e)
{
	if (e->rings)
		for (size_t i = 0; i < e->n_rings; i++)
			xm_spsc_ring_free(&e->rings[i].q);
	free(e->rings);
	free(e->body);
	free(e);
}

struct l7_span_export *l7_span_export_open(const char *url, const char *node_id, size_t n_workers, size_t ring_bytes,
					   int *err)
{
	struct l7_span_export *e = calloc(1, sizeof(*e));
	int rc;

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	if (l7_span_parse_url(url, e->host, sizeof(e->host), e->port, sizeof(e->port), e->path, sizeof(e->path))) {
		free(e);
		*err = -EINVAL;
		return NULL;
	}
	snprintf(e->node_id, sizeof(e->node_id), "%s", node_id ? node_id : "");
	e->n_rings = n_workers ? n_workers : 1;
	e->rings = aligned_alloc(64, e->n_rings * sizeof(*e->rings));
	/* '[', the spans with their commas, ']' */
	e->body = malloc(L7_SPAN_BATCH * L7_SPAN_MAX + 2);
	if (!e->rings || !e->body) {
		e->n_rings = 0;
		free_export(e);
		*err = -ENOMEM;
		return NULL;
	}
	memset(e->rings, 0, e->n_rings * sizeof(*e->rings));
	for (size_t i = 0; i < e->n_rings; i++) {
		if (xm_spsc_ring_init(&e->rings[i].q, ring_bytes)) {
			free_export(e);
			*err = -ENOMEM;
			return NULL;
		}
	}
	rc = pthread_create(&e->thread, NULL, exporter_main, e);
	if (rc) {
		free_export(e);
		*err = -rc;
		return NULL;
	}
	e->started = true;
	*err = 0;
	return e;
}

void l7_span_export_close(struct l7_span_export *e)
{
	if (!e)
		return;
	if (e->started) {
		atomic_store(&e->stop, true);
		pthread_join(e->thread, NULL);
	}
	free_export(e);
}

void l7_span_export_collect(struct l7_span_export *e, struct xm_scrape *sc)
{
	static const char *const names[] = { "result" };
	static const char *const exported[] = { "exported" }, *const dropped[] = { "dropped" },
				 *const failed[] = { "failed" };
	struct xm_scrape_family *f;
	uint64_t drops = 0;

	if (!e)
		return;
	for (size_t i = 0; i < e->n_rings; i++)
		drops += __atomic_load_n(&e->rings[i].dropped, __ATOMIC_RELAXED);
	f = scrape_family(
	    sc, "xmesh_trace_spans_total", "counter",
	    "Sampled spans by outcome: exported (the collector answered 2xx), dropped (the worker's queue "
	    "was full), failed (the POST failed or was refused).");
	scrape_u64(f, names, exported, 1, atomic_load(&e->exported));
	scrape_u64(f, names, dropped, 1, drops);
	scrape_u64(f, names, failed, 1, atomic_load(&e->failed));
}
