// SPDX-License-Identifier: Apache-2.0
/*
 * Span export (l7/span_export.h): the Zipkin v2 JSON of a span (checked by python3's json), the endpoint URL,
 * batches POSTed to a collector on loopback, and drops counted when a worker's ring is full.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "l7/span_export.h"
#include "metrics/registry.h"

static struct xm_workload productpage = { .canonical_service = "productpage" };
static struct l7_cluster reviews = { .name = "outbound|9080||reviews.default.svc.cluster.local" };
static struct xm_lb_backend reviews_pod = { .port = 9080, .family = XM_FAMILY_V4 };
static struct l7_route named_route = { .name = "reviews-v2", .vs_name = "reviews" };

static void record(struct l7_record *r, const char *path, uint16_t status)
{
	memset(r, 0, sizeof(*r));
	r->start_unix_ns = 1796616873123456789ULL;
	r->duration_ns = 12345678;
	r->status = status;
	r->flags = status == 503 ? L7_RF_UH : 0;
	r->method = "GET";
	r->path = path;
	r->authority = "reviews:9080";
	strcpy(r->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
	strcpy(r->span_id, "00f067aa0ba902b7");
	r->sampled = true;
	r->source = &productpage;
	r->cluster = &reviews;
	inet_pton(AF_INET, "10.1.0.12", reviews_pod.addr.bytes);
	r->upstream = &reviews_pod;
}

/* Runs python3 over the JSON in body with the checks in script (body on stdin); true when it exits 0. */
static bool python_ok(const char *body, const char *script)
{
	char path[] = "/tmp/xm-span-XXXXXX", cmd[4096];
	int fd = mkstemp(path);
	FILE *f;
	int rc;

	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	fputs(body, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "python3 -c '%s' < %s", script, path);
	rc = system(cmd);
	unlink(path);
	return rc == 0;
}

Test(l7_span_export, zipkin_v2_json)
{
	struct l7_record r;
	char buf[L7_SPAN_MAX], body[3 * L7_SPAN_MAX];
	size_t n, m;

	record(&r, "/reviews/0?x=\"1\"\n\x01\xff", 200);
	strcpy(r.parent_span_id, "a1b2c3d4e5f60718");
	n = l7_span_format(&r, "node-1", buf, sizeof(buf));
	cr_assert_lt(n, sizeof(buf));
	cr_expect_eq(strlen(buf), n);
	cr_expect(!strchr(buf, '\n'), "a span is one line");
	snprintf(body, sizeof(body), "[%s,", buf);
	record(&r, "/x", 503);
	r.attempts = 3; /* two retries */
	r.tunnelled = true;
	r.route = &named_route;
	r.source = NULL;
	r.upstream = NULL;
	m = l7_span_format(&r, "node-1", buf, sizeof(buf));
	strcat(body, buf);
	strcat(body, "]");
	cr_expect(
	    python_ok(
		body,
		"import json,sys\n"
		"a, b = json.load(sys.stdin)\n"
		"assert a[\"traceId\"] == \"4bf92f3577b34da6a3ce929d0e0e4736\" and a[\"id\"] == \"00f067aa0ba902b7\"\n"
		"assert a[\"parentId\"] == \"a1b2c3d4e5f60718\" and \"parentId\" not in b\n"
		"assert a[\"kind\"] == \"CLIENT\" and a[\"name\"] == \"reviews:9080/reviews/0\", a[\"name\"]\n"
		"assert a[\"timestamp\"] == 1796616873123456 and a[\"duration\"] == 12345\n"
		"assert a[\"localEndpoint\"] == {\"serviceName\": \"productpage\"}\n"
		"assert a[\"remoteEndpoint\"] == {\"ipv4\": \"10.1.0.12\", \"port\": 9080}\n"
		"t = a[\"tags\"]\n"
		"assert t[\"http.method\"] == \"GET\" and t[\"http.status_code\"] == \"200\"\n"
		"assert t[\"http.url\"] == \"http://reviews:9080/reviews/0?x=\\\"1\\\"\\n\\x01\\ufffd\", t\n"
		"assert t[\"response_flags\"] == \"-\" and t[\"node_id\"] == \"node-1\" and \"error\" not in t\n"
		"assert t[\"upstream_cluster\"] == \"outbound|9080||reviews.default.svc.cluster.local\"\n"
		"assert b[\"name\"] == \"reviews-v2\" and b[\"localEndpoint\"][\"serviceName\"] == \"xmesh\"\n"
		"assert \"remoteEndpoint\" not in b and b[\"tags\"][\"error\"] == \"true\"\n"
		"assert b[\"tags\"][\"response_flags\"] == \"UH\"\n"
		"assert b[\"tags\"][\"retry.count\"] == \"2\" and \"retry.count\" not in t\n"
		"assert b[\"tags\"][\"connection_security_policy\"] == \"mutual_tls\"\n"
		"assert \"connection_security_policy\" not in t\n"),
	    "%s", body);
	/* snprintf-like on a short buffer */
	cr_expect_eq(l7_span_format(&r, "node-1", buf, 10), m);
	cr_expect_str_eq(buf, "{\"traceId");
}

Test(l7_span_export, long_values_are_cut)
{
	static char path[20000];
	struct l7_record r;
	char buf[L7_SPAN_MAX];

	memset(path, '/', sizeof(path) - 1);
	record(&r, path, 200);
	cr_assert_lt(l7_span_format(&r, "n", buf, sizeof(buf)), L7_SPAN_MAX);
	cr_expect(python_ok(buf, "import json,sys\njson.load(sys.stdin)\n"));
}

Test(l7_span_export, endpoint_urls)
{
	static const struct {
		const char *url, *host, *port, *path;
	} ok[] = {
		{ "http://zipkin:9411/api/v2/spans", "zipkin", "9411", "/api/v2/spans" },
		{ "http://10.0.0.1/api/v2/spans", "10.0.0.1", "80", "/api/v2/spans" },
		{ "http://[fd00::1]:9411/x", "fd00::1", "9411", "/x" },
		{ "http://h:1", "h", "1", "/" },
	};
	static const char *const bad[] = { "https://h/x",	  "h:9411/x",	   "http://",
					   "http://:80/x",	  "http://h:/x",   "http://h:0/x",
					   "http://h:65536/x",	  "http://h:9x/x", "http://[fd00::1/x",
					   "http://[fd00::1]x/y", "http://h/a b",  "http://h/a\r\n" };
	char host[256], port[16], path[1024];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(l7_span_parse_url(ok[i].url, host, sizeof(host), port, sizeof(port), path, sizeof(path)),
			     0, "%s", ok[i].url);
		cr_expect_str_eq(host, ok[i].host);
		cr_expect_str_eq(port, ok[i].port);
		cr_expect_str_eq(path, ok[i].path);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(l7_span_parse_url(bad[i], host, sizeof(host), port, sizeof(port), path, sizeof(path)),
			     -EINVAL, "%s", bad[i]);
}

static uint64_t scraped(struct l7_span_export *e, const char *result)
{
	struct xm_scrape *sc = scrape_new();
	struct strbuf out = { 0 };
	const char *p;
	uint64_t v = UINT64_MAX;
	char key[128];

	l7_span_export_collect(e, sc);
	scrape_render(sc, &out);
	snprintf(key, sizeof(key), "xmesh_trace_spans_total{result=\"%s\"} ", result);
	p = out.buf ? strstr(out.buf, key) : NULL;
	if (p)
		v = strtoull(p + strlen(key), NULL, 10);
	sb_free(&out);
	scrape_free(sc);
	return v;
}

/* A collector on loopback: answers each POST with status, keeps the bodies. */
struct collector {
	int fd, status;
	uint16_t port;
	size_t posts;
	char bodies[1 << 20];
	size_t len;
	pthread_t thread;
};

static void *collector_main(void *arg)
{
	struct collector *c = arg;
	int s;

	while ((s = accept(c->fd, NULL, NULL)) >= 0) {
		char req[1 << 20];
		size_t got = 0;
		char *body = NULL;
		long clen = -1;
		ssize_t n;

		while ((n = recv(s, req + got, sizeof(req) - 1 - got, 0)) > 0) {
			got += (size_t)n;
			req[got] = '\0';
			body = strstr(req, "\r\n\r\n");
			if (body && clen < 0) {
				char *cl = strcasestr(req, "content-length:");

				clen = cl ? strtol(cl + 15, NULL, 10) : 0;
			}
			if (body && (long)(got - (size_t)(body + 4 - req)) >= clen)
				break;
		}
		if (body && c->len + (size_t)clen + 2 < sizeof(c->bodies)) {
			memcpy(c->bodies + c->len, body + 4, (size_t)clen);
			c->len += (size_t)clen;
			c->bodies[c->len++] = '\n';
			c->bodies[c->len] = '\0';
		}
		c->posts++;
		dprintf(s, "HTTP/1.1 %d X\r\ncontent-length: 0\r\n\r\n", c->status);
		close(s);
	}
	return NULL;
}

static void collector_start(struct collector *c, int status)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	memset(c, 0, sizeof(*c));
	c->status = status;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(c->fd, 16), 0);
	getsockname(c->fd, (struct sockaddr *)&a, &len);
	c->port = ntohs(a.sin_port);
	pthread_create(&c->thread, NULL, collector_main, c);
}

static void collector_stop(struct collector *c)
{
	shutdown(c->fd, SHUT_RDWR);
	pthread_join(c->thread, NULL);
	close(c->fd);
}

Test(l7_span_export, batches_reach_the_collector)
{
	static struct collector c;
	struct l7_span_export *e;
	struct l7_record r;
	char url[64];
	int err;

	collector_start(&c, 202);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v2/spans", c.port);
	e = l7_span_export_open(url, "node-1", 2, L7_SPAN_RING_BYTES, &err);
	cr_assert(e, "%s", strerror(-err));
	record(&r, "/a", 200);
	for (int i = 0; i < 150; i++)
		l7_span_export_record(e, (size_t)(i % 2), &r);
	r.sampled = false; /* not queued */
	l7_span_export_record(e, 0, &r);
	l7_span_export_close(e);
	collector_stop(&c);
	cr_expect_geq(c.posts, 2, "150 spans in batches of at most %d", L7_SPAN_BATCH);
	cr_expect(
	    python_ok(
		c.bodies,
		"import json,sys\n"
		"bodies = [json.loads(l) for l in sys.stdin if l.strip()]\n"
		"assert all(1 <= len(b) <= 100 for b in bodies), [len(b) for b in bodies]\n"
		"assert sum(len(b) for b in bodies) == 150\n"
		"assert all(s[\"traceId\"] == \"4bf92f3577b34da6a3ce929d0e0e4736\" for b in bodies for s in b)\n"),
	    "%.300s", c.bodies);
}

Test(l7_span_export, full_rings_drop_and_refused_posts_fail)
{
	static struct collector c;
	struct l7_span_export *e;
	struct l7_record r;
	char url[64];
	int err, n = 2000;
	uint64_t dropped;

	collector_start(&c, 500);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v2/spans", c.port);
	e = l7_span_export_open(url, "n", 1, 4096, &err); /* a 4 KiB ring: a few spans */
	cr_assert(e);
	record(&r, "/a", 200);
	for (int i = 0; i < n; i++)
		l7_span_export_record(e, 0, &r);
	dropped = scraped(e, "dropped");
	cr_expect_gt(dropped, 0, "a burst into a 4 KiB ring drops");
	l7_span_export_close(e);
	collector_stop(&c);
	cr_expect_gt(c.posts, 0);
	cr_expect_lt(dropped, (uint64_t)n);
}

Test(l7_span_export, every_span_is_counted_once)
{
	static struct collector c;
	struct l7_span_export *e;
	struct l7_record r;
	char url[64];
	int err, n = 3000;

	collector_start(&c, 503);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v2/spans", c.port);
	e = l7_span_export_open(url, "n", 1, 16384, &err);
	cr_assert(e);
	record(&r, "/a", 200);
	for (int i = 0; i < n; i++) {
		l7_span_export_record(e, 0, &r);
		if (i % 100 == 0)
			usleep(1000);
	}
	/* wait until the exporter has handled what was queued */
	for (int i = 0; i < 400 && scraped(e, "dropped") + scraped(e, "failed") + scraped(e, "exported") < (uint64_t)n;
	     i++)
		usleep(10000);
	cr_expect_eq(scraped(e, "dropped") + scraped(e, "failed") + scraped(e, "exported"), (uint64_t)n);
	cr_expect_eq(scraped(e, "exported"), 0, "the collector answered 503");
	cr_expect_gt(scraped(e, "failed"), 0);
	l7_span_export_close(e);
	collector_stop(&c);
	cr_expect_eq(scraped(NULL, "failed"), UINT64_MAX, "no family without an exporter");
}
