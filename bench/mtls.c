// SPDX-License-Identifier: Apache-2.0
/*
 * The load of `make bench` section mtls (scripts/bench.sh, bench/README.md): cross-node pod-to-pod TCP in
 * plaintext, through the xmesh HBONE tunnel and through HAProxy as a TLS tunnel. The same client and server
 * run on every path; only the address dialled (and the client's cgroup) differ.
 *
 *   mtls serve --port P
 *       Server (one thread per connection). The first byte of a connection picks its mode: 'S' sink (reads to
 *       EOF, then answers the byte count as 8 bytes, little endian, and closes), 'R' echo (writes back every
 *       byte it reads, until EOF). Prints "ready".
 *   mtls stream --addr IP:PORT [--secs 3] [--chunk 65536]
 *       64 KiB writes for --secs, then a half-close, then waits for the server's count: throughput = bytes the
 *       server read / time from connect to its answer. Prints one JSON object.
 *   mtls rr --addr IP:PORT [--count 20000] [--size 64] [--warmup 500]
 *       --count request/response exchanges of --size bytes on one connection: p50/p99/mean in µs.
 *   mtls conns --addr IP:PORT [--count 2000] [--parallel 4] [--size 64]
 *       --count new connections (--parallel at a time), each: connect, one --size exchange, close. p50/p99 of
 *       connect + exchange, connections per second.
 *   mtls handshake --addr IP:PORT --cert PEM --key PEM --ca PEM [--count 500] [--resume]
 *       --count TLS 1.3 handshakes (ALPN h2, the client certificate, the server's chain verified against --ca),
 *       one TCP connection each, closed after the handshake and the server's session tickets. --resume: each
 *       connection offers the ticket of the previous one (the first is full). Prints the handshakes, how many
 *       resumed, and this process's CPU time (user + system) per handshake.
 *
 * Every client mode fails (exit 1) on a connection error, a short answer or a wrong byte, and gives up after
 * --timeout-ms (default 10000) of silence: the load is bounded in count and time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BENCH_NAME "mtls"
#include "bench_util.h"

static struct sockaddr_in g_addr;
static int g_timeout_ms = 10000;
static size_t g_size = 64;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void parse_addr(const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		die("bad address %s (IPv4:PORT)", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(&g_addr, 0, sizeof(g_addr));
	g_addr.sin_family = AF_INET;
	g_addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &g_addr.sin_addr) != 1 || !g_addr.sin_port)
		die("bad address %s (IPv4:PORT)", s);
}

/* Waits until fd is readable or writable (events), --timeout-ms at most. */
static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&p, 1, g_timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 ? 0 : -1;
}

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		if (wait_fd(fd, POLLIN) < 0)
			return -1;
		r = read(fd, (char *)buf + got, n - got);
		if (r == 0) {
			errno = EPIPE;
			return -1;
		}
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
	size_t put = 0;

	while (put < n) {
		ssize_t r = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				if (wait_fd(fd, POLLOUT) < 0)
					return -1;
				continue;
			}
			return -1;
		}
		put += (size_t)r;
	}
	return 0;
}

static void fcntl_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct timeval tv = { .tv_sec = g_timeout_ms / 1000, .tv_usec = (g_timeout_ms % 1000) * 1000 };

	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&g_addr, sizeof(g_addr)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* ---- server ---- */

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg, one = 1;
	static __thread char buf[1 << 16];
	char mode;
	uint64_t total = 0;
	ssize_t r;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (read(fd, &mode, 1) != 1)
		goto out;
	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		total += (uint64_t)r;
		if (mode == 'R' && write_full(fd, buf, (size_t)r) < 0)
			break;
	}
	if (mode == 'S' && r == 0) {
		unsigned char le[8];

		for (int i = 0; i < 8; i++)
			le[i] = (unsigned char)(total >> (8 * i));
		write_full(fd, le, sizeof(le));
	}
out:
	close(fd);
	return NULL;
}

static int cmd_serve(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	pthread_attr_t attr;

	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0)
		die("listen on :%d: %s", port, strerror(errno));
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		pthread_t t;
		int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			die("accept: %s", strerror(errno));
		}
		if (pthread_create(&t, &attr, serve_conn, (void *)(intptr_t)fd))
			close(fd);
	}
}

/* ---- clients ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);

	return sorted[i < n ? i : n - 1];
}

static void print_lat(const char *mode, double *us, size_t n, double secs)
{
	double sum = 0;

	qsort(us, n, sizeof(*us), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += us[i];
	printf("{\"mode\":\"%s\",\"count\":%zu,\"size\":%zu,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
	       "\"mean_us\":%.1f,\"max_us\":%.1f,\"secs\":%.3f,\"per_sec\":%.0f}\n",
	       mode, n, g_size, pct(us, n, 50), pct(us, n, 90), pct(us, n, 99), sum / (double)n, us[n - 1], secs,
	       (double)n / secs);
}

static int cmd_stream(double secs, size_t chunk)
{
	char *buf = calloc(1, chunk);
	unsigned char le[8];
	uint64_t sent = 0, got = 0;
	double t0, t_end, t1;
	int fd;

	if (!buf)
		die("out of memory");
	memset(buf, 'x', chunk);
	t0 = now_s();
	fd = dial();
	if (fd < 0)
		die("connect: %s", strerror(errno));
	if (write_full(fd, "S", 1) < 0)
		die("write: %s", strerror(errno));
	t_end = t0 + secs;
	while (now_s() < t_end) {
		if (write_full(fd, buf, chunk) < 0)
			die("write after %llu bytes: %s", (unsigned long long)sent, strerror(errno));
		sent += chunk;
	}
	shutdown(fd, SHUT_WR);
	if (read_full(fd, le, sizeof(le)) < 0)
		die("no byte count from the server after %llu bytes: %s", (unsigned long long)sent, strerror(errno));
	t1 = now_s();
	for (int i = 0; i < 8; i++)
		got |= (uint64_t)le[i] << (8 * i);
	close(fd);
	if (got != sent)
		die("the server read %llu bytes of %llu", (unsigned long long)got, (unsigned long long)sent);
	printf("{\"mode\":\"stream\",\"chunk\":%zu,\"bytes\":%llu,\"secs\":%.3f,\"mbps\":%.1f}\n", chunk,
	       (unsigned long long)got, t1 - t0, (double)got * 8 / (t1 - t0) / 1e6);
	free(buf);
	return 0;
}

static int exchange(int fd, char *out, char *in)
{
	if (write_full(fd, out, g_size) < 0 || read_full(fd, in, g_size) < 0)
		return -1;
	if (memcmp(out, in, g_size)) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

static int cmd_rr(size_t count, size_t warmup)
{
	char *out = malloc(g_size), *in = malloc(g_size);
	double *us = calloc(count, sizeof(double)), t0;
	int fd;

	if (!out || !in || !us)
		die("out of memory");
	for (size_t i = 0; i < g_size; i++)
		out[i] = (char)('a' + i % 26);
	fd = dial();
	if (fd < 0)
		die("connect: %s", strerror(errno));
	if (write_full(fd, "R", 1) < 0)
		die("write: %s", strerror(errno));
	for (size_t i = 0; i < warmup; i++)
		if (exchange(fd, out, in) < 0)
			die("warm-up exchange %zu: %s", i, strerror(errno));
	t0 = now_s();
	for (size_t i = 0; i < count; i++) {
		double s = now_s();

		out[0] = (char)('A' + i % 26);
		if (exchange(fd, out, in) < 0)
			die("exchange %zu: %s", i, strerror(errno));
		us[i] = (now_s() - s) * 1e6;
	}
	print_lat("rr", us, count, now_s() - t0);
	close(fd);
	return 0;
}

struct conns_arg {
	size_t first, n;
	double *us;
	int err;
	size_t failed_at;
};

static void *conns_worker(void *p)
{
	struct conns_arg *c = p;
	char *out = malloc(g_size + 1), *in = malloc(g_size);

	if (!out || !in)
		die("out of memory");
	out[0] = 'R';
	for (size_t i = 0; i < g_size; i++)
		out[1 + i] = (char)('a' + i % 26);
	for (size_t i = 0; i < c->n; i++) {
		double s = now_s();
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		int fd = dial();

		if (fd < 0 || write_full(fd, out, g_size + 1) < 0 || read_full(fd, in, g_size) < 0 ||
		    memcmp(out + 1, in, g_size)) {
			c->err = errno ? errno : EBADMSG;
			c->failed_at = c->first + i;
			if (fd >= 0)
				close(fd);
			break;
		}
		c->us[c->first + i] = (now_s() - s) * 1e6;
		/* the client closes first, with a FIN: the server's read() sees EOF, the tunnel a half-close */
		shutdown(fd, SHUT_WR);
		if (wait_fd(fd, POLLIN) == 0)
			(void)read(fd, in, 1);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* no TIME_WAIT: ports never run out */
		close(fd);
	}
	free(out);
	free(in);
	return NULL;
}

static int cmd_conns(size_t count, int parallel)
{
	struct conns_arg args[64];
	pthread_t th[64];
	double *us = calloc(count, sizeof(double)), t0;
	size_t per, done = 0;

	if (!us || parallel < 1 || parallel > 64)
		die("--parallel 1..64");
	per = (count + (size_t)parallel - 1) / (size_t)parallel;
	t0 = now_s();
	for (int i = 0; i < parallel; i++) {
		args[i] = (struct conns_arg){ .first = done, .n = count - done < per ? count - done : per, .us = us };
		done += args[i].n;
		if (pthread_create(&th[i], NULL, conns_worker, &args[i]))
			die("pthread_create");
	}
	for (int i = 0; i < parallel; i++) {
		pthread_join(th[i], NULL);
		if (args[i].err)
			die("connection %zu: %s", args[i].failed_at, strerror(args[i].err));
	}
	print_lat("conns", us, count, now_s() - t0);
	return 0;
}

/* ---- handshakes ---- */

static SSL_SESSION *g_ticket; /* the newest session ticket the server sent */

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	if (g_ticket)
		SSL_SESSION_free(g_ticket);
	g_ticket = sess;
	return 1; /* we keep the reference */
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * One handshake on a new connection, offering the last ticket when resume; then reads until the server's new
 * ticket or its first application bytes (the agent's HTTP/2 SETTINGS) arrived, 200 ms at most: either comes
 * once the server's side of the handshake is done. A server that issues no ticket on a resumed connection
 * (the agent) leaves the previous ticket in use, as the agent's own client keeps it.
 */
static int one_handshake(SSL_CTX *ctx, bool resume, bool *resumed)
{
	static const unsigned char alpn[] = { 2, 'h', '2' };
	SSL_SESSION *prev = g_ticket; /* ours now; SSL_set_session takes a reference of its own */
	SSL *ssl = NULL;
	int fd = dial(), r = -1;
	char buf[4096];

	g_ticket = NULL;
	if (fd < 0)
		goto out;
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd) || SSL_set_alpn_protos(ssl, alpn, sizeof(alpn)) ||
	    (resume && prev && !SSL_set_session(ssl, prev)))
		goto out;
	if (SSL_connect(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		goto out;
	}
	*resumed = SSL_session_reused(ssl);
	fcntl_nonblock(fd);
	for (double end = now_s() + 0.2; !g_ticket && now_s() < end;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n;

		if (poll(&p, 1, 20) <= 0)
			continue;
		n = SSL_read(ssl, buf, sizeof(buf));
		if (n > 0 || SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ)
			break;
	}
	/* a close_notify: SSL_free of a connection not shut down marks its session (the ticket) not resumable */
	SSL_shutdown(ssl);
	r = 0;
out:
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	if (!g_ticket)
		g_ticket = prev;
	else if (prev)
		SSL_SESSION_free(prev);
	return r;
}

static int cmd_handshake(size_t count, const char *cert, const char *key, const char *ca, bool resume)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	size_t resumed_n = 0;
	double c0, t0;

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ERR_print_errors_fp(stderr);
		die("TLS client context (--cert, --key, --ca)");
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session);
	/* the first connection (full) only fetches a ticket for --resume; not timed */
	{
		bool r;

		if (one_handshake(ctx, false, &r) < 0)
			die("handshake with %s failed", inet_ntoa(g_addr.sin_addr));
	}
	c0 = cpu_s();
	t0 = now_s();
	for (size_t i = 0; i < count; i++) {
		bool r = false;

		if (one_handshake(ctx, resume, &r) < 0)
			die("handshake %zu failed", i);
		resumed_n += r;
	}
	printf("{\"mode\":\"handshake\",\"resume\":%s,\"count\":%zu,\"resumed\":%zu,\"secs\":%.3f,"
	       "\"client_cpu_us\":%.1f}\n",
	       resume ? "true" : "false", count, resumed_n, now_s() - t0, (cpu_s() - c0) * 1e6 / (double)count);
	SSL_CTX_free(ctx);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },	{ "addr", required_argument, NULL, 'a' },
		{ "secs", required_argument, NULL, 's' },	{ "chunk", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },	{ "size", required_argument, NULL, 'z' },
		{ "warmup", required_argument, NULL, 'w' },	{ "parallel", required_argument, NULL, 'P' },
		{ "timeout-ms", required_argument, NULL, 't' }, { "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },	{ "ca", required_argument, NULL, 'A' },
		{ "resume", no_argument, NULL, 'r' },		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argc > 1 ? argv[1] : "";
	double secs = 3;
	size_t chunk = 65536, count = 0, warmup = 500;
	int port = 0, parallel = 4, o;
	bool have_addr = false, resume = false;
	const char *cert = NULL, *key = NULL, *ca = NULL;

	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'a':
			parse_addr(optarg), have_addr = true;
			break;
		case 's':
			secs = atof(optarg);
			break;
		case 'c':
			chunk = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			count = strtoul(optarg, NULL, 0);
			break;
		case 'z':
			g_size = strtoul(optarg, NULL, 0);
			break;
		case 'w':
			warmup = strtoul(optarg, NULL, 0);
			break;
		case 'P':
			parallel = atoi(optarg);
			break;
		case 't':
			g_timeout_ms = atoi(optarg);
			break;
		case 'C':
			cert = optarg;
			break;
		case 'K':
			key = optarg;
			break;
		case 'A':
			ca = optarg;
			break;
		case 'r':
			resume = true;
			break;
		default:
			die("usage: see bench/mtls.c");
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (g_size < 1 || g_size > (1 << 20) || chunk < 1 || chunk > (64 << 20) || secs <= 0 || secs > 600 ||
	    g_timeout_ms < 1)
		die("bad --size, --chunk, --secs or --timeout-ms");
	if (!strcmp(cmd, "serve")) {
		if (port < 1 || port > 65535)
			die("serve needs --port");
		return cmd_serve(port);
	}
	if (!have_addr)
		die("%s needs --addr IP:PORT", cmd);
	if (!strcmp(cmd, "stream"))
		return cmd_stream(secs, chunk);
	if (!strcmp(cmd, "rr"))
		return cmd_rr(count ? count : 20000, warmup);
	if (!strcmp(cmd, "conns"))
		return cmd_conns(count ? count : 2000, parallel);
	if (!strcmp(cmd, "handshake")) {
		if (!cert || !key || !ca)
			die("handshake needs --cert, --key and --ca");
		return cmd_handshake(count ? count : 500, cert, key, ca, resume);
	}
	die("unknown command '%s' (serve, stream, rr, conns, handshake)", cmd);
}
