// SPDX-License-Identifier: Apache-2.0
/* Access logs: Envoy's response flags, the JSON and Istio text lines, escaping of hostile bytes, rings that drop
 * instead of blocking a worker, and a close that drains. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "l7/access_log.h"
#include "metrics/registry.h"
#include "bookinfo_fixture.h"

static struct xm_lb_backend reviews_pod = { .port = 9080, .family = XM_FAMILY_V4 };
static struct l7_route v2_route = { .name = "reviews-v2", .action = L7_ACTION_ROUTE };

static void set_v4(union xm_addr *a, const char *ip)
{
	memset(a, 0, sizeof(*a));
	cr_assert_eq(inet_pton(AF_INET, ip, &a->v4), 1);
}

/* A GET through reviews' v2 route: 2026-12-07T04:14:33.123Z, 12.5 ms, 5 ms upstream. */
static struct l7_record full_record(void)
{
	struct l7_record r = {
		.start_unix_ns = 1796616873123456789ULL,
		.duration_ns = 12500000,
		.status = 200,
		.request_bytes = 0,
		.response_bytes = 295,
		.method = "GET",
		.path = "/reviews/0",
		.authority = "reviews:9080",
		.user_agent = "curl/7.88.1",
		.protocol = "HTTP/1.1",
		.source = &bookinfo_productpage,
		.cluster = &bookinfo_reviews,
		.upstream = &reviews_pod,
		.upstream_service_ns = 5200000,
		.forwarded_for = "10.1.0.7",
		.route = &v2_route,
		.downstream_port = 51234,
		.downstream_family = XM_FAMILY_V4,
		.downstream_local_port = 9080,
		.downstream_local_family = XM_FAMILY_V4,
		.upstream_local_port = 40112,
		.upstream_local_family = XM_FAMILY_V4,
	};

	set_v4(&reviews_pod.addr, "10.1.0.12");
	set_v4(&r.downstream_addr, "10.1.0.7");
	set_v4(&r.downstream_local_addr, "10.96.0.20");
	set_v4(&r.upstream_local_addr, "10.0.0.1");
	snprintf(r.request_id, sizeof(r.request_id), "%s", "4f1a2b3c-5d6e-4f70-8a9b-0c1d2e3f4a5b");
	return r;
}

static char *format(enum l7_log_format fmt, const struct l7_record *r)
{
	static char buf[L7_ACCESS_LOG_LINE_MAX];
	size_t n = l7_access_log_format(fmt, r, buf, sizeof(buf));

	cr_assert_lt(n, sizeof(buf));
	cr_assert_eq(strlen(buf), n);
	return buf;
}

Test(l7_access_log, flags_in_envoy_order)
{
	static const struct {
		uint32_t flags;
		const char *want;
	} cases[] = {
		{ 0, "-" },
		{ L7_RF_NR, "NR" },
		{ L7_RF_UF | L7_RF_UH, "UH,UF" },
		{ L7_RF_DC | L7_RF_UF, "UF,DC" },
		{ L7_RF_URX | L7_RF_UT, "UT,URX" },
		{ L7_RF_BAD_REQUEST, "DPE" },
		{ 0xfff, "UH,UT,UF,UC,UO,NR,DI,FI,RL,DC,URX,DPE" },
	};
	char buf[L7_FLAGS_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		l7_flags_format(cases[i].flags, buf, sizeof(buf));
		cr_expect_str_eq(buf, cases[i].want, "flags %#x", cases[i].flags);
	}
	/* A short buffer keeps whole codes only. */
	l7_flags_format(L7_RF_UH | L7_RF_UF, buf, 5);
	cr_expect_str_eq(buf, "UH");
}

Test(l7_access_log, text_is_istio_default_format)
{
	struct l7_record r = full_record();

	cr_expect_str_eq(format(L7_LOG_TEXT, &r),
			 "[2026-12-07T04:14:33.123Z] \"GET /reviews/0 HTTP/1.1\" 200 - via_upstream - \"-\" 0 295 12 5 "
			 "\"10.1.0.7\" \"curl/7.88.1\" \"4f1a2b3c-5d6e-4f70-8a9b-0c1d2e3f4a5b\" \"reviews:9080\" "
			 "\"10.1.0.12:9080\" outbound|9080|v2|reviews.default.svc.cluster.local 10.0.0.1:40112 "
			 "10.96.0.20:9080 10.1.0.7:51234 - reviews-v2\n");
}

Test(l7_access_log, ipv6_addresses_are_bracketed)
{
	struct l7_record r = full_record();

	memset(&r.downstream_addr, 0, sizeof(r.downstream_addr));
	cr_assert_eq(inet_pton(AF_INET6, "fd00::7", r.downstream_addr.bytes), 1);
	r.downstream_family = XM_FAMILY_V6;
	r.downstream_port = 443;
	cr_expect_not_null(strstr(format(L7_LOG_TEXT, &r), " [fd00::7]:443 - reviews-v2\n"), "%s",
			   format(L7_LOG_TEXT, &r));
	cr_expect_not_null(strstr(format(L7_LOG_JSON, &r), "\"downstream_remote_address\":\"[fd00::7]:443\""));
}

Test(l7_access_log, absent_fields_are_dashes_and_nulls)
{
	/* A request the parser refused: no route, no upstream, no headers. */
	struct l7_record r = { .start_unix_ns = 0, .status = 400, .flags = L7_RF_BAD_REQUEST };

	cr_expect_str_eq(format(L7_LOG_TEXT, &r), "[1970-01-01T00:00:00.000Z] \"- - -\" 400 DPE http1.codec_error - "
						  "\"-\" 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"-\" - - - - - -\n");
	cr_expect_str_eq(format(L7_LOG_JSON, &r),
			 "{\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"method\":null,\"path\":null,\"protocol\":null,"
			 "\"status\":400,\"response_flags\":\"DPE\",\"response_code_details\":\"http1.codec_error\","
			 "\"duration_ms\":0,\"bytes_received\":0,\"bytes_sent\":0,\"upstream_service\":null,"
			 "\"upstream_host\":null,\"upstream_cluster\":null,\"upstream_request_attempt_count\":0,"
			 "\"request_id\":null,\"trace_id\":null,"
			 "\"user_agent\":null,\"authority\":null,\"x_forwarded_for\":null,"
			 "\"downstream_remote_address\":null,\"source_workload\":null,\"source_namespace\":null,"
			 "\"connection_security_policy\":\"unknown\"}\n");
	r.flags = L7_RF_NR;
	r.status = 404;
	cr_expect_not_null(strstr(format(L7_LOG_TEXT, &r), "\" 404 NR route_not_found - "));
}

Test(l7_access_log, dates_are_utc_calendar_dates)
{
	static const struct {
		uint64_t unix_s;
		const char *want;
	} cases[] = {
		{ 951782400, "[2000-02-29T00:00:00.000Z]" },  /* a leap day of a century leap year */
		{ 4107542399, "[2100-02-28T23:59:59.000Z]" }, /* 2100 is not a leap year */
		{ 4107542400, "[2100-03-01T00:00:00.000Z]" },
		{ 1767225599, "[2025-12-31T23:59:59.000Z]" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct l7_record r = { .start_unix_ns = cases[i].unix_s * 1000000000ULL };

		cr_expect(!strncmp(format(L7_LOG_TEXT, &r), cases[i].want, strlen(cases[i].want)), "%llu: %s",
			  (unsigned long long)cases[i].unix_s, format(L7_LOG_TEXT, &r));
	}
}

/*
 * Runs python3's json module over the lines in text: each must be one JSON object. Prints, per line, the
 * values of keys (comma-separated) as JSON, one per output line, into out. Returns python's exit code.
 */
static int json_fields(const char *text, const char *keys, struct strbuf *out)
{
	char file[] = "/tmp/xmesh-access-log-XXXXXX", cmd[1024], buf[4096];
	size_t len = strlen(text);
	FILE *p;
	int fd, status;

	if (access("/usr/bin/python3", X_OK))
		cr_skip_test("python3 is not installed: the JSON lines are not checked by a JSON parser");
	fd = mkstemp(file);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json, sys\n"
		 "for line in open(sys.argv[1], encoding=\"utf-8\", newline=\"\").read().split(\"\\n\")[:-1]:\n"
		 "    obj = json.loads(line)\n"
		 "    assert isinstance(obj, dict)\n"
		 "    for k in sys.argv[2].split(\",\"):\n"
		 "        print(json.dumps(obj[k]))\n' '%s' '%s' 2>&1",
		 file, keys);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while ((len = fread(buf, 1, sizeof(buf) - 1, p)) > 0) {
		buf[len] = '\0';
		sb_puts(out, buf);
	}
	status = pclose(p);
	unlink(file);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(l7_access_log, json_has_the_mesh_fields)
{
	struct l7_record r = full_record();
	struct strbuf out = { 0 };
	int rc;

	r.attempts = 3; /* two retries */
	rc = json_fields(format(L7_LOG_JSON, &r),
			 "timestamp,method,path,protocol,status,response_flags,duration_ms,bytes_received,"
			 "bytes_sent,upstream_service,upstream_host,request_id,trace_id,user_agent,authority,"
			 "downstream_remote_address,source_workload,source_namespace,upstream_cluster,"
			 "upstream_request_attempt_count,connection_security_policy",
			 &out);

	cr_assert_eq(rc, 0, "%s", out.buf);
	cr_expect_str_eq(out.buf,
			 "\"2026-12-07T04:14:33.123Z\"\n\"GET\"\n\"/reviews/0\"\n\"HTTP/1.1\"\n200\n\"-\"\n12\n"
			 "0\n295\n\"reviews.default.svc.cluster.local\"\n\"10.1.0.12:9080\"\n"
			 "\"4f1a2b3c-5d6e-4f70-8a9b-0c1d2e3f4a5b\"\nnull\n\"curl/7.88.1\"\n\"reviews:9080\"\n"
			 "\"10.1.0.7:51234\"\n\"productpage-v1\"\n\"default\"\n"
			 "\"outbound|9080|v2|reviews.default.svc.cluster.local\"\n3\n\"unknown\"\n");
	sb_free(&out);
	r.tunnelled = true;
	rc = json_fields(format(L7_LOG_JSON, &r), "connection_security_policy", &out);
	cr_assert_eq(rc, 0, "%s", out.buf);
	cr_expect_str_eq(out.buf, "\"mutual_tls\"\n");
	sb_free(&out);
}

/* What a client controls: the path, Host, User-Agent, X-Forwarded-For. */
static const char hostile_path[] = "/a\"b\\c\nd\re\tf\x01g\x7fh\xff"
				   "i\xc3\xa9j\xc2\x85k\xe2\x80\xa8l";
static const char hostile_agent[] = "x\" 200 - \"\n[2026-01-01T00:00:00.000Z] \"GET /forged HTTP/1.1\" 200";

Test(l7_access_log, hostile_bytes_stay_inside_their_json_string)
{
	struct l7_record r = full_record();
	struct strbuf out = { 0 };
	const char *line;
	int rc;

	r.path = hostile_path;
	r.user_agent = hostile_agent;
	r.authority = "h\"o\\st";
	line = format(L7_LOG_JSON, &r);
	cr_expect_eq(strchr(line, '\n'), line + strlen(line) - 1, "one line: %s", line);
	for (const char *c = line; *c; c++)
		cr_expect((unsigned char)*c >= 0x20 || *c == '\n', "raw control byte %#x in %s", *c, line);
	rc = json_fields(line, "path,user_agent,authority", &out);
	cr_assert_eq(rc, 0, "%s\n%s", line, out.buf);
	/* Decoded: the same bytes, but the invalid one (U+FFFD) and the C1 control escaped as itself. */
	cr_expect_str_eq(out.buf, "\"/a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh\\ufffdi\\u00e9j\\u0085k\\u2028l\"\n"
				  "\"x\\\" 200 - \\\"\\n[2026-01-01T00:00:00.000Z] \\\"GET /forged HTTP/1.1\\\" 200\"\n"
				  "\"h\\\"o\\\\st\"\n");
	sb_free(&out);
}

Test(l7_access_log, hostile_bytes_cannot_forge_a_text_line)
{
	struct l7_record r = full_record();
	const char *line;
	int quotes = 0;

	r.path = hostile_path;
	r.user_agent = hostile_agent;
	r.forwarded_for = "1.2.3.4\", \"5.6.7.8";
	line = format(L7_LOG_TEXT, &r);
	cr_expect_eq(strchr(line, '\n'), line + strlen(line) - 1, "one line: %s", line);
	for (const char *c = line; *c; c++) {
		cr_expect((unsigned char)*c >= 0x20 || *c == '\n', "raw control byte %#x in %s", *c, line);
		if (*c == '"' && c[-1] != '\\')
			quotes++;
	}
	cr_expect_eq(quotes, 14, "the 7 quoted fields and no more: %s", line);
	cr_expect_not_null(strstr(line, "\"GET /a\\\"b\\\\c\\x0ad\\x0de\\x09f\\x01g\\x7fh\\xffi\xc3\xa9j\\xc2\\x85k"
					"\xe2\x80\xa8l HTTP/1.1\""),
			   "%s", line);
	cr_expect_not_null(strstr(line, "\"x\\\" 200 - \\\"\\x0a[2026-01-01T00:00:00.000Z] \\\"GET /forged"));
	cr_expect_not_null(strstr(line, "\"1.2.3.4\\\", \\\"5.6.7.8\""));
}

Test(l7_access_log, long_values_are_cut_to_fit_a_line)
{
	struct l7_record r = full_record();
	size_t big = 100000;
	char *path = malloc(big), *agent = malloc(big);

	cr_assert(path && agent);
	memset(path, '/', big - 1);
	memset(agent, '\x01', big - 1); /* escaped six times its size in JSON */
	path[big - 1] = agent[big - 1] = '\0';
	r.path = path;
	r.user_agent = agent;
	r.authority = agent;
	r.forwarded_for = agent;
	for (int fmt = L7_LOG_JSON; fmt <= L7_LOG_TEXT; fmt++) {
		const char *line = format(fmt, &r);

		cr_expect_lt(strlen(line), L7_ACCESS_LOG_LINE_MAX);
		cr_expect_eq(line[strlen(line) - 1], '\n');
		cr_expect_not_null(strstr(line, "//..."), "the path is cut with \"...\": %.200s", line);
	}
	free(path);
	free(agent);
}

Test(l7_access_log, format_is_snprintf_like)
{
	struct l7_record r = full_record();
	char whole[L7_ACCESS_LOG_LINE_MAX], small[16];
	size_t n = l7_access_log_format(L7_LOG_TEXT, &r, whole, sizeof(whole));

	cr_expect_eq(l7_access_log_format(L7_LOG_TEXT, &r, small, sizeof(small)), n);
	cr_expect_str_eq(small, "[2026-12-07T04:");
	cr_expect_eq(l7_access_log_format(L7_LOG_TEXT, &r, NULL, 0), n);
}

static uint64_t scraped(struct l7_access_log *log, const char *name)
{
	struct xm_scrape *sc = scrape_new();
	struct strbuf out = { 0 };
	const char *p;
	uint64_t v = UINT64_MAX;
	char key[128];

	l7_access_log_collect(log, sc);
	scrape_render(sc, &out);
	snprintf(key, sizeof(key), "\n%s ", name);
	p = out.buf ? strstr(out.buf, key) : NULL;
	if (p)
		v = strtoull(p + strlen(key), NULL, 10);
	sb_free(&out);
	scrape_free(sc);
	return v;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct pipe_reader {
	int fd;
	size_t lines;
};

static void *read_until_eof(void *arg)
{
	struct pipe_reader *pr = arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(pr->fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			pr->lines += buf[i] == '\n';
	return NULL;
}

Test(l7_access_log, a_full_ring_drops_instead_of_blocking, .timeout = 60)
{
	struct l7_record r = full_record();
	struct pipe_reader pr = { 0 };
	struct l7_access_log *log;
	pthread_t reader;
	uint64_t max_ns = 0, lines, dropped;
	const unsigned n = 20000;
	struct rusage before, after;
	int fds[2], err;

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	/* Nobody reads the pipe yet: the writer thread blocks once 64 KiB are in it, the ring then fills. */
	log = l7_access_log_open_fd(fds[1], L7_LOG_TEXT, 1, 64 * 1024, &err);
	cr_assert_not_null(log, "%s", strerror(-err));
	getrusage(RUSAGE_THREAD, &before);
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns(), dt;

		l7_access_log_write(log, 0, &r);
		dt = now_ns() - t0;
		if (dt > max_ns)
			max_ns = dt;
	}
	getrusage(RUSAGE_THREAD, &after);
	/* The worker went to sleep not once (slow writes, if any, are the host preempting it). */
	cr_expect_eq(after.ru_nvcsw - before.ru_nvcsw, 0, "the worker slept %ld times",
		     after.ru_nvcsw - before.ru_nvcsw);
	lines = scraped(log, "xmesh_access_log_lines_total");
	dropped = scraped(log, "xmesh_access_log_dropped_total");
	cr_expect_eq(lines + dropped, n, "%llu queued + %llu dropped", (unsigned long long)lines,
		     (unsigned long long)dropped);
	cr_expect_gt(dropped, 0);
	cr_expect_lt(lines, 1000, "the pipe and the ring hold a few hundred lines, not %llu",
		     (unsigned long long)lines);
	cr_log_info("max write latency %.3f ms, %llu lines queued, %llu dropped", (double)max_ns / 1e6,
		    (unsigned long long)lines, (unsigned long long)dropped);
	/* Now read it: close drains what was queued, every line of it, then the pipe ends. */
	pr.fd = fds[0];
	cr_assert_eq(pthread_create(&reader, NULL, read_until_eof, &pr), 0);
	l7_access_log_close(log);
	pthread_join(reader, NULL);
	close(fds[0]);
	cr_expect_eq(pr.lines, lines, "%zu lines came out of %llu queued", pr.lines, (unsigned long long)lines);
}

Test(l7_access_log, close_gives_up_on_an_output_that_takes_nothing, .timeout = 60)
{
	struct l7_record r = full_record();
	struct l7_access_log *log;
	uint64_t t0;
	double waited;
	int fds[2], err;

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	log = l7_access_log_open_fd(fds[1], L7_LOG_TEXT, 1, 64 * 1024, &err);
	cr_assert_not_null(log, "%s", strerror(-err));
	/* The ring fills, the writer moves it into the pipe until that is full and blocks, the ring fills again. */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 2000; i++)
			l7_access_log_write(log, 0, &r);
		usleep(200000);
	}
	cr_assert_gt(scraped(log, "xmesh_access_log_dropped_total"), 0);
	t0 = now_ns();
	l7_access_log_close(log);
	waited = (double)(now_ns() - t0) / 1e9;
	cr_expect_geq(waited, L7_ACCESS_LOG_CLOSE_WAIT_MS / 1000.0 - 0.1, "close waited %.2f s", waited);
	cr_expect_lt(waited, L7_ACCESS_LOG_CLOSE_WAIT_MS / 1000.0 + 5, "close waited %.2f s", waited);
	close(fds[0]);
}

struct worker_arg {
	struct l7_access_log *log;
	size_t index;
	unsigned lines;
};

static void *worker(void *arg)
{
	struct worker_arg *w = arg;
	struct l7_record r = full_record();
	char path[64];

	r.path = path;
	for (unsigned i = 0; i < w->lines; i++) {
		snprintf(path, sizeof(path), "/w%zu/%u", w->index, i);
		l7_access_log_write(w->log, w->index, &r);
		/* A busy worker's pace (~30,000 requests/s each): the writer keeps up, nothing is dropped. */
		if (i % 32 == 0)
			usleep(1000);
	}
	return NULL;
}

Test(l7_access_log, close_drains_every_worker, .timeout = 60)
{
	char dir[] = "/tmp/xmesh-access-log-XXXXXX", path[128];
	struct worker_arg args[3];
	pthread_t threads[3];
	struct l7_access_log *log;
	struct strbuf text = { 0 }, out = { 0 };
	char buf[65536];
	uint64_t lines, dropped, seen = 0;
	long last[3] = { -1, -1, -1 };
	ssize_t n;
	int err, fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/access.log", dir);
	log = l7_access_log_open(path, L7_LOG_JSON, 3, &err);
	cr_assert_not_null(log, "%s", strerror(-err));
	for (size_t i = 0; i < 3; i++) {
		args[i] = (struct worker_arg){ .log = log, .index = i, .lines = 2000 };
		cr_assert_eq(pthread_create(&threads[i], NULL, worker, &args[i]), 0);
	}
	for (size_t i = 0; i < 3; i++)
		pthread_join(threads[i], NULL);
	lines = scraped(log, "xmesh_access_log_lines_total");
	dropped = scraped(log, "xmesh_access_log_dropped_total");
	cr_expect_eq(lines + dropped, 6000);
	cr_expect_eq(scraped(log, "xmesh_access_log_write_errors_total"), 0);
	/* The writer runs at nice 10: a host busy with other tests may starve it into a few drops, counted. */
	cr_log_info("%llu lines queued, %llu dropped", (unsigned long long)lines, (unsigned long long)dropped);
	l7_access_log_close(log);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		sb_puts(&text, buf);
	}
	close(fd);
	cr_assert_not_null(text.buf);
	cr_assert_eq(json_fields(text.buf, "path", &out), 0, "%.500s", out.buf);
	/* Every queued line is in the file, whole, once, each worker's in the order it wrote them. */
	for (char *line = strtok(out.buf, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned w, i;

		cr_assert_eq(sscanf(line, "\"/w%u/%u\"", &w, &i), 2, "%s", line);
		cr_assert_lt(w, 3);
		cr_expect_gt((long)i, last[w], "worker %u: line %u after %ld", w, i, last[w]);
		last[w] = i;
		seen++;
	}
	cr_expect_eq(seen, lines);
	sb_free(&text);
	sb_free(&out);
	unlink(path);
	rmdir(dir);
}

Test(l7_access_log, open_reports_why)
{
	int err = 0;

	cr_expect_null(l7_access_log_open("/nonexistent-dir/access.log", L7_LOG_TEXT, 1, &err));
	cr_expect_eq(err, -ENOENT);
	/* No log configured: workers and the scrape take NULL. */
	l7_access_log_write(NULL, 0, NULL);
	cr_expect_eq(scraped(NULL, "xmesh_access_log_lines_total"), UINT64_MAX, "no family without a log");
	l7_access_log_close(NULL);
}
