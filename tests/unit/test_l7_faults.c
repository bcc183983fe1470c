// SPDX-License-Identifier: Apache-2.0
/*
 * Fault injection and the route timeout through the proxy on loopback: aborts answered locally (FI), delays
 * held on the worker's timer (DI) before an abort, and the route timeout's 504 UT (counted after a delay).
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
#include "l7_web_proxy.h"
#include "test_config.h"

static struct l7_web_proxy web;

static const char config_fmt[] =
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: web, namespace: default}\n"
    "spec:\n"
    "  clusterIP: 10.96.0.10\n"
    "  ports: [{name: http, port: 80, targetPort: %1$u}]\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\n"
    "kind: EndpointSlice\n"
    "metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}\n"
    "addressType: IPv4\n"
    "endpoints: [{addresses: [\"127.0.0.1\"], conditions: {ready: true}}]\n"
    "ports: [{name: http, port: %1$u}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: web, namespace: default}\n"
    "spec:\n"
    "  hosts: [web]\n"
    "  http:\n"
    "  - match: [{uri: {prefix: /abort}}]\n"
    "    fault: {abort: {httpStatus: 503}}\n"
    "    route: [{destination: {host: web}}]\n"
    "  - match: [{uri: {prefix: /delay-abort}}]\n"
    "    fault: {delay: {fixedDelay: 200ms, percentage: {value: 100}}, abort: {httpStatus: 418, percent: 100}}\n"
    "    route: [{destination: {host: web}}]\n"
    "  - match: [{uri: {prefix: /delay-timeout}}]\n"
    "    fault: {delay: {fixedDelay: 500ms}}\n"
    "    timeout: 300ms\n"
    "    rewrite: {uri: /slow}\n"
    "    route: [{destination: {host: web}}]\n"
    "  - match: [{uri: {prefix: /delay}}]\n"
    "    fault: {delay: {fixedDelay: 300ms}}\n"
    "    route: [{destination: {host: web}}]\n"
    "  - match: [{uri: {prefix: /never}}]\n"
    "    fault: {abort: {httpStatus: 500, percentage: {value: 0}}}\n"
    "    route: [{destination: {host: web}}]\n"
    "  - match: [{uri: {prefix: /slow}}]\n"
    "    timeout: 300ms\n"
    "    route: [{destination: {host: web}}]\n"
    "  - route: [{destination: {host: web}}]\n";

static void setup(void)
{
	l7_web_proxy_start(&web, config_fmt);
}

static void teardown(void)
{
	l7_web_proxy_stop(&web);
}

TestSuite(l7_faults, .init = setup, .fini = teardown, .timeout = 60);

Test(l7_faults, abort_answers_locally_with_fi)
{
	struct hclient c;
	struct response r;

	hc_open(&c, "127.0.0.1", web.port);
	web_get(&c, "/abort", &r);
	cr_expect_eq(r.status, 503);
	cr_expect_str_eq(r.body, "fault filter abort");
	response_free(&r);
	web_get(&c, "/never", &r); /* percentage 0: never aborted, the connection kept */
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(2), 2);
	cr_expect_eq(records_get(0).flags, L7_RF_FI);
	cr_expect_eq(records_get(1).flags, 0);
	cr_expect_not(upstream_saw("/abort", "web"), "an aborted request reached the upstream");
}

Test(l7_faults, delay_is_honoured_then_the_request_goes_on)
{
	struct hclient c;
	struct response r;
	uint64_t t0 = loop_now_ms();

	hc_open(&c, "127.0.0.1", web.port);
	web_get(&c, "/delay", &r);
	cr_expect_eq(r.status, 200);
	cr_expect_geq(loop_now_ms() - t0, 300, "answered before the 300 ms delay");
	response_free(&r);
	t0 = loop_now_ms();
	web_get(&c, "/echo", &r); /* the same connection serves the next request at once */
	cr_expect_eq(r.status, 200);
	cr_expect_lt(loop_now_ms() - t0, 250);
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(2), 2);
	cr_expect_eq(records_get(0).flags, L7_RF_DI);
	cr_expect(upstream_saw("/delay", "web"));
}

Test(l7_faults, delay_comes_before_abort)
{
	struct hclient c;
	struct response r;
	uint64_t t0 = loop_now_ms();

	hc_open(&c, "127.0.0.1", web.port);
	web_get(&c, "/delay-abort", &r);
	cr_expect_eq(r.status, 418);
	cr_expect_geq(loop_now_ms() - t0, 200, "aborted before the 200 ms delay");
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(1), 1);
	cr_expect_eq(records_get(0).flags, L7_RF_DI | L7_RF_FI);
}

Test(l7_faults, route_timeout_is_504_ut_while_a_fast_route_works)
{
	struct hclient slow, fast;
	struct response r;
	uint64_t t0 = loop_now_ms();
	char req[] = "GET /slow?ms=1500 HTTP/1.1\r\nHost: web\r\n\r\n";

	hc_open(&slow, "127.0.0.1", web.port);
	hc_open(&fast, "127.0.0.1", web.port);
	hc_send(&slow, req, sizeof(req) - 1);
	web_get(&fast, "/echo", &r); /* served while the slow one waits */
	cr_expect_eq(r.status, 200);
	cr_expect_lt(loop_now_ms() - t0, 250);
	response_free(&r);
	cr_assert(hc_read(&slow, &r, false));
	cr_expect_eq(r.status, 504);
	cr_expect_str_eq(r.body, "upstream request timeout");
	cr_expect_geq(loop_now_ms() - t0, 300);
	cr_expect_lt(loop_now_ms() - t0, 1200, "the 300 ms timeout waited for the upstream");
	response_free(&r);
	web_get(&slow, "/slow?ms=10", &r); /* the downstream connection is kept; the half-read upstream one is not */
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&slow);
	hc_close(&fast);
	cr_assert_geq(records_wait(3), 3);
	cr_expect_eq(records_get(1).status, 504);
	cr_expect_eq(records_get(1).flags, L7_RF_UT);
}

Test(l7_faults, route_timeout_after_the_response_started_resets_the_client)
{
	struct hclient c;
	struct response r;
	char req[] = "GET /slowbody?ms=1500 HTTP/1.1\r\nHost: web\r\n\r\n";
	uint64_t t0 = loop_now_ms();

	hc_open(&c, "127.0.0.1", web.port);
	hc_send(&c, req, sizeof(req) - 1);
	cr_expect_not(hc_read(&c, &r, false), "a complete response although it was cut at 300 ms");
	cr_expect_lt(loop_now_ms() - t0, 1200);
	hc_close(&c);
	cr_assert_geq(records_wait(1), 1);
	cr_expect_eq(records_get(0).flags, L7_RF_UT);
}

/* Envoy's router starts the route timeout when it gets the request, after the fault filter's delay. */
Test(l7_faults, a_delayed_request_still_honours_the_route_timeout)
{
	struct hclient c;
	struct response r;
	uint64_t t0 = loop_now_ms();

	hc_open(&c, "127.0.0.1", web.port);
	web_get(&c, "/delay-timeout?ms=1500", &r); /* upstream: /slow?ms=1500 after the 500 ms delay */
	cr_expect_eq(r.status, 504);
	cr_expect_geq(loop_now_ms() - t0, 800, "the 300 ms timeout counted the 500 ms delay");
	cr_expect_lt(loop_now_ms() - t0, 1800, "the timeout waited for the upstream");
	response_free(&r);
	web_get(&c, "/echo", &r);
	cr_expect_eq(r.status, 200);
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(2), 2);
	cr_expect_eq(records_get(0).flags, L7_RF_DI | L7_RF_UT);
	cr_expect(upstream_saw("/slow?ms=1500", "web"), "forwarded once the delay was over");
}

Test(l7_faults, client_gone_during_a_delay_ends_the_exchange)
{
	struct hclient c;
	char req[] = "GET /delay-timeout HTTP/1.1\r\nHost: web\r\n\r\n";
	uint64_t t0 = loop_now_ms();

	hc_open(&c, "127.0.0.1", web.port);
	hc_send(&c, req, sizeof(req) - 1);
	usleep(50000);
	hc_close(&c);
	cr_assert_geq(records_wait(1), 1);
	cr_expect_lt(loop_now_ms() - t0, 250, "the exchange waited for its timer after the client left");
	cr_expect_eq(records_get(0).flags, L7_RF_DC);
}

Test(l7_faults, routes_show_the_faults)
{
	struct strbuf sb = { 0 };

	l7_routes_render(&web.snap->routes, false, &sb);
	cr_expect(strstr(sb.buf, "fault abort 503 100%"), "%s", sb.buf);
	cr_expect(strstr(sb.buf, "fault delay 200ms 100%"), "%s", sb.buf);
	cr_expect(strstr(sb.buf, "fault abort 500 0%"), "%s", sb.buf);
	sb_free(&sb);
	l7_routes_render(&web.snap->routes, true, &sb);
	cr_expect(strstr(sb.buf, "\"fault\":{\"delay\":{\"ms\":200,\"percent\":100},\"abort\":{\"status\":418,"
				 "\"percent\":100}}"),
		  "%s", sb.buf);
	sb_free(&sb);
}
