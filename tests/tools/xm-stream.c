/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm-stream: integrity streams for the sockmap e2e tests. Every byte is a function of (seed, offset), so
 * the receiver checks each byte in place (loss, reorder and corruption all show), plus an FNV-1a hash of
 * everything sent and received in each direction.
 *
 *   xm-stream serve --port P [--addr A]
 *       Echo server: one thread per connection, writes back every byte it reads, until EOF. Prints "ready".
 *   xm-stream echo --addr ADDR:PORT --bytes N [--chunk C] [--seed S] [--rate-mbps R] [--timeout-ms T]
 *       Sends N pattern bytes in C-byte writes (optionally paced to R Mbit/s) and reads the echo back,
 *       checking every byte. Prints "bytes=N sent_hash=H recv_hash=H first_bad=-1 secs=F mbps=F" and exits 0
 *       when the echo is complete and identical.
 *
 * Exit status: 0 ok, 1 a byte differed / connection error / timeout, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FNV_OFF	  0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint8_t pattern(uint32_t seed, uint64_t off)
{
	uint64_t x = (off >> 3) * 0x9e3779b97f4a7c15ULL + seed;

	return (uint8_t)((x >> 29) ^ (x >> 47) ^ off);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	size_t hl;

	if (!colon)
		return -1;
	hl = (size_t)(colon - s);
	if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)atoi(colon + 1));
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)atoi(colon + 1));
		*len = sizeof(*a6);
		return 0;
	}
	return -1;
}

static void *echo_conn(void *p)
{
	int fd = (int)(intptr_t)p;
	static __thread char buf[1 << 18];
	ssize_t r, w, off;

	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		for (off = 0; off < r; off += w) {
			w = write(fd, buf + off, (size_t)(r - off));
			if (w <= 0)
				goto out;
		}
	}
out:
	close(fd);
	return NULL;
}

static int cmd_serve(const char *addr, int port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
	int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;

	if (lfd < 0 || (addr && inet_pton(AF_INET6, addr, &a.sin6_addr) != 1)) {
		fprintf(stderr, "xm-stream serve: socket or --addr (IPv6 syntax, ::ffff:a.b.c.d for IPv4)\n");
		return 2;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1024) < 0) {
		fprintf(stderr, "xm-stream serve: bind/listen port %d: %s\n", port, strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		pthread_t th;
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (pthread_create(&th, NULL, echo_conn, (void *)(intptr_t)c) == 0)
			pthread_detach(th);
		else
			close(c);
	}
}

static int cmd_echo(const char *addr, uint64_t total, size_t chunk, uint32_t seed, double rate_mbps, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t len;
	uint8_t *wbuf = malloc(chunk), *rbuf = malloc(1 << 18);
	uint64_t sent = 0, rcvd = 0, h_tx = FNV_OFF, h_rx = FNV_OFF;
	int64_t first_bad = -1;
	double t0, elapsed, last_progress;
	int fd;

	if (!wbuf || !rbuf || parse_addr(addr, &ss, &len) < 0) {
		fprintf(stderr, "xm-stream echo: bad --addr %s\n", addr);
		free(wbuf);
		free(rbuf);
		return 2;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)) {
		fprintf(stderr, "xm-stream echo: connect %s: %s\n", addr, strerror(errno));
		free(wbuf);
		free(rbuf);
		return 1;
	}
	t0 = last_progress = now_s();
	while (rcvd < total) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		bool may_send = sent < total;
		double now = now_s();

		if (may_send && rate_mbps > 0 && (double)sent * 8 / 1e6 > rate_mbps * (now - t0))
			may_send = false;
		if (may_send)
			p.events |= POLLOUT;
		if (poll(&p, 1, rate_mbps > 0 ? 1 : 100) < 0 && errno != EINTR)
			break;
		if (now_s() - last_progress > timeout_ms / 1000.0) {
			fprintf(stderr, "xm-stream echo: no progress for %d ms (sent %llu, received %llu of %llu)\n",
				timeout_ms, (unsigned long long)sent, (unsigned long long)rcvd,
				(unsigned long long)total);
			break;
		}
		if (p.revents & POLLOUT) {
			size_t n = total - sent < chunk ? (size_t)(total - sent) : chunk, i;
			ssize_t w;

			for (i = 0; i < n; i++)
				wbuf[i] = pattern(seed, sent + i);
			w = write(fd, wbuf, n);
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				fprintf(stderr, "xm-stream echo: write: %s\n", strerror(errno));
				break;
			}
			for (i = 0; w > 0 && i < (size_t)w; i++)
				h_tx = (h_tx ^ wbuf[i]) * FNV_PRIME;
			if (w > 0) {
				sent += (uint64_t)w;
				last_progress = now_s();
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(fd, rbuf, 1 << 18), i;

			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				fprintf(stderr, "xm-stream echo: read: %s\n", r ? strerror(errno) : "EOF");
				break;
			}
			for (i = 0; i < r; i++) {
				if (first_bad < 0 && rbuf[i] != pattern(seed, rcvd + (uint64_t)i))
					first_bad = (int64_t)(rcvd + (uint64_t)i);
				h_rx = (h_rx ^ rbuf[i]) * FNV_PRIME;
			}
			if (r > 0) {
				rcvd += (uint64_t)r;
				last_progress = now_s();
			}
		}
	}
	elapsed = now_s() - t0;
	printf("bytes=%llu sent=%llu sent_hash=%016llx recv_hash=%016llx first_bad=%lld secs=%.3f mbps=%.1f\n",
	       (unsigned long long)rcvd, (unsigned long long)sent, (unsigned long long)h_tx, (unsigned long long)h_rx,
	       (long long)first_bad, elapsed, elapsed > 0 ? (double)rcvd * 8 / 1e6 / elapsed : 0);
	close(fd);
	free(wbuf);
	free(rbuf);
	return rcvd == total && first_bad < 0 && h_tx == h_rx ? 0 : 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: xm-stream serve --port P [--addr A]\n"
			"       xm-stream echo --addr ADDR:PORT --bytes N [--chunk C] [--seed S] [--rate-mbps R] "
			"[--timeout-ms T]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },	{ "addr", required_argument, NULL, 'a' },
		{ "bytes", required_argument, NULL, 'b' },	{ "chunk", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 's' },	{ "rate-mbps", required_argument, NULL, 'r' },
		{ "timeout-ms", required_argument, NULL, 't' }, { 0 },
	};
	const char *addr = NULL;
	uint64_t bytes = 0;
	size_t chunk = 65536;
	uint32_t seed = 1;
	double rate = 0;
	int port = 0, timeout_ms = 5000, c;

	if (argc < 2) {
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'a':
			addr = optarg;
			break;
		case 'b':
			bytes = strtoull(optarg, NULL, 0);
			break;
		case 'c':
			chunk = (size_t)strtoul(optarg, NULL, 0);
			break;
		case 's':
			seed = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!strcmp(argv[1], "serve") && port > 0)
		return cmd_serve(addr, port);
	if (!strcmp(argv[1], "echo") && addr && bytes && chunk)
		return cmd_echo(addr, bytes, chunk, seed, rate, timeout_ms);
	usage();
	return 2;
}
