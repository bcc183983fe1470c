// SPDX-License-Identifier: Apache-2.0
/*
 * The L7 proxy end to end on loopback: a snapshot built from YAML, the proxy listening on 127.0.0.1-3 (the
 * injected resolver maps each to a service VIP), the fixture's upstream behind it, a blocking client in front.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "l7/proxy.h"
#include "l7_proxy_fixture.h"
#include "test_config.h"

#define WEB   "127.0.0.1" /* -> web: routed by the VirtualService below */
#define EMPTY "127.0.0.2" /* -> empty: no endpoint (503 UH) */
#define DEAD  "127.0.0.3" /* -> dead: an endpoint on a closed port (503 UF) */
#define FULL  "127.0.0.4" /* -> full: an endpoint whose accept queue is full (connects time out: 503 UF) */

static struct l7_proxy *proxy;
static struct xm_snapshot *snap;
static uint16_t port;

/* The listener address a connection came in on says which service it dialed: 127.0.0.N -> 10.96.0.(9+N):80. */
static int resolve_by_listener(void *ctx, int listen_fd, int fd, struct xm_svc_key *vip, uint32_t *svc_id)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	uint8_t last;

	(void)ctx, (void)listen_fd;
	if (getsockname(fd, (struct sockaddr *)&sin, &len))
		return -1;
	last = ((uint8_t *)&sin.sin_addr)[3];
	memset(vip, 0, sizeof(*vip));
	vip->vip.v4 = htonl(0x0a600000 | (uint32_t)(9 + last));
	vip->port = htons(80);
	vip->proto = XM_PROTO_TCP;
	vip->family = XM_FAMILY_V4;
	*svc_id = 0;
	return last <= 4 ? 0 : -ENOENT;
}

static uint16_t closed_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	close(fd);
	return ntohs(sin.sin_port);
}

static const char config_fmt[] =
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: web, namespace: default}\n"
    "spec:\n"
    "  clusterIP: 10.96.0.10\n"
    "  ports: [{name: http, port: 80, targetPort: %u}]\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\n"
    "kind: EndpointSlice\n"
    "metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}\n"
    "addressType: IPv4\n"
    "endpoints: [{addresses: [\"127.0.0.1\"], conditions: {ready: true}}]\n"
    "ports: [{name: http, port: %u}]\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: empty, namespace: default}\n"
    "spec:\n"
    "  clusterIP: 10.96.0.11\n"
    "  ports: [{name: http, port: 80, targetPort: 8080}]\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: dead, namespace: default}\n"
    "spec:\n"
    "  clusterIP: 10.96.0.12\n"
    "  ports: [{name: http, port: 80, targetPort: %u}]\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\n"
    "kind: EndpointSlice\n"
    "metadata: {name: dead-1, namespace: default, labels: {kubernetes.io/service-name: dead}}\n"
    "addressType: IPv4\n"
    "endpoints: [{addresses: [\"127.0.0.1\"], conditions: {ready: true}}]\n"
    "ports: [{name: http, port: %u}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: dead, namespace: default}\n"
    "spec:\n"
    "  host: dead\n"
    "  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: web, namespace: default}\n"
    "spec:\n"
    "  hosts: [web]\n"
    "  http:\n"
    "  - match: [{uri: {prefix: /redirect}}]\n"
    "    redirect: {uri: /new, authority: elsewhere}\n"
    "  - match: [{uri: {exact: /direct}}]\n"
    "    directResponse: {status: 418, body: {string: teapot}}\n"
    "  - match: [{uri: {prefix: /api/}}]\n"
    "    rewrite: {uri: /v1/}\n"
    "    headers:\n"
    "      request: {set: {x-added: \"yes\"}}\n"
    "      response: {add: {x-resp: r}}\n"
    "    route: [{destination: {host: web}}]\n"
    "  - match: [{uri: {prefix: /mirrored}}]\n"
    "    route: [{destination: {host: web}}]\n"
    "    mirror: {host: web}\n"
    "    mirrorPercentage: {value: 100}\n"
    "  - match: [{uri: {prefix: /echo}}, {uri: {prefix: /chunked}}, {uri: {prefix: /upgrade}},\n"
    "            {uri: {prefix: /continue}}, {uri: {prefix: /close}}, {uri: {prefix: /p}},\n"
    "            {uri: {prefix: /arm-drop}}, {uri: {prefix: /conn}}]\n"
    "    route: [{destination: {host: web}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: web, namespace: default}\n"
    "spec:\n"
    "  host: web\n"
    "  trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 3, idleTimeout: 300ms}}}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: full, namespace: default}\n"
    "spec:\n"
    "  clusterIP: 10.96.0.13\n"
    "  ports: [{name: http, port: 80, targetPort: %u}]\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\n"
    "kind: EndpointSlice\n"
    "metadata: {name: full-1, namespace: default, labels: {kubernetes.io/service-name: full}}\n"
    "addressType: IPv4\n"
    "endpoints: [{addresses: [\"127.0.0.1\"], conditions: {ready: true}}]\n"
    "ports: [{name: http, port: %u}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: full, namespace: default}\n"
    "spec:\n"
    "  host: full\n"
    "  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 300ms}}}\n";

/* A listener that never accepts, its queue filled: the next SYN to it is dropped, so a connect hangs. */
static int full_fd = -1, fillers[4];

static uint16_t full_listener(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);

	full_fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(full_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(full_fd, 0), 0);
	getsockname(full_fd, (struct sockaddr *)&sin, &len);
	for (int i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(50000);
	return ntohs(sin.sin_port);
}

static uint64_t start_idle_ms; /* opts.idle_timeout_ms of the next start(); 0: the default */
static uint16_t dead_port;     /* dead's endpoint: nothing listens there unless a test does */

/* The outcomes the proxy reported for outlier detection, in order (worker thread; read after records_wait). */
struct seen_report {
	uint32_t svc_id, backend_id;
	enum l7_connect_outcome outcome;
	uint16_t status;
};
static pthread_mutex_t reports_lock = PTHREAD_MUTEX_INITIALIZER;
static struct seen_report reports[16];
static size_t n_reports;

static void report_hook(void *ctx, uint32_t svc_id, uint32_t backend_id, enum l7_connect_outcome outcome,
			uint16_t status)
{
	(void)ctx;
	pthread_mutex_lock(&reports_lock);
	if (n_reports < 16)
		reports[n_reports++] = (struct seen_report){ svc_id, backend_id, outcome, status };
	pthread_mutex_unlock(&reports_lock);
}

static void start(size_t workers)
{
	struct l7_proxy_opts opts = {
		.n_workers = workers,
		.resolve = resolve_by_listener,
		.on_record = records_hook,
		.report = report_hook,
		.idle_timeout_ms = start_idle_ms,
	};
	struct l7_proxy_addr addrs[4];
	struct xm_compile_opts copts = { .node_name = "node-a", .maglev_size = 251 };
	struct xm_config cfg = { 0 };
	uint16_t up = upstream_start(), dead = dead_port = closed_port(), full = full_listener();
	char text[sizeof(config_fmt) + 64], *path;
	const char *paths[1];
	uint32_t id = 1;
	int err;

	cr_assert_neq(up, 0, "upstream did not start");
	n_reports = 0;
	snprintf(text, sizeof(text), config_fmt, up, up, dead, dead, full, full);
	path = temp_yaml(text);
	paths[0] = path;
	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	snap = snapshot_build(&cfg, &copts, &err);
	cr_assert_not_null(snap, "snapshot_build: %d", err);
	config_free(&cfg);
	if (getenv("L7_DUMP")) {
		struct strbuf sb = { 0 };

		l7_routes_render(&snap->routes, false, &sb);
		fprintf(stderr, "%s\n", sb.buf);
		sb_free(&sb);
	}
	cr_assert_eq(snap->routes.n_services, 4, "four HTTP service ports, got %zu", snap->routes.n_services);
	/* What publishing does: ids for the services and backends (LEAST_REQUEST counts per backend id). */
	for (size_t i = 0; i < snap->lb.n_services; i++) {
		snap->lb.services[i].svc_id = id++;
		for (size_t j = 0; j < snap->lb.services[i].n_backends; j++)
			snap->lb.services[i].backends[j].id = id++;
	}
	proxy = l7_proxy_new(&opts, &err);
	cr_assert_not_null(proxy, "l7_proxy_new: %d", err);
	cr_assert_eq(l7_proxy_apply(proxy, snap, &snap->routes), 0);
	for (int i = 0; i < 4; i++) {
		memset(&addrs[i], 0, sizeof(addrs[i]));
		addrs[i].family = XM_FAMILY_V4;
		addrs[i].addr.v4 = htonl(0x7f000001 + (uint32_t)i);
	}
	cr_assert_eq(l7_proxy_listen(proxy, addrs, 4), 0);
	port = l7_proxy_port(proxy);
	cr_assert_neq(port, 0);
}

static void setup(void)
{
	start(1);
}

static void teardown(void)
{
	l7_proxy_free(proxy);
	snapshot_put(snap);
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(full_fd);
	upstream_stop();
}

TestSuite(l7_proxy, .init = setup, .fini = teardown, .timeout = 60);

static void get_host(struct hclient *c, const char *host, const char *path, struct response *r)
{
	char req[512];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: test\r\n\r\n", path, host);

	hc_send(c, req, (size_t)n);
	cr_assert(hc_read(c, r, false), "no response to GET %s", path);
}

static void get(struct hclient *c, const char *path, struct response *r)
{
	get_host(c, "web", path, r);
}

static void expect_header(const struct response *r, const char *name, const char *want)
{
	char v[512] = "";

	cr_assert(response_header(r, name, v, sizeof(v)), "no %s in\n%s", name, r->head);
	cr_expect_str_eq(v, want, "%s: got \"%s\", want \"%s\"", name, v, want);
}

Test(l7_proxy, get_is_routed_with_forwarding_headers)
{
	struct hclient c;
	struct response r;
	char rid[128];

	hc_open(&c, WEB, port);
	get(&c, "/echo", &r);
	cr_expect_eq(r.status, 200, "status %d\n%s", r.status, r.head);
	expect_header(&r, "x-seen-path", "/echo");
	expect_header(&r, "x-seen-host", "web");
	expect_header(&r, "x-seen-xff", "127.0.0.1");
	expect_header(&r, "x-seen-connection", "-"); /* hop-by-hop: never forwarded */
	cr_assert(response_header(&r, "x-seen-rid", rid, sizeof(rid)));
	cr_expect_eq(strlen(rid), 36, "x-request-id is a UUID: %s", rid);
	cr_expect_eq(rid[14], '4', "version 4: %s", rid);
	cr_expect(!response_header(&r, "keep-alive", rid, sizeof(rid)), "the upstream's Keep-Alive is hop-by-hop");
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(1), 1);
	cr_expect_eq(records_get(0).status, 200);
	cr_expect_eq(records_get(0).flags, 0);
	cr_expect_str_eq(records_get(0).path, "/echo");
}

Test(l7_proxy, keep_alive_reuses_the_upstream_connection)
{
	struct hclient a, b;
	struct response r;
	char first[16], v[16];

	hc_open(&a, WEB, port);
	get(&a, "/echo", &r);
	cr_assert(response_header(&r, "x-conn", first, sizeof(first)));
	response_free(&r);
	/* Three requests in all: web's DestinationRule allows three per upstream connection. */
	for (int i = 0; i < 1; i++) {
		get(&a, "/echo", &r);
		cr_assert(response_header(&r, "x-conn", v, sizeof(v)));
		cr_expect_str_eq(v, first, "request %d went on upstream connection %s, not %s", i, v, first);
		response_free(&r);
	}
	hc_close(&a);
	/* Another client on the same worker takes the pooled connection too. */
	hc_open(&b, WEB, port);
	get(&b, "/echo", &r);
	cr_assert(response_header(&r, "x-conn", v, sizeof(v)));
	cr_expect_str_eq(v, first);
	response_free(&r);
	hc_close(&b);
}

Test(l7_proxy, request_id_is_kept_and_xff_appended)
{
	static const char req[] =
	    "GET /echo HTTP/1.1\r\nHost: web\r\nx-request-id: abc-123\r\n"
	    "x-forwarded-for: 10.0.0.1\r\nConnection: keep-alive, x-secret\r\nx-secret: 1\r\n\r\n";
	struct hclient c;
	struct response r;
	char v[64];

	hc_open(&c, WEB, port);
	hc_send(&c, req, sizeof(req) - 1);
	cr_assert(hc_read(&c, &r, false));
	expect_header(&r, "x-seen-rid", "abc-123");
	expect_header(&r, "x-seen-xff", "10.0.0.1, 127.0.0.1");
	cr_expect(!strstr(r.head, "x-secret"), "a header named in Connection is hop-by-hop");
	cr_expect(!response_header(&r, "connection", v, sizeof(v)), "keep-alive: no Connection header back");
	response_free(&r);
	hc_close(&c);
}

Test(l7_proxy, chunked_both_ways)
{
	static const char head[] = "POST /echo HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct hclient c;
	struct response r;
	char *want = malloc(100000), line[32];
	size_t sent = 0;

	for (size_t i = 0; i < 100000; i++)
		want[i] = (char)(i * 7);
	hc_open(&c, WEB, port);
	hc_send(&c, head, sizeof(head) - 1);
	while (sent < 100000) {
		size_t n = sent + 3000 < 100000 ? 3000 : 100000 - sent;
		int k = snprintf(line, sizeof(line), "%zx\r\n", n);

		hc_send(&c, line, (size_t)k);
		hc_send(&c, want + sent, n);
		hc_send(&c, "\r\n", 2);
		sent += n;
	}
	hc_send(&c, "0\r\n\r\n", 5);
	cr_assert(hc_read(&c, &r, false));
	cr_expect_eq(r.status, 200);
	cr_expect(r.chunked, "the echo comes back chunked:\n%s", r.head);
	cr_assert_eq(r.body_len, 100000);
	cr_expect_eq(memcmp(r.body, want, 100000), 0, "chunked body changed on the way");
	response_free(&r);
	/* The connection is still good for the next request. */
	get(&c, "/echo", &r);
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&c);
	free(want);
}

Test(l7_proxy, ten_mib_each_way_byte_exact)
{
	size_t total = 10 << 20;
	char *body = malloc(total), head[256];
	struct hclient c;
	struct response r;
	int n;

	for (size_t i = 0; i < total; i++)
		body[i] = (char)((i * 131) >> 3);
	hc_open(&c, WEB, port);
	n = snprintf(head, sizeof(head), "PUT /echo HTTP/1.1\r\nHost: web\r\nContent-Length: %zu\r\n\r\n", total);
	hc_send(&c, head, (size_t)n);
	hc_send(&c, body, total);
	cr_assert(hc_read(&c, &r, false));
	cr_expect_eq(r.status, 200);
	cr_assert_eq(r.body_len, total);
	cr_expect_eq(memcmp(r.body, body, total), 0, "10 MiB Content-Length body changed on the way");
	response_free(&r);
	snprintf(head, sizeof(head), "/chunked?n=%zu", total);
	get(&c, head, &r);
	cr_expect(r.chunked, "status %d\n%s", r.status, r.head);
	cr_assert_eq(r.body_len, total);
	for (size_t i = 0; i < total; i += 4099)
		cr_assert_eq(r.body[i], (char)('a' + (i % 8192) % 26), "byte %zu", i);
	response_free(&r);
	hc_close(&c);
	free(body);
}

Test(l7_proxy, no_route_is_404_nr)
{
	struct hclient c;
	struct response r;

	hc_open(&c, WEB, port);
	get(&c, "/nothing-here", &r);
	cr_expect_eq(r.status, 404);
	response_free(&r);
	get(&c, "/echo", &r); /* a local reply keeps the connection */
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(2), 2);
	cr_expect_eq(records_get(0).flags, L7_RF_NR);
}

Test(l7_proxy, no_endpoint_is_503_uh)
{
	struct hclient c;
	struct response r;

	hc_open(&c, EMPTY, port);
	get_host(&c, "empty", "/", &r);
	cr_expect_eq(r.status, 503);
	cr_expect_str_eq(r.body, "no healthy upstream");
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(1), 1);
	cr_expect_eq(records_get(0).flags, L7_RF_UH);
}

Test(l7_proxy, connect_failure_is_503_uf)
{
	struct hclient c;
	struct response r;

	hc_open(&c, DEAD, port);
	get_host(&c, "dead", "/", &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(1), 1);
	/* Istio's default retry policy retries a connect failure twice, then Envoy flags the limit (URX). */
	cr_expect_eq(records_get(0).flags, L7_RF_UF | L7_RF_URX);
	cr_expect_eq(records_get(0).attempts, 3);
}

/* Answers one request on dead's port with 200 and closes: the endpoint came back. */
static void *answer_once(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	char buf[4096];
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf)) > 0 && write(fd, ok, sizeof(ok) - 1) < 0)
			(void)0;
		close(fd);
	}
	return NULL;
}

static size_t reports_wait(size_t n)
{
	size_t k = 0;

	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&reports_lock);
		k = n_reports;
		pthread_mutex_unlock(&reports_lock);
		if (k >= n)
			break;
		usleep(10000);
	}
	return k;
}

/*
 * Outlier detection: each refused connect of a service with outlierDetection is a local-origin failure for its
 * (svc_id, endpoint id); the first successful connect after them is reported once; a service without
 * outlierDetection (web) reports nothing.
 */
Test(l7_proxy, refused_connects_and_the_success_after_them_are_reported)
{
	const struct xm_lb_service *dead = NULL;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct hclient c;
	struct response r;
	pthread_t t;
	int lfd, one = 1;

	for (size_t i = 0; i < snap->lb.n_services; i++)
		if (snap->lb.services[i].key.vip.v4 == htonl(0x0a60000c))
			dead = &snap->lb.services[i];
	cr_assert_not_null(dead);
	cr_assert(dead->outlier_on);
	hc_open(&c, WEB, port);
	get(&c, "/echo", &r);
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&c);
	hc_open(&c, DEAD, port);
	for (int i = 0; i < 2; i++) {
		get_host(&c, "dead", "/", &r);
		cr_expect_eq(r.status, 503);
		response_free(&r);
	}
	/* Each request is tried three times (Istio's default policy: 2 retries on connect-failure): every try's
	 * failure is reported, as Envoy's outlier detector sees every attempt. */
	cr_assert_eq(reports_wait(6), 6, "want 6 reports (web's request reports nothing), got %zu", n_reports);
	for (int i = 0; i < 6; i++) {
		cr_expect_eq(reports[i].svc_id, dead->svc_id);
		cr_expect_eq(reports[i].backend_id, dead->backends[0].id);
		cr_expect_eq(reports[i].outcome, L7_CONNECT_FAILED);
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_port = htons(dead_port);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0, "dead's port was taken meanwhile");
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(pthread_create(&t, NULL, answer_once, &lfd), 0);
	get_host(&c, "dead", "/", &r);
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&c);
	pthread_join(t, NULL);
	close(lfd);
	cr_assert_eq(reports_wait(7), 7);
	cr_expect_eq(reports[6].svc_id, dead->svc_id);
	cr_expect_eq(reports[6].backend_id, dead->backends[0].id);
	cr_expect_eq(reports[6].outcome, L7_CONNECT_SUCCEEDED);
	usleep(50000);
	cr_expect_eq(n_reports, 7, "one success after the failures, nothing more");
}

/* Answers the requests of one keep-alive connection on dead's port with the statuses in order, then closes. */
static const uint16_t answer_statuses[] = { 500, 500, 200, 200, 200, 200, 503, 503, 503 };

static void *answer_in_turn(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	char buf[4096], resp[128];

	if (fd < 0)
		return NULL;
	for (size_t i = 0; i < sizeof(answer_statuses) / sizeof(answer_statuses[0]); i++) {
		int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %u X\r\nContent-Length: 0\r\n\r\n", answer_statuses[i]);

		if (read(fd, buf, sizeof(buf)) <= 0 || write(fd, resp, (size_t)n) != n)
			break;
	}
	close(fd);
	return NULL;
}

/*
 * Upstream statuses of a service with outlierDetection reach the report hook batched: two 500s, the 200 that
 * ends their run (once, however many follow), and three 503s that reach consecutive5xxErrors (3) together.
 */
Test(l7_proxy, response_statuses_are_reported_batched)
{
	static const uint16_t want[] = { 500, 500, 200, 503, 503, 503 };
	const struct xm_lb_service *dead = NULL;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct hclient c;
	struct response r;
	pthread_t t;
	int lfd, one = 1;

	for (size_t i = 0; i < snap->lb.n_services; i++)
		if (snap->lb.services[i].key.vip.v4 == htonl(0x0a60000c))
			dead = &snap->lb.services[i];
	cr_assert_not_null(dead);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_port = htons(dead_port);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0, "dead's port was taken meanwhile");
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(pthread_create(&t, NULL, answer_in_turn, &lfd), 0);
	hc_open(&c, DEAD, port);
	for (size_t i = 0; i < sizeof(answer_statuses) / sizeof(answer_statuses[0]); i++) {
		get_host(&c, "dead", "/", &r);
		cr_expect_eq(r.status, answer_statuses[i], "request %zu", i);
		response_free(&r);
	}
	hc_close(&c);
	pthread_join(t, NULL);
	close(lfd);
	cr_assert_eq(reports_wait(6), 6, "got %zu reports", n_reports);
	usleep(50000); /* two flush periods: nothing more comes */
	cr_assert_eq(n_reports, 6, "got %zu reports", n_reports);
	for (size_t i = 0; i < 6; i++) {
		cr_expect_eq(reports[i].svc_id, dead->svc_id);
		cr_expect_eq(reports[i].backend_id, dead->backends[0].id);
		cr_expect_eq(reports[i].outcome, L7_HTTP_STATUS, "report %zu", i);
		cr_expect_eq(reports[i].status, want[i], "report %zu: %u, want %u", i, reports[i].status, want[i]);
	}
}

Test(l7_proxy, smuggling_attempt_is_400_and_closed_while_others_work)
{
	static const char smuggle[] =
	    "POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: web\r\n\r\n";
	struct hclient good, bad;
	struct response r;

	hc_open(&good, WEB, port);
	get(&good, "/echo", &r);
	response_free(&r);
	hc_open(&bad, WEB, port);
	hc_send(&bad, smuggle, sizeof(smuggle) - 1);
	cr_assert(hc_read(&bad, &r, false));
	cr_expect_eq(r.status, 400);
	cr_expect(strstr(r.head, "connection: close"), "400 closes:\n%s", r.head);
	response_free(&r);
	cr_expect(hc_sees_close(&bad), "the smuggled second request must not be answered");
	hc_close(&bad);
	get(&good, "/echo", &r);
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&good);
}

Test(l7_proxy, upgrade_becomes_a_tunnel)
{
	static const char req[] = "GET /upgrade HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n";
	struct hclient c;
	struct response r;
	char buf[64];
	size_t got = 0;

	hc_open(&c, WEB, port);
	hc_send(&c, req, sizeof(req) - 1);
	cr_assert(hc_read(&c, &r, true));
	cr_expect_eq(r.status, 101);
	expect_header(&r, "upgrade", "test");
	response_free(&r);
	hc_send(&c, "ping-pong", 9);
	memcpy(buf, c.buf, c.len);
	got = c.len;
	while (got < 9) {
		ssize_t k = recv(c.fd, buf + got, sizeof(buf) - got, 0);

		cr_assert_gt(k, 0, "the tunnel closed");
		got += (size_t)k;
	}
	cr_expect_eq(memcmp(buf, "ping-pong", 9), 0);
	hc_close(&c);
}

Test(l7_proxy, expect_100_continue_is_relayed)
{
	static const char req[] =
	    "POST /continue HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
	struct hclient c;
	struct response r;

	hc_open(&c, WEB, port);
	hc_send(&c, req, sizeof(req) - 1);
	cr_assert(hc_read(&c, &r, true), "no 100 before the body");
	cr_expect_eq(r.status, 100);
	response_free(&r);
	hc_send(&c, "hello", 5);
	cr_assert(hc_read(&c, &r, false));
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq(r.body, "got 5");
	response_free(&r);
	hc_close(&c);
}

Test(l7_proxy, pipelined_requests_answer_in_order)
{
	static const char reqs[] = "GET /p1 HTTP/1.1\r\nHost: web\r\n\r\nHEAD /p2 HTTP/1.1\r\nHost: web\r\n\r\n"
				   "GET /p3 HTTP/1.1\r\nHost: web\r\n\r\n";
	struct hclient c;
	struct response r;

	hc_open(&c, WEB, port);
	hc_send(&c, reqs, sizeof(reqs) - 1);
	cr_assert(hc_read(&c, &r, false));
	expect_header(&r, "x-seen-path", "/p1");
	response_free(&r);
	cr_assert(hc_read(&c, &r, true));
	expect_header(&r, "x-seen-path", "/p2");
	expect_header(&r, "content-length", "0");
	response_free(&r);
	cr_assert(hc_read(&c, &r, false));
	expect_header(&r, "x-seen-path", "/p3");
	response_free(&r);
	hc_close(&c);
}

Test(l7_proxy, redirect_direct_response_and_rewrite)
{
	struct hclient c;
	struct response r;

	hc_open(&c, WEB, port);
	get(&c, "/redirect/x?q=1", &r);
	cr_expect_eq(r.status, 301);
	expect_header(&r, "location", "http://elsewhere/new?q=1");
	response_free(&r);
	get(&c, "/direct", &r);
	cr_expect_eq(r.status, 418);
	cr_expect_str_eq(r.body, "teapot");
	response_free(&r);
	get(&c, "/api/items?x=2", &r);
	cr_expect_eq(r.status, 200);
	expect_header(&r, "x-seen-path", "/v1/items?x=2");
	expect_header(&r, "x-seen-added", "yes");
	expect_header(&r, "x-resp", "r");
	response_free(&r);
	hc_close(&c);
}

Test(l7_proxy, close_delimited_response_closes_downstream)
{
	struct hclient c;
	struct response r;

	hc_open(&c, WEB, port);
	get(&c, "/close", &r);
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq(r.body, "bye");
	response_free(&r);
	hc_close(&c);
}

Test(l7_proxy, http10_client_without_keep_alive_is_closed_after_the_response)
{
	static const char req[] = "GET /echo HTTP/1.0\r\n\r\n";
	struct hclient c;
	struct response r;

	hc_open(&c, WEB, port);
	hc_send(&c, req, sizeof(req) - 1);
	cr_assert(hc_read(&c, &r, false));
	cr_expect_eq(r.status, 200);
	response_free(&r);
	cr_expect(hc_sees_close(&c));
	hc_close(&c);
}

/* The fixture's /chunked?n=N payload: 8 KiB blocks of a..z. */
static bool is_chunked_payload(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (char)('a' + i % 8192 % 26))
			return false;
	return true;
}

/* An HTTP/1.0 client of a chunked upstream response: the payload alone (no chunk framing, no trailer),
 * delimited by the close (RFC 9112 §6.1: no chunked to 1.0), whether it asked for keep-alive or not. */
static void http10_gets_chunked_response_dechunked(const char *req)
{
	struct hclient c;
	struct response r;
	char v[64];
	size_t n;

	hc_open(&c, WEB, port);
	hc_send(&c, req, strlen(req));
	cr_assert(hc_read(&c, &r, false));
	cr_expect_eq(r.status, 200, "status %d\n%s", r.status, r.head);
	cr_expect(!r.chunked && !response_header(&r, "transfer-encoding", v, sizeof(v)), "chunked to 1.0:\n%s", r.head);
	cr_expect(!response_header(&r, "content-length", v, sizeof(v)), "content-length: %s", v);
	expect_header(&r, "connection", "close");
	/* hc_read read up to the close: what came is the payload, exactly */
	cr_expect_eq(r.body_len, 300000, "%zu payload bytes", r.body_len);
	cr_expect(is_chunked_payload(r.body, r.body_len), "the payload differs");
	response_free(&r);
	cr_expect(hc_sees_close(&c));
	hc_close(&c);
	n = records_wait(1);
	cr_assert_geq(n, 1);
	cr_expect_eq(records_get(n - 1).status, 200);
	cr_expect_eq(records_get(n - 1).flags, 0);
	cr_expect_eq(records_get(n - 1).response_bytes, 300000);
}

Test(l7_proxy, http10_client_gets_a_chunked_response_dechunked_then_close)
{
	http10_gets_chunked_response_dechunked("GET /chunked?n=300000 HTTP/1.0\r\n\r\n");
}

Test(l7_proxy, http10_keep_alive_client_gets_a_chunked_response_dechunked_then_close)
{
	http10_gets_chunked_response_dechunked("GET /chunked?n=300000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
}

/* A 1.0 client that asks for keep-alive keeps it while the response has a length: told so, and served again. */
Test(l7_proxy, http10_keep_alive_client_is_kept_when_the_length_is_known)
{
	static const char post[] = "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello";
	static const char get10[] = "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
	static const char get404[] = "GET /nothing-here HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
	static const char get_close[] = "GET /echo HTTP/1.0\r\n\r\n";
	struct hclient c;
	struct response r;
	char conn[16], again[16];

	hc_open(&c, WEB, port);
	hc_send(&c, post, sizeof(post) - 1);
	cr_assert(hc_read(&c, &r, false));
	cr_expect_eq(r.status, 200);
	expect_header(&r, "connection", "keep-alive");
	expect_header(&r, "content-length", "5");
	expect_header(&r, "x-seen-connection", "-"); /* the client's keep-alive is hop-by-hop */
	cr_expect_str_eq(r.body, "hello");
	cr_assert(response_header(&r, "x-conn", conn, sizeof(conn)));
	response_free(&r);
	hc_send(&c, get10, sizeof(get10) - 1);
	cr_assert(hc_read(&c, &r, false), "the connection was not kept");
	cr_expect_eq(r.status, 200);
	expect_header(&r, "connection", "keep-alive");
	cr_assert(response_header(&r, "x-conn", again, sizeof(again)));
	cr_expect_str_eq(again, conn, "the upstream connection was not reused");
	response_free(&r);
	/* A local reply (no route: 404) keeps it too, and says so. */
	hc_send(&c, get404, sizeof(get404) - 1);
	cr_assert(hc_read(&c, &r, false), "the connection was not kept");
	cr_expect_eq(r.status, 404);
	expect_header(&r, "connection", "keep-alive");
	response_free(&r);
	/* Without keep-alive, the last one is answered with close. */
	hc_send(&c, get_close, sizeof(get_close) - 1);
	cr_assert(hc_read(&c, &r, false));
	expect_header(&r, "connection", "close");
	response_free(&r);
	cr_expect(hc_sees_close(&c));
	hc_close(&c);
}

Test(l7_proxy, a_reused_connection_closed_under_a_request_is_resent_once)
{
	struct hclient c;
	struct response r;
	char first[16], second[16];

	hc_open(&c, WEB, port);
	get(&c, "/arm-drop", &r);
	cr_assert_eq(r.status, 200, "%d\n%s%s", r.status, r.head, r.body);
	cr_assert(response_header(&r, "x-conn", first, sizeof(first)));
	response_free(&r);
	/* The pooled connection is taken again; the server closes it when this request arrives. */
	get(&c, "/echo", &r);
	cr_expect_eq(r.status, 200, "a request lost to an idle close must be resent, got %d", r.status);
	cr_assert(response_header(&r, "x-conn", second, sizeof(second)));
	cr_expect_str_neq(second, first, "the resend goes on a fresh connection");
	response_free(&r);
	hc_close(&c);
}

Test(l7_proxy, mirror_gets_a_shadow_copy)
{
	struct hclient c;
	struct response r;

	hc_open(&c, WEB, port);
	get(&c, "/mirrored/x", &r);
	cr_expect_eq(r.status, 200, "%d\n%s%s", r.status, r.head, r.body);
	response_free(&r);
	hc_close(&c);
	cr_expect(upstream_saw("/mirrored/x", "web"), "the primary request");
	cr_expect(upstream_saw("/mirrored/x", "web-shadow"), "the shadow copy, Host suffixed -shadow");
}

/* web's DestinationRule: maxRequestsPerConnection 3, so requests 1-3 share a connection and 4 opens another. */
Test(l7_proxy, max_requests_per_connection_closes_the_upstream_connection)
{
	struct hclient c;
	struct response r;
	char conn[4][16];

	hc_open(&c, WEB, port);
	for (int i = 0; i < 4; i++) {
		get(&c, "/conn", &r);
		cr_assert_eq(r.status, 200);
		cr_assert(response_header(&r, "x-conn", conn[i], sizeof(conn[i])));
		response_free(&r);
	}
	hc_close(&c);
	cr_expect_str_eq(conn[1], conn[0]);
	cr_expect_str_eq(conn[2], conn[0]);
	cr_expect_str_neq(conn[3], conn[0], "the 4th request needs a new connection");
}

Test(l7_proxy, connect_timeout_is_503_uf)
{
	struct hclient c;
	struct response r;
	uint64_t t0 = loop_now_ms();

	hc_open(&c, FULL, port);
	get_host(&c, "full", "/", &r);
	cr_expect_eq(r.status, 503);
	/* Three tries (Istio's default policy retries a connect failure twice), each cut at 300 ms. */
	cr_expect_geq(loop_now_ms() - t0, 850, "answered before three 300 ms connectTimeouts");
	cr_expect_lt(loop_now_ms() - t0, 3000, "connectTimeout 300ms not applied");
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(1), 1);
	cr_expect_eq(records_get(0).flags, L7_RF_UF | L7_RF_URX);
}

static void setup_short_idle(void)
{
	start_idle_ms = 300;
	start(1);
	start_idle_ms = 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The idle timer is not moved per request: when it fires on a connection that was busy since, it waits on. */
Test(l7_proxy_idle, a_keep_alive_connection_closes_after_the_idle_timeout_and_not_while_used, .init = setup_short_idle,
     .fini = teardown, .timeout = 30)
{
	struct hclient c;
	struct response r;
	double idle_from, idle_for;

	hc_open(&c, WEB, port);
	for (int i = 0; i < 7; i++) { /* a request every 150 ms for a second: never idle 300 ms */
		if (i)
			usleep(150000);
		get(&c, "/echo", &r);
		cr_assert_eq(r.status, 200, "request %d after %d ms: status %d", i, i * 150, r.status);
		response_free(&r);
	}
	idle_from = now_s();
	cr_assert(hc_sees_close(&c), "an idle connection must be closed after idle_timeout_ms (300)");
	idle_for = now_s() - idle_from;
	cr_expect(idle_for >= 0.25 && idle_for < 1.5, "closed after %.3f s of idleness, want about 0.3", idle_for);
	hc_close(&c);
}

static int conn_of(const struct response *r)
{
	char v[16] = "";

	cr_assert(response_header(r, "x-conn", v, sizeof(v)), "no x-conn in\n%s", r->head);
	return atoi(v);
}

/* web's DestinationRule: idleTimeout 300ms, maxRequestsPerConnection 3. The pool's timer is not moved per
 * request: when it fires on a connection used since, it waits on. */
Test(l7_proxy, a_pooled_connection_closes_after_the_idle_timeout_and_not_while_used)
{
	struct hclient c;
	struct response r;
	int first, second;

	hc_open(&c, WEB, port);
	get(&c, "/echo", &r);
	first = conn_of(&r);
	response_free(&r);
	for (int i = 0; i < 2; i++) { /* 150 ms apart, the second past the first idle timeout */
		usleep(150000);
		get(&c, "/echo", &r);
		cr_expect_eq(conn_of(&r), first, "request %d: a connection idle 150 ms must be reused", i + 2);
		response_free(&r);
	}
	get(&c, "/echo", &r); /* the first one served its three: a new one */
	second = conn_of(&r);
	response_free(&r);
	cr_expect_neq(second, first);
	usleep(600000);
	get(&c, "/echo", &r);
	cr_expect_neq(conn_of(&r), second, "a connection idle 600 ms must have been closed (idleTimeout 300ms)");
	response_free(&r);
	hc_close(&c);
}
