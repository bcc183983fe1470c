// SPDX-License-Identifier: Apache-2.0
/*
 * The upstream of the proxy tests. Per path: /echo... answers 200 with what it saw (x-conn: its connection
 * number, x-seen-path/-host/-xff/-rid/-added/-te) and echoes the body (Content-Length: same length; chunked:
 * the same chunks); /chunked?n=N sends N bytes chunked; /upgrade answers 101 and echoes raw bytes; /continue
 * sends 100 Continue when asked, then "got N"; /close answers without a length and closes; /arm-drop answers
 * like /echo, then closes the connection when the next request arrives without answering it (a keep-alive
 * server's idle close racing a request); /slow?ms=N waits N ms, then answers like /echo; /slowbody?ms=N sends
 * a head and half its body, waits N ms, then the rest; HEAD gets the head. Every request's target and Host are
 * remembered.
 */
#include "l7_proxy_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "http/h1.h"
#include "test_config.h"

static int listen_fd = -1;
static pthread_t accept_thread;
static atomic_bool stopping;
static atomic_int conn_ids;

static bool write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);

		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return false;
		}
		c += k;
		n -= (size_t)k;
	}
	return true;
}

static bool write_str(int fd, const char *s)
{
	return write_all(fd, s, strlen(s));
}

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen[256][2][128]; /* target, host */
static size_t n_seen;

static void remember(struct h1_str target, struct h1_str host)
{
	pthread_mutex_lock(&seen_lock);
	if (n_seen < 256) {
		snprintf(seen[n_seen][0], 128, "%.*s", (int)target.len, target.p);
		snprintf(seen[n_seen][1], 128, "%.*s", (int)host.len, host.p);
		n_seen++;
	}
	pthread_mutex_unlock(&seen_lock);
}

bool upstream_saw(const char *path, const char *host)
{
	for (int i = 0; i < 200; i++) {
		bool found = false;

		pthread_mutex_lock(&seen_lock);
		for (size_t j = 0; j < n_seen && !found; j++)
			found = !strcmp(seen[j][0], path) && !strcmp(seen[j][1], host);
		pthread_mutex_unlock(&seen_lock);
		if (found)
			return true;
		usleep(10000);
	}
	return false;
}

struct conn {
	bool drop_next;
	int fd, id;
	char *buf;
	size_t len, cap;
};

static bool conn_fill(struct conn *c)
{
	ssize_t k;

	if (c->len == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 65536;
		c->buf = realloc(c->buf, c->cap);
	}
	k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (k <= 0)
		return false;
	c->len += (size_t)k;
	return true;
}

static void conn_consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static void span(char *dst, size_t cap, struct h1_str s)
{
	snprintf(dst, cap, "%.*s", (int)s.len, s.p);
}

static void header(const struct h1_request *req, const char *name, char *dst, size_t cap)
{
	const struct h1_header *h = h1_find(req->headers, req->n_headers, name);

	if (h)
		span(dst, cap, h->value);
	else
		snprintf(dst, cap, "-");
}

/* Reads the body into *body (raw bytes as framed); false when the connection broke. */
static bool read_body(struct conn *c, const struct h1_request *req, char **body, size_t *len)
{
	*body = NULL;
	*len = 0;
	if (req->body == H1_BODY_LENGTH) {
		while (c->len < req->content_length)
			if (!conn_fill(c))
				return false;
		*len = req->content_length;
	} else if (req->body == H1_BODY_CHUNKED) {
		struct h1_chunked ck;
		enum h1_error err;
		size_t scanned = 0;

		h1_chunked_init(&ck);
		while (!ck.done) {
			long r;

			if (scanned == c->len && !conn_fill(c))
				return false;
			r = h1_chunked_scan(&ck, c->buf + scanned, c->len - scanned, &err);
			if (r < 0)
				return false;
			scanned += (size_t)r;
		}
		*len = scanned;
	}
	*body = malloc(*len + 1);
	memcpy(*body, c->buf, *len);
	conn_consume(c, *len);
	return true;
}

static void serve_echo(struct conn *c, const struct h1_request *req, const char *body, size_t len)
{
	char path[512], host[256], xff[256], rid[128], added[64], te[64], head[2048];
	int n;

	span(path, sizeof(path), req->target);
	span(host, sizeof(host), req->host);
	header(req, "x-forwarded-for", xff, sizeof(xff));
	header(req, "x-request-id", rid, sizeof(rid));
	header(req, "x-added", added, sizeof(added));
	header(req, "connection", te, sizeof(te));
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 200 OK\r\nx-conn: %d\r\nx-seen-path: %s\r\nx-seen-host: %s\r\nx-seen-xff: %s\r\n"
		     "x-seen-rid: %s\r\nx-seen-added: %s\r\nx-seen-connection: %s\r\nkeep-alive: timeout=5\r\n",
		     c->id, path, host, xff, rid, added, te);
	if (req->body == H1_BODY_CHUNKED)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "transfer-encoding: chunked\r\n\r\n");
	else
		n += snprintf(head + n, sizeof(head) - (size_t)n, "content-length: %zu\r\n\r\n", len);
	write_all(c->fd, head, (size_t)n);
	if (!req->is_head)
		write_all(c->fd, body, len);
}

static void serve_chunked(struct conn *c, size_t total)
{
	static char block[8192];
	char line[32];

	for (size_t i = 0; i < sizeof(block); i++)
		block[i] = (char)('a' + i % 26);
	write_str(c->fd, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
	while (total) {
		size_t n = total < sizeof(block) ? total : sizeof(block);
		int k = snprintf(line, sizeof(line), "%zx\r\n", n);

		write_all(c->fd, line, (size_t)k);
		write_all(c->fd, block, n);
		write_all(c->fd, "\r\n", 2);
		total -= n;
	}
	write_str(c->fd, "0\r\n\r\n");
}

static void *serve(void *arg)
{
	struct conn *c = arg;

	for (;;) {
		static __thread char head[65536];
		struct h1_request req;
		enum h1_error err;
		char target[256], *body;
		size_t len;
		int n;

		while ((n = h1_parse_request(c->buf, c->len, &req, &err)) == 0)
			if (!conn_fill(c))
				goto out;
		if (n < 0)
			goto out;
		/* req must outlive the buffer's moves: parse it again from a copy of the head */
		memcpy(head, c->buf, (size_t)n);
		h1_parse_request(head, (size_t)n, &req, &err);
		conn_consume(c, (size_t)n);
		remember(req.target, req.host);
		if (c->drop_next)
			goto out;
		span(target, sizeof(target), req.target);
		c->drop_next = !strcmp(target, "/arm-drop");
		if (!strcmp(target, "/continue") && req.expect_continue)
			write_str(c->fd, "HTTP/1.1 100 Continue\r\n\r\n");
		if (!read_body(c, &req, &body, &len)) {
			free(body);
			goto out;
		}
		if (!strncmp(target, "/chunked?n=", 11)) {
			serve_chunked(c, strtoul(target + 11, NULL, 10));
		} else if (!strncmp(target, "/slowbody?ms=", 13)) {
			write_str(c->fd, "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nha");
			usleep((useconds_t)strtoul(target + 13, NULL, 10) * 1000);
			write_str(c->fd, "lf");
		} else if (!strncmp(target, "/slow?ms=", 9)) {
			usleep((useconds_t)strtoul(target + 9, NULL, 10) * 1000);
			serve_echo(c, &req, body, len);
		} else if (!strcmp(target, "/upgrade")) {
			char raw[4096];
			ssize_t k;

			write_str(c->fd,
				  "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n");
			if (c->len)
				write_all(c->fd, c->buf, c->len);
			while ((k = recv(c->fd, raw, sizeof(raw), 0)) > 0)
				write_all(c->fd, raw, (size_t)k);
			free(body);
			goto out;
		} else if (!strcmp(target, "/continue")) {
			char reply[128];
			int k = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\ngot %zu",
					 len >= 10 ? 6 : 5, len);

			write_all(c->fd, reply, (size_t)k);
		} else if (!strcmp(target, "/close")) {
			write_str(c->fd, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbye");
			free(body);
			goto out;
		} else {
			serve_echo(c, &req, body, len);
		}
		free(body);
	}
out:
	close(c->fd);
	free(c->buf);
	free(c);
	return NULL;
}

static void *accept_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&stopping)) {
		struct pollfd p = { .fd = listen_fd, .events = POLLIN };
		struct conn *c;
		pthread_t t;
		int fd;

		if (poll(&p, 1, 100) <= 0)
			continue;
		fd = accept(listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof(*c));
		c->fd = fd;
		c->id = atomic_fetch_add(&conn_ids, 1) + 1;
		if (pthread_create(&t, NULL, serve, c)) {
			close(fd);
			free(c);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

uint16_t upstream_start(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int one = 1;

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(listen_fd, 128) ||
	    getsockname(listen_fd, (struct sockaddr *)&sin, &len))
		return 0;
	atomic_store(&stopping, false);
	if (pthread_create(&accept_thread, NULL, accept_loop, NULL))
		return 0;
	return ntohs(sin.sin_port);
}

void upstream_stop(void)
{
	atomic_store(&stopping, true);
	pthread_join(accept_thread, NULL);
	close(listen_fd);
}

/* ---- client ---- */

void hc_open(struct hclient *c, const char *ip, uint16_t port)
{
	hc_open_from(c, NULL, ip, port);
}

void hc_open_from(struct hclient *c, const char *src, const char *ip, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in from = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 5 };

	memset(c, 0, sizeof(*c));
	inet_pton(AF_INET, ip, &sin.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (src &&
	    (inet_pton(AF_INET, src, &from.sin_addr) != 1 || bind(c->fd, (struct sockaddr *)&from, sizeof(from)))) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(c->fd);
		c->fd = -1;
	}
}

void hc_close(struct hclient *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void hc_send(struct hclient *c, const void *p, size_t n)
{
	write_all(c->fd, p, n);
}

static bool hc_fill(struct hclient *c)
{
	ssize_t k;

	if (c->cap - c->len < 65536) {
		c->cap = c->cap ? c->cap * 2 : 131072;
		c->buf = realloc(c->buf, c->cap);
	}
	k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (k <= 0)
		return false;
	c->len += (size_t)k;
	return true;
}

static void hc_consume(struct hclient *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static void body_append(struct response *r, const char *p, size_t n)
{
	r->body = realloc(r->body, r->body_len + n + 1);
	memcpy(r->body + r->body_len, p, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
}

/* De-chunks from c->buf; false on EOF or a framing error. */
static bool read_chunked(struct hclient *c, struct response *r)
{
	for (;;) {
		char *eol;
		size_t size;

		while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
			if (!hc_fill(c))
				return false;
		size = strtoul(c->buf, NULL, 16);
		hc_consume(c, (size_t)(eol - c->buf) + 2);
		if (!size) {
			while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
				if (!hc_fill(c))
					return false;
			hc_consume(c, (size_t)(eol - c->buf) + 2); /* no trailers here */
			return true;
		}
		while (c->len < size + 2)
			if (!hc_fill(c))
				return false;
		body_append(r, c->buf, size);
		hc_consume(c, size + 2);
	}
}

static bool read_response(struct hclient *c, struct response *r, bool head_only)
{
	struct h1_response resp;
	enum h1_error err;
	int n;

	memset(r, 0, sizeof(*r));
	body_append(r, "", 0);
	while ((n = h1_parse_response(c->buf, c->len, head_only, false, &resp, &err)) == 0)
		if (!hc_fill(c))
			return false;
	if (n < 0)
		return false;
	r->status = resp.status;
	snprintf(r->head, sizeof(r->head), "%.*s", n, c->buf);
	hc_consume(c, (size_t)n);
	if (resp.body == H1_BODY_LENGTH) {
		while (c->len < resp.content_length)
			if (!hc_fill(c))
				return false;
		body_append(r, c->buf, resp.content_length);
		hc_consume(c, resp.content_length);
	} else if (resp.body == H1_BODY_CHUNKED) {
		r->chunked = true;
		return read_chunked(c, r);
	} else if (resp.body == H1_BODY_CLOSE) {
		while (hc_fill(c))
			;
		body_append(r, c->buf, c->len);
		hc_consume(c, c->len);
	}
	return true;
}

bool hc_sees_close(struct hclient *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	char b;

	if (c->len || poll(&p, 1, 2000) != 1)
		return false;
	return recv(c->fd, &b, 1, 0) == 0;
}

void response_free(struct response *r)
{
	free(r->body);
	r->body = NULL;
}

/* A response that did not arrive whole leaves nothing to free: callers free only what they got. */
bool hc_read(struct hclient *c, struct response *r, bool head_only)
{
	if (read_response(c, r, head_only))
		return true;
	response_free(r);
	return false;
}

bool response_header(const struct response *r, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name);

	for (const char *line = strstr(r->head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
		const char *p = line + 2, *end = strstr(p, "\r\n");

		if (end && !strncasecmp(p, name, nl) && p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ')
				p++;
			snprintf(buf, len, "%.*s", (int)(end - p), p);
			return true;
		}
	}
	return false;
}

/* ---- records ---- */

static pthread_mutex_t records_lock = PTHREAD_MUTEX_INITIALIZER;
static struct seen_record records[256];
static size_t n_records;

void records_hook(void *ctx, size_t worker, const struct l7_record *r)
{
	(void)ctx, (void)worker;
	pthread_mutex_lock(&records_lock);
	if (n_records < 256) {
		struct seen_record *s = &records[n_records++];

		s->status = r->status;
		s->flags = r->flags;
		s->attempts = r->attempts;
		snprintf(s->details, sizeof(s->details), "%s", r->details ? r->details : "");
		snprintf(s->path, sizeof(s->path), "%s", r->path ? r->path : "");
		s->request_bytes = r->request_bytes;
		s->response_bytes = r->response_bytes;
	}
	pthread_mutex_unlock(&records_lock);
}

size_t records_wait(size_t n)
{
	size_t have = 0;

	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&records_lock);
		have = n_records;
		pthread_mutex_unlock(&records_lock);
		if (have >= n)
			break;
		usleep(10000);
	}
	return have;
}

struct seen_record records_get(size_t i)
{
	struct seen_record s;

	pthread_mutex_lock(&records_lock);
	s = records[i];
	pthread_mutex_unlock(&records_lock);
	return s;
}

struct xm_snapshot *fixture_snapshot(const char *yaml, const struct xm_compile_opts *copts)
{
	struct xm_config cfg = { 0 };
	struct xm_snapshot *snap;
	char *path = temp_yaml(yaml);
	const char *paths[1] = { path };
	uint32_t id = 1;
	int err;

	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	snap = snapshot_build(&cfg, copts, &err);
	cr_assert_not_null(snap, "snapshot_build: %d", err);
	config_free(&cfg);
	for (size_t i = 0; i < snap->lb.n_services; i++) {
		snap->lb.services[i].svc_id = id++;
		for (size_t j = 0; j < snap->lb.services[i].n_backends; j++)
			snap->lb.services[i].backends[j].id = id++;
	}
	return snap;
}
