// SPDX-License-Identifier: Apache-2.0
/*
 * Same-node pod-to-pod TCP with and without sockmap redirection, in one run: request/response latency
 * (64 B, 1 KiB, 64 KiB; p50, p99) and stream throughput (64 KiB writes), plus loopback TCP and a unix
 * socket pair as floors. scripts/bench.sh makes the topology (two pod netns on a node bridge, a child
 * cgroup); this program loads sockmap unpinned, attaches it to that cgroup, joins it, and runs the client
 * and server threads in the two pods' namespaces (setns is per thread).
 *
 *   sockmap --cgroup DIR --client-ns PATH --server-ns PATH --server-ip IP --client-ip IP
 *           [--rr-iters N] [--stream-secs S] [--out FILE]
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "datapath/sockmap.h"
#include "skel/sockmap.skel.h"

#define RR_SIZES 3
static const size_t rr_sizes[RR_SIZES] = { 64, 1024, 65536 };
#define STREAM_CHUNK 65536

enum kind {
	K_VETH,
	K_LOOPBACK,
	K_UNIX
};

struct result {
	const char *name;
	double p50[RR_SIZES], p99[RR_SIZES]; /* microseconds */
	double gbps;
	unsigned long long redirected;
};

static struct {
	const char *cgroup, *client_ns, *server_ns, *server_ip, *client_ip, *out;
	int rr_iters;
	double stream_secs;
	struct sockmap *skel;
} g = { .rr_iters = 20000, .stream_secs = 3, .out = "build/bench/sockmap.json" };

static void die(const char *what)
{
	fprintf(stderr, "bench sockmap: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void enter_ns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		die(path);
	close(fd);
}

static void read_full(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r <= 0)
			die("read");
		got += (size_t)r;
	}
}

static void write_full(int fd, const char *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = write(fd, buf + off, n - off);

		if (w <= 0)
			die("write");
		off += (size_t)w;
	}
}

/* The server side of one test: a connected fd, then RR echo per size, then a stream sink. */
struct server {
	enum kind kind;
	int lfd, fd;
	uint16_t port;
	unsigned long long stream_bytes;
	double stream_t0, stream_t1;
};

static void serve(int fd, struct server *s)
{
	static char buf[1 << 18];
	int k, i;

	for (k = 0; k < RR_SIZES; k++)
		for (i = 0; i < g.rr_iters + 100; i++) {
			read_full(fd, buf, rr_sizes[k]);
			write_full(fd, buf, rr_sizes[k]);
		}
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r <= 0)
			break;
		if (!s->stream_bytes)
			s->stream_t0 = now_us();
		s->stream_bytes += (unsigned long long)r;
	}
	s->stream_t1 = now_us();
}

static void *server_thread(void *p)
{
	struct server *s = p;

	if (s->kind == K_UNIX) {
		serve(s->fd, s);
		return NULL;
	}
	s->fd = accept(s->lfd, NULL, NULL);
	if (s->fd < 0)
		die("accept");
	serve(s->fd, s);
	close(s->fd);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void run_client(int fd, struct result *res)
{
	static char buf[STREAM_CHUNK];
	double *lat = calloc((size_t)g.rr_iters, sizeof(double)), t0, end;
	int k, i;

	if (!lat)
		die("calloc");
	memset(buf, 'x', sizeof(buf));
	for (k = 0; k < RR_SIZES; k++) {
		for (i = 0; i < 100; i++) { /* warm-up */
			write_full(fd, buf, rr_sizes[k]);
			read_full(fd, buf, rr_sizes[k]);
		}
		for (i = 0; i < g.rr_iters; i++) {
			t0 = now_us();
			write_full(fd, buf, rr_sizes[k]);
			read_full(fd, buf, rr_sizes[k]);
			lat[i] = now_us() - t0;
		}
		qsort(lat, (size_t)g.rr_iters, sizeof(double), cmp_double);
		res->p50[k] = lat[g.rr_iters / 2];
		res->p99[k] = lat[(size_t)g.rr_iters * 99 / 100];
	}
	end = now_us() + g.stream_secs * 1e6;
	while (now_us() < end)
		write_full(fd, buf, STREAM_CHUNK);
	shutdown(fd, SHUT_WR);
	free(lat);
}

static void set_switch(bool on)
{
	struct xm_sockmap_config c = { .enabled = on };
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(g.skel->maps.xm_sockmap_config), &zero, &c, BPF_ANY) < 0)
		die("switch");
}

static unsigned long long redirected_bytes(void)
{
	uint64_t st[XM_SMSTAT_MAX];

	if (sockmap_read_stats(bpf_map__fd(g.skel->maps.xm_sockmap_stats), st))
		die("stats");
	return (unsigned long long)st[XM_SMSTAT_REDIR_BYTES];
}

struct client_arg {
	enum kind kind;
	int fd;
	uint16_t port;
	struct result *res;
};

static void *client_thread(void *p)
{
	struct client_arg *a = p;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(a->port) };
	int fd = a->fd, one = 1;

	if (a->kind != K_UNIX) {
		if (a->kind == K_VETH)
			enter_ns(g.client_ns);
		inet_pton(AF_INET, a->kind == K_VETH ? g.server_ip : "127.0.0.1", &sa.sin_addr);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("connect");
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	run_client(fd, a->res);
	close(fd);
	return NULL;
}

static void run_case(const char *name, enum kind kind, bool redirect, struct result *res)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct server s = { .kind = kind, .lfd = -1, .fd = -1 };
	struct client_arg ca = { .kind = kind, .fd = -1, .res = res };
	socklen_t len = sizeof(sa);
	unsigned long long r0;
	pthread_t st, ct;
	int one = 1, sp[2];

	memset(res, 0, sizeof(*res));
	res->name = name;
	set_switch(redirect);
	r0 = redirected_bytes();
	if (kind == K_UNIX) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
			die("socketpair");
		s.fd = sp[0];
		ca.fd = sp[1];
	} else {
		/* The listener is made in the server's netns by a short-lived thread: setns is per thread. */
		if (kind == K_VETH) {
			int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

			enter_ns(g.server_ns);
			s.lfd = socket(AF_INET, SOCK_STREAM, 0);
			if (self < 0 || setns(self, CLONE_NEWNET) < 0)
				die("setns back");
			close(self);
			inet_pton(AF_INET, g.server_ip, &sa.sin_addr);
		} else {
			enter_ns(g.client_ns);
			s.lfd = socket(AF_INET, SOCK_STREAM, 0);
			inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		}
		setsockopt(s.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (s.lfd < 0 || bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s.lfd, 16) < 0)
			die("listen");
		getsockname(s.lfd, (struct sockaddr *)&sa, &len);
		ca.port = ntohs(sa.sin_port);
	}
	pthread_create(&st, NULL, server_thread, &s);
	pthread_create(&ct, NULL, client_thread, &ca);
	pthread_join(ct, NULL);
	pthread_join(st, NULL);
	if (s.lfd >= 0)
		close(s.lfd);
	if (kind == K_UNIX)
		close(sp[0]);
	res->gbps = s.stream_t1 > s.stream_t0 ? (double)s.stream_bytes * 8 / 1e3 / (s.stream_t1 - s.stream_t0) : 0;
	res->redirected = redirected_bytes() - r0;
	fprintf(stderr,
		"# %-18s rr64 p50 %7.1f us p99 %7.1f | rr1k p50 %7.1f p99 %7.1f | rr64k p50 %7.1f p99 %7.1f | "
		"stream %6.2f Gbit/s | redirected %llu B\n",
		name, res->p50[0], res->p99[0], res->p50[1], res->p99[1], res->p50[2], res->p99[2], res->gbps,
		res->redirected);
}

static void attach(void)
{
	struct bpf_map *map;
	struct xm_local_ip_key k;
	struct xm_local_ip v = { .flags = XM_LOCAL_IP_POD };
	const char *ips[2] = { g.server_ip, g.client_ip };
	int cg, link_fd, i;
	char pid[32], path[4200];
	FILE *f;

	g.skel = sockmap__open();
	if (!g.skel)
		die("open sockmap");
	for (map = bpf_object__next_map(g.skel->obj, NULL); map; map = bpf_object__next_map(g.skel->obj, map))
		bpf_map__set_pin_path(map, NULL);
	if (sockmap__load(g.skel))
		die("load sockmap");
	if (sockmap_attach_msg(bpf_program__fd(g.skel->progs.xm_sockmap_msg), bpf_map__fd(g.skel->maps.xm_sock_pairs),
			       &link_fd))
		die("attach sk_msg");
	cg = open(g.cgroup, O_RDONLY | O_DIRECTORY);
	if (cg < 0 || !bpf_program__attach_cgroup(g.skel->progs.xm_sockmap_ops, cg))
		die("attach sockops");
	for (i = 0; i < 2; i++) {
		memset(&k, 0, sizeof(k));
		k.family = XM_FAMILY_V4;
		if (inet_pton(AF_INET, ips[i], &k.addr.v4) != 1 ||
		    bpf_map_update_elem(bpf_map__fd(g.skel->maps.xm_local_ips), &k, &v, BPF_ANY))
			die("local ip");
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", g.cgroup);
	snprintf(pid, sizeof(pid), "%d", getpid());
	f = fopen(path, "w");
	if (!f || fputs(pid, f) < 0 || fclose(f))
		die("join cgroup");
}

static void json_case(FILE *f, const struct result *r, bool last)
{
	int k;

	fprintf(f, "    \"%s\": {\"rr\": {", r->name);
	for (k = 0; k < RR_SIZES; k++)
		fprintf(f, "%s\"%zu\": {\"p50_us\": %.2f, \"p99_us\": %.2f}", k ? ", " : "", rr_sizes[k], r->p50[k],
			r->p99[k]);
	fprintf(f, "}, \"stream_gbps\": %.3f, \"redirected_bytes\": %llu}%s\n", r->gbps, r->redirected,
		last ? "" : ",");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'g' },
		{ "client-ns", required_argument, NULL, 'c' },
		{ "server-ns", required_argument, NULL, 's' },
		{ "server-ip", required_argument, NULL, 'S' },
		{ "client-ip", required_argument, NULL, 'C' },
		{ "rr-iters", required_argument, NULL, 'n' },
		{ "stream-secs", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },
		{ 0 },
	};
	struct result r[5];
	struct utsname u;
	FILE *f;
	int c, k;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'g':
			g.cgroup = optarg;
			break;
		case 'c':
			g.client_ns = optarg;
			break;
		case 's':
			g.server_ns = optarg;
			break;
		case 'S':
			g.server_ip = optarg;
			break;
		case 'C':
			g.client_ip = optarg;
			break;
		case 'n':
			g.rr_iters = atoi(optarg);
			break;
		case 't':
			g.stream_secs = atof(optarg);
			break;
		case 'o':
			g.out = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!g.cgroup || !g.client_ns || !g.server_ns || !g.server_ip || !g.client_ip || g.rr_iters < 100) {
		fprintf(stderr, "usage: sockmap --cgroup DIR --client-ns PATH --server-ns PATH --server-ip IP "
				"--client-ip IP [--rr-iters N>=100] [--stream-secs S] [--out FILE]\n");
		return 2;
	}
	attach();
	run_case("veth_tcp", K_VETH, false, &r[0]);
	run_case("veth_redirect", K_VETH, true, &r[1]);
	run_case("loopback_tcp", K_LOOPBACK, false, &r[2]);
	run_case("loopback_redirect", K_LOOPBACK, true, &r[3]);
	run_case("unix_socketpair", K_UNIX, false, &r[4]);
	if (!r[1].redirected || r[0].redirected) {
		fprintf(stderr, "bench sockmap: redirect %s (on: %llu B, off: %llu B)\n",
			r[1].redirected ? "happened while off" : "never happened", r[1].redirected, r[0].redirected);
		return 1;
	}

	f = fopen(g.out, "w");
	if (!f)
		die(g.out);
	uname(&u);
	fprintf(f, "{\n  \"kernel\": \"%s\",\n  \"cpus\": %ld,\n  \"rr_iters\": %d,\n  \"stream_secs\": %.1f,\n",
		u.release, sysconf(_SC_NPROCESSORS_ONLN), g.rr_iters, g.stream_secs);
	fprintf(f, "  \"cases\": {\n");
	for (k = 0; k < 5; k++)
		json_case(f, &r[k], k == 4);
	fprintf(f, "  },\n  \"redirect_vs_tcp\": {");
	for (k = 0; k < RR_SIZES; k++)
		fprintf(f, "\"rr_p50_ratio_%zu\": %.3f, ", rr_sizes[k], r[1].p50[k] / r[0].p50[k]);
	fprintf(f, "\"stream_ratio\": %.3f},\n", r[1].gbps / r[0].gbps);
	fprintf(f, "  \"redirect_vs_unix\": {");
	for (k = 0; k < RR_SIZES; k++)
		fprintf(f, "\"rr_p50_ratio_%zu\": %.3f, ", rr_sizes[k], r[1].p50[k] / r[4].p50[k]);
	fprintf(f, "\"stream_ratio\": %.3f},\n", r[1].gbps / r[4].gbps);
	fprintf(f, "  \"goals\": {\"rr_p50_le_0.7x\": %s, \"stream_ge_1.5x\": %s}\n}\n",
		r[1].p50[0] <= 0.7 * r[0].p50[0] && r[1].p50[1] <= 0.7 * r[0].p50[1] && r[1].p50[2] <= 0.7 * r[0].p50[2]
		    ? "true"
		    : "false",
		r[1].gbps >= 1.5 * r[0].gbps ? "true" : "false");
	fclose(f);
	fprintf(stderr, "# wrote %s\n", g.out);
	return 0;
}
