// SPDX-License-Identifier: Apache-2.0
/*
 * Closing established plaintext connections with real sockets, each test in network namespaces of its own
 * (the test process unshares one: "the node"): sock_diag's dump and SOCK_DESTROY of an accepted dual-stack
 * connection (v4-mapped), and a whole sweep: a "pod" namespace behind a veth, found through a namespace file
 * (its link-netnsid), its connections judged against a snapshot's tables, the denied ones destroyed (their
 * clients see a reset) over IPv4 (v4-mapped) and IPv6, the allowed ones and the pod's own outbound connection
 * left alone, the closes counted; a missing namespace counted; the time a sweep takes.
 * Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN): the unit tests run as root on this machine.
 */
#include "test_snapshot_of.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <inttypes.h>
#include <time.h>

#include "compile/snapshot.h"
#include "core/strbuf.h"
#include "compile/plain_judge.h"
#include "daemon/plain_sweep.h"
#include "datapath/nl_raw.h"
#include "datapath/sock_diag.h"

/* Every pod the snapshot guards swept (as after a start). */
static void request_all(struct plain_sweeper *sw, struct xm_snapshot *s)
{
	struct plain_rules r = { .authz = &s->authz_plain, .mtls = &s->mtls, .local = &s->local };
	struct xm_local_ip_key *pods;
	long n = plain_rules_pods(&r, &pods);

	cr_assert_gt(n, 0);
	plain_sweeper_request(sw, s, pods, (size_t)n);
	free(pods);
}

/*
 * What a test leaves outside its own process: the namespace directory of symlinks under /tmp and the pod
 * children (blocked on a pipe, holding their namespaces and veths). Removed by the .fini below, which criterion
 * runs after the test body also when an assertion failed (each test in a process of its own).
 */
static struct {
	char dir[32];
	pid_t pods[32];
	int n_pods;
} leftovers;

/* A fresh /tmp/xm-netns-XXXXXX, remembered for sweep_cleanup; its path copied into dir. */
static void netns_dir(char *dir, size_t size)
{
	snprintf(leftovers.dir, sizeof(leftovers.dir), "/tmp/xm-netns-XXXXXX");
	cr_assert_neq(mkdtemp(leftovers.dir), NULL);
	snprintf(dir, size, "%s", leftovers.dir);
}

/* fork() of a pod child, remembered for sweep_cleanup. */
static pid_t fork_pod(void)
{
	pid_t pid;

	cr_assert_lt(leftovers.n_pods, (int)(sizeof(leftovers.pods) / sizeof(leftovers.pods[0])));
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid > 0)
		leftovers.pods[leftovers.n_pods++] = pid;
	else /* the child's own exit must not clean up its siblings */
		memset(&leftovers, 0, sizeof(leftovers));
	return pid;
}

/* The test's children killed and reaped (a no-op for those already reaped), its namespace directory removed. */
static void sweep_cleanup(void)
{
	DIR *d;
	struct dirent *e;
	char path[PATH_MAX];

	for (int i = 0; i < leftovers.n_pods; i++)
		if (kill(leftovers.pods[i], SIGKILL) == 0)
			waitpid(leftovers.pods[i], NULL, 0);
	if (!leftovers.dir[0] || !(d = opendir(leftovers.dir)))
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", leftovers.dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(leftovers.dir);
}

static void new_netns(void)
{
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s (the unit tests need root)", strerror(errno));
	cr_assert_eq(system("ip link set lo up"), 0);
}

/* A listening TCP socket on [::]:port (dual-stack), or on addr (IPv4) when given. */
static int listener(const char *addr, uint16_t port)
{
	int one = 1, off = 0, fd;

	if (addr) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

		fd = socket(AF_INET, SOCK_STREAM, 0);
		inet_pton(AF_INET, addr, &a.sin_addr);
		cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %s: %s", addr, strerror(errno));
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

		fd = socket(AF_INET6, SOCK_STREAM, 0);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	}
	cr_assert_eq(listen(fd, 8), 0);
	return fd;
}

/* A connected TCP client from src (NULL: any) to dst:port. */
static int client(const char *src, const char *dst, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (src) {
		struct sockaddr_in b = { .sin_family = AF_INET };

		inet_pton(AF_INET, src, &b.sin_addr);
		cr_assert_eq(bind(fd, (struct sockaddr *)&b, sizeof(b)), 0, "bind %s: %s", src, strerror(errno));
	}
	inet_pton(AF_INET, dst, &a.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect %s: %s", dst, strerror(errno));
	return fd;
}

/* What a read on fd ends with within ms: 0 (EOF), -errno, or 1 (data or nothing: still open). */
static int read_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	ssize_t n;

	if (poll(&p, 1, ms) <= 0)
		return 1;
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	return n < 0 ? -errno : n == 0 ? 0 : 1;
}

static int read_outcome(int fd)
{
	return read_within(fd, 1000);
}

struct found {
	uint16_t port;
	int n;
	struct xm_diag_sock s;
};

static int find_port(const struct xm_diag_sock *s, void *arg)
{
	struct found *f = arg;

	if (s->state == TCP_ESTABLISHED && ntohs(s->id.idiag_sport) == f->port) {
		f->s = *s;
		f->n++;
	}
	return 0;
}

Test(plain_sweep, sock_diag_dumps_and_destroys_an_accepted_v4_mapped_connection, .fini = sweep_cleanup)
{
	int l, c, a, fd;
	struct found f = { .port = 9080 };

	new_netns();
	l = listener(NULL, 9080);
	c = client(NULL, "127.0.0.1", 9080);
	a = accept(l, NULL, NULL);
	cr_assert_geq(a, 0);
	fd = nl_raw_open(NETLINK_SOCK_DIAG);
	cr_assert_geq(fd, 0);
	cr_assert_eq(sock_diag_dump_tcp(fd, AF_INET6, 1u << TCP_ESTABLISHED, find_port, &f), 0);
	cr_assert_eq(f.n, 1, "the accepted socket once in the AF_INET6 dump, got %d", f.n);
	cr_assert_eq(f.s.family, AF_INET6);
	cr_assert_eq(((uint8_t *)f.s.id.idiag_dst)[10], 0xff, "a v4-mapped peer");
	cr_assert_eq(sock_diag_destroy_tcp(fd, &f.s), 0);
	cr_assert_eq(read_outcome(c), -ECONNRESET, "the client sees a reset");
	cr_assert_eq(read_outcome(a), -ECONNABORTED, "the pod's application sees ECONNABORTED");
	cr_assert_eq(sock_diag_destroy_tcp(fd, &f.s), -ENOENT, "gone");
	close(fd);
	close(a);
	close(c);
	close(l);
}

/* A connected TCP client from src to dst:port over IPv6, or -1. */
static int client6(const char *src, const char *dst, uint16_t port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) }, b = { .sin6_family = AF_INET6 };
	int fd = socket(AF_INET6, SOCK_STREAM, 0);

	inet_pton(AF_INET6, src, &b.sin6_addr);
	inet_pton(AF_INET6, dst, &a.sin6_addr);
	if (bind(fd, (struct sockaddr *)&b, sizeof(b)) || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	return fd;
}

/*
 * Runs in the child, in the "pod" namespace (10.1.0.5, fd00:1::5): sockets, then what became of them. Exit 0,
 * or 20 + a bit per socket whose fate is wrong.
 */
static int pod_side(int go, int ready, int check)
{
	char b;
	int l, out_l, fd[5], want[5] = { -ECONNRESET, 1, 1, -ECONNRESET, 1 }, bad = 0;

	if (read(go, &b, 1) != 1 ||
	    system("ip link set lo up && ip addr add 10.2.0.7/32 dev lo && ip addr add 10.3.0.7/32 dev lo && "
		   "ip addr add 10.1.0.5/24 dev eth0 && ip link set eth0 up && ip addr add 10.2.0.9/32 dev lo && "
		   "ip addr add fd00:1::5/64 dev eth0 nodad && ip addr add fd00:2::7/128 dev lo nodad && "
		   "ip addr add fd00:3::7/128 dev lo nodad"))
		return 10;
	l = listener(NULL, 9080);
	out_l = listener("10.2.0.9", 7000); /* the peer of the pod's outbound connection: in the denied CIDR */
	fd[0] = client("10.2.0.7", "10.1.0.5", 9080); /* denied */
	fd[1] = client("10.3.0.7", "10.1.0.5", 9080);
	fd[2] = client("10.1.0.5", "10.2.0.9", 7000);	 /* the pod as the client: never judged */
	fd[3] = client6("fd00:2::7", "fd00:1::5", 9080); /* denied */
	fd[4] = client6("fd00:3::7", "fd00:1::5", 9080);
	if (fd[3] < 0 || fd[4] < 0)
		return 13;
	for (int i = 0; i < 4; i++)
		if (accept(l, NULL, NULL) < 0)
			return 11;
	if (accept(out_l, NULL, NULL) < 0)
		return 11;
	if (write(ready, "r", 1) != 1 || read(check, &b, 1) != 1)
		return 12;
	for (int i = 0; i < 5; i++)
		if (read_outcome(fd[i]) != want[i])
			bad |= 1 << i;
	return bad ? 20 + bad : 0;
}

#define POD_WEB                                                                                                        \
	"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\n  labels:\n    app: web\n"      \
	"spec:\n  nodeName: n\n  serviceAccountName: web\nstatus:\n  podIP: 10.1.0.5\n"
#define DENY_10_2                                                                                                      \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-2\n  namespace: "   \
	"default\nspec:\n  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules:\n  - from:\n    - source:\n"  \
	"        ipBlocks: [10.2.0.0/16]\n"

#define POD_WEB_DUAL                                                                                                   \
	"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\n  labels:\n    app: web\n"      \
	"spec:\n  nodeName: n\n  serviceAccountName: web\nstatus:\n  podIPs: [{ip: 10.1.0.5}, {ip: \"fd00:1::5\"}]\n"
#define DENY_DUAL                                                                                                      \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-2\n  namespace: "   \
	"default\nspec:\n  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules:\n  - from:\n    - source:\n"  \
	"        ipBlocks: [10.2.0.0/16, \"fd00:2::/32\"]\n"

Test(plain_sweep, a_sweep_destroys_the_denied_connections_of_a_dual_stack_pod_found_by_its_veth, .fini = sweep_cleanup)
{
	int go[2], ready[2], check[2], status;
	char dir[32], link[64], target[64], cmd[160], b;
	const char *dirs[] = { dir, NULL };
	struct plain_close_count *v;
	struct plain_sweep_problems p;
	struct plain_sweeper *sw;
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };
	struct xm_snapshot *s = snapshot_from_yaml(POD_WEB_DUAL DENY_DUAL, &opts);
	size_t n;
	pid_t pid;

	cr_assert_gt(s->authz_plain.n, 0);

	new_netns(); /* the node */
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(check), 0);
	pid = fork_pod();
	if (pid == 0) {
		if (unshare(CLONE_NEWNET))
			_exit(9);
		_exit(pod_side(go[0], ready[1], check[0]));
	}
	usleep(100000); /* the child's unshare */
	snprintf(cmd, sizeof(cmd),
		 "ip link add vpod type veth peer name eth0 netns %d && ip link set vpod up && "
		 "ip addr add 10.1.0.1/24 dev vpod",
		 (int)pid);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	netns_dir(dir, sizeof(dir));
	snprintf(link, sizeof(link), "%s/cni-pod", dir);
	snprintf(target, sizeof(target), "/proc/%d/ns/net", (int)pid);
	cr_assert_eq(symlink(target, link), 0);
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(read(ready[0], &b, 1), 1, "the pod's sockets");

	sw = plain_sweeper_new(dirs);
	cr_assert_not_null(sw);
	request_all(sw, s);
	plain_sweeper_wait(sw);
	cr_assert_eq(write(check[1], "c", 1), 1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0,
		     "pod side %d (20 + bits: 1 the denied IPv4 one not reset, 2 the allowed one closed, 4 the "
		     "outbound one closed, 8 the denied IPv6 one not reset, 16 the allowed IPv6 one closed)",
		     WEXITSTATUS(status));
	cr_assert_eq(plain_sweeper_counts(sw, &v, &n, &p), 0);
	cr_assert_eq(n, 2, "one close per family of the pod's address");
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(v[i].n, 1);
		cr_assert_eq(v[i].port, 9080);
		cr_assert_not(v[i].strict);
		cr_assert_eq(v[i].policy, authz_policy_id("default", "deny-2"));
	}
	cr_assert_neq(v[0].family, v[1].family);
	cr_assert_eq(p.netns_not_found, 0);
	cr_assert_eq(p.destroy_unsupported + p.destroy_failed, 0);
	free(v);
	plain_sweeper_free(sw);
	snapshot_put(s);
}

Test(plain_sweep, a_pod_without_a_namespace_is_counted_not_fatal, .fini = sweep_cleanup)
{
	char dir[32];
	const char *dirs[] = { dir, NULL };
	struct plain_close_count *v;
	struct plain_sweep_problems p;
	struct plain_sweeper *sw;
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };
	struct xm_snapshot *s = snapshot_from_yaml(POD_WEB DENY_10_2, &opts);
	size_t n;

	new_netns();
	netns_dir(dir, sizeof(dir));
	sw = plain_sweeper_new(dirs);
	cr_assert_not_null(sw);
	request_all(sw, s);
	request_all(sw, s); /* coalesced: at most one more sweep */
	plain_sweeper_wait(sw);
	cr_assert_eq(plain_sweeper_counts(sw, &v, &n, &p), 0);
	cr_assert_eq(n, 0);
	cr_assert_geq(p.netns_not_found, 1);
	cr_assert_leq(p.netns_not_found, 2);
	free(v);
	plain_sweeper_free(sw);
	snapshot_put(s);
}

/* Pod k of the timing test, in its namespace: conns connections, the even ones from a denied address. */
static int many_side(int k, int conns, int go, int ready, int check)
{
	char b, cmd[256];
	int l, *c = calloc((size_t)conns, sizeof(*c)), bad = 0;

	snprintf(cmd, sizeof(cmd),
		 "ip link set lo up && ip addr add 10.2.0.7/32 dev lo && ip addr add 10.3.0.7/32 dev lo && "
		 "ip addr add 10.1.%d.5/24 dev eth0 && ip link set eth0 up",
		 k);
	if (!c || read(go, &b, 1) != 1 || system(cmd))
		return 10;
	snprintf(cmd, sizeof(cmd), "10.1.%d.5", k);
	l = listener(NULL, 9080);
	for (int i = 0; i < conns; i++) {
		c[i] = client(i % 2 ? "10.3.0.7" : "10.2.0.7", cmd, 9080);
		if (accept(l, NULL, NULL) < 0)
			return 11;
	}
	if (write(ready, "r", 1) != 1 || read(check, &b, 1) != 1)
		return 12;
	for (int i = 0; i < conns; i++)
		bad += read_within(c[i], i % 2 ? 0 : 200) != (i % 2 ? 1 : -ECONNRESET);
	return bad ? 20 : 0;
}

/*
 * The cost of a sweep of PODS pods behind veths with CONNS connections each, half of them denied. Printed
 * (cr_log_info); asserted only to finish, and to close exactly the denied ones. XM_SWEEP_CHILD_EHASH=N: the pods'
 * namespaces get TCP hash tables of their own (net.ipv4.tcp_child_ehash_entries).
 */
static void sweep_timed(const int PODS, const int CONNS)
{
	struct strbuf yaml = { 0 };
	char dir[32], link[64], target[64], cmd[200], b, *path;
	const char *dirs[] = { dir, NULL }, *paths[1];
	int(*go)[2] = calloc((size_t)PODS, sizeof(*go)), (*ready)[2] = calloc((size_t)PODS, sizeof(*ready)),
	(*check)[2] = calloc((size_t)PODS, sizeof(*check)), status;
	pid_t *pid = calloc((size_t)PODS, sizeof(*pid));
	struct plain_close_count *v;
	struct plain_sweep_problems p;
	struct plain_sweeper *sw;
	struct xm_snapshot *s;
	struct xm_config cfg;
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };
	struct timespec t0, t1;
	uint64_t closed = 0;
	size_t n;
	int err;

	for (int k = 0; k < PODS; k++)
		sb_printf(
		    &yaml,
		    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web%d\n  namespace: default\n  labels:\n"
		    "    app: web\nspec:\n  nodeName: n\n  serviceAccountName: web\nstatus:\n  podIP: 10.1.%d.5\n",
		    k, k);
	sb_printf(&yaml, "%s", DENY_10_2);
	path = temp_yaml(yaml.buf);
	paths[0] = path;
	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	sb_free(&yaml);
	s = snapshot_build(&cfg, &opts, &err);
	config_free(&cfg);
	cr_assert_not_null(s);

	new_netns();
	if (getenv("XM_SWEEP_CHILD_EHASH")) { /* the pods' namespaces with TCP hash tables of their own */
		snprintf(cmd, sizeof(cmd), "sysctl -qw net.ipv4.tcp_child_ehash_entries=%s",
			 getenv("XM_SWEEP_CHILD_EHASH"));
		cr_assert_eq(system(cmd), 0, "%s", cmd);
	}
	netns_dir(dir, sizeof(dir));
	for (int k = 0; k < PODS; k++) {
		cr_assert_eq(pipe(go[k]), 0);
		cr_assert_eq(pipe(ready[k]), 0);
		cr_assert_eq(pipe(check[k]), 0);
		pid[k] = fork_pod();
		if (pid[k] == 0) {
			struct rlimit fds = { .rlim_cur = 2 * (rlim_t)CONNS + 64, .rlim_max = 2 * (rlim_t)CONNS + 64 };

			if (unshare(CLONE_NEWNET) || (CONNS > 400 && setrlimit(RLIMIT_NOFILE, &fds)))
				_exit(9);
			_exit(many_side(k, CONNS, go[k][0], ready[k][1], check[k][0]));
		}
	}
	usleep(200000);
	for (int k = 0; k < PODS; k++) {
		snprintf(cmd, sizeof(cmd),
			 "ip link add vpod%d type veth peer name eth0 netns %d && ip link set vpod%d up", k,
			 (int)pid[k], k);
		cr_assert_eq(system(cmd), 0, "%s", cmd);
		snprintf(link, sizeof(link), "%s/cni-%d", dir, k);
		snprintf(target, sizeof(target), "/proc/%d/ns/net", (int)pid[k]);
		cr_assert_eq(symlink(target, link), 0);
		cr_assert_eq(write(go[k][1], "g", 1), 1);
	}
	for (int k = 0; k < PODS; k++)
		cr_assert_eq(read(ready[k][0], &b, 1), 1, "pod %d's sockets", k);
	sw = plain_sweeper_new(dirs);
	cr_assert_not_null(sw);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	request_all(sw, s);
	plain_sweeper_wait(sw);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int k = 0; k < PODS; k++) {
		cr_assert_eq(write(check[k][1], "c", 1), 1);
		cr_assert_eq(waitpid(pid[k], &status, 0), pid[k]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "pod %d: %d", k, WEXITSTATUS(status));
	}
	cr_assert_eq(plain_sweeper_counts(sw, &v, &n, &p), 0);
	for (size_t i = 0; i < n; i++)
		closed += v[i].n;
	cr_assert_eq(closed, PODS * CONNS / 2);
	cr_log_info("plain_sweep: %d pods, %d connections judged, %" PRIu64 " destroyed in %.1f ms", PODS, PODS * CONNS,
		    closed, (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	free(v);
	plain_sweeper_free(sw);
	snapshot_put(s);
	free(go);
	free(ready);
	free(check);
	free(pid);
}

Test(plain_sweep, sweep_time_20_pods_1000_connections, .timeout = 60, .fini = sweep_cleanup)
{
	sweep_timed(20, 50);
}

/* One busy pod: the cost grows with its connections, linearly. */
Test(plain_sweep, sweep_time_1_pod_8000_connections, .timeout = 60, .fini = sweep_cleanup)
{
	sweep_timed(1, 8000);
}
