// SPDX-License-Identifier: Apache-2.0
/*
 * The pod → L7 proxy hop: request/response latency over a captured connection (a pod dials an HTTP service
 * VIP, the socket LB sends it to a listener on the node's address) with TCP, and with both ends on the sockmap.
 * scripts/bench.sh makes the topology (a pod netns on a node bridge, a child cgroup); this program loads
 * sock_lb and sockmap unpinned, makes the proxy listener in the node netns outside the mesh cgroup (as the
 * agent's is), joins the cgroup, and runs the client in the pod's netns.
 *
 * A last case makes the listener with l7_capture_socket_in_cgroup in --proxy-cgroup, where only sockmap's
 * sockops is attached: accepted sockets enter the sockhash at establishment, with no add and no race.
 *
 *   l7_hop --cgroup DIR --proxy-cgroup DIR --pod-ns PATH --node-ns PATH --proxy-ip IP --pod-ip IP
 *          [--rr-iters N] [--conn-iters N] [--out FILE]
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>

#define BENCH_NAME "bench l7_hop"
#include "bench_util.h"
#include "compile/compile.h"
#include "datapath/datapath.h"
#include "datapath/l7_capture.h"
#include "datapath/sockmap.h"
#include "lbmap/lbmap.h"
#include "skel/sock_lb.skel.h"
#include "skel/sockmap.skel.h"

#define RR_SIZES 3
static const size_t rr_sizes[RR_SIZES] = { 64, 1024, 16384 };
#define VIP	      "10.96.0.80"
#define PROXY_PORT    15001
#define PROXY_CG_PORT 15002 /* the listener made in the proxy cgroup */

enum mode {
	M_TCP,		  /* sockmap off */
	M_SOCKMAP,	  /* on; the client starts once the proxy has put its socket in */
	M_SOCKMAP_RACING, /* on; the client writes at once, as an HTTP client does (its first bytes beat accept) */
	M_PROXY_CGROUP,	  /* on; listener in the proxy cgroup (sockops inserts at establishment); client at once */
};

struct result {
	const char *name;
	double p50[RR_SIZES], p99[RR_SIZES]; /* microseconds */
	double conn_p50;		     /* connect + accept + lookup (+ sockmap add) + 64 B round trip */
	unsigned long long redirected;
	unsigned long long no_peer; /* messages sent before the peer was in the sockhash (that direction: TCP) */
};

static struct {
	const char *cgroup, *proxy_cgroup, *pod_ns, *node_ns, *proxy_ip, *pod_ip, *out;
	int rr_iters, conn_iters;
	struct sock_lb *lb;
	struct sockmap *sm;
	struct xm_map_fds fds;
	int lfd, lfd_cg;
} g = { .rr_iters = 20000, .conn_iters = 2000, .out = "build/bench/l7_hop.json" };

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
		die("setns %s: %s", path, strerror(errno));
	close(fd);
}

static void read_full(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r <= 0)
			die("read: %s", r ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
}

static void write_full(int fd, const char *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = write(fd, buf + off, n - off);

		if (w <= 0)
			die("write: %s", strerror(errno));
		off += (size_t)w;
	}
}

/* Hand-off between the proxy thread and the client: a pipe, so the client blocks until the socket is in. */
struct hop {
	enum mode mode;
	int ready[2];
	int rr; /* timed round trips per size */
};

/* The proxy's side of one accepted connection: the agent's steps, then echo. */
static int proxy_take(const struct hop *h)
{
	struct xm_svc_key vip;
	uint32_t svc_id;
	int fd = accept(h->mode == M_PROXY_CGROUP ? g.lfd_cg : g.lfd, NULL, NULL), err;

	if (fd < 0)
		die("accept: %s", strerror(errno));
	err = l7_capture_lookup(g.fds.l7_origdst, fd, &vip, &svc_id);
	if (err)
		die("l7_capture_lookup: %s", strerror(-err));
	if (h->mode == M_SOCKMAP || h->mode == M_SOCKMAP_RACING) {
		err = l7_capture_sockmap_add(bpf_map__fd(g.sm->maps.xm_sock_pairs),
					     bpf_map__fd(g.sm->maps.xm_sockmap_sk), fd);
		if (err)
			die("l7_capture_sockmap_add: %s", strerror(-err));
	}
	if (h->mode == M_SOCKMAP && write(h->ready[1], "r", 1) != 1)
		die("ready: %s", strerror(errno));
	return fd;
}

static void *proxy_thread(void *p)
{
	static char buf[1 << 16];
	struct hop *h = p;
	int fd, k, i;

	fd = proxy_take(h);
	for (k = 0; k < RR_SIZES; k++)
		for (i = 0; i < h->rr + 100; i++) {
			read_full(fd, buf, rr_sizes[k]);
			write_full(fd, buf, rr_sizes[k]);
		}
	close(fd);
	for (i = 0; i < g.conn_iters; i++) {
		fd = proxy_take(h);
		read_full(fd, buf, 64);
		write_full(fd, buf, 64);
		close(fd);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int dial_vip(const struct hop *h)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(80) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	char c;

	inet_pton(AF_INET, VIP, &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect " VIP ": %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (h->mode == M_SOCKMAP && read(h->ready[0], &c, 1) != 1)
		die("wait ready: %s", strerror(errno));
	return fd;
}

static void run_client(struct hop *h, struct result *res)
{
	static char buf[1 << 16];
	double *lat = calloc((size_t)(g.rr_iters > g.conn_iters ? g.rr_iters : g.conn_iters), sizeof(double)), t0;
	int fd, k, i;

	if (!lat)
		die("calloc");
	memset(buf, 'x', sizeof(buf));
	fd = dial_vip(h);
	for (k = 0; k < RR_SIZES; k++) {
		for (i = 0; i < 100; i++) {
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
	close(fd);
	for (i = 0; i < g.conn_iters; i++) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		t0 = now_us();
		fd = dial_vip(h);
		write_full(fd, buf, 64);
		read_full(fd, buf, 64);
		lat[i] = now_us() - t0;
		/* An RST: no TIME_WAIT, so the ports never run out. */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
	qsort(lat, (size_t)g.conn_iters, sizeof(double), cmp_double);
	res->conn_p50 = lat[g.conn_iters / 2];
	free(lat);
}

struct case_arg {
	struct hop h;
	struct result r;
};

static void *client_thread(void *p)
{
	struct case_arg *a = p;

	enter_ns(g.pod_ns);
	run_client(&a->h, &a->r);
	return NULL;
}

static void set_switch(bool on)
{
	struct xm_sockmap_config c = { .enabled = on };
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(g.sm->maps.xm_sockmap_config), &zero, &c, BPF_ANY) < 0)
		die("switch: %s", strerror(errno));
}

static unsigned long long sockmap_stat(unsigned int idx)
{
	uint64_t st[XM_SMSTAT_MAX];

	if (sockmap_read_stats(bpf_map__fd(g.sm->maps.xm_sockmap_stats), st))
		die("sockmap stats");
	return (unsigned long long)st[idx];
}

static void set_proxy_port(uint16_t port)
{
	struct l7_capture_proxy proxy = { .v4 = true, .port = port };

	inet_pton(AF_INET, g.proxy_ip, &proxy.addr4.v4);
	if (l7_capture_set_proxy(g.fds.l7_proxy, &proxy))
		die("l7_capture_set_proxy");
}

static void run_case(const char *name, enum mode mode, struct result *res)
{
	struct case_arg arg = { .h = { .mode = mode, .rr = g.rr_iters } };
	unsigned long long r0, np0;
	pthread_t pt, ct;

	if (pipe(arg.h.ready) < 0)
		die("pipe: %s", strerror(errno));
	set_switch(mode != M_TCP);
	set_proxy_port(mode == M_PROXY_CGROUP ? PROXY_CG_PORT : PROXY_PORT);
	r0 = sockmap_stat(XM_SMSTAT_REDIR_BYTES);
	np0 = sockmap_stat(XM_SMSTAT_FALLBACK_NO_PEER);
	arg.r.name = name;
	pthread_create(&pt, NULL, proxy_thread, &arg.h);
	pthread_create(&ct, NULL, client_thread, &arg);
	pthread_join(ct, NULL);
	pthread_join(pt, NULL);
	close(arg.h.ready[0]);
	close(arg.h.ready[1]);
	*res = arg.r;
	res->redirected = sockmap_stat(XM_SMSTAT_REDIR_BYTES) - r0;
	res->no_peer = sockmap_stat(XM_SMSTAT_FALLBACK_NO_PEER) - np0;
	fprintf(stderr,
		"# %-18s rr64 p50 %5.1f us p99 %5.1f | rr1k p50 %5.1f p99 %5.1f | rr16k p50 %5.1f p99 %5.1f | "
		"new conn + 64 B rr p50 %5.1f us | redirected %llu B, %llu sends before the peer was in\n",
		name, res->p50[0], res->p99[0], res->p50[1], res->p99[1], res->p50[2], res->p99[2], res->conn_p50,
		res->redirected, res->no_peer);
}

static void publish_vip(void)
{
	struct xm_lb_backend be = { .family = XM_FAMILY_V4, .port = 8080, .ready = true };
	struct xm_lb_service svc = { .algo = XM_LB_ROUND_ROBIN, .flags = XM_SVC_F_L7, .n_backends = 1, .n_ready = 1 };
	struct xm_lb_state st = { .services = &svc, .n_services = 1 };
	struct xm_lbmap_stats stats;
	struct xm_lbmap *m;

	/* The backend is never dialed: the proxy answers. */
	inet_pton(AF_INET, g.proxy_ip, be.addr.bytes);
	snprintf(svc.ns, sizeof(svc.ns), "bench");
	snprintf(svc.name, sizeof(svc.name), "http");
	svc.key.family = XM_FAMILY_V4;
	inet_pton(AF_INET, VIP, &svc.key.vip.v4);
	svc.key.port = htons(80);
	svc.key.proto = XM_PROTO_TCP;
	svc.backends = &be;
	m = lbmap_open(&g.fds);
	if (!m || lbmap_apply(m, &st, 0, &stats))
		die("publish " VIP);
	lbmap_free(m);
}

/* A listener on the proxy address and port, made in the node's netns by this thread (setns is per thread). */
static int node_listener(uint16_t port, int cgroup_fd)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), fd, one = 1;

	enter_ns(g.node_ns);
	fd = cgroup_fd >= 0 ? l7_capture_socket_in_cgroup(cgroup_fd, AF_INET, SOCK_STREAM)
			    : socket(AF_INET, SOCK_STREAM, 0);
	if (self < 0 || setns(self, CLONE_NEWNET) < 0)
		die("setns back");
	close(self);
	inet_pton(AF_INET, g.proxy_ip, &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0)
		die("proxy listener on port %u: %s", port, strerror(fd < 0 ? -fd : errno));
	return fd;
}

static void setup(void)
{
	struct xm_local_ip v = { .flags = XM_LOCAL_IP_NODE };
	const char *local[2] = { g.proxy_ip, g.pod_ip };
	struct xm_local_ip_key k;
	struct bpf_program *prog;
	struct bpf_map *map;
	int cg, pcg, link_fd, i;
	char pid[32], path[4200];
	FILE *f;

	g.lb = sock_lb__open();
	g.sm = sockmap__open();
	if (!g.lb || !g.sm)
		die("open skeletons");
	bpf_object__for_each_map (map, g.lb->obj)
		bpf_map__set_pin_path(map, NULL);
	bpf_object__for_each_map (map, g.sm->obj)
		bpf_map__set_pin_path(map, NULL);
	g.sm->rodata->xm_tcp_mem_lag = sockmap_tcp_mem_lag();
	if (sock_lb__load(g.lb) || sockmap__load(g.sm))
		die("load");
	cg = open(g.cgroup, O_RDONLY | O_DIRECTORY);
	if (cg < 0)
		die("%s: %s", g.cgroup, strerror(errno));
	bpf_object__for_each_program (prog, g.lb->obj) {
		if (bpf_program__type(prog) != BPF_PROG_TYPE_XDP && !bpf_program__attach_cgroup(prog, cg))
			die("attach %s: %s", bpf_program__name(prog), strerror(errno));
	}
	if (!bpf_program__attach_cgroup(g.sm->progs.xm_sockmap_ops, cg) ||
	    sockmap_attach_msg(bpf_program__fd(g.sm->progs.xm_sockmap_msg), bpf_map__fd(g.sm->maps.xm_sock_pairs),
			       &link_fd))
		die("attach sockmap: %s", strerror(errno));
	datapath_map_fds(&(struct xm_datapath){ .sock = g.lb }, &g.fds);
	publish_vip();
	for (i = 0; i < 2; i++) {
		memset(&k, 0, sizeof(k));
		k.family = XM_FAMILY_V4;
		if (inet_pton(AF_INET, local[i], &k.addr.v4) != 1 ||
		    bpf_map_update_elem(bpf_map__fd(g.sm->maps.xm_local_ips), &k, &v, BPF_ANY))
			die("local ip %s", local[i]);
	}
	/* The proxy's listeners, in the node's netns: one made before joining the mesh cgroup (as the agent's),
	 * one in the proxy cgroup, where only sockmap's sockops runs. */
	g.lfd = node_listener(PROXY_PORT, -1);
	pcg = open(g.proxy_cgroup, O_RDONLY | O_DIRECTORY);
	if (pcg < 0 || !bpf_program__attach_cgroup(g.sm->progs.xm_sockmap_ops, pcg))
		die("attach sockops to %s: %s", g.proxy_cgroup, strerror(errno));
	g.lfd_cg = node_listener(PROXY_CG_PORT, pcg);
	close(pcg);
	snprintf(path, sizeof(path), "%s/cgroup.procs", g.cgroup);
	snprintf(pid, sizeof(pid), "%d", getpid());
	f = fopen(path, "w");
	if (!f || fputs(pid, f) < 0 || fclose(f))
		die("join cgroup %s", g.cgroup);
}

static void json_case(FILE *f, const struct result *r, bool last)
{
	int k;

	fprintf(f, "    \"%s\": {\"rr\": {", r->name);
	for (k = 0; k < RR_SIZES; k++)
		fprintf(f, "%s\"%zu\": {\"p50_us\": %.2f, \"p99_us\": %.2f}", k ? ", " : "", rr_sizes[k], r->p50[k],
			r->p99[k]);
	fprintf(f, "}, \"new_conn_rr64_p50_us\": %.2f, \"redirected_bytes\": %llu, \"sends_before_peer_in\": %llu}%s\n",
		r->conn_p50, r->redirected, r->no_peer, last ? "" : ",");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'g' },   { "proxy-cgroup", required_argument, NULL, 'G' },
		{ "pod-ns", required_argument, NULL, 'p' },   { "node-ns", required_argument, NULL, 'n' },
		{ "proxy-ip", required_argument, NULL, 'P' }, { "pod-ip", required_argument, NULL, 'C' },
		{ "rr-iters", required_argument, NULL, 'i' }, { "conn-iters", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },      { 0 },
	};
	struct result r[4];
	struct utsname u;
	FILE *f;
	int c, k;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'g':
			g.cgroup = optarg;
			break;
		case 'G':
			g.proxy_cgroup = optarg;
			break;
		case 'p':
			g.pod_ns = optarg;
			break;
		case 'n':
			g.node_ns = optarg;
			break;
		case 'P':
			g.proxy_ip = optarg;
			break;
		case 'C':
			g.pod_ip = optarg;
			break;
		case 'i':
			g.rr_iters = atoi(optarg);
			break;
		case 'c':
			g.conn_iters = atoi(optarg);
			break;
		case 'o':
			g.out = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!g.cgroup || !g.proxy_cgroup || !g.pod_ns || !g.node_ns || !g.proxy_ip || !g.pod_ip || g.rr_iters < 100 ||
	    g.conn_iters < 10) {
		fprintf(stderr, "usage: l7_hop --cgroup DIR --proxy-cgroup DIR --pod-ns PATH --node-ns PATH --proxy-ip "
				"IP --pod-ip IP "
				"[--rr-iters N>=100] [--conn-iters N>=10] [--out FILE]\n");
		return 2;
	}
	setup();
	run_case("hop_tcp", M_TCP, &r[0]);
	run_case("hop_sockmap", M_SOCKMAP, &r[1]);
	run_case("hop_sockmap_racing", M_SOCKMAP_RACING, &r[2]);
	run_case("hop_proxy_cgroup", M_PROXY_CGROUP, &r[3]);
	if (r[0].redirected || !r[1].redirected)
		die("redirect %s", r[0].redirected ? "happened while off" : "never happened");

	f = fopen(g.out, "w");
	if (!f)
		die("%s: %s", g.out, strerror(errno));
	uname(&u);
	fprintf(f, "{\n  \"kernel\": \"%s\",\n  \"cpus\": %ld,\n  \"rr_iters\": %d,\n  \"conn_iters\": %d,\n",
		u.release, sysconf(_SC_NPROCESSORS_ONLN), g.rr_iters, g.conn_iters);
	fprintf(f, "  \"cases\": {\n");
	for (k = 0; k < 4; k++)
		json_case(f, &r[k], k == 3);
	fprintf(f, "  },\n  \"sockmap_vs_tcp\": {");
	for (k = 0; k < RR_SIZES; k++)
		fprintf(f, "\"rr_p50_ratio_%zu\": %.3f, ", rr_sizes[k], r[1].p50[k] / r[0].p50[k]);
	fprintf(f, "\"new_conn_ratio\": %.3f}\n}\n", r[1].conn_p50 / r[0].conn_p50);
	fclose(f);
	fprintf(stderr, "# wrote %s\n", g.out);
	return 0;
}
