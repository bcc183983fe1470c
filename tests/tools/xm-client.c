/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm-client: the client of the e2e tests, talking to xm-server through a service VIP. Every blocking call has
 * a timeout (--timeout-ms, default 2000), so a broken datapath shows up as counted errors, never as a hang.
 *
 *   xm-client spread --addr ADDR:PORT [-n N] [--duration-ms D] [--interval-ms I] [--bind SRC] [--trace]
 *       N sequential connects (or as many as fit in D ms, at most N); reads the backend id of each, checks
 *       that getpeername() is the dialed address. Prints "id NAME COUNT" lines and a summary line
 *       "total=N ok=N errors=K getpeername_mismatch=K max_connect_ms=F". --trace adds one line per connect:
 *       "conn T_MS NAME" or "conn T_MS !ERRNAME" (T_MS: CLOCK_REALTIME in ms, comparable with date +%s%3N).
 *   xm-client hold --addr ADDR:PORT [-k K] [--duration-ms D] [--ping-ms P] [--bind SRC]
 *       Opens K connections, prints "id NAME COUNT" for them and "holding K", then keeps them open for D ms
 *       (default 10000) or until SIGTERM/SIGINT, every P ms sending "ping" on each and expecting it echoed.
 *       Summary: "held=K open_failures=K pings=N ping_failures=K dead=K".
 *   xm-client udp --addr ADDR:PORT [-n N] [--connect] [--bind SRC]
 *       N request/replies, each from a fresh socket (sendto, or connect+send with --connect); checks that
 *       the reply's source is the dialed address. Prints "id NAME COUNT" and
 *       "total=N ok=N errors=K src_mismatch=K".
 *   xm-client refuse --addr ADDR:PORT [--bind SRC]
 *       One blocking connect; prints "result=ERRNAME elapsed_ms=F" (or result=connected / ETIMEDOUT).
 *
 * Exit status 0 when every operation succeeded as the mode expects (refuse: ECONNREFUSED), 1 otherwise,
 * 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

#define ID_MAX		    64
#define MAX_IDS		    64
#define MAX_HOLD	    4096
#define MAX_REPORTED_ERRORS 5

struct opts {
	const char *mode;
	struct sockaddr_storage dst;
	socklen_t dst_len;
	struct sockaddr_storage src;
	socklen_t src_len; /* 0: do not bind */
	long n;
	long k;
	long duration_ms;
	long interval_ms;
	long ping_ms;
	long timeout_ms;
	bool trace;
	bool udp_connect;
};

/* Backend ids seen and how often, in order of first appearance. */
struct tally {
	char id[MAX_IDS][ID_MAX];
	long count[MAX_IDS];
	int n;
};

static volatile sig_atomic_t g_stop;
static int g_reported;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

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
	fprintf(stderr, "usage: xm-client spread|hold|udp|refuse --addr ADDR:PORT [-n N] [-k K] [--duration-ms D]\n"
			"       [--interval-ms I] [--ping-ms P] [--timeout-ms T] [--bind SRC] [--trace] [--connect]\n");
	exit(2);
}

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long long real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *errname(int err)
{
	const char *s = strerrorname_np(err);

	return s ? s : "EUNKNOWN";
}

/* Reports the first few failures with detail; the summary line counts all of them. */
static void report(const char *what, int err)
{
	if (g_reported++ < MAX_REPORTED_ERRORS)
		fprintf(stderr, "xm-client: %s: %s (%s)\n", what, errname(err), strerror(err));
}

/* "10.96.0.10:80", "[fd00:96::10]:80"; port 0 allowed for --bind. */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len, bool need_port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN + 2];
	const char *port_s = NULL;
	long port = 0;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || (size_t)(end - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		if (end[1] == ':')
			port_s = end + 2;
		else if (end[1] != '\0')
			return -1;
	} else {
		const char *colon = strchr(s, ':');
		size_t hl = strlen(s);

		/* One colon: IPv4 with a port. More: a bare IPv6 literal (only meaningful for --bind). */
		if (colon && !strchr(colon + 1, ':')) {
			hl = (size_t)(colon - s);
			port_s = colon + 1;
		}
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, s, hl);
		host[hl] = '\0';
	}
	if (port_s) {
		char *end;

		port = strtol(port_s, &end, 10);
		if (*end || port < 0 || port > 65535)
			return -1;
	}
	if (need_port && port == 0)
		return -1;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	{
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;

		return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "family-%u", ss->ss_family);
	}
	return buf;
}

static void tally_add(struct tally *t, const char *id)
{
	int i;

	for (i = 0; i < t->n; i++) {
		if (!strcmp(t->id[i], id)) {
			t->count[i]++;
			return;
		}
	}
	if (t->n == MAX_IDS)
		return;
	snprintf(t->id[t->n], ID_MAX, "%s", id);
	t->count[t->n++] = 1;
}

static void tally_print(const struct tally *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		printf("id %s %ld\n", t->id[i], t->count[i]);
}

static void set_timeouts(int fd, long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A socket of the destination's family, bound to --bind if given. Returns fd or -errno. */
static int open_socket(const struct opts *o, int type)
{
	int fd = socket(o->dst.ss_family, type | SOCK_CLOEXEC, 0);
	int err;

	if (fd < 0)
		return -errno;
	set_timeouts(fd, o->timeout_ms);
	if (o->src_len && bind(fd, (const struct sockaddr *)&o->src, o->src_len) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

/*
 * A TCP connection to --addr within the timeout; the kernel's SO_SNDTIMEO bounds a blocking connect.
 * Returns fd or -errno (ETIMEDOUT when the timeout expired).
 */
static int tcp_connect(const struct opts *o, double *elapsed_ms)
{
	double t0 = mono_ms();
	int fd = open_socket(o, SOCK_STREAM), err, one = 1;

	if (fd < 0)
		return fd;
	if (connect(fd, (const struct sockaddr *)&o->dst, o->dst_len) < 0) {
		err = errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(fd);
		if (elapsed_ms)
			*elapsed_ms = mono_ms() - t0;
		return -err;
	}
	if (elapsed_ms)
		*elapsed_ms = mono_ms() - t0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Reads one '\n'-terminated line (without it) within the socket's receive timeout. Returns 0 or -errno. */
static int read_line(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got + 1 < len) {
		ssize_t n = recv(fd, buf + got, 1, 0);

		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (buf[got] == '\n') {
			buf[got] = '\0';
			return 0;
		}
		got++;
	}
	return -EMSGSIZE;
}

/* Checks getpeername() against the dialed address; reports the first mismatches. */
static bool peer_is_dst(const struct opts *o, int fd)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char a[80], b[80];

	memset(&peer, 0, sizeof(peer));
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0) {
		report("getpeername", errno);
		return false;
	}
	if (same_addr(&peer, &o->dst))
		return true;
	if (g_reported++ < MAX_REPORTED_ERRORS)
		fprintf(stderr, "xm-client: getpeername returned %s, dialed %s\n", addr_str(&peer, a, sizeof(a)),
			addr_str(&o->dst, b, sizeof(b)));
	return false;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !g_stop)
		;
}

static int mode_spread(const struct opts *o)
{
	static struct tally t;
	long total = 0, ok = 0, errors = 0, mismatch = 0;
	double start = mono_ms(), max_ms = 0;

	while (total < o->n && !g_stop) {
		char id[ID_MAX];
		double ms = 0;
		int fd, r;

		if (o->duration_ms && mono_ms() - start >= (double)o->duration_ms)
			break;
		total++;
		fd = tcp_connect(o, &ms);
		if (ms > max_ms)
			max_ms = ms;
		if (fd < 0 && g_stop) {
			total--; /* interrupted by the stop signal: not a failure */
			break;
		}
		if (fd < 0) {
			errors++;
			report("connect", -fd);
			if (o->trace)
				printf("conn %lld !%s\n", real_ms(), errname(-fd));
			goto next;
		}
		if (!peer_is_dst(o, fd))
			mismatch++;
		r = read_line(fd, id, sizeof(id));
		close(fd);
		if (r < 0 && g_stop) {
			total--;
			break;
		}
		if (r < 0) {
			errors++;
			report("reading the backend id", -r);
			if (o->trace)
				printf("conn %lld !%s\n", real_ms(), errname(-r));
			goto next;
		}
		ok++;
		tally_add(&t, id);
		if (o->trace)
			printf("conn %lld %s\n", real_ms(), id);
	next:
		if (o->interval_ms)
			sleep_ms(o->interval_ms);
	}
	tally_print(&t);
	printf("total=%ld ok=%ld errors=%ld getpeername_mismatch=%ld max_connect_ms=%.3f\n", total, ok, errors,
	       mismatch, max_ms);
	return errors || mismatch || total == 0 ? 1 : 0;
}

/* One ping round trip on a held connection: send "ping\n", expect it echoed. Returns 0 or -errno. */
static int ping(int fd)
{
	char line[16];
	int r;

	if (send(fd, "ping\n", 5, MSG_NOSIGNAL) != 5)
		return errno ? -errno : -EIO;
	r = read_line(fd, line, sizeof(line));
	if (r < 0)
		return r;
	return strcmp(line, "ping") ? -EBADMSG : 0;
}

static int mode_hold(const struct opts *o)
{
	static int fds[MAX_HOLD];
	static char ids[MAX_HOLD][ID_MAX];
	static struct tally t;
	long i, held = 0, open_failures = 0, pings = 0, ping_failures = 0, dead = 0;
	double start, next_ping;

	for (i = 0; i < o->k; i++)
		fds[i] = -1;
	for (i = 0; i < o->k && !g_stop; i++) {
		int fd = tcp_connect(o, NULL), r;

		if (fd < 0 && g_stop)
			break;
		if (fd < 0) {
			open_failures++;
			report("connect", -fd);
			continue;
		}
		if (!peer_is_dst(o, fd)) {
			open_failures++;
			close(fd);
			continue;
		}
		r = read_line(fd, ids[i], ID_MAX);
		if (r < 0 && g_stop) {
			close(fd);
			break;
		}
		if (r < 0) {
			open_failures++;
			report("reading the backend id", -r);
			close(fd);
			continue;
		}
		fds[i] = fd;
		held++;
		tally_add(&t, ids[i]);
	}
	tally_print(&t);
	printf("holding %ld\n", held);
	fflush(stdout);

	start = next_ping = mono_ms();
	while (!g_stop && mono_ms() - start < (double)o->duration_ms) {
		if (o->ping_ms && mono_ms() >= next_ping) {
			for (i = 0; i < o->k && !g_stop; i++) {
				int r;

				if (fds[i] < 0)
					continue;
				pings++;
				r = ping(fds[i]);
				if (r < 0 && g_stop) {
					pings--; /* interrupted by the stop signal: not a failure */
					break;
				}
				if (r < 0) {
					char what[128];

					ping_failures++;
					dead++;
					snprintf(what, sizeof(what), "ping on connection %ld to %s after %.0f ms", i,
						 ids[i], mono_ms() - start);
					report(what, -r);
					close(fds[i]);
					fds[i] = -1;
				}
			}
			next_ping += (double)o->ping_ms;
		}
		sleep_ms(o->ping_ms ? 10 : 100);
	}
	for (i = 0; i < o->k; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	printf("held=%ld open_failures=%ld pings=%ld ping_failures=%ld dead=%ld\n", held, open_failures, pings,
	       ping_failures, dead);
	return open_failures || ping_failures || held == 0 ? 1 : 0;
}

/* One UDP request/reply from a fresh socket. Returns 0 with the id in id, or -errno. */
static int udp_once(const struct opts *o, char *id, size_t idlen, bool *src_ok)
{
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	struct pollfd pfd;
	ssize_t n;
	int fd = open_socket(o, SOCK_DGRAM), err;
	char a[80], b[80];

	if (fd < 0)
		return fd;
	if (o->udp_connect) {
		if (connect(fd, (const struct sockaddr *)&o->dst, o->dst_len) < 0 || send(fd, "req\n", 4, 0) != 4)
			goto fail;
	} else if (sendto(fd, "req\n", 4, 0, (const struct sockaddr *)&o->dst, o->dst_len) != 4) {
		goto fail;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, (int)o->timeout_ms) <= 0) {
		close(fd);
		return -ETIMEDOUT;
	}
	memset(&from, 0, sizeof(from));
	n = recvfrom(fd, id, idlen - 1, 0, (struct sockaddr *)&from, &flen);
	if (n < 0)
		goto fail;
	close(fd);
	id[n] = '\0';
	if (n > 0 && id[n - 1] == '\n')
		id[n - 1] = '\0';
	*src_ok = same_addr(&from, &o->dst);
	if (!*src_ok && g_reported++ < MAX_REPORTED_ERRORS)
		fprintf(stderr, "xm-client: reply came from %s, sent to %s\n", addr_str(&from, a, sizeof(a)),
			addr_str(&o->dst, b, sizeof(b)));
	return 0;
fail:
	err = errno;
	close(fd);
	return -err;
}

static int mode_udp(const struct opts *o)
{
	static struct tally t;
	long total = 0, ok = 0, errors = 0, mismatch = 0;

	while (total < o->n && !g_stop) {
		char id[ID_MAX];
		bool src_ok = false;
		int r;

		total++;
		r = udp_once(o, id, sizeof(id), &src_ok);
		if (r < 0 && g_stop) {
			total--;
			break;
		}
		if (r < 0) {
			errors++;
			report("udp request", -r);
			continue;
		}
		ok++;
		if (!src_ok)
			mismatch++;
		tally_add(&t, id);
		if (o->interval_ms)
			sleep_ms(o->interval_ms);
	}
	tally_print(&t);
	printf("total=%ld ok=%ld errors=%ld src_mismatch=%ld\n", total, ok, errors, mismatch);
	return errors || mismatch || total == 0 ? 1 : 0;
}

static int mode_refuse(const struct opts *o)
{
	double ms = 0;
	int fd = tcp_connect(o, &ms);

	if (fd >= 0) {
		close(fd);
		printf("result=connected elapsed_ms=%.3f\n", ms);
		return 1;
	}
	printf("result=%s elapsed_ms=%.3f\n", errname(-fd), ms);
	return fd == -ECONNREFUSED ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "bind", required_argument, NULL, 'b' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "ping-ms", required_argument, NULL, 'p' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "trace", no_argument, NULL, 'T' },
		{ "connect", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .n = 100, .k = 10, .timeout_ms = 2000 };
	struct sigaction sa;
	bool have_dst = false;
	int c;

	if (argc < 2)
		usage();
	o.mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "n:k:", lopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (parse_addr(optarg, &o.dst, &o.dst_len, true) < 0) {
				fprintf(stderr, "xm-client: bad --addr %s (want ADDR:PORT or [ADDR6]:PORT)\n", optarg);
				return 2;
			}
			have_dst = true;
			break;
		case 'b':
			if (parse_addr(optarg, &o.src, &o.src_len, false) < 0) {
				fprintf(stderr, "xm-client: bad --bind %s\n", optarg);
				return 2;
			}
			break;
		case 'n':
			o.n = strtol(optarg, NULL, 10);
			break;
		case 'k':
			o.k = strtol(optarg, NULL, 10);
			break;
		case 'd':
			o.duration_ms = strtol(optarg, NULL, 10);
			break;
		case 'i':
			o.interval_ms = strtol(optarg, NULL, 10);
			break;
		case 'p':
			o.ping_ms = strtol(optarg, NULL, 10);
			break;
		case 't':
			o.timeout_ms = strtol(optarg, NULL, 10);
			break;
		case 'T':
			o.trace = true;
			break;
		case 'C':
			o.udp_connect = true;
			break;
		default:
			usage();
		}
	}
	if (!have_dst || optind != argc || o.n <= 0 || o.k <= 0 || o.k > MAX_HOLD || o.timeout_ms <= 0 ||
	    o.duration_ms < 0 || o.interval_ms < 0 || o.ping_ms < 0)
		usage();
	if (o.src_len && o.src.ss_family != o.dst.ss_family) {
		fprintf(stderr, "xm-client: --bind and --addr are of different families\n");
		return 2;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: a signal ends a blocking call at once */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	raise_nofile_limit();
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (!strcmp(o.mode, "spread"))
		return mode_spread(&o);
	if (!strcmp(o.mode, "hold")) {
		if (!o.duration_ms)
			o.duration_ms = 10000;
		return mode_hold(&o);
	}
	if (!strcmp(o.mode, "udp"))
		return mode_udp(&o);
	if (!strcmp(o.mode, "refuse"))
		return mode_refuse(&o);
	usage();
	return 2;
}
