// SPDX-License-Identifier: Apache-2.0
/*
 * One request per connection, answered with `Connection: close`. Prometheus scrapes every 15 s or more, so
 * keep-alive would save one loopback handshake per scrape while an idle kept-alive connection would hold one
 * of the few slots; closing also leaves no pipelining state to get wrong. Sockets are edge-triggered for
 * both directions, registered once: every callback reads or writes until EAGAIN, and a full socket buffer
 * just waits for the next EPOLLOUT edge, so a slow client never stalls the loop.
 */
#include "metrics/http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "http/h1.h"

int mhttp_parse_request(const char *buf, size_t len, struct mhttp_request *req)
{
	struct h1_request h;
	enum h1_error err;
	int r = h1_parse_request(buf, len, &h, &err);

	memset(req, 0, sizeof(*req));
	if (r < 0) {
		if (err == H1_E_VERSION_NOT_SUPPORTED)
			return -505;
		return err == H1_E_TOO_LARGE || err == H1_E_TOO_MANY_HEADERS ? -431 : -400;
	}
	if (r > 0) {
		req->method = h.method.p;
		req->method_len = h.method.len;
		/* CONNECT's authority-form has no path: the target stands for it (answered 405 anyway). */
		req->path = h.path.len ? h.path.p : h.target.p;
		req->path_len = h.path.len ? h.path.len : h.target.len;
		req->minor_version = h.minor_version;
	}
	return r;
}

/* ---- addresses ---- */

int mhttp_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	char host[INET6_ADDRSTRLEN + 16];
	const char *colon, *port;
	size_t hlen;
	int family;

	if (!addr)
		return -EINVAL;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hlen = (size_t)(rb - addr - 1);
		memcpy(host, addr + 1, hlen < sizeof(host) ? hlen : 0);
		family = AF_INET6;
		port = rb + 2;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return -EINVAL;
		hlen = (size_t)(colon - addr);
		memcpy(host, addr, hlen < sizeof(host) ? hlen : 0);
		family = AF_INET;
		port = colon + 1;
	}
	if (!hlen || hlen >= sizeof(host) || !*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
	    atoi(port) > 65535)
		return -EINVAL;
	host[hlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &res) || !res)
		return -EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* ---- server ---- */

enum conn_state {
	CONN_READ,  /* collecting the request head */
	CONN_WRITE, /* sending the answer */
	CONN_DRAIN, /* answer sent and write side shut: reading what the client still sends, until it closes */
};

struct mhttp_conn {
	struct mhttp_server *srv;
	struct mhttp_conn *prev, *next;
	int fd;
	enum conn_state state;
	struct xm_timer *deadline;
	uint64_t deadline_ms;
	size_t in_len;
	char head[512];
	size_t head_len;
	struct strbuf body; /* sent after head, unless the request was HEAD */
	size_t body_len;    /* bytes of body to send: 0 for HEAD */
	size_t sent;	    /* of head_len + body_len */
	char in[];	    /* limits.max_request bytes */
};

struct mhttp_server {
	struct xm_loop *loop;
	int fd, port;
	struct mhttp_limits limits;
	mhttp_handler handler;
	void *ctx;
	struct mhttp_conn *conns;
	unsigned int n_conns;
};

static void conn_free(struct mhttp_conn *c)
{
	struct mhttp_server *s = c->srv;

	loop_timer_cancel(s->loop, c->deadline);
	loop_del_fd(s->loop, c->fd);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	sb_free(&c->body);
	free(c);
}

/* The status line and headers; extra is one more header line without its CRLF, or NULL. */
static void format_head(struct mhttp_conn *c, int status, const char *content_type, size_t content_length,
			const char *extra)
{
	char date[64];
	struct tm tm;
	time_t t = time(NULL);
	int n;

	if (!gmtime_r(&t, &tm) || !strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm))
		date[0] = '\0';
	n = snprintf(c->head, sizeof(c->head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s%sConnection: close\r\n\r\n",
		     status, h1_reason_phrase((unsigned)status),
		     content_type ? content_type : "text/plain; charset=utf-8", content_length, date[0] ? "Date: " : "",
		     date, date[0] ? "\r\n" : "", extra ? extra : "", extra ? "\r\n" : "");
	c->head_len = n > 0 && (size_t)n < sizeof(c->head) ? (size_t)n : 0;
	/* Only a handler's absurd content type can overflow; the plain head always fits. */
	if (!c->head_len && (content_type || extra))
		format_head(c, status, NULL, content_length, NULL);
}

static void answer_error(struct mhttp_conn *c, int status, const char *extra)
{
	sb_free(&c->body);
	sb_printf(&c->body, "%d %s\n", status, h1_reason_phrase((unsigned)status));
	c->body_len = c->body.oom ? 0 : c->body.len;
	format_head(c, status, NULL, c->body_len, extra);
	c->state = CONN_WRITE;
}

static void answer(struct mhttp_conn *c, const struct mhttp_request *req)
{
	struct mhttp_response resp = { .status = 200 };
	bool head = req->method_len == 4 && !memcmp(req->method, "HEAD", 4);

	if (!head && !(req->method_len == 3 && !memcmp(req->method, "GET", 3))) {
		answer_error(c, 405, "Allow: GET, HEAD");
		return;
	}
	c->srv->handler(req, &resp, c->srv->ctx);
	if (resp.body.oom) {
		sb_free(&resp.body);
		log_warn("metrics http: out of memory rendering %.*s", (int)req->path_len, req->path);
		answer_error(c, 500, NULL);
		return;
	}
	sb_free(&c->body);
	c->body = resp.body;
	format_head(c, resp.status, resp.content_type, c->body.len, NULL);
	c->body_len = head ? 0 : c->body.len;
	c->state = CONN_WRITE;
}

/* Reads until the head is complete, the buffer is full or the socket is drained; false: close. */
static bool conn_read(struct mhttp_conn *c)
{
	size_t max = c->srv->limits.max_request;
	struct mhttp_request req;
	int r;

	while (c->in_len < max) {
		ssize_t n = recv(c->fd, c->in + c->in_len, max - c->in_len, 0);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0) /* gone before a full request: nobody to answer */
			return false;
		c->in_len += (size_t)n;
		r = mhttp_parse_request(c->in, c->in_len, &req);
		if (r > 0) {
			answer(c, &req);
			return true;
		}
		if (r < 0) {
			answer_error(c, -r, NULL);
			return true;
		}
	}
	/* Full and still no blank line: a request line that long is a 414, otherwise headers are too big. */
	answer_error(c, memchr(c->in, '\n', c->in_len) ? 431 : 414, NULL);
	return true;
}

/* Sends until done or EAGAIN; when done, shuts the write side and starts draining. false: close. */
static bool conn_write(struct mhttp_conn *c)
{
	size_t total = c->head_len + c->body_len;

	while (c->sent < total) {
		struct iovec iov[2];
		struct msghdr msg = { .msg_iov = iov };
		ssize_t n;

		if (c->sent < c->head_len) {
			iov[0].iov_base = c->head + c->sent;
			iov[0].iov_len = c->head_len - c->sent;
			iov[1].iov_base = c->body.buf;
			iov[1].iov_len = c->body_len;
			msg.msg_iovlen = c->body_len ? 2 : 1;
		} else {
			iov[0].iov_base = c->body.buf + (c->sent - c->head_len);
			iov[0].iov_len = total - c->sent;
			msg.msg_iovlen = 1;
		}
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->sent += (size_t)n;
	}
	/*
	 * Closing with unread bytes in the receive queue (a request body, a pipelined request) would send an
	 * RST that can destroy the answer in flight: shut our side, then read until the client closes.
	 */
	shutdown(c->fd, SHUT_WR);
	sb_free(&c->body);
	c->state = CONN_DRAIN;
	if (c->deadline_ms > loop_now_ms() + MHTTP_LINGER_MS) {
		c->deadline_ms = loop_now_ms() + MHTTP_LINGER_MS;
		loop_timer_arm(c->srv->loop, c->deadline, MHTTP_LINGER_MS);
	}
	return true;
}

/* Discards what the client sends after the answer; false once it has closed. A streaming client hits the deadline. */
static bool conn_drain(struct mhttp_conn *c)
{
	char scratch[4096];
	int i;

	for (i = 0; i < 16; i++) {
		ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0)
			return false;
	}
	return true;
}

static void on_conn(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct mhttp_conn *c = ctx;
	bool keep = true;

	(void)loop, (void)fd;
	if (events & EPOLLERR) {
		conn_free(c);
		return;
	}
	if (c->state == CONN_READ)
		keep = conn_read(c);
	if (keep && c->state == CONN_WRITE)
		keep = conn_write(c);
	if (keep && c->state == CONN_DRAIN)
		keep = conn_drain(c);
	if (!keep)
		conn_free(c);
}

/*
 * Deadline passed: abort (RST on close, nothing left to retry in the kernel). Freeing here is safe even
 * when the connection's socket has an event in the same batch: the loop skips removed handlers.
 */
static void on_deadline(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct mhttp_conn *c = ctx;

	(void)loop, (void)timer;
	if (c->state != CONN_DRAIN)
		log_debug("metrics http: connection timed out %s", c->state == CONN_READ ? "reading" : "writing");
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	conn_free(c);
}

/* Over the cap: a fixed 503 if the socket takes it at once, then close — never wait for this client. */
static void reject(int cfd)
{
	static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

	char scratch[512];
	int i;

	(void)!send(cfd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	/* A request already queued would turn the close into a RST that can overtake the 503. */
	for (i = 0; i < 8 && recv(cfd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0; i++)
		;
	close(cfd);
}

static void on_accept(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct mhttp_server *s = ctx;
	int i, cfd;

	(void)events;
	/* A bounded batch: a connect flood cannot keep the loop here; the listener stays readable. */
	for (i = 0; i < 32; i++) {
		struct mhttp_conn *c;

		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			/* Out of fds (EMFILE …): the listener stays readable; retrying at once would spin the loop. */
			log_warn("metrics http: accept: %s; not accepting for %d ms", strerror(errno),
				 MHTTP_ACCEPT_PAUSE_MS);
			loop_pause_fd(loop, fd, MHTTP_ACCEPT_PAUSE_MS);
			return;
		}
		if (s->n_conns >= s->limits.max_conns) {
			reject(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c) + s->limits.max_request);
		if (!c) {
			reject(cfd);
			continue;
		}
		c->srv = s;
		c->fd = cfd;
		c->deadline_ms = loop_now_ms() + s->limits.timeout_ms;
		c->deadline = loop_timer_add(loop, s->limits.timeout_ms, 0, on_deadline, c);
		if (!c->deadline || loop_add_fd(loop, cfd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_conn, c) < 0) {
			loop_timer_cancel(loop, c->deadline);
			free(c);
			reject(cfd);
			continue;
		}
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->n_conns++;
	}
}

struct mhttp_server *mhttp_listen(struct xm_loop *loop, const char *addr, const struct mhttp_limits *limits,
				  mhttp_handler handler, void *ctx)
{
	struct mhttp_server *s = calloc(1, sizeof(*s));
	struct sockaddr_storage ss;
	socklen_t slen;
	int one = 1, err;

	if (!s)
		return NULL;
	s->fd = -1;
	s->loop = loop;
	s->handler = handler;
	s->ctx = ctx;
	s->limits =
	    (struct mhttp_limits){ MHTTP_MAX_REQUEST_DEFAULT, MHTTP_MAX_CONNS_DEFAULT, MHTTP_TIMEOUT_MS_DEFAULT };
	if (limits) {
		if (limits->max_request)
			s->limits.max_request = limits->max_request;
		if (limits->max_conns)
			s->limits.max_conns = limits->max_conns;
		if (limits->timeout_ms)
			s->limits.timeout_ms = limits->timeout_ms;
	}
	err = mhttp_parse_addr(addr, &ss, &slen);
	if (err) {
		log_error("metrics listener \"%s\": not IPv4:PORT or [IPv6]:PORT", addr ? addr : "");
		goto fail;
	}
	s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		goto fail_errno;
	/* A restarted agent rebinds at once, whatever TIME_WAIT its predecessor left. */
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->fd, (struct sockaddr *)&ss, slen) < 0 || listen(s->fd, 64) < 0)
		goto fail_errno;
	slen = sizeof(ss);
	if (getsockname(s->fd, (struct sockaddr *)&ss, &slen) < 0)
		goto fail_errno;
	s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
	/* loop_add_fd returns the error; errno after it is whatever its cleanup left. */
	err = loop_add_fd(loop, s->fd, EPOLLIN, on_accept, s);
	if (err)
		goto fail_log;
	return s;
fail_errno:
	err = -errno;
fail_log:
	log_error("metrics listener %s: %s", addr, strerror(-err));
fail:
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	return NULL;
}

int mhttp_port(const struct mhttp_server *s)
{
	return s->port;
}

unsigned int mhttp_n_conns(const struct mhttp_server *s)
{
	return s->n_conns;
}

void mhttp_close(struct mhttp_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_free(s->conns);
	loop_del_fd(s->loop, s->fd);
	close(s->fd);
	free(s);
}
