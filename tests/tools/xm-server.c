/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm-server: the backend of the e2e tests. Every TCP connection first receives "<id>\n", then gets back
 * whatever it sends until EOF; every UDP datagram is answered with "<id>\n". One epoll loop, non-blocking.
 *
 *   xm-server --id NAME [--port 8080] [--bind ADDR] [--tcp-only | --udp-only] [--max-time SEC]
 *
 * The default bind address "::" with IPV6_V6ONLY off serves IPv4 and IPv6 on one socket. Prints
 * "xm-server NAME ready" on stdout once listening, and "accepted=N datagrams=N" when it exits on SIGTERM,
 * SIGINT or after --max-time seconds (a safety bound: the tests wrap it in timeout(1) as well).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define BUF_SIZE   4096
#define ID_MAX	   64

/* A TCP connection's pending output: the id line, then echoed bytes not yet written. */
struct conn {
	int fd;
	size_t len; /* bytes in buf not yet written */
	size_t off;
	char buf[BUF_SIZE];
};

static char g_id[ID_MAX];
static size_t g_id_len;
static unsigned long g_accepted, g_datagrams;

/* Many held connections need more descriptors than the usual soft limit of 1024. */
static void raise_nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: xm-server --id NAME [--port N] [--bind ADDR] [--tcp-only|--udp-only] "
			"[--max-time SEC]\n");
	exit(2);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills ss from a literal address; an IPv4 literal becomes an AF_INET address, anything else AF_INET6. */
static int make_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

static int open_socket(int type, const char *host, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, zero = 0, fd;

	if (make_addr(host, port, &ss, &len)) {
		fprintf(stderr, "xm-server: bad bind address %s\n", host);
		return -1;
	}
	fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("xm-server: socket");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* One socket for both families, so a dual-stack Service needs a single server per pod. */
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "xm-server: bind %s:%u: %s\n", host, port, strerror(errno));
		close(fd);
		return -1;
	}
	if (type == SOCK_STREAM && listen(fd, 1024) < 0) {
		perror("xm-server: listen");
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Writes what is pending; returns -1 when the connection is dead, 1 while output remains, 0 when done. */
static int conn_flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 1;
			return -1;
		}
		c->off += (size_t)n;
	}
	c->off = c->len = 0;
	return 0;
}

/* Interest follows the state: read only when nothing is pending, so a slow reader cannot grow memory. */
static int conn_rearm(int ep, struct conn *c, bool want_out)
{
	struct epoll_event ev = { .events = want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c };

	return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_event(int ep, struct conn *c, uint32_t events)
{
	int r;

	if (events & EPOLLIN) {
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_close(ep, c);
			return;
		}
		if (n > 0) {
			c->len = (size_t)n;
			c->off = 0;
		}
	} else if (events & (EPOLLERR | EPOLLHUP)) {
		conn_close(ep, c);
		return;
	}
	r = conn_flush(c);
	if (r < 0 || conn_rearm(ep, c, r > 0) < 0)
		conn_close(ep, c);
}

static void accept_all(int ep, int lfd)
{
	for (;;) {
		struct epoll_event ev;
		struct conn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;

		if (fd < 0)
			return; /* EAGAIN, or a connection reset before accept */
		g_accepted++;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		memcpy(c->buf, g_id, g_id_len);
		c->len = g_id_len;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		if (conn_flush(c) < 0 || (c->len && conn_rearm(ep, c, true) < 0))
			conn_close(ep, c);
	}
}

static void udp_all(int ufd)
{
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		char buf[BUF_SIZE];
		ssize_t n = recvfrom(ufd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);

		if (n < 0)
			return;
		g_datagrams++;
		sendto(ufd, g_id, g_id_len, 0, (struct sockaddr *)&peer, plen);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "tcp-only", no_argument, NULL, 't' },
		{ "udp-only", no_argument, NULL, 'u' },
		{ "max-time", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	/* Tags that tell the listening sockets and the signalfd from connection pointers in epoll data. */
	static char tag_tcp, tag_udp, tag_sig;
	const char *id = NULL, *host = "::";
	bool tcp = true, udp = true;
	long port = 8080, max_time = 0;
	struct epoll_event ev;
	int64_t deadline = 0;
	int c, ep, sfd, lfd = -1, ufd = -1;
	sigset_t mask;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			id = optarg;
			break;
		case 'p':
			port = strtol(optarg, NULL, 10);
			break;
		case 'b':
			host = optarg;
			break;
		case 't':
			udp = false;
			break;
		case 'u':
			tcp = false;
			break;
		case 'm':
			max_time = strtol(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (!id || strlen(id) >= ID_MAX - 1 || port <= 0 || port > 65535 || (!tcp && !udp) || max_time < 0)
		usage();
	g_id_len = (size_t)snprintf(g_id, sizeof(g_id), "%s\n", id);

	raise_nofile_limit();
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || ep < 0) {
		perror("xm-server: signalfd/epoll");
		return 1;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_sig;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	if (tcp) {
		lfd = open_socket(SOCK_STREAM, host, (uint16_t)port);
		if (lfd < 0)
			return 1;
		ev.data.ptr = &tag_tcp;
		epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	}
	if (udp) {
		ufd = open_socket(SOCK_DGRAM, host, (uint16_t)port);
		if (ufd < 0)
			return 1;
		ev.data.ptr = &tag_udp;
		epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
	}
	printf("xm-server %s ready\n", id);
	fflush(stdout);
	if (max_time)
		deadline = now_ms() + max_time * 1000;

	for (;;) {
		struct epoll_event events[MAX_EVENTS];
		int timeout = -1, n, i;

		if (deadline) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				break;
			timeout = left > 1000 ? 1000 : (int)left;
		}
		n = epoll_wait(ep, events, MAX_EVENTS, timeout);
		if (n < 0 && errno != EINTR) {
			perror("xm-server: epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			void *p = events[i].data.ptr;

			if (p == &tag_sig)
				goto out;
			if (p == &tag_tcp)
				accept_all(ep, lfd);
			else if (p == &tag_udp)
				udp_all(ufd);
			else
				conn_event(ep, p, events[i].events);
		}
	}
out:
	printf("accepted=%lu datagrams=%lu\n", g_accepted, g_datagrams);
	return 0;
}
