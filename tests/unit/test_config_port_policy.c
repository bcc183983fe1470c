/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DestinationRule portLevelSettings and the connectionPool fields of #14: parsing, Istio's merge (a port entry
 * stands alone for its port; a subset's parts replace the rule's), and the errors at their file:line:col.
 */
#include <criterion/criterion.h>

#include "config/model.h"
#include "test_config.h"

static struct xm_config cfg;
static struct xm_diags diags;

static void teardown(void)
{
	diags_free(&diags);
	config_free(&cfg);
}

TestSuite(config_port_policy, .fini = teardown);

#define SERVICE                                                                                                        \
	"apiVersion: v1\n"                                                                                             \
	"kind: Service\n"                                                                                              \
	"metadata: {name: reviews, namespace: default}\n"                                                              \
	"spec:\n"                                                                                                      \
	"  clusterIP: 10.96.0.10\n"                                                                                    \
	"  ports: [{name: http, port: 9080}, {name: http-admin, port: 9090}]\n"                                        \
	"---\n"

static int load_text(const char *text)
{
	char *path = temp_yaml(text);
	const char *paths[1] = { path };
	int r = config_load(paths, 1, &cfg, &diags);

	unlink(path);
	free(path);
	return r;
}

static const char good[] = SERVICE "apiVersion: networking.istio.io/v1\n"
				   "kind: DestinationRule\n"
				   "metadata: {name: reviews, namespace: default}\n"
				   "spec:\n"
				   "  host: reviews\n"
				   "  trafficPolicy:\n"
				   "    loadBalancer: {simple: ROUND_ROBIN}\n"
				   "    connectionPool:\n"
				   "      tcp: {maxConnections: 10, maxConnectionDuration: 90s, idleTimeout: 5m}\n"
				   "      http: {http1MaxPendingRequests: 5, http2MaxRequests: 50}\n"
				   "    portLevelSettings:\n"
				   "    - port: {number: 9090}\n"
				   "      connectionPool: {http: {http2MaxRequests: 2}}\n"
				   "      outlierDetection: {consecutive5xxErrors: 3}\n"
				   "  subsets:\n"
				   "  - name: v1\n"
				   "    labels: {version: v1}\n"
				   "    trafficPolicy:\n"
				   "      connectionPool: {tcp: {maxConnections: 1}}\n"
				   "      portLevelSettings:\n"
				   "      - port: {number: 9080}\n"
				   "        tls: {mode: DISABLE}\n"
				   "        connectionPool: {http: {http1MaxPendingRequests: 7}}\n"
				   "  - name: v2\n"
				   "    labels: {version: v2}\n";

Test(config_port_policy, parsed)
{
	const struct xm_destination_rule *r;

	cr_assert_eq(load_text(good), 0);
	r = config_find_rule(&cfg, "default", "reviews");
	cr_assert_not_null(r);
	cr_expect_eq(r->policy.pool.tcp_max_connection_duration_ms, 90000);
	cr_expect_eq(r->policy.pool.tcp_idle_timeout_ms, 300000);
	cr_assert_eq(r->policy.n_ports, 1);
	cr_expect_eq(r->policy.ports[0].port, 9090);
	cr_expect_eq(r->policy.ports[0].loc.line, 19);
	cr_expect_not(r->policy.ports[0].policy.lb.set);
	cr_expect_eq(r->policy.ports[0].policy.pool.http2_max_requests, 2);
	cr_expect(r->policy.ports[0].policy.outlier.set);
	cr_expect_eq(r->policy.ports[0].policy.outlier.consecutive_5xx_errors, 3);
	cr_expect_eq(r->policy.ports[0].policy.outlier.interval_ms, 10000, "Istio's defaults for the rest");
	cr_assert_eq(r->n_subsets, 2);
	cr_assert_eq(r->subsets[0].policy.n_ports, 1);
	cr_expect_eq(r->subsets[0].policy.ports[0].port, 9080);
	cr_expect_eq(r->subsets[0].policy.ports[0].policy.tls_mode, XM_TLS_DISABLE);
}

Test(config_port_policy, merge_order)
{
	const struct xm_destination_rule *r;
	struct xm_traffic_policy p;

	cr_assert_eq(load_text(good), 0);
	r = config_find_rule(&cfg, "default", "reviews");
	cr_assert_not_null(r);

	/* The rule alone on 9080: its own top level. */
	config_policy_merge(&p, &r->policy, NULL, 9080);
	cr_expect_eq(p.lb.simple, XM_DR_LB_ROUND_ROBIN);
	cr_expect_eq(p.pool.tcp_max_connections, 10);
	cr_expect_eq(p.pool.http2_max_requests, 50);
	cr_expect_not(p.outlier.set);
	cr_expect_eq(p.n_ports, 0);
	cr_expect_null(p.ports);

	/* 9090: the port entry alone; the rule's loadBalancer and the rest of its connectionPool are not inherited. */
	config_policy_merge(&p, &r->policy, NULL, 9090);
	cr_expect_not(p.lb.set, "Istio: a port entry's omitted fields take the defaults, not the rule's");
	cr_expect_eq(p.pool.http2_max_requests, 2);
	cr_expect_eq(p.pool.tcp_max_connections, 0);
	cr_expect_eq(p.pool.tcp_max_connection_duration_ms, 0);
	cr_expect(p.outlier.set);
	cr_expect_eq(p.outlier.consecutive_5xx_errors, 3);

	/* Subset v1 on 9080: its own entry for 9080 replaces all four parts (the rule's loadBalancer too). */
	config_policy_merge(&p, &r->policy, &r->subsets[0].policy, 9080);
	cr_expect_not(p.lb.set);
	cr_expect_eq(p.pool.http1_max_pending_requests, 7);
	cr_expect_eq(p.pool.tcp_max_connections, 0);
	cr_expect_eq(p.tls_mode, XM_TLS_DISABLE);

	/* Subset v1 on 9090: no entry of its own: its connectionPool over the rule's entry for 9090. */
	config_policy_merge(&p, &r->policy, &r->subsets[0].policy, 9090);
	cr_expect_not(p.lb.set);
	cr_expect_eq(p.pool.tcp_max_connections, 1);
	cr_expect_eq(p.pool.http2_max_requests, 0);
	cr_expect(p.outlier.set, "the rule's entry for 9090");
	cr_expect_eq(p.tls_mode, XM_TLS_UNSET);

	/* Subset v2 sets nothing: the rule's entry for 9090; on 9080 the rule's top level. */
	config_policy_merge(&p, &r->policy, &r->subsets[1].policy, 9090);
	cr_expect_eq(p.pool.http2_max_requests, 2);
	cr_expect_not(p.lb.set);
	config_policy_merge(&p, &r->policy, &r->subsets[1].policy, 9080);
	cr_expect_eq(p.lb.simple, XM_DR_LB_ROUND_ROBIN);
	cr_expect_eq(p.pool.tcp_max_connections, 10);

	/* No rule: Istio's defaults (outlier detection off, nothing limited). */
	config_policy_merge(&p, NULL, NULL, 9080);
	cr_expect_not(p.lb.set);
	cr_expect_not(p.pool.set);
	cr_expect_not(p.outlier.set);
	cr_expect_eq(p.outlier.consecutive_5xx_errors, 5);
}

Test(config_port_policy, errors_at_their_place)
{
	static const char bad[] = SERVICE "apiVersion: networking.istio.io/v1\n"
					  "kind: DestinationRule\n"
					  "metadata: {name: reviews, namespace: default}\n"
					  "spec:\n"
					  "  host: reviews\n"
					  "  trafficPolicy:\n"
					  "    connectionPool: {tcp: {maxConnectionDuration: 0s}}\n"
					  "    portLevelSettings:\n"
					  "    - loadBalancer: {simple: RANDOM}\n"
					  "    - port: {number: 9080}\n"
					  "      loadBalancer: {simple: RANDOM}\n"
					  "    - port: {number: 9080}\n"
					  "      tls: {mode: DISABLE}\n"
					  "    - port: {number: 9090}\n"
					  "    - port: {number: 70000}\n"
					  "      tls: {mode: DISABLE}\n";
	static const struct {
		int line, col;
		const char *frag;
	} want[] = {
		{ 14, 51, "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration \"0s\" is shorter than 1ms" },
		{ 16, 7, "spec.trafficPolicy.portLevelSettings[0].port.number is required" },
		{ 19, 22,
		  "spec.trafficPolicy.portLevelSettings[2]: port 9080 has settings already "
		  "(spec.trafficPolicy.portLevelSettings[1])" },
		{ 21, 7,
		  "spec.trafficPolicy.portLevelSettings[3] needs at least one of loadBalancer, connectionPool, "
		  "outlierDetection, tls" },
		{ 22, 22, "spec.trafficPolicy.portLevelSettings[4].port.number 70000 out of range 1-65535" },
	};

	cr_assert_eq(load_text(bad), -EINVAL);
	if (n_errors(&diags) != sizeof(want) / sizeof(want[0]))
		dump_diags(&diags);
	cr_assert_eq(n_errors(&diags), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < diags.n; i++) {
		cr_expect_eq(diags.items[i].loc.line, want[i].line, "diag %zu: line %d (%s)", i,
			     diags.items[i].loc.line, diags.items[i].msg);
		cr_expect_eq(diags.items[i].loc.col, want[i].col, "diag %zu: col %d (%s)", i, diags.items[i].loc.col,
			     diags.items[i].msg);
		cr_expect(strstr(diags.items[i].msg, want[i].frag) != NULL, "diag %zu: %s", i, diags.items[i].msg);
		cr_expect(strstr(diags.items[i].msg, "destinationrule default/reviews: ") != NULL, "diag %zu: %s", i,
			  diags.items[i].msg);
	}
}

Test(config_port_policy, unsupported_pool_fields_are_warned_about)
{
	static const char text[] = SERVICE "apiVersion: networking.istio.io/v1\n"
					   "kind: DestinationRule\n"
					   "metadata: {name: reviews, namespace: default}\n"
					   "spec:\n"
					   "  host: reviews\n"
					   "  trafficPolicy:\n"
					   "    connectionPool:\n"
					   "      tcp: {maxConnections: 3, tcpKeepalive: {time: 10s}}\n"
					   "      http: {maxConcurrentStreams: 10}\n";
	bool keepalive = false, streams = false;

	cr_assert_eq(load_text(text), 0, "a warning, not an error");
	for (size_t i = 0; i < diags.n; i++) {
		cr_expect(diags.items[i].warning, "%s", diags.items[i].msg);
		if (strstr(diags.items[i].msg, "connectionPool.tcp.tcpKeepalive is not supported yet: ignored")) {
			keepalive = true;
			cr_expect_eq(diags.items[i].loc.line, 15);
		}
		streams |=
		    strstr(diags.items[i].msg, "connectionPool.http.maxConcurrentStreams is not supported") != NULL;
	}
	cr_expect(keepalive && streams);
	cr_assert_eq(cfg.n_rules, 1);
	cr_expect_eq(cfg.rules[0].policy.pool.tcp_max_connections, 3);
}
