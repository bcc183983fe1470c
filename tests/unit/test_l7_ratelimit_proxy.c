// SPDX-License-Identifier: Apache-2.0
/*
 * Local rate limits through the proxy on loopback: a destination pod's bucket answers 429 RL with the configured
 * header once empty (the connection kept), and a client pod's limit that is enabled but not enforced counts the
 * requests over it and lets them through.
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
#include "l7/proxy.h"
#include "l7/ratelimit.h"
#include "l7/routes.h"
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
    "endpoints: [{addresses: [\"127.0.0.1\"], conditions: {ready: true}, targetRef: {kind: Pod, name: web-0}}]\n"
    "ports: [{name: http, port: %1$u}]\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Pod\n"
    "metadata: {name: web-0, namespace: default, labels: {app: web}}\n"
    "status: {podIP: 127.0.0.1}\n"
    "---\n"
    /* the destination side: 2 tokens, enforced */
    "apiVersion: networking.istio.io/v1alpha3\n"
    "kind: EnvoyFilter\n"
    "metadata: {name: web-in, namespace: default}\n"
    "spec:\n"
    "  workloadSelector: {labels: {app: web}}\n"
    "  configPatches:\n"
    "  - applyTo: HTTP_FILTER\n"
    "    match: {context: SIDECAR_INBOUND}\n"
    "    patch:\n"
    "      operation: INSERT_BEFORE\n"
    "      value:\n"
    "        name: envoy.filters.http.local_ratelimit\n"
    "        typed_config:\n"
    "          \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit\n"
    "          stat_prefix: rl\n"
    "          token_bucket: {max_tokens: 2, tokens_per_fill: 1, fill_interval: 60s}\n"
    "          filter_enabled: {default_value: {numerator: 100}}\n"
    "          filter_enforced: {default_value: {numerator: 100}}\n"
    "          response_headers_to_add:\n"
    "          - {append: false, header: {key: x-local-rate-limit, value: 'true'}}\n"
    "---\n"
    /* the client side (the same pod by address: the test's client is on 127.0.0.1 too): 1 token, enabled but
     * not enforced */
    "apiVersion: networking.istio.io/v1alpha3\n"
    "kind: EnvoyFilter\n"
    "metadata: {name: web-out, namespace: default}\n"
    "spec:\n"
    "  workloadSelector: {labels: {app: web}}\n"
    "  configPatches:\n"
    "  - applyTo: HTTP_FILTER\n"
    "    match: {context: SIDECAR_OUTBOUND}\n"
    "    patch:\n"
    "      operation: INSERT_BEFORE\n"
    "      value:\n"
    "        name: envoy.filters.http.local_ratelimit\n"
    "        typed_config:\n"
    "          \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit\n"
    "          stat_prefix: rl\n"
    "          token_bucket: {max_tokens: 1, fill_interval: 60s}\n"
    "          filter_enabled: {default_value: {numerator: 100}}\n";

static void setup(void)
{
	l7_web_proxy_start(&web, config_fmt);
}

static void teardown(void)
{
	l7_web_proxy_stop(&web);
}

TestSuite(l7_ratelimit_proxy, .init = setup, .fini = teardown, .timeout = 60);

static const struct l7_ratelimit *limit_named(const char *filter)
{
	for (size_t i = 0; i < web.snap->routes.n_ratelimits; i++)
		if (!strcmp(web.snap->routes.ratelimits[i]->filter, filter))
			return web.snap->routes.ratelimits[i];
	cr_assert_fail("no limit of %s", filter);
	return NULL;
}

Test(l7_ratelimit_proxy, limited_requests_get_429_rl_and_not_enforced_ones_pass)
{
	const struct l7_ratelimit *in = limit_named("default/web-in"), *out = limit_named("default/web-out");
	struct hclient c;
	struct response r;
	char v[64];

	hc_open(&c, "127.0.0.1", web.port);
	/* 1: both buckets have a token; 2: the client's is empty but not enforced, the pod's has one left */
	for (int i = 0; i < 2; i++) {
		web_get(&c, "/echo", &r);
		cr_expect_eq(r.status, 200, "request %d", i + 1);
		cr_expect_not(response_header(&r, "x-local-rate-limit", v, sizeof(v)));
		response_free(&r);
	}
	/* 3: the pod's bucket is empty: 429 from the proxy, the connection kept */
	web_get(&c, "/echo", &r);
	cr_expect_eq(r.status, 429);
	cr_expect_str_eq(r.body, "local_rate_limited");
	cr_expect(response_header(&r, "x-local-rate-limit", v, sizeof(v)));
	cr_expect_str_eq(v, "true");
	response_free(&r);
	web_get(&c, "/echo", &r);
	cr_expect_eq(r.status, 429);
	response_free(&r);
	hc_close(&c);
	cr_assert_geq(records_wait(4), 4);
	cr_expect_eq(records_get(0).flags, 0);
	cr_expect_eq(records_get(1).flags, 0);
	cr_expect_eq(records_get(2).flags, L7_RF_RL);
	cr_expect_eq(records_get(2).status, 429);
	cr_expect_eq(atomic_load(&in->bucket->v[L7_RL_LIMITED]), 2);
	cr_expect_eq(atomic_load(&in->bucket->v[L7_RL_NOT_ENFORCED]), 0);
	cr_expect_eq(atomic_load(&out->bucket->v[L7_RL_LIMITED]), 0);
	cr_expect_eq(atomic_load(&out->bucket->v[L7_RL_NOT_ENFORCED]), 3);
}
