// SPDX-License-Identifier: Apache-2.0
/*
 * compile_lb: config objects (read from YAML as the agent reads them) → the service ports the datapath
 * serves, with their backends, algorithm and outlier policy.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile/compile.h"
#include "test_config.h"

static struct xm_config cfg;
static struct xm_lb_state st;

static void teardown(void)
{
	lb_state_free(&st);
	config_free(&cfg);
}

TestSuite(compile, .fini = teardown);

/* Load text (it must be valid) and compile it as node `node` would. */
static void compile_text(const char *text, const char *node)
{
	struct xm_compile_opts opts = { .node_name = node, .maglev_size = 16381 };
	char *path = temp_yaml(text);
	const char *paths[] = { path };

	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	cr_assert_eq(compile_lb(&cfg, &opts, &st), 0);
}

/* The compiled service port VIP:port/proto ("10.96.0.10", 80, XM_PROTO_TCP); fails when absent. */
static const struct xm_lb_service *port_of(const char *vip, uint16_t port, uint8_t proto)
{
	struct xm_svc_key key;
	bool v6 = strchr(vip, ':') != NULL;

	memset(&key, 0, sizeof(key));
	key.family = v6 ? XM_FAMILY_V6 : XM_FAMILY_V4;
	cr_assert_eq(inet_pton(v6 ? AF_INET6 : AF_INET, vip, key.vip.bytes), 1);
	key.port = htons(port);
	key.proto = proto;
	for (size_t i = 0; i < st.n_services; i++) {
		if (!memcmp(&st.services[i].key, &key, sizeof(key)))
			return &st.services[i];
	}
	cr_assert_fail("no compiled service port %s:%u/%u among %zu", vip, port, proto, st.n_services);
	return NULL;
}

/* The backend addr:port of s; fails when absent. */
static const struct xm_lb_backend *backend_of(const struct xm_lb_service *s, const char *addr, uint16_t port)
{
	for (size_t i = 0; i < s->n_backends; i++) {
		char got[64];

		lb_format_backend(&s->backends[i], got, sizeof(got));
		if (s->backends[i].port == port && !strncmp(got, addr, strlen(addr)) &&
		    (got[strlen(addr)] == ':' || got[strlen(addr)] == ']'))
			return &s->backends[i];
	}
	cr_assert_fail("service %s/%s has no backend %s:%u", s->ns, s->name, addr, port);
	return NULL;
}

#define REVIEWS_SERVICE                                                                                                \
	"apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n"                                                   \
	"spec:\n  clusterIP: 10.96.0.10\n  ports:\n  - {name: http, port: 80, targetPort: 9080}\n"

Test(compile, ready_not_ready_and_terminating_endpoints)
{
	compile_text(REVIEWS_SERVICE
		     "---\n"
		     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		     "metadata: {name: reviews-1, labels: {kubernetes.io/service-name: reviews}}\n"
		     "addressType: IPv4\nports: [{name: http, port: 9080}]\nendpoints:\n"
		     "- addresses: [10.200.1.1]\n"
		     "- addresses: [10.200.1.2]\n  conditions: {ready: true}\n"
		     "- addresses: [10.200.1.3]\n  conditions: {ready: false}\n"
		     "- addresses: [10.200.1.4]\n  conditions: {ready: false, serving: true, terminating: true}\n",
		     NULL);
	const struct xm_lb_service *s = port_of("10.96.0.10", 80, XM_PROTO_TCP);

	cr_expect_str_eq(s->ns, "default");
	cr_expect_str_eq(s->name, "reviews");
	cr_expect_str_eq(s->port_name, "http");
	cr_expect_eq(s->n_backends, 4, "not-ready endpoints are listed too (status, outlier sweep)");
	cr_expect_eq(s->n_ready, 2);
	cr_expect(backend_of(s, "10.200.1.1", 9080)->ready, "absent conditions mean ready");
	cr_expect(backend_of(s, "10.200.1.2", 9080)->ready);
	cr_expect(!backend_of(s, "10.200.1.3", 9080)->ready);
	cr_expect(!backend_of(s, "10.200.1.4", 9080)->ready, "terminating and not ready: not selected");
	cr_expect_eq(s->algo, XM_LB_LEAST_REQUEST, "Istio's default without a DestinationRule");
	cr_expect(!s->outlier_on);
	cr_expect_eq(s->flags, XM_SVC_F_L7, "a port named http is HTTP (Istio's protocol selection)");
	for (size_t i = 1; i < s->n_backends; i++)
		cr_expect_lt(memcmp(s->backends[i - 1].addr.bytes, s->backends[i].addr.bytes, 16), 0, "sorted");
}

Test(compile, the_same_endpoint_in_two_slices_is_one_backend_ready_if_either_says_so)
{
	compile_text(REVIEWS_SERVICE "---\n"
				     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
				     "metadata: {name: reviews-1, labels: {kubernetes.io/service-name: reviews}}\n"
				     "addressType: IPv4\nports: [{name: http, port: 9080}]\nendpoints:\n"
				     "- addresses: [10.200.1.1]\n  conditions: {ready: false}\n"
				     "---\n"
				     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
				     "metadata: {name: reviews-2, labels: {kubernetes.io/service-name: reviews}}\n"
				     "addressType: IPv4\nports: [{name: http, port: 9080}]\nendpoints:\n"
				     "- addresses: [10.200.1.1]\n",
		     NULL);
	const struct xm_lb_service *s = port_of("10.96.0.10", 80, XM_PROTO_TCP);

	cr_expect_eq(s->n_backends, 1);
	cr_expect_eq(s->n_ready, 1);
	cr_expect(s->backends[0].ready);
}

Test(compile, local_and_remote_endpoints_with_their_node_address)
{
	compile_text(REVIEWS_SERVICE "---\n"
				     "apiVersion: v1\nkind: Node\nmetadata: {name: node-b}\n"
				     "status: {addresses: [{type: InternalIP, address: 10.199.0.3}, "
				     "{type: InternalIP, address: 'fd00:199::3'}]}\n"
				     "---\n"
				     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
				     "metadata: {name: reviews-1, labels: {kubernetes.io/service-name: reviews}}\n"
				     "addressType: IPv4\nports: [{name: http, port: 9080}]\nendpoints:\n"
				     "- addresses: [10.200.1.1]\n  nodeName: node-a\n"
				     "  targetRef: {kind: Pod, name: reviews-v1-0}\n"
				     "- addresses: [10.200.2.1]\n  nodeName: node-b\n"
				     "- addresses: [10.200.3.1]\n  nodeName: node-c\n"
				     "- addresses: [10.200.4.1]\n",
		     "node-a");
	const struct xm_lb_service *s = port_of("10.96.0.10", 80, XM_PROTO_TCP);
	const struct xm_lb_backend *a = backend_of(s, "10.200.1.1", 9080);
	const struct xm_lb_backend *b = backend_of(s, "10.200.2.1", 9080);
	const struct xm_lb_backend *c = backend_of(s, "10.200.3.1", 9080);
	const struct xm_lb_backend *none = backend_of(s, "10.200.4.1", 9080);
	union xm_addr zero = { 0 }, want = { 0 };

	cr_expect(a->local);
	cr_expect_str_eq(a->node, "node-a");
	cr_expect_str_eq(a->pod, "default/reviews-v1-0", "targetRef without namespace: the slice's");
	cr_expect(!b->local);
	inet_pton(AF_INET, "10.199.0.3", &want.v4);
	cr_expect(!memcmp(&b->node_addr, &want, sizeof(want)), "node-b's IPv4 InternalIP");
	cr_expect(!c->local);
	cr_expect(!memcmp(&c->node_addr, &zero, sizeof(zero)), "node-c has no Node object: no address");
	cr_expect(!none->local, "no nodeName: never local");
	cr_expect_str_eq(none->pod, "");
}

Test(compile, nothing_is_local_without_a_node_name)
{
	compile_text(REVIEWS_SERVICE "---\n"
				     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
				     "metadata: {name: reviews-1, labels: {kubernetes.io/service-name: reviews}}\n"
				     "addressType: IPv4\nports: [{name: http, port: 9080}]\nendpoints:\n"
				     "- addresses: [10.200.1.1]\n  nodeName: node-a\n",
		     NULL);
	cr_expect(!port_of("10.96.0.10", 80, XM_PROTO_TCP)->backends[0].local);
}

Test(compile, ports_are_matched_by_name_and_protocol)
{
	compile_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
		     "spec:\n  clusterIP: 10.96.0.20\n  ports:\n"
		     "  - {name: http, port: 80, targetPort: web-port}\n"
		     "  - {name: dns, port: 53, protocol: UDP, targetPort: 5353}\n"
		     "  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 5353}\n"
		     "---\n"
		     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		     "metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\n"
		     "addressType: IPv4\n"
		     "ports: [{name: http, port: 8080}, {name: dns, port: 5354, protocol: UDP},"
		     " {name: dns-tcp, port: 5355}]\n"
		     "endpoints: [{addresses: [10.200.1.1]}]\n",
		     NULL);
	cr_expect_eq(st.n_services, 3);
	cr_expect_eq(port_of("10.96.0.20", 80, XM_PROTO_TCP)->backends[0].port, 8080,
		     "a named targetPort: the slice port of the Service port's name");
	cr_expect_eq(port_of("10.96.0.20", 53, XM_PROTO_UDP)->backends[0].port, 5354);
	cr_expect_eq(port_of("10.96.0.20", 53, XM_PROTO_TCP)->backends[0].port, 5355);
	cr_expect_eq(port_of("10.96.0.20", 53, XM_PROTO_TCP)->key.port, htons(53), "network order");
}

Test(compile, a_slice_without_ports_uses_the_numeric_target_port)
{
	compile_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
		     "spec:\n  clusterIP: 10.96.0.20\n  ports:\n  - {port: 80, targetPort: 8080}\n"
		     "---\n"
		     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		     "metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\n"
		     "addressType: IPv4\nendpoints: [{addresses: [10.200.1.1]}]\n",
		     NULL);
	cr_expect_eq(port_of("10.96.0.20", 80, XM_PROTO_TCP)->backends[0].port, 8080);
}

Test(compile, a_slice_of_another_service_namespace_or_family_is_not_used)
{
	compile_text(REVIEWS_SERVICE "---\n"
				     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
				     "metadata: {name: other, labels: {kubernetes.io/service-name: ratings}}\n"
				     "addressType: IPv4\nports: [{name: http, port: 9080}]\n"
				     "endpoints: [{addresses: [10.200.9.1]}]\n"
				     "---\n"
				     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
				     "metadata: {name: elsewhere, namespace: shop, "
				     "labels: {kubernetes.io/service-name: reviews}}\n"
				     "addressType: IPv4\nports: [{name: http, port: 9080}]\n"
				     "endpoints: [{addresses: [10.200.9.2]}]\n"
				     "---\n"
				     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
				     "metadata: {name: v6, labels: {kubernetes.io/service-name: reviews}}\n"
				     "addressType: IPv6\nports: [{name: http, port: 9080}]\n"
				     "endpoints: [{addresses: ['fd00:200::1']}]\n",
		     NULL);
	cr_expect_eq(port_of("10.96.0.10", 80, XM_PROTO_TCP)->n_backends, 0);
}

Test(compile, dual_stack_service_has_one_port_per_family_with_that_familys_backends)
{
	compile_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
		     "spec:\n  clusterIPs: [10.96.0.20, 'fd00:96::20']\n  ports:\n  - {port: 80, targetPort: 8080}\n"
		     "---\n"
		     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		     "metadata: {name: web-4, labels: {kubernetes.io/service-name: web}}\n"
		     "addressType: IPv4\nports: [{port: 8080}]\nendpoints: [{addresses: [10.200.1.1]}]\n"
		     "---\n"
		     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		     "metadata: {name: web-6, labels: {kubernetes.io/service-name: web}}\n"
		     "addressType: IPv6\nports: [{port: 8080}]\n"
		     "endpoints: [{addresses: ['fd00:200::1']}, {addresses: ['fd00:200::2']}]\n",
		     NULL);
	const struct xm_lb_service *v4 = port_of("10.96.0.20", 80, XM_PROTO_TCP);
	const struct xm_lb_service *v6 = port_of("fd00:96::20", 80, XM_PROTO_TCP);
	char buf[64];

	cr_expect_eq(st.n_services, 2);
	cr_expect_eq(v4->n_backends, 1);
	cr_expect_eq(v6->n_backends, 2);
	cr_expect_eq(v6->backends[0].family, XM_FAMILY_V6);
	lb_format_backend(&v6->backends[0], buf, sizeof(buf));
	cr_expect_str_eq(buf, "[fd00:200::1]:8080");
	lb_format_key(&v6->key, buf, sizeof(buf));
	cr_expect_str_eq(buf, "[fd00:96::20]:80/TCP");
	cr_expect_lt(memcmp(&st.services[0].key, &st.services[1].key, sizeof(st.services[0].key)), 0, "sorted by key");
}

Test(compile, external_ips_are_maglev_and_flagged_whatever_the_rule_says)
{
	compile_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
		     "spec:\n  clusterIP: 10.96.0.20\n  externalIPs: [192.0.2.10]\n"
		     "  ports:\n  - {port: 80, targetPort: 8080}\n"
		     "status: {loadBalancer: {ingress: [{ip: 192.0.2.11}]}}\n"
		     "---\n"
		     "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web}\n"
		     "spec: {host: web, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}\n",
		     NULL);
	const struct xm_lb_service *cluster = port_of("10.96.0.20", 80, XM_PROTO_TCP);
	const struct xm_lb_service *ext = port_of("192.0.2.10", 80, XM_PROTO_TCP);
	const struct xm_lb_service *lb = port_of("192.0.2.11", 80, XM_PROTO_TCP);

	cr_expect_eq(st.n_services, 3);
	cr_expect_eq(cluster->algo, XM_LB_ROUND_ROBIN);
	cr_expect_eq(cluster->flags, 0);
	cr_expect_eq(ext->algo, XM_LB_MAGLEV, "every node must pick the same backend for a flow");
	cr_expect_eq(ext->flags, XM_SVC_F_EXTERNAL);
	cr_expect_eq(lb->algo, XM_LB_MAGLEV, "load-balancer ingress IPs are external VIPs too");
	cr_expect_eq(lb->flags, XM_SVC_F_EXTERNAL);
}

Test(compile, http_ports_are_flagged_l7_on_their_cluster_ips_only)
{
	compile_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
		     "spec:\n  clusterIP: 10.96.0.20\n  externalIPs: [192.0.2.10]\n"
		     "  ports:\n  - {name: http-web, port: 80}\n  - {name: tcp-raw, port: 81}\n"
		     "  - {name: api, port: 82, appProtocol: http}\n  - {name: grpc, port: 83}\n"
		     "  - {name: http-dns, port: 84, protocol: UDP}\n",
		     NULL);
	cr_expect_eq(port_of("10.96.0.20", 80, XM_PROTO_TCP)->flags, XM_SVC_F_L7);
	cr_expect_eq(port_of("192.0.2.10", 80, XM_PROTO_TCP)->flags, XM_SVC_F_EXTERNAL, "external VIPs stay XDP's");
	cr_expect_eq(port_of("10.96.0.20", 81, XM_PROTO_TCP)->flags, 0);
	cr_expect_eq(port_of("10.96.0.20", 82, XM_PROTO_TCP)->flags, XM_SVC_F_L7, "appProtocol http");
	cr_expect_eq(port_of("10.96.0.20", 83, XM_PROTO_TCP)->flags, 0, "HTTP/2 is served at L4 for now");
	cr_expect_eq(port_of("10.96.0.20", 84, XM_PROTO_UDP)->flags, 0, "only TCP ports can be HTTP");
}

/* The algorithm compiled for a DestinationRule trafficPolicy (YAML flow mapping) on service "web". */
static uint8_t algo_for(const char *policy, const char *affinity, uint32_t *maglev_size)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
		 "spec:\n  clusterIP: 10.96.0.20\n  sessionAffinity: %s\n  ports:\n  - {port: 80}\n"
		 "---\n"
		 "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web}\n"
		 "spec: {host: web.default.svc.cluster.local, trafficPolicy: %s}\n",
		 affinity, policy);
	compile_text(text, NULL);
	if (maglev_size)
		*maglev_size = st.services[0].maglev_size;
	return st.services[0].algo;
}

Test(compile, round_robin)
{
	cr_expect_eq(algo_for("{loadBalancer: {simple: ROUND_ROBIN}}", "None", NULL), XM_LB_ROUND_ROBIN);
}

Test(compile, random)
{
	cr_expect_eq(algo_for("{loadBalancer: {simple: RANDOM}}", "None", NULL), XM_LB_RANDOM);
}

Test(compile, least_request)
{
	cr_expect_eq(algo_for("{loadBalancer: {simple: LEAST_REQUEST}}", "None", NULL), XM_LB_LEAST_REQUEST);
}

Test(compile, rule_without_load_balancer_is_least_request)
{
	cr_expect_eq(algo_for("{tls: {mode: ISTIO_MUTUAL}}", "None", NULL), XM_LB_LEAST_REQUEST);
}

Test(compile, consistent_hash_on_source_ip_is_maglev_with_the_rules_table_size)
{
	uint32_t size;

	cr_expect_eq(
	    algo_for("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 251}}}}", "None", &size),
	    XM_LB_MAGLEV);
	cr_expect_eq(size, 251);
}

Test(compile, consistent_hash_on_source_ip_without_table_size_takes_the_default)
{
	uint32_t size;

	cr_expect_eq(algo_for("{loadBalancer: {consistentHash: {useSourceIp: true}}}", "None", &size), XM_LB_MAGLEV);
	cr_expect_eq(size, 16381);
}

Test(compile, consistent_hash_on_a_header_needs_l7_and_stays_least_request)
{
	cr_expect_eq(algo_for("{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}", "None", NULL),
		     XM_LB_LEAST_REQUEST);
}

Test(compile, client_ip_affinity_wins_over_the_rule)
{
	cr_expect_eq(algo_for("{loadBalancer: {simple: ROUND_ROBIN}}", "ClientIP", NULL), XM_LB_MAGLEV);
}

Test(compile, outlier_detection_comes_from_the_rule_with_istio_defaults)
{
	algo_for("{outlierDetection: {consecutive5xxErrors: 3, interval: 2s}}", "None", NULL);
	const struct xm_lb_service *s = &st.services[0];

	cr_assert(s->outlier_on);
	cr_expect_eq(s->outlier.consecutive_5xx_errors, 3);
	cr_expect_eq(s->outlier.interval_ms, 2000);
	cr_expect_eq(s->outlier.base_ejection_time_ms, 30000, "Istio's default");
	cr_expect_eq(s->outlier.max_ejection_percent, 10, "Istio's default");
}

Test(compile, no_outlier_detection_without_the_rule_asking)
{
	algo_for("{loadBalancer: {simple: RANDOM}}", "None", NULL);
	cr_expect(!st.services[0].outlier_on);
}

Test(compile, subsets_do_not_change_the_ports_policy_or_backends)
{
	compile_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
		     "spec:\n  clusterIP: 10.96.0.20\n  ports:\n  - {port: 80, targetPort: 8080}\n"
		     "---\n"
		     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		     "metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\n"
		     "addressType: IPv4\nports: [{port: 8080}]\n"
		     "endpoints: [{addresses: [10.200.1.1]}, {addresses: [10.200.1.2]}]\n"
		     "---\n"
		     "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web}\n"
		     "spec:\n  host: web\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
		     "  subsets:\n  - name: v1\n    labels: {version: v1}\n"
		     "    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n",
		     NULL);
	const struct xm_lb_service *s = port_of("10.96.0.20", 80, XM_PROTO_TCP);

	/* Subsets are chosen by routes (VirtualService, L7): at L4 the Service's whole endpoint set serves. */
	cr_expect_eq(s->algo, XM_LB_RANDOM);
	cr_expect_eq(s->n_backends, 2);
}

Test(compile, a_rule_for_another_service_or_namespace_does_not_apply)
{
	compile_text(
	    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
	    "spec:\n  clusterIP: 10.96.0.20\n  ports:\n  - {port: 80}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
	    "spec:\n  clusterIP: 10.96.0.21\n  ports:\n  - {port: 80}\n"
	    "---\n"
	    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n"
	    "spec: {host: web, trafficPolicy: {loadBalancer: {simple: RANDOM}}}\n",
	    NULL);
	cr_expect_eq(port_of("10.96.0.20", 80, XM_PROTO_TCP)->algo, XM_LB_LEAST_REQUEST);
	cr_expect_eq(port_of("10.96.0.21", 80, XM_PROTO_TCP)->algo, XM_LB_RANDOM);
}

Test(compile, headless_services_and_sctp_ports_are_not_served)
{
	compile_text("apiVersion: v1\nkind: Service\nmetadata: {name: db}\n"
		     "spec:\n  clusterIP: None\n  ports:\n  - {port: 5432}\n"
		     "---\n"
		     "apiVersion: v1\nkind: Service\nmetadata: {name: sig}\n"
		     "spec:\n  clusterIP: 10.96.0.30\n  ports:\n  - {name: a, port: 3868, protocol: SCTP}\n"
		     "  - {name: b, port: 3869}\n",
		     NULL);
	cr_expect_eq(st.n_services, 1);
	port_of("10.96.0.30", 3869, XM_PROTO_TCP);
}

Test(compile, an_empty_config_compiles_to_nothing)
{
	struct xm_compile_opts opts = { .maglev_size = 16381 };
	struct xm_config empty = { 0 };

	cr_expect_eq(compile_lb(&empty, &opts, &st), 0);
	cr_expect_eq(st.n_services, 0);
	cr_expect_null(st.services);
}

Test(compile, a_port_without_endpoints_is_served_with_none)
{
	compile_text(REVIEWS_SERVICE, NULL);
	cr_expect_eq(port_of("10.96.0.10", 80, XM_PROTO_TCP)->n_backends, 0);
	cr_expect_eq(port_of("10.96.0.10", 80, XM_PROTO_TCP)->n_ready, 0);
}

/* A config built by hand (not through validation) has no index: rules and slices are found by scanning. */
Test(compile, a_config_built_by_hand_is_scanned)
{
	struct xm_compile_opts opts = { .maglev_size = 16381 };
	struct xm_service_port port = { .name = "", .port = 80, .target_port = 8080, .proto = XM_PROTO_TCP };
	struct xm_ip vip = { .family = 4, .bytes = { 10, 96, 0, 5 } },
		     ep_ip = { .family = 4, .bytes = { 10, 1, 0, 1 } };
	struct xm_endpoint ep = { .addrs = &ep_ip, .n_addrs = 1, .ready = true };
	struct xm_endpoint_slice slices[2] = {
		{ .ns = "default",
		  .name = "web-1",
		  .service_name = "web",
		  .address_family = 4,
		  .endpoints = &ep,
		  .n_endpoints = 1 },
		{ .ns = "default",
		  .name = "other-1",
		  .service_name = "other",
		  .address_family = 4,
		  .endpoints = &ep,
		  .n_endpoints = 1 },
	};
	struct xm_destination_rule rule = { .ns = "default", .name = "web", .host_ns = "default", .host_name = "web" };
	struct xm_service svc = {
		.ns = "default", .name = "web", .cluster_ips = &vip, .n_cluster_ips = 1, .ports = &port, .n_ports = 1
	};
	struct xm_config hand = {
		.services = &svc, .n_services = 1, .slices = slices, .n_slices = 2, .rules = &rule, .n_rules = 1
	};

	rule.policy.lb.set = true;
	rule.policy.lb.simple = XM_DR_LB_RANDOM;
	cr_assert_eq(compile_lb(&hand, &opts, &st), 0);
	cr_assert_eq(st.n_services, 1);
	cr_expect_eq(st.services[0].algo, XM_LB_RANDOM);
	cr_expect_eq(st.services[0].n_backends, 1);
	cr_expect_eq(st.services[0].backends[0].port, 8080);
}

Test(compile, port_level_settings_apply_to_their_port_only)
{
	const struct xm_lb_service *http, *admin;

	compile_text(
	    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
	    "spec:\n  clusterIP: 10.96.0.20\n  ports:\n  - {name: tcp-a, port: 80}\n  - {name: tcp-b, port: 90}\n"
	    "---\n"
	    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web}\n"
	    "spec:\n  host: web\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n"
	    "    portLevelSettings:\n"
	    "    - port: {number: 90}\n"
	    "      outlierDetection: {consecutive5xxErrors: 2}\n",
	    NULL);
	http = port_of("10.96.0.20", 80, XM_PROTO_TCP);
	admin = port_of("10.96.0.20", 90, XM_PROTO_TCP);
	cr_expect_eq(http->algo, XM_LB_ROUND_ROBIN);
	cr_expect(!http->outlier_on, "outlier detection is asked for on port 90 only");
	cr_expect_eq(admin->algo, XM_LB_LEAST_REQUEST, "a port entry inherits nothing: Istio's default balancer");
	cr_assert(admin->outlier_on);
	cr_expect_eq(admin->outlier.consecutive_5xx_errors, 2);
}
