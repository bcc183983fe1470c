// SPDX-License-Identifier: Apache-2.0
/*
 * connectionPool circuit breaking through the proxy on loopback (one worker, so that the decisions are
 * deterministic): a pending request waits for the destination's one connection and is served on it, an overflow
 * answers 503 UO at once with Envoy's body, a waiting client that leaves gives its place back, a waiting request
 * still honours the route timeout (504 UT), http2MaxRequests, maxConnectionDuration, and the overflow counters.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "l7/proxy.h"
#include "metrics/registry.h"
#include "l7_web_proxy.h"
#include "test_config.h"

static struct l7_web_proxy web;

#define SERVICE(name, ip)                                                                                              \
	"---\n"                                                                                                        \
	"apiVersion: v1\n"                                                                                             \
	"kind: Service\n"                                                                                              \
	"metadata: {name: " name ", namespace: default}\n"                                                             \
	"spec:\n"                                                                                                      \
	"  clusterIP: " ip "\n"                                                                                        \
	"  ports: [{name: http, port: 80, targetPort: %1$u}]\n"                                                        \
	"---\n"                                                                                                        \
	"apiVersion: discovery.k8s.io/v1\n"                                                                            \
	"kind: EndpointSlice\n"                                                                                        \
	"metadata: {name: " name "-1, namespace: default, labels: {kubernetes.io/service-name: " name "}}\n"           \
	"addressType: IPv4\n"                                                                                          \
	"endpoints: [{addresses: [\"127.0.0.1\"], conditions: {ready: true}}]\n"                                       \
	"ports: [{name: http, port: %1$u}]\n"

#define RULE(name, policy)                                                                                             \
	"---\n"                                                                                                        \
	"apiVersion: networking.istio.io/v1\n"                                                                         \
	"kind: DestinationRule\n"                                                                                      \
	"metadata: {name: " name ", namespace: default}\n"                                                             \
	"spec: {host: " name ", trafficPolicy: " policy "}\n"

static const char config_fmt[] = SERVICE("web", "10.96.0.10") SERVICE("cb", "10.96.0.20") SERVICE(
    "lim", "10.96.0.21") SERVICE("aged", "10.96.0.22") RULE("cb", "{connectionPool: {tcp: {maxConnections: 1}, http: "
								  "{http1MaxPendingRequests: 1}}}")
    RULE("lim", "{connectionPool: {http: {http2MaxRequests: 1}}}") RULE(
	"aged", "{connectionPool: {tcp: {maxConnectionDuration: 300ms}}}") "---\n"
									   "apiVersion: networking.istio.io/v1\n"
									   "kind: VirtualService\n"
									   "metadata: {name: web, namespace: default}\n"
									   "spec:\n"
									   "  hosts: [web]\n"
									   "  http:\n"
									   "  - match: [{uri: {prefix: /cb/}}]\n"
									   "    rewrite: {uri: /}\n"
									   "    route: [{destination: {host: cb}}]\n"
									   "  - match: [{uri: {prefix: /t/}}]\n"
									   "    timeout: 150ms\n"
									   "    rewrite: {uri: /}\n"
									   "    route: [{destination: {host: cb}}]\n"
									   "  - match: [{uri: {prefix: /lim/}}]\n"
									   "    rewrite: {uri: /}\n"
									   "    route: [{destination: {host: lim}}]\n"
									   "  - match: [{uri: {prefix: /aged/}}]\n"
									   "    rewrite: {uri: /}\n"
									   "    route: [{destination: {host: aged}}]\n"
									   "  - route: [{destination: {host: web}}]\n";

static void setup(void)
{
	l7_web_proxy_start(&web, config_fmt);
}

static void teardown(void)
{
	l7_web_proxy_stop(&web);
}

TestSuite(l7_admission, .init = setup, .fini = teardown, .timeout = 60);

static long conn_of(const struct response *r)
{
	char v[32];

	return response_header(r, "x-conn", v, sizeof(v)) ? strtol(v, NULL, 10) : -1;
}

static uint64_t overflows(const char *kind)
{
	struct xm_scrape *sc = scrape_new();
	struct strbuf out = { 0 };
	const char *p;
	uint64_t v = UINT64_MAX;
	char key[128];

	l7_proxy_collect(web.proxy, sc);
	scrape_render(sc, &out);
	snprintf(key, sizeof(key), "xmesh_l7_overflow_total{kind=\"%s\"} ", kind);
	p = out.buf ? strstr(out.buf, key) : NULL;
	if (p)
		v = strtoull(p + strlen(key), NULL, 10);
	sb_free(&out);
	scrape_free(sc);
	return v;
}

#define OVERFLOW_BODY "upstream connect error or disconnect/reset before headers. reset reason: overflow"

Test(l7_admission, pending_request_waits_for_the_one_connection_and_the_next_overflows)
{
	struct hclient a, b, c;
	struct response ra, rb, rc;
	uint64_t t0 = loop_now_ms();

	hc_open(&a, "127.0.0.1", web.port);
	hc_open(&b, "127.0.0.1", web.port);
	hc_open(&c, "127.0.0.1", web.port);
	web_send_get(&a, "/cb/slow?ms=400"); /* takes the destination's one connection */
	usleep(100000);
	web_send_get(&b, "/cb/echo"); /* no connection may be opened: pending */
	usleep(100000);
	web_get(&c, "/cb/echo", &rc); /* the pending slot is taken: overflow, at once */
	cr_expect_eq(rc.status, 503);
	cr_expect_str_eq(rc.body, OVERFLOW_BODY);
	cr_expect_lt(loop_now_ms() - t0, 350, "the overflow was answered at once");
	cr_assert(hc_read(&a, &ra, false));
	cr_expect_eq(ra.status, 200);
	cr_assert(hc_read(&b, &rb, false));
	cr_expect_eq(rb.status, 200);
	cr_expect_geq(loop_now_ms() - t0, 400, "the pending request was served before the connection was free");
	cr_expect_eq(conn_of(&ra), conn_of(&rb), "the pending request did not get the freed connection");
	response_free(&ra);
	response_free(&rb);
	response_free(&rc);
	hc_close(&a);
	hc_close(&b);
	hc_close(&c);
	cr_assert_geq(records_wait(3), 3);
	cr_expect_eq(records_get(0).status, 503);
	cr_expect_eq(records_get(0).flags, L7_RF_UO);
	cr_expect_eq(records_get(1).flags, 0);
	cr_expect_eq(records_get(2).flags, 0);
	cr_expect_eq(overflows("pending"), 1);
	cr_expect_eq(overflows("requests"), 0);
	cr_expect_eq(overflows("connections"), 1, "the pending request found the connection limit reached, once");
}

Test(l7_admission, a_waiting_client_that_leaves_gives_its_place_back)
{
	struct hclient a, b, c;
	struct response ra, rc;

	hc_open(&a, "127.0.0.1", web.port);
	hc_open(&b, "127.0.0.1", web.port);
	hc_open(&c, "127.0.0.1", web.port);
	web_send_get(&a, "/cb/slow?ms=400");
	usleep(100000);
	web_send_get(&b, "/cb/echo");
	usleep(50000);
	hc_close(&b); /* DC while pending */
	usleep(50000);
	web_send_get(&c, "/cb/echo"); /* b's place is free: c waits instead of overflowing */
	cr_assert(hc_read(&c, &rc, false));
	cr_expect_eq(rc.status, 200);
	cr_assert(hc_read(&a, &ra, false));
	cr_expect_eq(ra.status, 200);
	response_free(&ra);
	response_free(&rc);
	hc_close(&a);
	hc_close(&c);
	cr_assert_geq(records_wait(3), 3);
	cr_expect_eq(records_get(0).flags, L7_RF_DC);
	cr_expect_eq(overflows("pending"), 0);
}

Test(l7_admission, a_waiting_request_ends_at_the_route_timeout)
{
	struct hclient a, b;
	struct response ra, rb;
	uint64_t t0;

	hc_open(&a, "127.0.0.1", web.port);
	hc_open(&b, "127.0.0.1", web.port);
	web_send_get(&a, "/cb/slow?ms=600");
	usleep(100000);
	t0 = loop_now_ms();
	web_get(&b, "/t/echo", &rb); /* the same destination, a 150 ms route timeout: it never gets the connection */
	cr_expect_eq(rb.status, 504);
	cr_expect_geq(loop_now_ms() - t0, 150);
	cr_expect_lt(loop_now_ms() - t0, 450);
	cr_assert(hc_read(&a, &ra, false));
	cr_expect_eq(ra.status, 200);
	response_free(&ra);
	response_free(&rb);
	web_get(&b, "/cb/echo", &rb); /* nothing stayed counted: admitted at once on the freed connection */
	cr_expect_eq(rb.status, 200);
	response_free(&rb);
	hc_close(&a);
	hc_close(&b);
	cr_assert_geq(records_wait(3), 3);
	cr_expect_eq(records_get(0).flags, L7_RF_UT);
}

Test(l7_admission, max_requests_overflow_at_once_then_admits_again)
{
	struct hclient a, b;
	struct response ra, rb;
	uint64_t t0 = loop_now_ms();

	hc_open(&a, "127.0.0.1", web.port);
	hc_open(&b, "127.0.0.1", web.port);
	web_send_get(&a, "/lim/slow?ms=300");
	usleep(100000);
	web_get(&b, "/lim/echo", &rb);
	cr_expect_eq(rb.status, 503);
	cr_expect_str_eq(rb.body, OVERFLOW_BODY);
	cr_expect_lt(loop_now_ms() - t0, 280);
	response_free(&rb);
	cr_assert(hc_read(&a, &ra, false));
	cr_expect_eq(ra.status, 200);
	response_free(&ra);
	web_get(&b, "/lim/echo", &rb);
	cr_expect_eq(rb.status, 200);
	response_free(&rb);
	web_get(&b, "/echo", &rb); /* another destination is not limited by lim's count */
	cr_expect_eq(rb.status, 200);
	response_free(&rb);
	hc_close(&a);
	hc_close(&b);
	cr_expect_eq(overflows("requests"), 1);
	cr_expect_eq(overflows("pending"), 0);
}

Test(l7_admission, max_connection_duration_retires_old_connections)
{
	struct hclient c;
	struct response r;
	long first, second, third;

	hc_open(&c, "127.0.0.1", web.port);
	web_get(&c, "/aged/echo", &r);
	first = conn_of(&r);
	response_free(&r);
	web_get(&c, "/aged/echo", &r);
	second = conn_of(&r);
	response_free(&r);
	usleep(400000);
	web_get(&c, "/aged/echo", &r);
	third = conn_of(&r);
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&c);
	cr_expect_eq(first, second, "a young connection is reused");
	cr_expect_neq(second, third, "a connection older than maxConnectionDuration was reused");
}

Test(l7_admission, destinations_do_not_share_pooled_connections)
{
	struct hclient c;
	struct response r;
	long to_web, aged;

	hc_open(&c, "127.0.0.1", web.port);
	web_get(&c, "/echo", &r);
	to_web = conn_of(&r);
	response_free(&r);
	web_get(&c, "/aged/echo", &r); /* the same endpoint, another destination: its own connection */
	aged = conn_of(&r);
	response_free(&r);
	web_get(&c, "/echo", &r);
	cr_expect_eq(conn_of(&r), to_web);
	response_free(&r);
	hc_close(&c);
	cr_expect_neq(to_web, aged);
}
