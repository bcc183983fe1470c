// SPDX-License-Identifier: Apache-2.0
/*
 * Retries (docs/l7.md "Retries"): the VirtualService retries block parsed and validated as Istio does, Istio's
 * conversion into a route's policy (its default policy when absent), Envoy's retry conditions and backoff range,
 * and the proxy on loopback retrying over a good endpoint (the fixture's, 127.0.0.1) and a bad one (127.0.0.2,
 * answering bad_status, or slowly on /slowtry): a hidden failure, no retry of a 404 under 5xx, exhaustion (URX),
 * the backoff between tries, the per-try timeout, the route timeout over all tries, the body kept for a resend or
 * too big for it, and maxRetries' overflow (UO).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "config/parse_retries.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "http/h1.h"
#include "l7/proxy.h"
#include "l7/record.h"
#include "l7/request_id.h"
#include "l7/retry.h"
#include "l7_proxy_fixture.h"
#include "test_config.h"

/* ---- config ---- */

static struct xm_config cfg;
static struct xm_diags diags;

static void config_teardown(void)
{
	diags_free(&diags);
	config_free(&cfg);
}

TestSuite(l7_retry_config, .fini = config_teardown);

static const struct xm_http_route *vs_route(size_t i)
{
	cr_assert_eq(cfg.n_virtual_services, 1);
	cr_assert_lt(i, cfg.virtual_services[0].n_http);
	return &cfg.virtual_services[0].http[i];
}

Test(l7_retry_config, every_field_is_parsed)
{
	const char *paths[] = { fixture("vs/retries.yaml") };
	const struct xm_http_retry *r;

	load_clean(paths, 1, &cfg);
	r = &vs_route(0)->retries;
	cr_expect(r->set);
	cr_expect_eq(r->attempts, 3);
	cr_expect_eq(r->per_try_timeout_ms, 2000);
	cr_expect(r->retry_on_set);
	cr_expect_eq(r->retry_on, XM_RETRY_ON_GATEWAY_ERROR | XM_RETRY_ON_CONNECT_FAILURE);
	cr_expect_eq(r->n_statuses, 2);
	cr_expect_eq(r->statuses[0], 409);
	cr_expect_eq(r->statuses[1], 503);
	cr_expect(r->retry_remote_localities);
	cr_expect(r->ignore_previous_hosts_set && !r->ignore_previous_hosts);
	cr_expect_eq(r->backoff_ms, 50);
	cr_expect(vs_route(1)->retries.set && !vs_route(1)->retries.attempts);
	cr_expect(!vs_route(2)->retries.retry_on_set);
	cr_expect(!vs_route(4)->retries.set);
}

Test(l7_retry_config, istios_validation_errors_at_their_place)
{
	const char *f = "vs/retries_errors.yaml";
	const char *paths[] = { fixture(f) };

	cr_assert_neq(config_load(paths, 1, &cfg, &diags), 0);
	find_diag(&diags, f, 14, 25, "spec.http[0].retries: ", "attempts cannot be negative");
	find_diag(&diags, f, 16, 37, "spec.http[1].retries.retryOn: ", "\"bogus\" is not a valid retryOn policy");
	/* Istio splits on commas without trimming: " 503" is neither a policy nor a status code. */
	find_diag(&diags, f, 18, 37, "spec.http[2].retries.retryOn: ", "\" 503\" is not a valid retryOn policy");
	find_diag(&diags, f, 20, 37, "spec.http[3].retries.retryOn: ", "\"599\" is not a valid retryOn policy");
	find_diag(&diags, f, 22, 43, "spec.http[4].retries.perTryTimeout ", "is not a valid duration");
	find_diag(&diags, f, 24, 14, "spec.http[5].retries: ", "attempts is 0");
	find_diag(&diags, f, 26, 37, "spec.http[6].retries.retryOn: ", "\"\" is not a valid retryOn policy");
	find_diag(&diags, f, 28, 14, "spec.http[7].retries: ", "expected a mapping");
}

Test(l7_retry_config, tokens_are_policies_or_known_status_codes)
{
	uint16_t st;

	cr_expect_eq(config_retry_on_token("5xx", 3, &st), XM_RETRY_ON_5XX);
	cr_expect_eq(config_retry_on_token("unavailable", 11, &st), XM_RETRY_ON_UNAVAILABLE);
	cr_expect_eq(config_retry_on_token("503", 3, &st), 0);
	cr_expect_eq(st, 503);
	cr_expect_eq(config_retry_on_token("+409", 4, &st), 0, "strconv.Atoi takes a sign");
	cr_expect_eq(st, 409);
	cr_expect_eq(config_retry_on_token("418", 3, &st), 0);
	cr_expect_eq(config_retry_on_token("419", 3, &st), -1, "Go's StatusText has no 419");
	cr_expect_eq(config_retry_on_token("-503", 4, &st), -1);
	cr_expect_eq(config_retry_on_token("5XX", 3, &st), -1, "names are case-sensitive");
	cr_expect_eq(config_retry_on_token("", 0, &st), -1);
}

/* Istio's ConvertPolicy: default when absent, none for attempts 0, retryOn's codes turn on the status list. */
Test(l7_retry_config, istios_conversion)
{
	struct xm_http_retry in = { 0 };
	struct l7_retry_policy p;
	char on[256];

	l7_retry_policy_from(&in, &p);
	cr_expect_eq(p.attempts, 2);
	cr_expect_eq(p.retry_on, L7_RETRY_DEFAULT_ON);
	cr_expect_eq(p.n_statuses, 0, "EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY: no 503 in the default");
	cr_expect(p.previous_hosts);
	cr_expect_eq(p.backoff_base_ms, 25);
	l7_retry_on_format(&p, on, sizeof(on));
	cr_expect_str_eq(on, "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");

	in = (struct xm_http_retry){ .set = true };
	l7_retry_policy_from(&in, &p);
	cr_expect_eq(p.attempts, 0, "attempts: 0 disables retries");

	in = (struct xm_http_retry){ .set = true, .attempts = 4 };
	l7_retry_policy_from(&in, &p);
	cr_expect_eq(p.attempts, 4);
	cr_expect_eq(p.retry_on, L7_RETRY_DEFAULT_ON, "retryOn absent keeps the default list");

	in = (struct xm_http_retry){ .set = true,
				     .attempts = 1,
				     .retry_on_set = true,
				     .statuses = { 500 },
				     .n_statuses = 1,
				     .per_try_timeout_ms = 7 };
	l7_retry_policy_from(&in, &p);
	cr_expect_eq(p.retry_on, L7_RETRY_RETRIABLE_STATUS, "a bare code turns on retriable-status-codes");
	cr_expect_eq(p.per_try_timeout_ms, 7);
	l7_retry_on_format(&p, on, sizeof(on));
	cr_expect_str_eq(on, "retriable-status-codes,500");
}

Test(l7_retry_config, routes_show_the_policy)
{
	const char *paths[] = { fixture("vs/retries.yaml") };
	struct xm_compile_opts copts = { .node_name = "node-a", .maglev_size = 251 };
	struct xm_snapshot *s;
	struct strbuf sb = { 0 };
	int err;

	load_clean(paths, 1, &cfg);
	s = snapshot_build(&cfg, &copts, &err);
	cr_assert_not_null(s, "snapshot_build: %d", err);
	l7_routes_render(&s->routes, false, &sb);
	cr_expect(strstr(sb.buf,
			 "retries 3 on gateway-error,connect-failure,retriable-status-codes,409,503 per-try 2000ms "
			 "backoff 50ms same-host remote-localities\n"),
		  "%s", sb.buf);
	cr_expect(strstr(sb.buf, "retries off\n"), "%s", sb.buf);
	cr_expect(strstr(sb.buf, "retries 5 on connect-failure,refused-stream,unavailable,cancelled,"
				 "retriable-status-codes\n"),
		  "%s", sb.buf);
	cr_expect(strstr(sb.buf, "retries 1 on retriable-status-codes,500\n"), "%s", sb.buf);
	cr_expect(strstr(sb.buf, "retries 2 on connect-failure,refused-stream,unavailable,cancelled,"
				 "retriable-status-codes\n"),
		  "the default policy: %s", sb.buf);
	sb_free(&sb);
	l7_routes_render(&s->routes, true, &sb);
	cr_expect(strstr(sb.buf, "\"retries\":{\"attempts\":3,\"retry_on\":\"gateway-error,connect-failure,retriable-"
				 "status-codes,409,503\",\"per_try_timeout_ms\":2000,\"backoff_base_ms\":50,"
				 "\"previous_hosts\":false,\"retry_remote_localities\":true}"),
		  "%s", sb.buf);
	sb_free(&sb);
	snapshot_put(s);
}

/* ---- decisions ---- */

Test(l7_retry_policy, envoys_conditions)
{
	struct l7_retry_policy p = { .attempts = 1 };

	p.retry_on = L7_RETRY_5XX;
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 500));
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 599));
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 404));
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 409));
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_CONNECT_FAILURE, 0), "5xx counts a connect failure");
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_RESET, 0));
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_PER_TRY_TIMEOUT, 0));
	p.retry_on = L7_RETRY_GATEWAY_ERROR;
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 502));
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 503));
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 504));
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 500));
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_PER_TRY_TIMEOUT, 0));
	p.retry_on = L7_RETRY_CONNECT_FAILURE;
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_CONNECT_FAILURE, 0));
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_RESET, 0));
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_PER_TRY_TIMEOUT, 0), "a per-try timeout is a reset");
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 503));
	p.retry_on = L7_RETRY_RESET;
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_RESET, 0));
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_CONNECT_FAILURE, 0));
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 503));
	p.retry_on = L7_RETRY_RETRIABLE_4XX;
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 409));
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 404));
	p.retry_on = L7_RETRY_RETRIABLE_STATUS;
	p.statuses[0] = 418;
	p.n_statuses = 1;
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 418));
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 503));
	p.retry_on = L7_RETRY_DEFAULT_ON;
	p.n_statuses = 0;
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_STATUS, 503), "the default retries no status");
	cr_expect(l7_retry_wanted(&p, L7_RETRY_CAUSE_CONNECT_FAILURE, 0));
	p.attempts = 0;
	cr_expect(!l7_retry_wanted(&p, L7_RETRY_CAUSE_CONNECT_FAILURE, 0), "no attempts, no retry");
}

/* JitteredExponentialBackOffStrategy at 25 ms: [0,25), [0,50), [0,100), [0,200), then [0,250). */
Test(l7_retry_policy, backoff_range)
{
	static const uint64_t upper[] = { 25, 50, 100, 200, 250, 250, 250 };
	struct l7_rng rng;

	l7_rng_seed(&rng);
	for (uint32_t n = 1; n <= 7; n++) {
		uint64_t max = 0;

		cr_expect_eq(l7_retry_backoff_ms(25, n, upper[n - 1] - 1), upper[n - 1] - 1);
		cr_expect_eq(l7_retry_backoff_ms(25, n, upper[n - 1]), 0);
		for (int i = 0; i < 2000; i++) {
			uint64_t b = l7_retry_backoff_ms(25, n, l7_rng_below(&rng, UINT32_MAX));

			cr_assert_lt(b, upper[n - 1], "retry %u: %llu", n, (unsigned long long)b);
			max = b > max ? b : max;
		}
		cr_expect_geq(max, upper[n - 1] * 9 / 10, "retry %u: the range is used, max %llu", n,
			      (unsigned long long)max);
	}
	cr_expect_lt(l7_retry_backoff_ms(40, 9, UINT64_MAX), 400, "the cap is ten times the base");
}

/* ---- through the proxy ---- */

static struct l7_proxy *proxy;
static struct xm_snapshot *snap;
static uint16_t port, up_port;

/* The bad endpoint, 127.0.0.2:up_port: answers bad_status ("bad"), or 200 after 2 s on /slowtry. */
static int bad_fd = -1;
static pthread_t bad_thread;
static atomic_bool bad_stop;
static atomic_int bad_status = 503;
static pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;
static int bad_count;
static uint64_t bad_at_ms[64];
static int bad_attempt[64];
static size_t bad_body[64];

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *bad_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static __thread char buf[160 * 1024];
	size_t len = 0;

	for (;;) {
		struct h1_request req;
		enum h1_error err;
		const struct h1_header *h;
		char reply[160];
		int n, k, i;
		ssize_t r;

		while ((n = h1_parse_request(buf, len, &req, &err)) == 0) {
			r = read(fd, buf + len, sizeof(buf) - len);
			if (r <= 0)
				goto out;
			len += (size_t)r;
		}
		if (n < 0)
			goto out;
		while (len < (size_t)n + req.content_length) {
			r = read(fd, buf + len, sizeof(buf) - len);
			if (r <= 0)
				goto out;
			len += (size_t)r;
		}
		h = h1_find(req.headers, req.n_headers, "x-envoy-attempt-count");
		pthread_mutex_lock(&bad_lock);
		i = bad_count++;
		if (i < 64) {
			bad_at_ms[i] = mono_ms();
			bad_attempt[i] = h ? atoi(h->value.p) : 0;
			bad_body[i] = req.content_length;
		}
		pthread_mutex_unlock(&bad_lock);
		if (req.target.len >= 8 && !memcmp(req.target.p, "/slowtry", 8)) {
			usleep(2000000);
			k = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow");
		} else {
			k = snprintf(reply, sizeof(reply), "HTTP/1.1 %d Bad\r\ncontent-length: 3\r\n\r\nbad",
				     atomic_load(&bad_status));
		}
		memmove(buf, buf + n + req.content_length, len - (size_t)n - req.content_length);
		len -= (size_t)n + req.content_length;
		if (write(fd, reply, (size_t)k) != k)
			goto out;
	}
out:
	close(fd);
	return NULL;
}

static void *bad_accept(void *arg)
{
	(void)arg;
	while (!atomic_load(&bad_stop)) {
		struct pollfd p = { .fd = bad_fd, .events = POLLIN };
		pthread_t t;
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(bad_fd, NULL, NULL);
		if (fd < 0)
			continue;
		if (pthread_create(&t, NULL, bad_conn, (void *)(intptr_t)fd))
			close(fd);
		else
			pthread_detach(t);
	}
	return NULL;
}

static int bad_requests(void)
{
	int n;

	pthread_mutex_lock(&bad_lock);
	n = bad_count;
	pthread_mutex_unlock(&bad_lock);
	return n;
}

/* The bad endpoint's count once it reached n (a try cut by a timeout may still be read after the answer), or
 * after 1 s. */
static int bad_wait(int n)
{
	for (int i = 0; i < 100 && bad_requests() < n; i++)
		usleep(10000);
	return bad_requests();
}

/* Outlier reports (statuses of solo, whose DestinationRule has outlierDetection). */
static pthread_mutex_t reports_lock = PTHREAD_MUTEX_INITIALIZER;
static uint16_t report_status[64];
static int n_reports;

static void report_hook(void *ctx, uint32_t svc_id, uint32_t backend_id, enum l7_connect_outcome outcome,
			uint16_t status)
{
	(void)ctx, (void)svc_id, (void)backend_id;
	pthread_mutex_lock(&reports_lock);
	if (outcome == L7_HTTP_STATUS && n_reports < 64)
		report_status[n_reports++] = status;
	pthread_mutex_unlock(&reports_lock);
}

/* 127.0.0.1 → web (10.96.0.10: good and bad endpoints), 127.0.0.2 → solo (10.96.0.11: the bad one only). */
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
	return last <= 2 ? 0 : -ENOENT;
}

static const char config_fmt[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n"
    "spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: %u}]}\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}\n"
    "addressType: IPv4\n"
    "endpoints: [{addresses: [\"127.0.0.1\"], conditions: {ready: true}},"
    " {addresses: [\"127.0.0.2\"], conditions: {ready: true}}]\n"
    "ports: [{name: http, port: %u}]\n"
    "---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: solo, namespace: default}\n"
    "spec: {clusterIP: 10.96.0.11, ports: [{name: http, port: 80, targetPort: %u}]}\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: solo-1, namespace: default, labels: {kubernetes.io/service-name: solo}}\n"
    "addressType: IPv4\n"
    "endpoints: [{addresses: [\"127.0.0.2\"], conditions: {ready: true}}]\n"
    "ports: [{name: http, port: %u}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: default}\n"
    "spec: {host: web, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: solo, namespace: default}\n"
    "spec: {host: solo, trafficPolicy: {connectionPool: {http: {maxRetries: 4}},"
    " outlierDetection: {consecutive5xxErrors: 1000}}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: default}\n"
    "spec:\n"
    "  hosts: [web]\n"
    "  http:\n"
    "  - match: [{uri: {prefix: /slowtry}}]\n"
    "    retries: {attempts: 2, perTryTimeout: 200ms, retryOn: 5xx}\n"
    "    route: [{destination: {host: web}}]\n"
    "  - retries: {attempts: 3, retryOn: 5xx}\n"
    "    route: [{destination: {host: web}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: solo, namespace: default}\n"
    "spec:\n"
    "  hosts: [solo]\n"
    "  http:\n"
    "  - match: [{uri: {prefix: /slowtry}}]\n"
    "    retries: {attempts: 1, perTryTimeout: 100ms, retryOn: gateway-error}\n"
    "    route: [{destination: {host: solo}}]\n"
    "  - match: [{uri: {prefix: /timeout}}]\n"
    "    timeout: 150ms\n"
    "    retries: {attempts: 20, retryOn: 5xx, backoff: 100ms}\n"
    "    route: [{destination: {host: solo}}]\n"
    "  - match: [{uri: {prefix: /none}}]\n"
    "    retries: {attempts: 0}\n"
    "    route: [{destination: {host: solo}}]\n"
    "  - match: [{uri: {prefix: /default}}]\n"
    "    route: [{destination: {host: solo}}]\n"
    "  - retries: {attempts: 2, retryOn: 5xx}\n"
    "    route: [{destination: {host: solo}}]\n";

static void setup(void)
{
	struct l7_proxy_opts opts = {
		.n_workers = 1, .resolve = resolve_by_listener, .on_record = records_hook, .report = report_hook
	};
	struct l7_proxy_addr addrs[2];
	struct xm_compile_opts copts = { .node_name = "node-a", .maglev_size = 251 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char text[sizeof(config_fmt) + 64];
	int err, one = 1;

	up_port = upstream_start();
	cr_assert_neq(up_port, 0, "upstream did not start");
	bad_fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(bad_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_addr.s_addr = htonl(0x7f000002);
	sin.sin_port = htons(up_port);
	cr_assert_eq(bind(bad_fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "127.0.0.2:%u", up_port);
	cr_assert_eq(listen(bad_fd, 64), 0);
	cr_assert_eq(pthread_create(&bad_thread, NULL, bad_accept, NULL), 0);
	snprintf(text, sizeof(text), config_fmt, up_port, up_port, up_port, up_port);
	snap = fixture_snapshot(text, &copts);
	proxy = l7_proxy_new(&opts, &err);
	cr_assert_not_null(proxy, "l7_proxy_new: %d", err);
	cr_assert_eq(l7_proxy_apply(proxy, snap, &snap->routes), 0);
	for (int i = 0; i < 2; i++) {
		memset(&addrs[i], 0, sizeof(addrs[i]));
		addrs[i].family = XM_FAMILY_V4;
		addrs[i].addr.v4 = htonl(0x7f000001 + (uint32_t)i);
	}
	cr_assert_eq(l7_proxy_listen(proxy, addrs, 2), 0);
	port = l7_proxy_port(proxy);
	cr_assert_neq(port, 0);
}

static void teardown(void)
{
	l7_proxy_free(proxy);
	snapshot_put(snap);
	atomic_store(&bad_stop, true);
	pthread_join(bad_thread, NULL);
	close(bad_fd);
	upstream_stop();
}

TestSuite(l7_retries, .init = setup, .fini = teardown, .timeout = 30);

static void request(const char *ip, const char *host, const char *method, const char *path, size_t body_len,
		    struct response *r)
{
	struct hclient c;
	char head[512];
	char *body = body_len ? malloc(body_len) : NULL;
	int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s\r\ncontent-length: %zu\r\n\r\n", method, path,
			 host, body_len);

	if (body_len)
		memset(body, 'b', body_len);
	hc_open(&c, ip, port);
	hc_send(&c, head, (size_t)n);
	if (body_len)
		hc_send(&c, body, body_len);
	cr_assert(hc_read(&c, r, false), "no response to %s %s", method, path);
	hc_close(&c);
	free(body);
}

static struct seen_record last_record(size_t n)
{
	cr_assert_geq(records_wait(n), n);
	return records_get(n - 1);
}

Test(l7_retries, a_failing_endpoint_is_hidden)
{
	struct response r;

	for (int i = 0; i < 20; i++) {
		int before = bad_requests();

		request("127.0.0.1", "web", "GET", "/echo", 0, &r);
		cr_expect_eq(r.status, 200, "request %d", i);
		response_free(&r);
		cr_expect_eq(last_record((size_t)i + 1).flags, 0);
		/* ROUND_ROBIN: the first re-pick is the other endpoint (with random picks, Envoy's 5 selections can
		 * all land on the endpoint tried already). */
		cr_expect_leq(bad_requests() - before, 1,
			      "a retry goes to the other endpoint, never twice to the bad one");
		cr_expect_eq(last_record((size_t)i + 1).attempts, 1 + (bad_requests() - before));
	}
	cr_expect_gt(bad_requests(), 0, "the bad endpoint was tried");
}

Test(l7_retries, a_request_body_is_sent_again)
{
	struct response r;
	int tries = 0;

	/* Until one request was retried (the balancer's first pick was the bad endpoint). */
	while (tries++ < 20) {
		int before = bad_requests();

		request("127.0.0.1", "web", "POST", "/echo", 3000, &r);
		cr_expect_eq(r.status, 200);
		cr_expect_eq(r.body_len, 3000, "the good endpoint echoes the whole body");
		response_free(&r);
		if (bad_requests() > before) {
			cr_expect_eq(bad_body[bad_requests() - 1], 3000);
			cr_expect_eq(last_record((size_t)tries).attempts, 2);
			return;
		}
	}
	cr_assert_fail("the bad endpoint never came first");
}

Test(l7_retries, a_404_is_not_retried_under_5xx)
{
	struct response r;

	atomic_store(&bad_status, 404);
	request("127.0.0.2", "solo", "GET", "/x", 0, &r);
	cr_expect_eq(r.status, 404);
	response_free(&r);
	cr_expect_eq(bad_requests(), 1);
	cr_expect_eq(last_record(1).flags, 0);
	cr_expect_eq(last_record(1).attempts, 1);
}

Test(l7_retries, exhausted_retries_answer_the_upstreams_503_with_urx_after_jittered_backoff)
{
	struct response r;
	uint64_t max_gap2 = 0;
	int in_range = 0;

	for (int i = 0; i < 10; i++) {
		int k = bad_requests();

		request("127.0.0.2", "solo", "GET", "/x", 0, &r);
		cr_expect_eq(r.status, 503);
		cr_expect_str_eq(r.body, "bad", "the upstream's own answer");
		response_free(&r);
		cr_assert_eq(bad_requests(), k + 3, "one try and two retries");
		cr_expect_eq(bad_attempt[k], 1);
		cr_expect_eq(bad_attempt[k + 1], 2);
		cr_expect_eq(bad_attempt[k + 2], 3);
		/* Backoff: [0,25) ms before the first retry, [0,50) before the second, plus slack for the round
		 * trips (the e2e test checks each gap). A machine shared with other test runs may stall one. */
		in_range += bad_at_ms[k + 1] - bad_at_ms[k] < 25 + 40 && bad_at_ms[k + 2] - bad_at_ms[k + 1] < 50 + 40;
		if (bad_at_ms[k + 2] - bad_at_ms[k + 1] > max_gap2)
			max_gap2 = bad_at_ms[k + 2] - bad_at_ms[k + 1];
		cr_expect_eq(last_record((size_t)i + 1).flags, L7_RF_URX);
		cr_expect_eq(last_record((size_t)i + 1).attempts, 3);
	}
	cr_expect_geq(in_range, 7, "only %d of 10 requests had both backoffs in range", in_range);
	/* Ten second gaps all under 25 ms would mean the interval did not double (chance 1 in 1024). */
	cr_expect_geq(max_gap2, 25, "the second backoff's range is [0,50): max seen %llu",
		      (unsigned long long)max_gap2);
}

Test(l7_retries, attempts_0_and_the_default_policy_do_not_retry_a_503)
{
	struct response r;

	request("127.0.0.2", "solo", "GET", "/none", 0, &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	request("127.0.0.2", "solo", "GET", "/default", 0, &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	cr_expect_eq(bad_requests(), 2);
	cr_expect_eq(last_record(2).flags, 0);
}

Test(l7_retries, per_try_timeout_moves_on_to_another_endpoint)
{
	struct response r;

	/* Until the slow endpoint came first once (the balancer picks at random between the two). */
	for (int i = 0; i < 20 && !bad_requests(); i++) {
		uint64_t t0 = mono_ms();

		request("127.0.0.1", "web", "GET", "/slowtry", 0, &r);
		cr_expect_eq(r.status, 200);
		cr_expect_lt(mono_ms() - t0, 1000, "the slow try was cut at 200 ms");
		response_free(&r);
	}
	cr_expect_gt(bad_requests(), 0, "the slow endpoint was tried");
}

Test(l7_retries, the_last_per_try_timeout_is_504_ut)
{
	struct response r;
	uint64_t t0 = mono_ms();

	request("127.0.0.2", "solo", "GET", "/slowtry", 0, &r);
	cr_expect_eq(r.status, 504);
	cr_expect_geq(mono_ms() - t0, 195, "two tries of 100 ms");
	cr_expect_lt(mono_ms() - t0, 1000);
	response_free(&r);
	cr_expect_eq(bad_wait(2), 2);
	cr_expect_eq(last_record(1).flags, L7_RF_UT | L7_RF_URX);
	cr_expect_str_eq(last_record(1).details, "upstream_per_try_timeout");
}

Test(l7_retries, the_route_timeout_covers_every_try)
{
	struct response r;
	uint64_t t0 = mono_ms();

	request("127.0.0.2", "solo", "GET", "/timeout", 0, &r);
	cr_expect_eq(r.status, 504);
	cr_expect_lt(mono_ms() - t0, 600, "the 150 ms route timeout ends the retries");
	response_free(&r);
	cr_expect_eq(last_record(1).flags, L7_RF_UT);
	cr_expect_lt(bad_requests(), 20);
}

Test(l7_retries, a_body_past_the_buffer_is_not_retried)
{
	struct response r;

	request("127.0.0.2", "solo", "POST", "/x", L7_RETRY_BODY_MAX + 1000, &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	cr_expect_eq(bad_requests(), 1);
	cr_expect_eq(last_record(1).flags, 0);
	cr_expect_str_eq(last_record(1).details, "retry_abandoned{request_body_too_large}");
}

Test(l7_retries, max_retries_in_flight_overflow_is_uo)
{
	struct l7_cluster *solo = NULL;
	struct response r;

	for (size_t i = 0; i < snap->routes.n_clusters; i++)
		if (strstr(snap->routes.clusters[i].name, "solo"))
			solo = &snap->routes.clusters[i];
	cr_assert_not_null(solo);
	/* maxRetries 4 are in flight elsewhere (another worker's retries): no room for this one. */
	atomic_store(&solo->load->v[L7_LOAD_RETRIES], 4);
	request("127.0.0.2", "solo", "GET", "/x", 0, &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	cr_expect_eq(bad_requests(), 1);
	cr_expect_eq(last_record(1).flags, L7_RF_UO);
	cr_expect_eq(atomic_load(&solo->load->v[L7_LOAD_RETRIES]), 4, "an overflow takes no slot");
	/* One slot free: each retry takes it and gives it back when its try ends, so both retries fit. */
	atomic_store(&solo->load->v[L7_LOAD_RETRIES], 3);
	request("127.0.0.2", "solo", "GET", "/x", 0, &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	cr_expect_eq(bad_requests(), 4);
	cr_expect_eq(last_record(2).flags, L7_RF_URX);
	cr_expect_eq(atomic_load(&solo->load->v[L7_LOAD_RETRIES]), 3, "the retries' slot was given back");
}

/* Outlier detection sees every try's status, as Envoy's detector sees each upstream request. */
Test(l7_retries, every_tries_status_is_reported)
{
	struct response r;
	int n = 0;

	request("127.0.0.2", "solo", "GET", "/x", 0, &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	for (int i = 0; i < 100 && n < 3; i++) {
		usleep(10000);
		pthread_mutex_lock(&reports_lock);
		n = n_reports;
		pthread_mutex_unlock(&reports_lock);
	}
	cr_assert_eq(n, 3, "one report per try, got %d", n);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(report_status[i], 503);
}
