/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm-http-load: the keep-alive HTTP/1.1 client of the L7 e2e tests and bench. N connections at once, each sending
 * requests one after another and reading each response (parsed by Debian's libhttp-parser) before the next.
 *
 *   xm-http-load --addr HOST:PORT|[V6]:PORT [--conns N] [--requests M | --duration SEC] [--interval-ms MS]
 *                [--path /] [--host NAME] [--method GET] [--header 'NAME: VALUE']... [--timeout-ms 10000]
 *                [--hold SEC] [--reconnect-on-close]
 *
 * A request succeeds when a whole response arrives (any status); it fails when the connection breaks or the
 * request times out first. A response with "Connection: close" is followed by a new connection, as HTTP says.
 * --reconnect-on-close: a connection the server closes while idle is replaced instead of ending that
 * connection's run, and a request that got no response byte on a reused connection (the server closed it as the
 * request left) is sent once more on a new one, as HTTP clients do (RFC 9112 §9.3.1); those are counted as
 * "retried", never as "ok" twice. --hold SEC: once every connection has finished its requests, prints
 * "holding N" (N open connections) and keeps them open and idle for SEC seconds (or until SIGTERM).
 * Prints "id NAME N" per x-backend value, "status CODE N" per status, then one summary line
 * "ok=N failed=N connects=N connect_errors=N reconnects=N retried=N max_ms=N"; exits 1 if anything failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_IDS	   64
#define ID_MAX	   64

enum conn_state {
	ST_CLOSED, /* no socket: (re)connect when a request is due */
	ST_CONNECTING,
	ST_IDLE, /* connected, the next request waits for its time */
	ST_SENDING,
	ST_WAITING, /* request sent, response not complete */
	ST_DONE,    /* this connection's requests are over (held open with --hold) */
};

struct conn {
	int fd;
	enum conn_state state;
	uint32_t interest;
	unsigned long sent;	 /* requests answered or failed on behalf of this connection */
	unsigned reqs_on_socket; /* requests started on the current socket */
	bool got_bytes;		 /* some of the current response has arrived */
	bool retry_used;	 /* the current request was already resent once */
	bool server_closes;	 /* the last response said Connection: close */
	int64_t started_ms, deadline_ms;
	size_t req_off;
	http_parser parser;
	bool hdr_is_backend, in_value;
	char name[16];
	size_t name_len;
	char backend[ID_MAX];
	size_t backend_len;
};

static struct sockaddr_storage g_addr;
static socklen_t g_addr_len;
static char g_request[2048];
static size_t g_request_len;
static unsigned long g_requests, g_interval_ms, g_timeout_ms = 10000;
static int64_t g_end_ms; /* --duration: no request starts after this */
static bool g_reconnect;
static int g_ep;
static http_parser_settings g_settings;
static int64_t g_next_deadline;
static long g_done; /* connections in ST_DONE */

static unsigned long g_ok, g_failed, g_connects, g_connect_errors, g_reconnects, g_retried;
static int64_t g_max_ms;
static char g_ids[MAX_IDS][ID_MAX];
static unsigned long g_id_counts[MAX_IDS], g_id_other;
static unsigned g_nids;
static unsigned long g_status[600];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_deadline(struct conn *c, int64_t when)
{
	c->deadline_ms = when;
	if (when && (!g_next_deadline || when < g_next_deadline))
		g_next_deadline = when;
}

static void count_backend(const char *id)
{
	unsigned i;

	for (i = 0; i < g_nids; i++)
		if (!strcmp(g_ids[i], id)) {
			g_id_counts[i]++;
			return;
		}
	if (g_nids == MAX_IDS) {
		g_id_other++;
		return;
	}
	snprintf(g_ids[g_nids], ID_MAX, "%s", id);
	g_id_counts[g_nids++] = 1;
}

static bool more_to_send(const struct conn *c)
{
	if (g_end_ms)
		return now_ms() < g_end_ms;
	return c->sent < g_requests;
}

static void watch(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (events == c->interest)
		return;
	if (epoll_ctl(g_ep, c->interest ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == 0)
		c->interest = events;
}

static void sock_close(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->interest = 0;
	c->state = ST_CLOSED;
}

/* This connection's requests are over; it stays open (when it is) for --hold. */
static void conn_finish(struct conn *c)
{
	if (c->state != ST_DONE)
		g_done++;
	c->state = ST_DONE;
	set_deadline(c, 0);
	if (c->fd >= 0)
		watch(c, EPOLLIN); /* notice the server closing it */
}

static void sock_open(struct conn *c)
{
	int one = 1;

	c->fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		perror("xm-http-load: socket");
		exit(1);
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	g_connects++;
	c->reqs_on_socket = 0;
	c->server_closes = false;
	c->state = ST_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&g_addr, g_addr_len) < 0 && errno != EINPROGRESS) {
		g_connect_errors++;
		sock_close(c);
		return;
	}
	set_deadline(c, now_ms() + (int64_t)g_timeout_ms);
	watch(c, EPOLLOUT);
}

/* The current request is over: answered (ok) or not. */
static void request_done(struct conn *c, bool ok)
{
	int64_t took = now_ms() - c->started_ms;

	c->sent++;
	c->retry_used = false;
	if (ok) {
		g_ok++;
		if (took > g_max_ms)
			g_max_ms = took;
	} else {
		g_failed++;
	}
}

/* Starts the next request, waits for its time, or ends this connection's run. */
static void conn_next(struct conn *c)
{
	int64_t now = now_ms();

	if (!more_to_send(c)) {
		conn_finish(c);
		return;
	}
	if (c->fd < 0 || c->server_closes) {
		if (c->fd >= 0)
			sock_close(c);
		sock_open(c);
		return;
	}
	c->state = ST_SENDING;
	c->req_off = 0;
	c->got_bytes = false;
	c->backend_len = 0;
	c->reqs_on_socket++;
	http_parser_init(&c->parser, HTTP_RESPONSE);
	c->parser.data = c;
	c->started_ms = now;
	set_deadline(c, now + (int64_t)g_timeout_ms);
	watch(c, EPOLLOUT | EPOLLIN);
}

/* The connection broke or timed out. */
static void conn_broken(struct conn *c, bool timed_out)
{
	enum conn_state was = c->state;

	sock_close(c);
	if (was == ST_DONE) { /* a held connection the server closed: nothing more to do */
		c->state = ST_DONE;
		return;
	}
	if (was == ST_CONNECTING) {
		g_connect_errors++;
		request_done(c, false); /* the request this connection was for */
		c->state = ST_IDLE;
		set_deadline(c, now_ms() + (int64_t)(g_interval_ms ? g_interval_ms : 10));
		return;
	}
	if (was == ST_SENDING || was == ST_WAITING) {
		/* The server closed a reused connection as this request left it: resend once. */
		if (g_reconnect && !timed_out && !c->got_bytes && c->reqs_on_socket > 1 && !c->retry_used) {
			g_retried++;
			c->retry_used = true;
			sock_open(c);
			return;
		}
		request_done(c, false);
	} else if (!g_reconnect) {
		/* closed under an idle connection, and no leave to reconnect: this connection's run ends */
		if (more_to_send(c)) {
			unsigned long left = g_end_ms ? 1 : g_requests - c->sent;

			g_failed += left;
			c->sent += left;
		}
		conn_finish(c);
		return;
	}
	if (more_to_send(c))
		g_reconnects++;
	c->state = ST_IDLE;
	conn_next(c);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;

	if (c->in_value)
		c->name_len = 0;
	c->in_value = false;
	if (c->name_len + n <= sizeof(c->name)) {
		memcpy(c->name + c->name_len, at, n);
		c->name_len += n;
	} else {
		c->name_len = sizeof(c->name) + 1; /* longer than any name wanted */
	}
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;

	if (!c->in_value)
		c->hdr_is_backend = c->name_len == 9 && !strncasecmp(c->name, "x-backend", 9);
	c->in_value = true;
	if (c->hdr_is_backend && c->backend_len + n < ID_MAX) {
		memcpy(c->backend + c->backend_len, at, n);
		c->backend_len += n;
	}
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct conn *c = p->data;

	c->hdr_is_backend = c->in_value = false;
	c->backend_len = c->name_len = 0;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;

	/* 1xx are interim: the final response follows on the same parse */
	if (p->status_code >= 100 && p->status_code < 200)
		return 0;
	c->backend[c->backend_len] = '\0';
	count_backend(c->backend_len ? c->backend : "-");
	if (p->status_code < 600)
		g_status[p->status_code]++;
	c->server_closes = !http_should_keep_alive(p);
	request_done(c, true);
	c->state = ST_IDLE;
	http_parser_pause(p, 1);
	return 0;
}

static void conn_read(struct conn *c)
{
	char buf[65536];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		size_t done;

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_broken(c, false);
			return;
		}
		if (c->state != ST_WAITING && c->state != ST_SENDING) {
			/* bytes or EOF while no request is out: the server closed or misbehaved */
			conn_broken(c, false);
			return;
		}
		if (n == 0) {
			/* a response delimited by the close completes here */
			http_parser_execute(&c->parser, &g_settings, NULL, 0);
			if (c->state == ST_IDLE) {
				sock_close(c);
				c->state = ST_IDLE;
				conn_next(c);
			} else {
				conn_broken(c, false);
			}
			return;
		}
		c->got_bytes = true;
		done = http_parser_execute(&c->parser, &g_settings, buf, (size_t)n);
		if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED) {
			/* a response is complete; bytes after it would be a response to nothing */
			if (done != (size_t)n || c->server_closes) {
				sock_close(c);
				c->server_closes = false;
				c->state = ST_IDLE;
			}
			if (g_interval_ms && more_to_send(c)) {
				set_deadline(c, now_ms() + (int64_t)g_interval_ms);
				if (c->fd >= 0)
					watch(c, EPOLLIN);
			} else {
				conn_next(c);
			}
			return;
		}
		if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
			fprintf(stderr, "xm-http-load: bad response: %s\n",
				http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
			conn_broken(c, false);
			return;
		}
	}
}

static void conn_write(struct conn *c)
{
	while (c->req_off < g_request_len) {
		ssize_t n = send(c->fd, g_request + c->req_off, g_request_len - c->req_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_broken(c, false);
			return;
		}
		c->req_off += (size_t)n;
	}
	c->state = ST_WAITING;
	watch(c, EPOLLIN);
}

static void conn_event(struct conn *c, uint32_t events)
{
	int fd = c->fd;

	if (c->state == ST_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & (EPOLLERR | EPOLLHUP))) {
			conn_broken(c, false);
			return;
		}
		c->state = ST_IDLE;
		conn_next(c);
		if (c->state == ST_SENDING)
			conn_write(c);
		return;
	}
	if (c->state == ST_SENDING && (events & EPOLLOUT))
		conn_write(c);
	/* unless writing broke the socket, and a new one is connecting in its place */
	if (c->fd == fd && c->state != ST_CONNECTING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_read(c);
}

static void conn_timer(struct conn *c)
{
	set_deadline(c, 0);
	if (c->state == ST_SENDING || c->state == ST_WAITING || c->state == ST_CONNECTING) {
		conn_broken(c, true);
	} else if (c->state == ST_IDLE || c->state == ST_CLOSED) {
		conn_next(c);
		if (c->state == ST_SENDING)
			conn_write(c);
	}
}

static int parse_addr(const char *s)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	struct sockaddr_in *sin = (struct sockaddr_in *)&g_addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&g_addr;
	long port;
	size_t hl;

	if (!colon)
		return -1;
	port = strtol(colon + 1, NULL, 10);
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host) || port <= 0 || port > 65535)
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		memmove(host, host + 1, hl - 1);
	}
	memset(&g_addr, 0, sizeof(g_addr));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		g_addr_len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		g_addr_len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: xm-http-load --addr HOST:PORT [--conns N] [--requests M | --duration SEC] "
			"[--interval-ms MS] [--path P] [--host NAME] [--method M] [--header 'N: V']... "
			"[--timeout-ms MS] [--hold SEC] "
			"[--reconnect-on-close]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "conns", required_argument, NULL, 'c' },
		{ "requests", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "path", required_argument, NULL, 'p' },
		{ "method", required_argument, NULL, 'M' },
		{ "header", required_argument, NULL, 'e' },
		{ "host", required_argument, NULL, 'H' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "hold", required_argument, NULL, 'h' },
		{ "reconnect-on-close", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	static char tag_sig;
	const char *addr = NULL, *path = "/", *host = NULL, *method = "GET";
	char headers[1024] = "";
	size_t headers_len = 0;
	long nconns = 1, duration = 0, hold = 0, requests = 1;
	bool holding = false;
	int64_t hold_end = 0;
	struct epoll_event ev;
	struct conn *conns;
	struct rlimit rl;
	sigset_t mask;
	int opt, sfd, i;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'c':
			nconns = strtol(optarg, NULL, 10);
			break;
		case 'n':
			requests = strtol(optarg, NULL, 10);
			break;
		case 'd':
			duration = strtol(optarg, NULL, 10);
			break;
		case 'i':
			g_interval_ms = strtoul(optarg, NULL, 10);
			break;
		case 'M':
			method = optarg;
			break;
		case 'e':
			if (strpbrk(optarg, "\r\n") || !strchr(optarg, ':') ||
			    headers_len + strlen(optarg) + 2 >= sizeof(headers))
				usage();
			headers_len +=
			    (size_t)snprintf(headers + headers_len, sizeof(headers) - headers_len, "%s\r\n", optarg);
			break;
		case 'p':
			path = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 't':
			g_timeout_ms = strtoul(optarg, NULL, 10);
			break;
		case 'h':
			hold = strtol(optarg, NULL, 10);
			break;
		case 'r':
			g_reconnect = true;
			break;
		default:
			usage();
		}
	}
	if (!addr || parse_addr(addr) || nconns <= 0 || nconns > 200000 || requests < 0 || duration < 0 || hold < 0 ||
	    !g_timeout_ms || path[0] != '/' || strpbrk(path, " \r\n") || (host && strpbrk(host, "\r\n")))
		usage();
	g_requests = (unsigned long)requests;
	/* a method that may carry a body says it has none; HEAD is not supported (its response has no body) */
	if (!strcmp(method, "HEAD") || strpbrk(method, " \r\n/:") || !*method)
		usage();
	g_request_len = (size_t)snprintf(
	    g_request, sizeof(g_request), "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: xm-http-load\r\n%s%s\r\n", method,
	    path, host ? host : addr, headers,
	    !strcmp(method, "POST") || !strcmp(method, "PUT") ? "Content-Length: 0\r\n" : "");
	if (g_request_len >= sizeof(g_request))
		usage();

	g_settings.on_message_begin = on_message_begin;
	g_settings.on_header_field = on_header_field;
	g_settings.on_header_value = on_header_value;
	g_settings.on_message_complete = on_message_complete;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	conns = calloc((size_t)nconns, sizeof(*conns));
	if (sfd < 0 || g_ep < 0 || !conns) {
		perror("xm-http-load: setup");
		return 1;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_sig;
	epoll_ctl(g_ep, EPOLL_CTL_ADD, sfd, &ev);
	if (duration)
		g_end_ms = now_ms() + duration * 1000;
	for (i = 0; i < nconns; i++) {
		conns[i].fd = -1;
		sock_open(&conns[i]);
	}

	for (;;) {
		struct epoll_event events[MAX_EVENTS];
		int64_t now = now_ms();
		int timeout = 1000, n, k;
		long open = 0;

		if (g_next_deadline) {
			int64_t left = g_next_deadline - now;

			timeout = left < 0 ? 0 : left > 1000 ? 1000 : (int)left;
		}
		n = epoll_wait(g_ep, events, MAX_EVENTS, timeout);
		if (n < 0 && errno != EINTR) {
			perror("xm-http-load: epoll_wait");
			return 1;
		}
		for (k = 0; k < n; k++) {
			if (events[k].data.ptr == &tag_sig)
				goto out;
			conn_event(events[k].data.ptr, events[k].events);
		}
		now = now_ms();
		if (g_next_deadline && now >= g_next_deadline) {
			g_next_deadline = 0;
			for (i = 0; i < nconns; i++) {
				if (conns[i].deadline_ms && conns[i].deadline_ms <= now)
					conn_timer(&conns[i]);
				else if (conns[i].deadline_ms)
					set_deadline(&conns[i], conns[i].deadline_ms);
			}
		}
		if (g_done < nconns)
			continue;
		if (!hold)
			break;
		if (!holding) {
			for (i = 0; i < nconns; i++)
				open += conns[i].fd >= 0;
			holding = true;
			hold_end = now + hold * 1000;
			printf("holding %ld\n", open);
			fflush(stdout);
		}
		if (now >= hold_end)
			break;
	}
out:
	for (i = 0; i < (int)g_nids; i++)
		printf("id %s %lu\n", g_ids[i], g_id_counts[i]);
	if (g_id_other)
		printf("id (more) %lu\n", g_id_other);
	for (i = 0; i < 600; i++)
		if (g_status[i])
			printf("status %d %lu\n", i, g_status[i]);
	printf("ok=%lu failed=%lu connects=%lu connect_errors=%lu reconnects=%lu retried=%lu max_ms=%lld\n", g_ok,
	       g_failed, g_connects, g_connect_errors, g_reconnects, g_retried, (long long)g_max_ms);
	return g_failed || g_connect_errors ? 1 : 0;
}
