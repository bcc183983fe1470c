/* SPDX-License-Identifier: Apache-2.0 */
/*
 * socklb: the connect()+close() benchmark of the socket LB against a direct connect and kube-proxy-style
 * iptables DNAT. scripts/bench.sh builds the namespaces, cgroups and agents; this program does the parts
 * that need C: generating configs, the backend, probing each path, and the timed loop.
 *
 *   socklb gen --services N --yaml FILE --iptables FILE [--dial-endpoints K]
 *       N services (bench/svc-00001 .. at 10.96.0.1 ..) with 1-3 endpoints each, as Service + EndpointSlice
 *       YAML and as the iptables-restore input kube-proxy's iptables mode would write for them. The last
 *       service (the one the bench dials, last in KUBE-SERVICES) has K (default 3) of the real backends
 *       10.200.1.11-13.
 *   socklb serve --port P [--banner] [--cpu C] [--max-time S]
 *       Accepts and closes, nothing else (a backlog of 65535). --banner first writes "xmb-server ADDR:PORT\n"
 *       (the address the connection reached), for probes only.
 *   socklb probe --netns PATH --cgroup DIR --addr IP:PORT [--expect-peer IP] [--expect-backend IP]...
 *       One connect from that netns and cgroup to a --banner server; prints the peer and the banner and exits
 *       non-zero unless getpeername() is --expect-peer and the banner names one of the --expect-backend.
 *   socklb run --case KIND,SERVICES,NETNS,CGROUP,IP:PORT[,SRV_NETNS,SRV_CGROUP,SRV_PORT] ... [--iters N]
 *              [--rounds R] [--warmup W]
 *              [--max-case-ms MS] [--cpu C] [--json FILE] [--meta KEY=VALUE]...
 *       Every round runs every case once (in a different order each round), each case as W untimed then N
 *       timed connect()+close() pairs, or fewer if MS ran out. Prints the table and writes the JSON.
 *       KIND: direct, socklb, iptables, socklb_nonsvc, iptables_nonsvc; and for what a user pays (issue 16):
 *       direct_ext / socklb_ext (a server that is no pod of this node), direct_rr / socklb_rr /
 *       socklb_nonsvc_rr (connect + one 64-byte request/response + close; the server's end is a listener of
 *       this process made in SRV_NETNS and SRV_CGROUP on SRV_PORT, accepted and answered in the timed part).
 *
 * A case switches this process's network namespace (setns) and cgroup (writing cgroup.procs) before its
 * loop: cgroup programs and the namespace apply to a socket by where its creator was at socket().
 * Every socket closes with SO_LINGER 0, an RST: no TIME_WAIT on either side, so ports never run out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <xmesh/hash.h>

#define BENCH_NAME "socklb"
#include "bench_util.h"

#define MAX_CASES	  32
#define MAX_META	  16
#define MAX_EXPECT	  8
#define SLOW_OP_NS	  1000000ULL /* ops above 1 ms: a retransmitted SYN or a descheduled client */
#define CONNECT_TIMEOUT_S 3
#define SVC_PORT	  80
#define TARGET_PORT	  8080
#define RR_SVC_PORT	  81   /* the dialed service's second port: to the request/response server */
#define RR_TARGET_PORT	  8081 /* that server, in the mesh cgroup (bench.sh) */
#define RR_BYTES	  64
#define CLIENT_POD_IP	  "10.200.1.101"
#define CLUSTER_CIDR	  "10.200.0.0/16"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void parse_addr(const char *s, struct sockaddr_in *sin)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		die("bad address %s (want IP:PORT)", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		die("bad IPv4 address %s", host);
}

static void pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity(%d): %s", cpu, strerror(errno));
}

static void enter_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (setns(fd, CLONE_NEWNET) < 0)
		die("setns %s: %s", path, strerror(errno));
	close(fd);
}

static void enter_cgroup(const char *dir)
{
	char path[512], pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (write(fd, pid, (size_t)n) != n)
		die("moving into %s: %s", dir, strerror(errno));
	close(fd);
}

/* A socket that closes with an RST; the send timeout also bounds a blocking connect. */
static int bench_socket(void)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct timeval tv = { .tv_sec = CONNECT_TIMEOUT_S };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Reads exactly n bytes (a redirected message may arrive in pieces); 0, or -1 on error or EOF. */
static int read_full(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);

		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

/*
 * One 64-byte request/response: the client writes then reads, the server reads then writes it back. srv >= 0
 * (client only): the server's end is this thread's too, served between the client's write and read.
 */
static int rr_exchange(int fd, bool client, int srv)
{
	char buf[RR_BYTES];

	if (client) {
		memset(buf, 'q', sizeof(buf));
		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) != (ssize_t)sizeof(buf))
			return -1;
		if (srv >= 0 && rr_exchange(srv, false, -1))
			return -1;
		return read_full(fd, buf, sizeof(buf));
	}
	if (read_full(fd, buf, sizeof(buf)))
		return -1;
	return send(fd, buf, sizeof(buf), MSG_NOSIGNAL) == (ssize_t)sizeof(buf) ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------------------ */
/* gen */

/* kube-proxy names chains KUBE-SVC-/KUBE-SEP- + 16 base32 characters of a hash of the service port. */
static void chain_name(char *out, size_t len, const char *prefix, const char *what)
{
	static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint64_t h = 0xcbf29ce484222325ULL, h2;
	char suffix[17];
	int i;

	for (const char *p = what; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	h2 = xm_mix64(h ^ 0x9e3779b97f4a7c15ULL);
	h = xm_mix64(h);
	for (i = 0; i < 16; i++) {
		uint64_t src = i < 12 ? h : h2;

		suffix[i] = b32[(src >> ((i % 12) * 5)) & 31];
	}
	suffix[16] = '\0';
	snprintf(out, len, "%s%s", prefix, suffix);
}

struct gen_svc {
	char name[32];
	char vip[16];
	char ep[3][20];
	int neps;
};

static void gen_service(struct gen_svc *s, int i, int n, int dial_eps, int *fake)
{
	int k;

	snprintf(s->name, sizeof(s->name), "svc-%05d", i);
	snprintf(s->vip, sizeof(s->vip), "10.96.%d.%d", i >> 8, i & 255);
	if (i == n) {
		/* The dialed service: addresses the server namespace really has (three by default). */
		s->neps = dial_eps;
		for (k = 0; k < dial_eps; k++)
			snprintf(s->ep[k], sizeof(s->ep[k]), "10.200.1.%d", 11 + k);
		return;
	}
	/* Everyone else: 1-3 pods each, on addresses nobody dials (10.200.2.1 and up, unique to 62,500). */
	s->neps = i % 3 + 1;
	for (k = 0; k < s->neps; k++, (*fake)++)
		snprintf(s->ep[k], sizeof(s->ep[k]), "10.200.%d.%d", 2 + (*fake / 250) % 250, 1 + *fake % 250);
}

/* rr: the dialed service's second port, 81 -> 8081, to the request/response server (bench.sh). */
static void gen_yaml(FILE *f, const struct gen_svc *s, bool rr)
{
	int k;

	fprintf(f,
		"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: bench\nspec:\n"
		"  type: ClusterIP\n  clusterIP: %s\n  clusterIPs:\n  - %s\n  sessionAffinity: None\n  ports:\n"
		"  - name: tcp\n    port: %d\n    protocol: TCP\n    targetPort: %d\n",
		s->name, s->vip, s->vip, SVC_PORT, TARGET_PORT);
	if (rr)
		fprintf(f, "  - name: rr\n    port: %d\n    protocol: TCP\n    targetPort: %d\n", RR_SVC_PORT,
			RR_TARGET_PORT);
	fprintf(f,
		"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-abcde\n"
		"  namespace: bench\n  labels:\n    kubernetes.io/service-name: %s\naddressType: IPv4\nports:\n"
		"- name: tcp\n  port: %d\n  protocol: TCP\n",
		s->name, s->name, TARGET_PORT);
	if (rr)
		fprintf(f, "- name: rr\n  port: %d\n  protocol: TCP\n", RR_TARGET_PORT);
	fputs("endpoints:\n", f);
	for (k = 0; k < s->neps; k++)
		fprintf(f, "- addresses:\n  - \"%s\"\n  conditions:\n    ready: true\n  nodeName: node1\n", s->ep[k]);
}

/* The client as a Pod of this node: its address in xm_local_ips lets the server's side enter the sockhash. */
static void gen_yaml_client_pod(FILE *f)
{
	fprintf(f,
		"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: client\n  namespace: bench\nspec:\n"
		"  nodeName: node1\nstatus:\n  phase: Running\n  podIP: %s\n  podIPs:\n  - ip: %s\n",
		CLIENT_POD_IP, CLIENT_POD_IP);
}

/*
 * The nat and filter rules of kube-proxy's iptables mode (v1.28-1.30 layout) for ClusterIP services with
 * endpoints: KUBE-SERVICES matches each service sequentially, the per-service chain marks off-cluster
 * sources for masquerading and picks an endpoint with statistic rules, each KUBE-SEP chain DNATs.
 */
static void gen_iptables(FILE *f, const struct gen_svc *svcs, int n)
{
	char svc_chain[32], sep_chain[32], key[96];
	int i, k;

	fputs("*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n"
	      ":KUBE-NODEPORTS - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n",
	      f);
	fputs("-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" "
	      "-j KUBE-PROXY-FIREWALL\n"
	      "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n"
	      "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service "
	      "portals\" -j KUBE-EXTERNAL-SERVICES\n"
	      "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" "
	      "-j KUBE-PROXY-FIREWALL\n"
	      "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
	      "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" "
	      "-j KUBE-SERVICES\n"
	      "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service "
	      "portals\" -j KUBE-EXTERNAL-SERVICES\n"
	      "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" "
	      "-j KUBE-PROXY-FIREWALL\n"
	      "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" "
	      "-j KUBE-SERVICES\n"
	      "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
	      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 "
	      "-j ACCEPT\n"
	      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
	      "--ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n",
	      f);

	fputs("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"
	      ":KUBE-MARK-MASQ - [0:0]\n",
	      f);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "bench/%s:http", svcs[i].name);
		chain_name(svc_chain, sizeof(svc_chain), "KUBE-SVC-", key);
		fprintf(f, ":%s - [0:0]\n", svc_chain);
		for (k = 0; k < svcs[i].neps; k++) {
			char ep_key[128];

			snprintf(ep_key, sizeof(ep_key), "%s%s", key, svcs[i].ep[k]);
			chain_name(sep_chain, sizeof(sep_chain), "KUBE-SEP-", ep_key);
			fprintf(f, ":%s - [0:0]\n", sep_chain);
		}
	}
	fputs("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
	      "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
	      "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"
	      "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n"
	      "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
	      "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
	      "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
	      "-j MASQUERADE --random-fully\n",
	      f);
	for (i = 0; i < n; i++) {
		const struct gen_svc *s = &svcs[i];

		snprintf(key, sizeof(key), "bench/%s:http", s->name);
		chain_name(svc_chain, sizeof(svc_chain), "KUBE-SVC-", key);
		fprintf(f,
			"-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport %d "
			"-j %s\n",
			s->vip, key, SVC_PORT, svc_chain);
		fprintf(f,
			"-A %s ! -s %s -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport %d "
			"-j KUBE-MARK-MASQ\n",
			svc_chain, CLUSTER_CIDR, s->vip, key, SVC_PORT);
		for (k = 0; k < s->neps; k++) {
			char ep_key[128];

			snprintf(ep_key, sizeof(ep_key), "%s%s", key, s->ep[k]);
			chain_name(sep_chain, sizeof(sep_chain), "KUBE-SEP-", ep_key);
			if (k < s->neps - 1)
				fprintf(f,
					"-A %s -m comment --comment \"%s -> %s:%d\" -m statistic --mode random "
					"--probability %.11f -j %s\n",
					svc_chain, key, s->ep[k], TARGET_PORT, 1.0 / (s->neps - k), sep_chain);
			else
				fprintf(f, "-A %s -m comment --comment \"%s -> %s:%d\" -j %s\n", svc_chain, key,
					s->ep[k], TARGET_PORT, sep_chain);
			fprintf(f, "-A %s -s %s/32 -m comment --comment \"%s\" -j KUBE-MARK-MASQ\n", sep_chain,
				s->ep[k], key);
			fprintf(f, "-A %s -p tcp -m comment --comment \"%s\" -m tcp -j DNAT --to-destination %s:%d\n",
				sep_chain, key, s->ep[k], TARGET_PORT);
		}
	}
	fputs("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last "
	      "rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n",
	      f);
}

static int cmd_gen(int argc, char **argv)
{
	static const struct option lo[] = { { "services", required_argument, NULL, 'n' },
					    { "yaml", required_argument, NULL, 'y' },
					    { "iptables", required_argument, NULL, 'i' },
					    { "dial-endpoints", required_argument, NULL, 'e' },
					    { NULL, 0, NULL, 0 } };
	const char *yaml = NULL, *ipt = NULL;
	struct gen_svc *svcs;
	int n = 0, c, i, fake = 0, dial_eps = 3;
	FILE *fy, *fi;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = atoi(optarg);
			break;
		case 'y':
			yaml = optarg;
			break;
		case 'i':
			ipt = optarg;
			break;
		case 'e':
			dial_eps = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (n < 1 || n > 30000 || !yaml || !ipt || dial_eps < 1 || dial_eps > 3)
		die("gen: need --services 1..30000 --yaml FILE --iptables FILE [--dial-endpoints 1..3]");
	svcs = calloc((size_t)n, sizeof(*svcs));
	if (!svcs)
		die("out of memory");
	for (i = 0; i < n; i++)
		gen_service(&svcs[i], i + 1, n, dial_eps, &fake);
	fy = fopen(yaml, "w");
	fi = fopen(ipt, "w");
	if (!fy || !fi)
		die("gen: cannot write %s / %s: %s", yaml, ipt, strerror(errno));
	fprintf(fy, "# %d services generated by socklb gen; the bench dials the last one.\n", n);
	for (i = 0; i < n; i++)
		gen_yaml(fy, &svcs[i], i == n - 1);
	gen_yaml_client_pod(fy);
	gen_iptables(fi, svcs, n);
	if (fclose(fy) || fclose(fi))
		die("gen: write failed: %s", strerror(errno));
	printf("%s %s:%d\n", svcs[n - 1].vip, svcs[n - 1].vip, SVC_PORT);
	free(svcs);
	return 0;
}

/* ------------------------------------------------------------------------------------------------------ */
/* serve */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static int cmd_serve(int argc, char **argv)
{
	static const struct option lo[] = { { "port", required_argument, NULL, 'p' },
					    { "banner", no_argument, NULL, 'b' },
					    { "cpu", required_argument, NULL, 'c' },
					    { "max-time", required_argument, NULL, 't' },
					    { NULL, 0, NULL, 0 } };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sigaction sa = { .sa_handler = on_signal };
	int port = TARGET_PORT, cpu = -1, max_time = 600, one = 1, c, lfd;
	unsigned long accepted = 0;
	bool banner = false;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'b':
			banner = true;
			break;
		case 'c':
			cpu = atoi(optarg);
			break;
		case 't':
			max_time = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	pin_cpu(cpu);
	/* No SA_RESTART: SIGTERM must interrupt a blocking accept(). */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)max_time);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_port = htons((uint16_t)port);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 65535) < 0)
		die("bind/listen :%d: %s", port, strerror(errno));
	printf("socklb-server :%d%s ready\n", port, banner ? " (banner)" : "");
	fflush(stdout);
	while (!g_stop) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept: %s", strerror(errno));
		}
		accepted++;
		if (banner) {
			struct sockaddr_in me;
			socklen_t len = sizeof(me);
			char line[64], ip[INET_ADDRSTRLEN];
			int n;

			getsockname(fd, (struct sockaddr *)&me, &len);
			inet_ntop(AF_INET, &me.sin_addr, ip, sizeof(ip));
			n = snprintf(line, sizeof(line), "xmb-server %s:%d\n", ip, ntohs(me.sin_port));
			if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0)
				fprintf(stderr, "socklb-server: send: %s\n", strerror(errno));
		}
		close(fd);
	}
	printf("accepted=%lu\n", accepted);
	return 0;
}

/* ------------------------------------------------------------------------------------------------------ */
/* probe */

static int cmd_probe(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "netns", required_argument, NULL, 'n' },	    { "cgroup", required_argument, NULL, 'g' },
		{ "addr", required_argument, NULL, 'a' },	    { "expect-peer", required_argument, NULL, 'p' },
		{ "expect-backend", required_argument, NULL, 'b' }, { NULL, 0, NULL, 0 }
	};
	const char *netns = NULL, *cgroup = NULL, *addr = NULL, *peer_want = NULL, *backends[MAX_EXPECT];
	struct sockaddr_in dst, peer;
	socklen_t len = sizeof(peer);
	char buf[128], peer_ip[INET_ADDRSTRLEN], reached[64] = "";
	int nb = 0, c, fd, i;
	ssize_t n;
	bool ok = true;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			netns = optarg;
			break;
		case 'g':
			cgroup = optarg;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'p':
			peer_want = optarg;
			break;
		case 'b':
			if (nb < MAX_EXPECT)
				backends[nb++] = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!netns || !cgroup || !addr)
		die("probe: need --netns --cgroup --addr");
	parse_addr(addr, &dst);
	enter_netns(netns);
	enter_cgroup(cgroup);
	fd = bench_socket();
	if (fd < 0)
		die("probe: socket: %s", strerror(-fd));
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		printf("probe %s: connect failed: %s\n", addr, strerror(errno));
		return 1;
	}
	if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
		die("probe: getpeername: %s", strerror(errno));
	inet_ntop(AF_INET, &peer.sin_addr, peer_ip, sizeof(peer_ip));
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		if (sscanf(buf, "xmb-server %63s", reached) != 1)
			reached[0] = '\0';
	}
	printf("probe %s: getpeername=%s:%d reached=%s", addr, peer_ip, ntohs(peer.sin_port),
	       reached[0] ? reached : "(no banner)");
	if (peer_want && strcmp(peer_ip, peer_want) != 0) {
		printf(" WRONG: getpeername should be %s", peer_want);
		ok = false;
	}
	if (nb > 0) {
		char *colon = strrchr(reached, ':');
		bool found = false;

		if (colon)
			*colon = '\0';
		for (i = 0; i < nb; i++)
			found = found || strcmp(reached, backends[i]) == 0;
		if (colon)
			*colon = ':';
		if (!found) {
			printf(" WRONG: not one of the expected backends");
			ok = false;
		}
	}
	printf("%s\n", ok ? " ok" : "");
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------------------ */
/* run */

enum kind {
	K_DIRECT,	   /* no BPF, no iptables: the backend IP */
	K_SOCKLB,	   /* ClusterIP, from the agent's cgroup */
	K_IPTABLES,	   /* ClusterIP, from a netns with the kube-proxy rules */
	K_SOCKLB_NONSVC,   /* the backend IP from the agent's cgroup: the hooks run, no service matches */
	K_IPTABLES_NONSVC, /* the backend IP from the iptables netns: conntrack + a full KUBE-SERVICES walk */
	/* What a user pays (issue 16): */
	K_DIRECT_EXT,	    /* a server that is no pod of this node (not in xm_local_ips), from the plain cgroup */
	K_SOCKLB_EXT,	    /* the same from the mesh cgroup: the hooks run, nothing matches, nothing is inserted */
	K_DIRECT_RR,	    /* connect + one 64-byte request/response + close, both ends outside the mesh */
	K_SOCKLB_RR,	    /* the same through the service's second port, both ends in the mesh cgroup */
	K_SOCKLB_NONSVC_RR, /* the same to the pod IP, both ends in the mesh cgroup */
	K_COUNT,
};

static const char *const kind_names[K_COUNT] = { "direct",	    "socklb",	       "iptables",   "socklb_nonsvc",
						 "iptables_nonsvc", "direct_ext",      "socklb_ext", "direct_rr",
						 "socklb_rr",	    "socklb_nonsvc_rr" };

/* The baselines: one per run, whatever SERVICES says. */
static bool kind_is_direct(enum kind k)
{
	return k == K_DIRECT || k == K_DIRECT_EXT || k == K_DIRECT_RR;
}

static bool kind_is_rr(enum kind k)
{
	return k == K_DIRECT_RR || k == K_SOCKLB_RR || k == K_SOCKLB_NONSVC_RR;
}

struct bench_case {
	enum kind kind;
	int services;
	char netns[256];
	char cgroup[256];
	char addr_str[64];
	struct sockaddr_in addr;
	/* request/response kinds: the server's end, a listener of this process in its own netns and cgroup */
	char srv_netns[256];
	char srv_cgroup[256];
	int srv_port;
	int lfd; /* made at the case's first round */
	/* results */
	uint32_t *ns; /* every timed op of every round */
	size_t nops;  /* filled entries of ns */
	double *round_median;
	double *round_mean;
	unsigned long errors, slow;
	int first_errno;
	double mean, median, p10, p90, p99, max;
};

struct run_opts {
	struct bench_case cases[MAX_CASES];
	int ncases;
	long iters, rounds, warmup;
	long max_case_ms; /* a case-round also ends after this long: iptables at 10,000 services is 10x slower */
	int cpu;
	const char *json;
	const char *meta[MAX_META];
	int nmeta;
};

static void parse_case(struct run_opts *o, char *spec)
{
	struct bench_case *c;
	char *f[5], *save = NULL;
	int i;

	if (o->ncases == MAX_CASES)
		die("too many cases (max %d)", MAX_CASES);
	c = &o->cases[o->ncases++];
	memset(c, 0, sizeof(*c));
	char *g[3];

	for (i = 0; i < 5; i++) {
		f[i] = strtok_r(i ? NULL : spec, ",", &save);
		if (!f[i])
			die("bad case (want KIND,SERVICES,NETNS,CGROUP,IP:PORT[,SRV_NETNS,SRV_CGROUP,SRV_PORT])");
	}
	for (i = 0; i < 3; i++)
		g[i] = strtok_r(NULL, ",", &save);
	for (i = 0; i < K_COUNT && strcmp(f[0], kind_names[i]) != 0; i++)
		;
	if (i == K_COUNT)
		die("unknown case kind %s", f[0]);
	c->kind = (enum kind)i;
	c->services = atoi(f[1]);
	snprintf(c->netns, sizeof(c->netns), "%s", f[2]);
	snprintf(c->cgroup, sizeof(c->cgroup), "%s", f[3]);
	snprintf(c->addr_str, sizeof(c->addr_str), "%s", f[4]);
	parse_addr(f[4], &c->addr);
	c->lfd = -1;
	if (!kind_is_rr(c->kind))
		return;
	if (!g[0] || !g[1] || !g[2])
		die("%s: want ...,SRV_NETNS,SRV_CGROUP,SRV_PORT (the server's end, in this process)", f[0]);
	snprintf(c->srv_netns, sizeof(c->srv_netns), "%s", g[0]);
	snprintf(c->srv_cgroup, sizeof(c->srv_cgroup), "%s", g[1]);
	c->srv_port = atoi(g[2]);
}

/*
 * The server's end of a request/response case, in this process: a listener made in the server's netns and
 * cgroup (a socket keeps both; accepted sockets inherit the listener's cgroup, so sockops runs for them as
 * for a server pod in that cgroup). Both ends in one thread: the measure is the kernel's work for the
 * connection, not the wake-up of a server process on a busy CPU. SO_LINGER 0 is inherited: RST, no TIME_WAIT.
 */
static void rr_listen(struct bench_case *c)
{
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->srv_port) };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int one = 1;

	enter_netns(c->srv_netns);
	enter_cgroup(c->srv_cgroup);
	c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0 || setsockopt(c->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(c->lfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0 ||
	    bind(c->lfd, (struct sockaddr *)&any, sizeof(any)) < 0 || listen(c->lfd, 4096) < 0)
		die("%s: listener on :%d in %s: %s", kind_names[c->kind], c->srv_port, c->srv_netns, strerror(errno));
}

/* Accepts the connection just made and answers one request on it: 0, or -1 (errno set). */
static int rr_serve_one(struct bench_case *c, int cfd)
{
	int s = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC), err;

	if (s < 0)
		return -1;
	err = rr_exchange(cfd, true, s);
	close(s);
	return err;
}

/* One connect()+close(), socket() and setsockopt() outside the timed part; the time, or 0 on failure. */
static uint64_t one_op(struct bench_case *c)
{
	uint64_t t0, t1;
	int fd = bench_socket();

	if (fd < 0) {
		c->errors++;
		if (!c->first_errno)
			c->first_errno = -fd;
		return 0;
	}
	t0 = now_ns();
	if (connect(fd, (struct sockaddr *)&c->addr, sizeof(c->addr)) < 0) {
		if (!c->first_errno)
			c->first_errno = errno;
		c->errors++;
		close(fd);
		return 0;
	}
	if (kind_is_rr(c->kind) && rr_serve_one(c, fd) < 0) {
		if (!c->first_errno)
			c->first_errno = errno ? errno : EPROTO;
		c->errors++;
		close(fd);
		return 0;
	}
	close(fd);
	t1 = now_ns();
	return t1 - t0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint32_t *sorted, size_t n, double p)
{
	if (!n)
		return NAN;
	return sorted[(size_t)(p * (double)(n - 1) + 0.5)];
}

static void run_case_round(struct bench_case *c, const struct run_opts *o, long round)
{
	uint32_t *out = c->ns + c->nops, *tmp;
	unsigned long errors = c->errors;
	size_t got = 0;
	double sum = 0;
	long i;

	if (kind_is_rr(c->kind) && c->lfd < 0)
		rr_listen(c);
	enter_netns(c->netns);
	enter_cgroup(c->cgroup);
	for (i = 0; i < o->warmup; i++)
		one_op(c);
	c->errors = errors; /* warmup failures are not the measurement's; the probes judged the path */
	uint64_t deadline = now_ns() + (uint64_t)o->max_case_ms * 1000000ULL;

	for (i = 0; i < o->iters; i++) {
		uint64_t t;

		if ((i & 255) == 255 && now_ns() > deadline)
			break;
		t = one_op(c);

		if (!t)
			continue;
		if (t >= SLOW_OP_NS)
			c->slow++;
		out[got++] = t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
		sum += (double)t;
	}
	c->nops += got;
	tmp = malloc(got * sizeof(*tmp) + 1);
	if (!tmp)
		die("out of memory");
	memcpy(tmp, out, got * sizeof(*tmp));
	qsort(tmp, got, sizeof(*tmp), cmp_u32);
	c->round_median[round] = pct(tmp, got, 0.5);
	c->round_mean[round] = got ? sum / (double)got : NAN;
	free(tmp);
}

static void finish_case(struct bench_case *c)
{
	double sum = 0;
	size_t i;

	qsort(c->ns, c->nops, sizeof(*c->ns), cmp_u32);
	for (i = 0; i < c->nops; i++)
		sum += c->ns[i];
	c->mean = c->nops ? sum / (double)c->nops : NAN;
	c->median = pct(c->ns, c->nops, 0.5);
	c->p10 = pct(c->ns, c->nops, 0.10);
	c->p90 = pct(c->ns, c->nops, 0.90);
	c->p99 = pct(c->ns, c->nops, 0.99);
	c->max = c->nops ? c->ns[c->nops - 1] : NAN;
}

static struct bench_case *find_case(struct run_opts *o, enum kind k, int services)
{
	int i;

	for (i = 0; i < o->ncases; i++)
		if (o->cases[i].kind == k && (kind_is_direct(k) || o->cases[i].services == services))
			return &o->cases[i];
	return NULL;
}

static int sizes_of(struct run_opts *o, int *sizes)
{
	int n = 0, i, j;

	for (i = 0; i < o->ncases; i++) {
		int s = o->cases[i].services;

		if (kind_is_direct(o->cases[i].kind) || kind_is_rr(o->cases[i].kind) ||
		    o->cases[i].kind == K_SOCKLB_EXT)
			continue;
		for (j = 0; j < n && sizes[j] != s; j++)
			;
		if (j == n)
			sizes[n++] = s;
	}
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && sizes[j - 1] > sizes[j]; j--) {
			int t = sizes[j];

			sizes[j] = sizes[j - 1];
			sizes[j - 1] = t;
		}
	return n;
}

#define STAT(c, f) ((c) ? (c)->f : NAN)

/* The median over rounds of (this case's round median - the baseline's median in the same round): load that
 * drifts during the run moves both alike and cancels, where pooled medians would carry it. */
static double paired_diff(const struct bench_case *c, const struct bench_case *base, long rounds)
{
	double d[rounds > 0 ? rounds : 1], m;
	long r;

	if (!c || !base)
		return NAN;
	for (r = 0; r < rounds; r++)
		d[r] = c->round_median[r] - base->round_median[r];
	for (r = 1; r < rounds; r++)
		for (long j = r; j > 0 && d[j - 1] > d[j]; j--) {
			m = d[j];
			d[j] = d[j - 1];
			d[j - 1] = m;
		}
	return rounds % 2 ? d[rounds / 2] : (d[rounds / 2 - 1] + d[rounds / 2]) / 2;
}

static void json_num(FILE *f, const char *key, double v, bool comma)
{
	if (isnan(v))
		fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
	else
		fprintf(f, "\"%s\": %.1f%s", key, v, comma ? ", " : "");
}

static void json_ratio(FILE *f, const char *key, double v, bool comma)
{
	if (isnan(v))
		fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
	else
		fprintf(f, "\"%s\": %.4f%s", key, v, comma ? ", " : "");
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static const char *met(double v, double goal)
{
	return isnan(v) ? "n/a" : v <= goal ? "MET" : "NOT MET";
}

/*
 * What a user pays (issue 16), paired by round: connects to a service, to a pod of this node (which sockmap
 * inserts), to an address outside the node (nothing inserted: the pure tax), and connections that carry one
 * 64-byte request/response, both ends in the mesh vs neither. Printed, or as JSON rows into json.
 */
#define GOAL_SVC_NS    1500.0
#define GOAL_NONSVC_NS 500.0

static void user_cost(struct run_opts *o, const int *sizes, int nsizes, FILE *json)
{
	struct bench_case *direct = find_case(o, K_DIRECT, 0), *dext = find_case(o, K_DIRECT_EXT, 0);
	struct bench_case *drr = find_case(o, K_DIRECT_RR, 0);
	int i, rows = 0;

	if (!json)
		printf("\nwhat a user pays, paired by round (goals: service <= +%.0f ns, non-service <= +%.0f ns over "
		       "direct):\n",
		       GOAL_SVC_NS, GOAL_NONSVC_NS);
	for (i = 0; i < nsizes; i++) {
		struct bench_case *lb = find_case(o, K_SOCKLB, sizes[i]), *ln = find_case(o, K_SOCKLB_NONSVC, sizes[i]);
		struct bench_case *le = find_case(o, K_SOCKLB_EXT, sizes[i]),
				  *lrr = find_case(o, K_SOCKLB_RR, sizes[i]);
		struct bench_case *lnrr = find_case(o, K_SOCKLB_NONSVC_RR, sizes[i]);
		double svc = paired_diff(lb, direct, o->rounds), loc = paired_diff(ln, direct, o->rounds);
		double ext = paired_diff(le, dext, o->rounds), rr = paired_diff(lrr, drr, o->rounds);
		double nrr = paired_diff(lnrr, drr, o->rounds), base_rr = STAT(drr, median);

		if (json) {
			fprintf(json, "%s    {\"services\": %d, ", rows++ ? ",\n" : "", sizes[i]);
			json_num(json, "service_minus_direct_paired_ns", svc, true);
			json_num(json, "nonsvc_local_minus_direct_paired_ns", loc, true);
			json_num(json, "nonsvc_external_minus_direct_paired_ns", ext, true);
			json_num(json, "rr_direct_ns", base_rr, true);
			json_num(json, "rr_service_ns", STAT(lrr, median), true);
			json_num(json, "rr_service_minus_direct_paired_ns", rr, true);
			json_ratio(json, "rr_service_over_direct", STAT(lrr, median) / base_rr, true);
			json_num(json, "rr_nonsvc_ns", STAT(lnrr, median), true);
			json_num(json, "rr_nonsvc_minus_direct_paired_ns", nrr, true);
			json_ratio(json, "rr_nonsvc_over_direct", STAT(lnrr, median) / base_rr, false);
			fputs("}", json);
			continue;
		}
		printf("%9d services: service connect %+.0f ns (%s); non-service to a pod of this node %+.0f ns (%s; "
		       "sockhash insertion); to an address outside the node %+.0f ns (%s)\n",
		       sizes[i], svc, met(svc, GOAL_SVC_NS), loc, met(loc, GOAL_NONSVC_NS), ext,
		       met(ext, GOAL_NONSVC_NS));
		if (lrr || lnrr)
			printf("%9s           connect + one %d-byte request/response + close, both ends in the mesh vs "
			       "neither (%.0f ns): service %.0f ns (%+.0f, %.2fx), pod IP %.0f ns (%+.0f, %.2fx)\n",
			       "", RR_BYTES, base_rr, STAT(lrr, median), rr, STAT(lrr, median) / base_rr,
			       STAT(lnrr, median), nrr, STAT(lnrr, median) / base_rr);
	}
	if (json && rows)
		fputs("\n", json);
}

static void report(struct run_opts *o, double elapsed_s)
{
	int sizes[MAX_CASES], nsizes = sizes_of(o, sizes), i, j;
	struct bench_case *direct = find_case(o, K_DIRECT, 0);
	struct bench_case *lb_small = NULL, *lb_large = NULL, *ipt_small = NULL, *ipt_large = NULL;
	bool goal_over = true, goal_flat;
	double flat = NAN, ipt_growth = NAN;
	FILE *f;

	printf("\nconnect()+close() ns/op: median of all ops of %ld interleaved rounds x %ld ops (or %ld ms) per case, "
	       "mean in parentheses;\nthe dialed service is the LAST of N in KUBE-SERVICES (kube-proxy's worst case)\n",
	       o->rounds, o->iters, o->max_case_ms);
	printf("%9s | %15s | %15s | %15s | %15s | %18s\n", "services", "direct ns", "socklb ns", "socklb-direct ns",
	       "iptables ns", "iptables-direct ns");
	printf("----------+-----------------+-----------------+------------------+-----------------+"
	       "-------------------\n");
	for (i = 0; i < nsizes; i++) {
		struct bench_case *lb = find_case(o, K_SOCKLB, sizes[i]);
		struct bench_case *ipt = find_case(o, K_IPTABLES, sizes[i]);
		double d = STAT(direct, median), l = STAT(lb, median), t = STAT(ipt, median);
		char b1[32], b2[32], b3[32];

		snprintf(b1, sizeof(b1), "%.0f (%.0f)", d, STAT(direct, mean));
		snprintf(b2, sizeof(b2), "%.0f (%.0f)", l, STAT(lb, mean));
		snprintf(b3, sizeof(b3), "%.0f (%.0f)", t, STAT(ipt, mean));
		printf("%9d | %15s | %15s | %16.0f | %15s | %18.0f\n", sizes[i], b1, b2, l - d, b3, t - d);
		if (!(l - d <= 1000.0))
			goal_over = false;
	}
	if (nsizes > 0) {
		lb_small = find_case(o, K_SOCKLB, sizes[0]);
		lb_large = find_case(o, K_SOCKLB, sizes[nsizes - 1]);
		ipt_small = find_case(o, K_IPTABLES, sizes[0]);
		ipt_large = find_case(o, K_IPTABLES, sizes[nsizes - 1]);
		flat = STAT(lb_large, median) / STAT(lb_small, median);
		ipt_growth = STAT(ipt_large, median) / STAT(ipt_small, median);
	}
	goal_flat = flat <= 1.10;
	printf("\nother cost of each mechanism, for connections to a non-service address (the backend IP):\n");
	for (i = 0; i < nsizes; i++) {
		struct bench_case *ln = find_case(o, K_SOCKLB_NONSVC, sizes[i]);
		struct bench_case *tn = find_case(o, K_IPTABLES_NONSVC, sizes[i]);

		printf("%9d services: from the mesh cgroup %.0f ns (+%.0f), from the iptables netns %.0f ns (+%.0f)\n",
		       sizes[i], STAT(ln, median), STAT(ln, median) - STAT(direct, median), STAT(tn, median),
		       STAT(tn, median) - STAT(direct, median));
	}
	printf("\nthe same differences paired by round (median over rounds of this round's difference):\n");
	for (i = 0; i < nsizes; i++)
		printf("%9d services: socklb-direct %.0f ns, iptables-direct %.0f ns, socklb_nonsvc-direct %.0f ns, "
		       "iptables_nonsvc-direct %.0f ns\n",
		       sizes[i], paired_diff(find_case(o, K_SOCKLB, sizes[i]), direct, o->rounds),
		       paired_diff(find_case(o, K_IPTABLES, sizes[i]), direct, o->rounds),
		       paired_diff(find_case(o, K_SOCKLB_NONSVC, sizes[i]), direct, o->rounds),
		       paired_diff(find_case(o, K_IPTABLES_NONSVC, sizes[i]), direct, o->rounds));
	user_cost(o, sizes, nsizes, NULL);
	printf("\nround-to-round spread of the medians (min..max ns):\n");
	for (i = 0; i < o->ncases; i++) {
		struct bench_case *c = &o->cases[i];
		double mn = INFINITY, mx = -INFINITY;
		long r;

		for (r = 0; r < o->rounds; r++) {
			mn = fmin(mn, c->round_median[r]);
			mx = fmax(mx, c->round_median[r]);
		}
		printf("  %-16s %6d: %zu ops, %.0f..%.0f  p10 %.0f p90 %.0f p99 %.0f max %.0f  ops>1ms %lu  errors "
		       "%lu%s%s\n",
		       kind_names[c->kind], c->services, c->nops, mn, mx, c->p10, c->p90, c->p99, c->max, c->slow,
		       c->errors, c->first_errno ? " first: " : "", c->first_errno ? strerror(c->first_errno) : "");
	}
	if (nsizes > 0) {
		printf("\ngoal 1: socklb - direct <= 1000 ns at every size: %s\n", goal_over ? "MET" : "NOT MET");
		printf("goal 2: socklb at %d / socklb at %d = %.3f (<= 1.10): %s\n", sizes[nsizes - 1], sizes[0], flat,
		       goal_flat ? "MET" : "NOT MET");
		printf("iptables at %d / iptables at %d = %.3f\n", sizes[nsizes - 1], sizes[0], ipt_growth);
	}
	printf("elapsed %.1f s\n", elapsed_s);

	if (!o->json)
		return;
	f = fopen(o->json, "w");
	if (!f)
		die("cannot write %s: %s", o->json, strerror(errno));
	fprintf(f, "{\n  \"bench\": \"socklb\",\n  \"unit\": \"ns per connect()+close()\",\n");
	fprintf(f, "  \"statistic\": \"median over all timed ops of all rounds (mean also given)\",\n");
	fprintf(f,
		"  \"iters_per_round\": %ld, \"max_case_ms\": %ld, \"rounds\": %ld, \"warmup_per_round\": %ld, "
		"\"client_cpu\": %d,\n",
		o->iters, o->max_case_ms, o->rounds, o->warmup, o->cpu);
	fprintf(f, "  \"dialed_service\": \"the last of N, last in KUBE-SERVICES\",\n");
	fprintf(f, "  \"close\": \"SO_LINGER 0 (RST), no TIME_WAIT\",\n  \"elapsed_s\": %.1f,\n  \"meta\": {",
		elapsed_s);
	for (i = 0; i < o->nmeta; i++) {
		const char *eq = strchr(o->meta[i], '=');
		char k[64];

		if (!eq)
			continue;
		snprintf(k, sizeof(k), "%.*s", (int)(eq - o->meta[i]), o->meta[i]);
		fprintf(f, "%s", i ? ", " : "");
		json_str(f, k);
		fputs(": ", f);
		json_str(f, eq + 1);
	}
	fprintf(f, "},\n  \"table\": [\n");
	for (i = 0; i < nsizes; i++) {
		struct bench_case *lb = find_case(o, K_SOCKLB, sizes[i]);
		struct bench_case *ipt = find_case(o, K_IPTABLES, sizes[i]);
		struct bench_case *ln = find_case(o, K_SOCKLB_NONSVC, sizes[i]);
		struct bench_case *tn = find_case(o, K_IPTABLES_NONSVC, sizes[i]);
		double d = STAT(direct, median);

		fprintf(f, "    {\"services\": %d, ", sizes[i]);
		json_num(f, "direct_ns", d, true);
		json_num(f, "socklb_ns", STAT(lb, median), true);
		json_num(f, "socklb_minus_direct_ns", STAT(lb, median) - d, true);
		json_num(f, "iptables_ns", STAT(ipt, median), true);
		json_num(f, "iptables_minus_direct_ns", STAT(ipt, median) - d, true);
		json_num(f, "direct_mean_ns", STAT(direct, mean), true);
		json_num(f, "socklb_mean_ns", STAT(lb, mean), true);
		json_num(f, "iptables_mean_ns", STAT(ipt, mean), true);
		json_num(f, "socklb_minus_direct_paired_ns", paired_diff(lb, direct, o->rounds), true);
		json_num(f, "iptables_minus_direct_paired_ns", paired_diff(ipt, direct, o->rounds), true);
		json_num(f, "socklb_nonsvc_ns", STAT(ln, median), true);
		json_num(f, "iptables_nonsvc_ns", STAT(tn, median), false);
		fprintf(f, "}%s\n", i + 1 < nsizes ? "," : "");
	}
	fprintf(f, "  ],\n  \"user_cost\": [\n");
	user_cost(o, sizes, nsizes, f);
	fprintf(f, "  ],\n  \"goals\": {\"socklb_minus_direct_max_ns\": 1000, \"socklb_over_direct_met\": %s, ",
		goal_over ? "true" : "false");
	json_ratio(f, "socklb_largest_over_smallest", flat, true);
	fprintf(f, "\"socklb_flat_max_ratio\": 1.1, \"socklb_flat_met\": %s, ", goal_flat ? "true" : "false");
	json_ratio(f, "iptables_largest_over_smallest", ipt_growth, false);
	fprintf(f, "},\n  \"cases\": [\n");
	for (i = 0; i < o->ncases; i++) {
		struct bench_case *c = &o->cases[i];

		fprintf(f,
			"    {\"kind\": \"%s\", \"services\": %d, \"addr\": \"%s\", \"netns\": ", kind_names[c->kind],
			c->services, c->addr_str);
		json_str(f, c->netns);
		fputs(", \"cgroup\": ", f);
		json_str(f, c->cgroup);
		fprintf(f, ", \"ops\": %zu, \"errors\": %lu, \"ops_over_1ms\": %lu, ", c->nops, c->errors, c->slow);
		json_num(f, "median_ns", c->median, true);
		json_num(f, "mean_ns", c->mean, true);
		json_num(f, "p10_ns", c->p10, true);
		json_num(f, "p90_ns", c->p90, true);
		json_num(f, "p99_ns", c->p99, true);
		json_num(f, "max_ns", c->max, true);
		fputs("\"round_medians_ns\": [", f);
		for (j = 0; j < o->rounds; j++)
			fprintf(f, "%s%.0f", j ? ", " : "", c->round_median[j]);
		fputs("], \"round_means_ns\": [", f);
		for (j = 0; j < o->rounds; j++)
			fprintf(f, "%s%.0f", j ? ", " : "", c->round_mean[j]);
		fprintf(f, "]}%s\n", i + 1 < o->ncases ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	if (fclose(f))
		die("writing %s: %s", o->json, strerror(errno));
	printf("wrote %s\n", o->json);
}

static int cmd_run(int argc, char **argv)
{
	static const struct option lo[] = { { "case", required_argument, NULL, 'c' },
					    { "iters", required_argument, NULL, 'n' },
					    { "rounds", required_argument, NULL, 'r' },
					    { "warmup", required_argument, NULL, 'w' },
					    { "cpu", required_argument, NULL, 'p' },
					    { "max-case-ms", required_argument, NULL, 'x' },
					    { "json", required_argument, NULL, 'j' },
					    { "meta", required_argument, NULL, 'm' },
					    { NULL, 0, NULL, 0 } };
	static struct run_opts o = { .iters = 10000, .rounds = 12, .warmup = 500, .max_case_ms = 1500, .cpu = -1 };
	int order[MAX_CASES], i, c;
	uint64_t start;
	long r;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			parse_case(&o, optarg);
			break;
		case 'n':
			o.iters = atol(optarg);
			break;
		case 'r':
			o.rounds = atol(optarg);
			break;
		case 'w':
			o.warmup = atol(optarg);
			break;
		case 'p':
			o.cpu = atoi(optarg);
			break;
		case 'x':
			o.max_case_ms = atol(optarg);
			break;
		case 'j':
			o.json = optarg;
			break;
		case 'm':
			if (o.nmeta < MAX_META)
				o.meta[o.nmeta++] = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!o.ncases || o.iters < 1 || o.rounds < 1 || o.warmup < 0 || o.max_case_ms < 1)
		die("run: need --case ... and positive --iters/--rounds/--max-case-ms");
	if (!find_case(&o, K_DIRECT, 0))
		die("run: a direct case is the baseline and is required");
	for (i = 0; i < o.ncases; i++) {
		struct bench_case *bc = &o.cases[i];

		bc->ns = malloc((size_t)(o.iters * o.rounds) * sizeof(*bc->ns));
		bc->round_median = calloc((size_t)o.rounds, sizeof(double));
		bc->round_mean = calloc((size_t)o.rounds, sizeof(double));
		if (!bc->ns || !bc->round_median || !bc->round_mean)
			die("out of memory");
		order[i] = i;
	}
	pin_cpu(o.cpu);
	srand(12345);
	start = now_ns();
	for (r = 0; r < o.rounds; r++) {
		/* A new order every round, so that no case always follows the same neighbour. */
		for (i = o.ncases - 1; i > 0; i--) {
			int j = rand() % (i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (i = 0; i < o.ncases; i++)
			run_case_round(&o.cases[order[i]], &o, r);
		fprintf(stderr, "socklb: round %ld/%ld done (%.1f s)\n", r + 1, o.rounds,
			(double)(now_ns() - start) / 1e9);
	}
	for (i = 0; i < o.ncases; i++)
		finish_case(&o.cases[i]);
	report(&o, (double)(now_ns() - start) / 1e9);
	for (i = 0; i < o.ncases; i++)
		if (o.cases[i].errors > (unsigned long)(o.iters * o.rounds) / 1000)
			die("case %s/%d: %lu failed connects (first: %s)", kind_names[o.cases[i].kind],
			    o.cases[i].services, o.cases[i].errors, strerror(o.cases[i].first_errno));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr,
			"usage: socklb gen|serve|probe|run ... (see the comment at the top of bench/socklb.c)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "gen") == 0)
		return cmd_gen(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "probe") == 0)
		return cmd_probe(argc - 1, argv + 1);
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	fprintf(stderr, "socklb: unknown mode %s\n", argv[1]);
	return 2;
}
