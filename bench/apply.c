// SPDX-License-Identifier: Apache-2.0
/*
 * The cost of applying a config change at scale (scripts/bench.sh section apply).
 *
 *   apply gen --services N --dir DIR [--per-file K]
 *       N Services with their EndpointSlices (1-3 endpoints each, spread over three nodes) and one
 *       DestinationRule per 100 Services, K Services per file (default 100): DIR/ns-NNN.yaml.
 *   apply change --dir DIR --round R
 *       Changes one object: Service svc-00000's EndpointSlice gets endpoint 10.250.R/256.R%256 (a new one each
 *       round), written to a temporary file and renamed over ns-000.yaml as kubelet and editors do.
 *   apply inproc --dir DIR [--reloads R]
 *       Without an agent or BPF: loads and compiles DIR R times, changing one object before each reload,
 *       and prints the time of each step (for profiling the config path alone).
 *   apply probe --admin SOCKET --seconds S [--interval-ms 5]
 *       Sends "ping" to the agent's admin socket every 5 ms for S seconds and prints the slowest answer's
 *       time in ms and the number of answers. The control loop answers "pong" at no cost: the delay is how
 *       long the loop was busy elsewhere (an apply), the worst control-loop stall a client saw.
 *   apply probe --metrics ADDR --seconds S [--path /metrics] [--interval-ms 5]
 *       The same over HTTP: with /metrics, the time of whole scrapes (served on the agent's metrics thread).
 *   apply fill --pin DIR --count N
 *       Puts N entries into the pinned xm_conn_metrics (clients x the published service ports and backends),
 *       as a busy node's socket-path Istio metrics would: what a scrape has to walk and label.
 */
#define BENCH_NAME "apply"
#include "bench_util.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdint.h>
#include <bpf/bpf.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "compile/compile.h"
#include "config/model.h"
#include "core/log.h"

#define PER_RULE 100

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Resident set size in MB, from /proc/self/statm. */
static double rss_mb(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static void gen_service(FILE *f, int i, int extra_round)
{
	int neps = i % 3 + 1;

	fprintf(f,
		"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%05d\n  namespace: ns-%03d\nspec:\n"
		"  type: ClusterIP\n  clusterIP: 10.96.%d.%d\n  ports:\n  - name: tcp\n    port: 80\n"
		"    protocol: TCP\n    targetPort: 8080\n",
		i, i / 100, i >> 8, i & 255);
	fprintf(f,
		"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-%05d-abcde\n"
		"  namespace: ns-%03d\n  labels:\n    kubernetes.io/service-name: svc-%05d\naddressType: IPv4\n"
		"ports:\n- name: tcp\n  port: 8080\n  protocol: TCP\nendpoints:\n",
		i, i / 100, i);
	for (int k = 0; k < neps; k++) {
		int a = i * 3 + k;

		fprintf(f,
			"- addresses:\n  - \"10.%d.%d.%d\"\n  conditions:\n    ready: true\n  nodeName: node%d\n"
			"  targetRef:\n    kind: Pod\n    name: svc-%05d-%d\n",
			200 + a / 65536, (a / 256) % 256, a % 256, k + 1, i, k);
	}
	if (extra_round > 0)
		fprintf(f, "- addresses:\n  - \"10.250.%d.%d\"\n  conditions:\n    ready: true\n  nodeName: node1\n",
			extra_round / 256 % 256, extra_round % 256);
	if (i % PER_RULE == 0)
		fprintf(f,
			"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: svc-%05d\n"
			"  namespace: ns-%03d\nspec:\n  host: svc-%05d.ns-%03d.svc.cluster.local\n  trafficPolicy:\n"
			"    loadBalancer:\n      simple: ROUND_ROBIN\n    outlierDetection:\n"
			"      consecutive5xxErrors: 5\n      interval: 10s\n",
			i, i / 100, i, i / 100);
}

/* DIR/ns-NNN.yaml for the file'th group of per_file Services; round > 0 changes svc-00000's slice. */
static void write_file(const char *dir, int file, int per_file, int n, int round)
{
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/ns-%03d.yaml", dir, file);
	snprintf(tmp, sizeof(tmp), "%s/.ns-%03d.yaml.tmp", dir, file);
	f = fopen(tmp, "w");
	if (!f)
		die("%s: %s", tmp, strerror(errno));
	for (int i = file * per_file; i < (file + 1) * per_file && i < n; i++)
		gen_service(f, i, i == 0 ? round : 0);
	if (fclose(f))
		die("%s: %s", tmp, strerror(errno));
	if (rename(tmp, path))
		die("rename %s: %s", path, strerror(errno));
}

static void write_meta(const char *dir, int n, int per_file)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/.bench-apply", dir);
	f = fopen(path, "w");
	if (!f || fprintf(f, "%d %d\n", n, per_file) < 0 || fclose(f))
		die("%s: %s", path, strerror(errno));
}

static void read_meta(const char *dir, int *n, int *per_file)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/.bench-apply", dir);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%d %d", n, per_file) != 2)
		die("%s: not made by apply gen", path);
	fclose(f);
}

static void change(const char *dir, int round)
{
	int n, per_file;

	read_meta(dir, &n, &per_file);
	write_file(dir, 0, per_file, n, round);
}

static int cmd_gen(int n, int per_file, const char *dir)
{
	if (n < 1 || n > 60000 || per_file < 1 || !dir)
		die("gen: need --services 1..60000 --dir DIR [--per-file K]");
	if (mkdir(dir, 0755) && errno != EEXIST)
		die("%s: %s", dir, strerror(errno));
	for (int file = 0; file * per_file < n; file++)
		write_file(dir, file, per_file, n, 0);
	write_meta(dir, n, per_file);
	printf("%d services, %d per file, in %s\n", n, per_file, dir);
	return 0;
}

static int cmd_inproc(const char *dir, int reloads)
{
	struct xm_compile_opts opts = { .node_name = "node1", .maglev_size = 16381 };
	const char *paths[] = { dir };
	struct xm_config_cache *cache = config_cache_new();

	if (!cache)
		die("out of memory");
	xm_log_set_level(XM_LOG_ERROR);
	for (int r = 0; r <= reloads; r++) {
		struct xm_config cfg;
		struct xm_diags diags = { 0 };
		struct xm_lb_state st;
		double t0, t1, t2, c0, c1, c2;
		int err;

		if (r)
			change(dir, r);
		t0 = now_ms();
		c0 = cpu_ms();
		err = config_load_cached(cache, paths, 1, &cfg, &diags);
		t1 = now_ms();
		c1 = cpu_ms();
		if (err) {
			diags_print(&diags, stderr);
			die("config_load: %s", strerror(-err));
		}
		if (compile_lb(&cfg, &opts, &st))
			die("compile_lb failed");
		t2 = now_ms();
		c2 = cpu_ms();
		printf("reload %d: %zu service ports, load+validate %.1f ms (CPU %.1f), compile %.1f ms (CPU %.1f)", r,
		       st.n_services, t1 - t0, c1 - c0, t2 - t1, c2 - c1);
		lb_state_free(&st);
		config_free(&cfg);
		diags_free(&diags);
		{
			struct mallinfo2 mi = mallinfo2();

			printf("; RSS %.1f MB, malloc in use %.1f MB of a %.1f MB heap, %.1f MB mapped\n", rss_mb(),
			       (double)mi.uordblks / 1048576.0, (double)mi.arena / 1048576.0,
			       (double)mi.hblkhd / 1048576.0);
		}
	}
	config_cache_free(cache);
	return 0;
}

/* One GET /metrics over a fresh connection; the time until the whole answer arrived, or -1. */
static double scrape(const struct sockaddr_in *sa, const char *path)
{
	char buf[65536], req[512];
	double t0 = now_ms();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: bench\r\n\r\n", path);
	ssize_t r;

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) || write(fd, req, (size_t)len) < 0) {
		close(fd);
		return -1;
	}
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		;
	close(fd);
	return r == 0 ? now_ms() - t0 : -1;
}

/* One "ping" over the admin socket; the time until the whole answer ("pong") arrived, or -1. */
static double admin_ping(const struct sockaddr_un *sa)
{
	char buf[64];
	double t0 = now_ms();
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t r, got = 0;

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) || write(fd, "ping\n", 5) != 5) {
		close(fd);
		return -1;
	}
	while ((r = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
		got += r;
	close(fd);
	buf[got] = '\0';
	return r == 0 && !strcmp(buf, "pong\n") ? now_ms() - t0 : -1;
}

static int cmd_probe(const char *addr, const char *admin, const char *path, double seconds, int interval_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	char host[64];
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	double end, worst = 0, sum = 0;
	long n = 0, failed = 0;

	if (seconds <= 0 || (!admin && (!colon || colon - addr >= (long)sizeof(host))))
		die("probe: need --admin SOCKET or --metrics IP:PORT, and --seconds S");
	if (admin) {
		snprintf(su.sun_path, sizeof(su.sun_path), "%s", admin);
	} else {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
		if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
			die("probe: %s is not IPv4:PORT", addr);
		sa.sin_port = htons((uint16_t)atoi(colon + 1));
	}
	end = now_ms() + seconds * 1e3;
	while (now_ms() < end) {
		double t = admin ? admin_ping(&su) : scrape(&sa, path);

		/* 200 probes a second: a 100 ms stall is seen to within 5 ms, and the probe leaves the CPUs alone. */
		usleep((useconds_t)interval_ms * 1000);
		if (t < 0) {
			failed++;
			usleep(10000);
			continue;
		}
		n++;
		sum += t;
		if (t > worst)
			worst = t;
	}
	printf("answers %ld failed %ld worst_ms %.1f mean_ms %.2f\n", n, failed, worst, n ? sum / (double)n : 0);
	return n ? 0 : 1;
}

/* Every key of a pinned map (4-byte keys), up to max. */
static size_t map_keys_u32(const char *path, uint32_t *out, size_t max)
{
	uint32_t k, next, *prev = NULL;
	size_t n = 0;
	int fd = bpf_obj_get(path);

	if (fd < 0)
		die("fill: %s: %s", path, strerror(errno));
	while (n < max && bpf_map_get_next_key(fd, prev, &next) == 0) {
		out[n++] = next;
		k = next;
		prev = &k;
	}
	close(fd);
	return n;
}

static int cmd_fill(const char *pin, long count)
{
	static uint32_t backends[65536];
	struct xm_svc_key sk, snext, *sprev = NULL;
	struct xm_svc_value sv;
	uint32_t *svcs = malloc(65536 * sizeof(*svcs));
	size_t n_svcs = 0, n_be;
	char path[4096];
	int svc_fd, fd;
	long i;

	if (!pin || count <= 0 || !svcs)
		die("fill: need --pin DIR --count N");
	snprintf(path, sizeof(path), "%s/xm_services", pin);
	svc_fd = bpf_obj_get(path);
	if (svc_fd < 0)
		die("fill: %s: %s", path, strerror(errno));
	while (n_svcs < 65536 && bpf_map_get_next_key(svc_fd, sprev, &snext) == 0) {
		sk = snext;
		sprev = &sk;
		if (bpf_map_lookup_elem(svc_fd, &sk, &sv) == 0)
			svcs[n_svcs++] = sv.svc_id;
	}
	close(svc_fd);
	snprintf(path, sizeof(path), "%s/xm_backends", pin);
	n_be = map_keys_u32(path, backends, 65536);
	if (!n_svcs || !n_be)
		die("fill: nothing published under %s", pin);
	snprintf(path, sizeof(path), "%s/xm_conn_metrics", pin);
	fd = bpf_obj_get(path);
	if (fd < 0)
		die("fill: %s: %s", path, strerror(errno));
	for (i = 0; i < count; i++) {
		struct xm_conn_metrics_key k = { .family = XM_FAMILY_V4 };
		struct xm_conn_metrics v = { 10, 9, 1000, 5000 };

		/* Clients 10.240.x.y: several per series, as pods of one workload would be. */
		k.client.v4 = htonl(0x0af00000u + (uint32_t)(i / 4));
		k.svc_id = svcs[(size_t)i % n_svcs];
		k.backend_id = backends[(size_t)(i / 3) % n_be];
		if (bpf_map_update_elem(fd, &k, &v, BPF_ANY))
			die("fill: entry %ld: %s", i, strerror(errno));
	}
	close(fd);
	free(svcs);
	printf("filled %ld xm_conn_metrics entries over %zu service ports and %zu backends\n", count, n_svcs, n_be);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "services", required_argument, NULL, 's' },
					    { "per-file", required_argument, NULL, 'p' },
					    { "dir", required_argument, NULL, 'd' },
					    { "round", required_argument, NULL, 'r' },
					    { "reloads", required_argument, NULL, 'R' },
					    { "metrics", required_argument, NULL, 'm' },
					    { "seconds", required_argument, NULL, 'S' },
					    { "path", required_argument, NULL, 'P' },
					    { "admin", required_argument, NULL, 'a' },
					    { "interval-ms", required_argument, NULL, 'i' },
					    { "pin", required_argument, NULL, 'b' },
					    { "count", required_argument, NULL, 'c' },
					    { NULL, 0, NULL, 0 } };
	int n = 0, per_file = 100, round = 1, reloads = 5, interval_ms = 5, c;
	const char *dir = NULL, *metrics = NULL, *path = "/metrics", *admin = NULL, *pin = NULL;
	long count = 0;
	double seconds = 0;

	if (argc < 2)
		die("usage: apply gen|change|inproc|probe|fill ... (see the comment at the top of bench/apply.c)");
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			n = atoi(optarg);
			break;
		case 'p':
			per_file = atoi(optarg);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'r':
			round = atoi(optarg);
			break;
		case 'R':
			reloads = atoi(optarg);
			break;
		case 'm':
			metrics = optarg;
			break;
		case 'S':
			seconds = atof(optarg);
			break;
		case 'P':
			path = optarg;
			break;
		case 'a':
			admin = optarg;
			break;
		case 'i':
			interval_ms = atoi(optarg);
			break;
		case 'b':
			pin = optarg;
			break;
		case 'c':
			count = atol(optarg);
			break;
		default:
			die("unknown option");
		}
	}
	if (!strcmp(argv[1], "gen"))
		return cmd_gen(n, per_file, dir);
	if (!strcmp(argv[1], "change")) {
		if (!dir || round < 1)
			die("change: need --dir DIR --round R (R >= 1)");
		change(dir, round);
		return 0;
	}
	if (!strcmp(argv[1], "inproc")) {
		if (!dir)
			die("inproc: need --dir DIR");
		return cmd_inproc(dir, reloads);
	}
	if (!strcmp(argv[1], "probe"))
		return cmd_probe(metrics, admin, path, seconds, interval_ms > 0 ? interval_ms : 5);
	if (!strcmp(argv[1], "fill"))
		return cmd_fill(pin, count);
	die("unknown command %s", argv[1]);
}
