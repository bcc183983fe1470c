/* SPDX-License-Identifier: Apache-2.0 */
/* Config reader: every kind's used fields, checked by value, and the lookups. */
#include <criterion/criterion.h>

#include "config/model.h"
#include "test_config.h"

static struct xm_config cfg;

static void load_all(void)
{
	const char *paths[] = { fixture("services.yaml"), fixture("endpointslices.yaml"), fixture("pods.yaml"),
				fixture("nodes.yaml"), fixture("destinationrules.yaml") };

	load_clean(paths, 5, &cfg);
}

static void teardown(void)
{
	config_free(&cfg);
}

TestSuite(config_parse, .init = load_all, .fini = teardown);

Test(config_parse, counts)
{
	cr_expect_eq(cfg.n_services, 5);
	cr_expect_eq(cfg.n_slices, 4);
	cr_expect_eq(cfg.n_pods, 3);
	cr_expect_eq(cfg.n_nodes, 2);
	cr_expect_eq(cfg.n_rules, 7);
}

Test(config_parse, service_ports_affinity_external_ips)
{
	const struct xm_service *s = config_find_service(&cfg, "default", "reviews");

	cr_assert_not_null(s, "namespace defaults to \"default\"");
	cr_expect_str_eq(s->ns, "default");
	cr_expect_str_eq(s->loc.file, fixture("services.yaml"));
	cr_expect_eq(s->loc.line, 5);
	cr_expect_eq(s->loc.col, 9);
	cr_assert_eq(s->n_cluster_ips, 1);
	assert_ip(&s->cluster_ips[0], "10.96.0.10");
	cr_expect_not(s->headless);
	cr_assert_eq(s->n_ports, 2);
	cr_expect_str_eq(s->ports[0].name, "http");
	cr_expect_eq(s->ports[0].port, 9080);
	cr_expect_eq(s->ports[0].target_port, 9080);
	cr_expect_str_eq(s->ports[0].target_port_name, "");
	cr_expect_eq(s->ports[0].proto, 6, "protocol defaults to TCP");
	cr_expect_eq(s->ports[0].loc.line, 9);
	cr_expect_eq(s->ports[0].loc.col, 5);
	cr_expect_str_eq(s->ports[1].name, "grpc");
	cr_expect_eq(s->ports[1].port, 9090);
	cr_expect_eq(s->ports[1].target_port, 0, "a named targetPort has no number");
	cr_expect_str_eq(s->ports[1].target_port_name, "grpc-port");
	cr_expect(s->session_affinity_client_ip);
	cr_assert_eq(s->n_external_ips, 3, "2 externalIPs + 1 ingress ip (the hostname entry has none)");
	assert_ip(&s->external_ips[0], "10.97.0.10");
	assert_ip(&s->external_ips[1], "fd00:97::10");
	assert_ip(&s->external_ips[2], "10.97.1.1");
}

Test(config_parse, service_ipv6)
{
	const struct xm_service *s = config_find_service(&cfg, "shop", "ratings");

	cr_assert_not_null(s);
	cr_assert_eq(s->n_cluster_ips, 1);
	assert_ip(&s->cluster_ips[0], "fd00:96::1");
	cr_assert_eq(s->n_ports, 1);
	cr_expect_str_eq(s->ports[0].name, "", "a single port may be unnamed");
	cr_expect_eq(s->ports[0].port, 80);
	cr_expect_eq(s->ports[0].target_port, 8080);
	cr_expect_not(s->session_affinity_client_ip);
	cr_expect_eq(s->n_external_ips, 0);
}

Test(config_parse, service_dual_stack_protocols)
{
	const struct xm_service *s = config_find_service(&cfg, "kube-system", "dns");

	cr_assert_not_null(s);
	cr_assert_eq(s->n_cluster_ips, 2);
	assert_ip(&s->cluster_ips[0], "10.96.0.53");
	assert_ip(&s->cluster_ips[1], "fd00:96::53");
	cr_assert_eq(s->n_ports, 3);
	cr_expect_eq(s->ports[0].proto, 17);
	cr_expect_eq(s->ports[1].proto, 6);
	cr_expect_eq(s->ports[2].proto, 132);
	cr_expect_eq(s->ports[0].target_port, 53, "targetPort defaults to port");
	cr_expect_eq(s->ports[2].target_port, 3868, "targetPort 0 means the port, as in Kubernetes");
}

Test(config_parse, service_headless_and_external_name)
{
	const struct xm_service *db = config_find_service(&cfg, "shop", "db");
	const struct xm_service *legacy = config_find_service(&cfg, "shop", "legacy");

	cr_assert_not_null(db);
	cr_expect(db->headless);
	cr_expect_eq(db->n_cluster_ips, 0);
	cr_expect_eq(db->n_ports, 1);
	cr_assert_not_null(legacy);
	cr_expect_not(legacy->headless);
	cr_expect_eq(legacy->n_cluster_ips, 0);
	cr_expect_eq(legacy->n_ports, 0);
}

static const struct xm_endpoint_slice *slice(const char *ns, const char *name)
{
	for (size_t i = 0; i < cfg.n_slices; i++) {
		if (strcmp(cfg.slices[i].ns, ns) == 0 && strcmp(cfg.slices[i].name, name) == 0)
			return &cfg.slices[i];
	}
	cr_assert_fail("no EndpointSlice %s/%s", ns, name);
	return NULL;
}

Test(config_parse, endpointslice_endpoints_readiness_ports)
{
	const struct xm_endpoint_slice *s = slice("default", "reviews-abc12");
	const struct xm_endpoint *e;

	cr_expect_str_eq(s->service_name, "reviews");
	cr_expect_eq(s->address_family, 4);
	cr_assert_eq(s->n_endpoints, 4);
	e = &s->endpoints[0];
	cr_assert_eq(e->n_addrs, 1);
	assert_ip(&e->addrs[0], "10.200.1.7");
	cr_expect(e->ready, "no conditions: ready");
	cr_expect_str_eq(e->node_name, "node-a");
	cr_expect_str_eq(e->target_ns, "default", "targetRef namespace defaults to the slice's");
	cr_expect_str_eq(e->target_name, "reviews-v1-0");
	cr_expect_eq(e->loc.line, 9);
	cr_expect_eq(e->loc.col, 3);
	e = &s->endpoints[1];
	cr_expect_not(e->ready, "conditions.ready: false");
	cr_expect_str_eq(e->node_name, "node-b");
	cr_expect_str_eq(e->target_name, "reviews-v2-0");
	e = &s->endpoints[2];
	cr_expect(e->ready);
	cr_assert_eq(e->n_addrs, 2);
	assert_ip(&e->addrs[1], "10.200.2.10");
	cr_expect_str_eq(e->target_ns, "", "a targetRef of kind Node is not a Pod");
	cr_expect_str_eq(e->target_name, "");
	cr_expect_str_eq(e->node_name, "");
	cr_expect(s->endpoints[3].ready, "conditions.ready: null means unknown, counted as ready");
	cr_assert_eq(s->n_ports, 2);
	cr_expect_str_eq(s->ports[0].name, "http");
	cr_expect_eq(s->ports[0].port, 9080);
	cr_expect_eq(s->ports[0].proto, 6);
	cr_expect_str_eq(s->ports[1].name, "grpc");
	cr_expect_eq(s->ports[1].port, 8081);
}

Test(config_parse, endpointslice_ipv6_fqdn_empty)
{
	const struct xm_endpoint_slice *v6 = slice("shop", "ratings-v6");
	const struct xm_endpoint_slice *fqdn = slice("shop", "legacy-fqdn");
	const struct xm_endpoint_slice *empty = slice("shop", "empty");

	cr_expect_eq(v6->address_family, 6);
	cr_assert_eq(v6->n_endpoints, 1);
	assert_ip(&v6->endpoints[0].addrs[0], "fd00:200::5");
	cr_assert_eq(v6->n_ports, 1);
	cr_expect_str_eq(v6->ports[0].name, "");
	cr_expect_eq(v6->ports[0].proto, 17);
	cr_expect_eq(fqdn->address_family, 0);
	cr_expect_str_eq(fqdn->service_name, "");
	cr_assert_eq(fqdn->n_endpoints, 1);
	cr_expect_eq(fqdn->endpoints[0].n_addrs, 0, "FQDN addresses are not IPs");
	cr_expect_eq(empty->n_endpoints, 0);
	cr_expect_eq(empty->n_ports, 0);
	cr_expect_str_eq(empty->service_name, "db");
}

static const char *label(const struct xm_label *labels, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(labels[i].key, key) == 0)
			return labels[i].value;
	}
	return NULL;
}

Test(config_parse, pod_labels_service_account_ips)
{
	const struct xm_pod *p = config_find_pod(&cfg, "default", "reviews-v2-0");

	cr_assert_not_null(p);
	cr_assert_eq(p->n_labels, 3);
	cr_expect_str_eq(label(p->labels, p->n_labels, "app"), "reviews");
	cr_expect_str_eq(label(p->labels, p->n_labels, "version"), "v2");
	cr_expect_str_eq(label(p->labels, p->n_labels, "security.istio.io/tlsMode"), "istio");
	cr_expect_str_eq(p->service_account, "default", "serviceAccountName defaults to \"default\"");
	cr_expect_str_eq(p->node_name, "node-b");
	cr_assert_eq(p->n_ips, 2, "status.podIPs wins over status.podIP");
	assert_ip(&p->ips[0], "10.200.2.8");
	assert_ip(&p->ips[1], "fd00:200::8");

	p = config_find_pod(&cfg, "shop", "ratings-v1-0");
	cr_assert_not_null(p);
	cr_expect_str_eq(p->service_account, "bookinfo-ratings");
	cr_expect_str_eq(p->node_name, "node-a");
	cr_assert_eq(p->n_ips, 1, "status.podIP alone");
	assert_ip(&p->ips[0], "10.200.1.9");
	cr_expect_str_eq(label(p->labels, p->n_labels, "app"), "ratings");

	p = config_find_pod(&cfg, "default", "pending");
	cr_assert_not_null(p);
	cr_expect_str_eq(p->service_account, "legacy-sa", "deprecated spec.serviceAccount");
	cr_expect_eq(p->n_ips, 0);
	cr_expect_eq(p->n_labels, 0);
}

Test(config_parse, node_internal_ips)
{
	const struct xm_node *a = config_find_node(&cfg, "node-a");
	const struct xm_node *b = config_find_node(&cfg, "node-b");

	cr_assert_not_null(a);
	cr_assert_eq(a->n_internal_ips, 2, "ExternalIP and Hostname are not InternalIP");
	assert_ip(&a->internal_ips[0], "10.199.0.2");
	assert_ip(&a->internal_ips[1], "fd00:199::2");
	cr_expect_eq(a->loc.line, 4);
	cr_assert_not_null(b);
	cr_expect_eq(b->n_internal_ips, 0);
}

Test(config_parse, destinationrule_explicit_policy)
{
	const struct xm_destination_rule *r = config_find_rule(&cfg, "default", "reviews");
	const struct xm_traffic_policy *p;

	cr_assert_not_null(r);
	cr_expect_str_eq(r->host, "reviews");
	cr_expect_str_eq(r->host_ns, "default");
	cr_expect_str_eq(r->host_name, "reviews");
	cr_expect_eq(r->host_loc.line, 6);
	cr_expect_eq(r->host_loc.col, 9);
	p = &r->policy;
	cr_expect(p->lb.set);
	cr_expect_eq(p->lb.simple, XM_DR_LB_LEAST_REQUEST, "LEAST_CONN is an alias of LEAST_REQUEST");
	cr_expect(p->outlier.set);
	cr_expect_eq(p->outlier.consecutive_5xx_errors, 7);
	cr_expect_eq(p->outlier.consecutive_gateway_errors, 3);
	cr_expect_eq(p->outlier.consecutive_local_origin_failures, 2);
	cr_expect(p->outlier.split_external_local_origin_errors);
	cr_expect_eq(p->outlier.interval_ms, 1500);
	cr_expect_eq(p->outlier.base_ejection_time_ms, 120000);
	cr_expect_eq(p->outlier.max_ejection_percent, 50);
	cr_expect_eq(p->outlier.min_health_percent, 25);
	cr_expect(p->pool.set);
	cr_expect_eq(p->pool.tcp_max_connections, 100);
	cr_expect_eq(p->pool.tcp_connect_timeout_ms, 250);
	cr_expect_eq(p->pool.http1_max_pending_requests, 10);
	cr_expect_eq(p->pool.http2_max_requests, 1000);
	cr_expect_eq(p->pool.http_max_requests_per_conn, 1);
	cr_expect_eq(p->pool.http_max_retries, 3);
	cr_expect_eq(p->pool.http_idle_timeout_ms, 3600000);
	cr_expect_eq(p->tls_mode, XM_TLS_ISTIO_MUTUAL);
}

Test(config_parse, destinationrule_subsets)
{
	const struct xm_destination_rule *r = config_find_rule(&cfg, "default", "reviews");
	const struct xm_subset *v1, *v2;

	cr_assert_not_null(r);
	cr_assert_eq(r->n_subsets, 2);
	v1 = &r->subsets[0];
	v2 = &r->subsets[1];
	cr_expect_str_eq(v1->name, "v1");
	cr_assert_eq(v1->n_labels, 1);
	cr_expect_str_eq(v1->labels[0].key, "version");
	cr_expect_str_eq(v1->labels[0].value, "v1");
	cr_expect_not(v1->policy.lb.set, "no subset policy: nothing set");
	cr_expect_not(v1->policy.outlier.set);
	cr_expect_not(v1->policy.pool.set);
	cr_expect_eq(v1->policy.tls_mode, XM_TLS_UNSET);
	cr_expect_str_eq(v2->name, "v2");
	cr_expect_eq(v2->n_labels, 2);
	cr_expect_str_eq(label(v2->labels, v2->n_labels, "app"), "reviews");
	cr_expect_eq(v2->policy.lb.simple, XM_DR_LB_CONSISTENT_HASH);
	cr_expect_eq(v2->policy.lb.hash_key, XM_DR_HASH_HTTP_COOKIE);
	cr_expect_str_eq(v2->policy.lb.hash_param, "session");
	cr_expect(v2->policy.lb.cookie_ttl_set, "ttl: 0s is a ttl (a session cookie), not an absent one");
	cr_expect_eq(v2->policy.lb.cookie_ttl_ms, 0);
	cr_expect_str_eq(v2->policy.lb.cookie_path, "");
	cr_expect_eq(v2->policy.lb.maglev_table_size, 65537);
	cr_expect(v2->policy.outlier.set, "outlierDetection: {} enables detection with Istio's defaults");
	cr_expect_eq(v2->policy.outlier.consecutive_5xx_errors, 5);
	cr_expect_eq(v2->policy.outlier.interval_ms, 10000);
	cr_expect_eq(v2->policy.outlier.base_ejection_time_ms, 30000);
	cr_expect_eq(v2->policy.outlier.max_ejection_percent, 10);
	cr_expect_eq(v2->loc.line, 35);
	cr_expect_eq(v2->loc.col, 5);
}

Test(config_parse, destinationrule_outlier_defaults)
{
	const struct xm_destination_rule *r = config_find_rule(&cfg, "shop", "ratings");
	const struct xm_outlier_detection *od;

	cr_assert_not_null(r);
	od = &r->policy.outlier;
	cr_expect(od->set);
	cr_expect_eq(od->consecutive_5xx_errors, 1, "explicit");
	cr_expect_eq(od->consecutive_gateway_errors, 0, "Istio default: off");
	cr_expect_eq(od->consecutive_local_origin_failures, 5);
	cr_expect_not(od->split_external_local_origin_errors);
	cr_expect_eq(od->interval_ms, 10000);
	cr_expect_eq(od->base_ejection_time_ms, 30000);
	cr_expect_eq(od->max_ejection_percent, 10);
	cr_expect_eq(od->min_health_percent, 0);
	cr_expect_eq(r->policy.lb.simple, XM_DR_LB_CONSISTENT_HASH);
	cr_expect_eq(r->policy.lb.hash_key, XM_DR_HASH_SOURCE_IP);
	cr_expect_eq(r->policy.lb.maglev_table_size, 0);

	r = config_find_rule(&cfg, "shop", "db");
	cr_assert_not_null(r);
	cr_expect_not(r->policy.outlier.set, "no outlierDetection: detection off");
	cr_expect_eq(r->policy.outlier.consecutive_5xx_errors, 5, "defaults are still filled in");
	cr_expect_not(r->policy.lb.set);
	cr_expect_eq(r->policy.lb.simple, XM_DR_LB_UNSET);
}

Test(config_parse, outlier_defaults_function)
{
	struct xm_outlier_detection od;

	memset(&od, 0xff, sizeof(od));
	od.set = false;
	config_outlier_defaults(&od);
	cr_expect_eq(od.consecutive_5xx_errors, 5);
	cr_expect_eq(od.consecutive_gateway_errors, 0);
	cr_expect_eq(od.consecutive_local_origin_failures, 5);
	cr_expect_not(od.split_external_local_origin_errors);
	cr_expect_eq(od.interval_ms, 10000);
	cr_expect_eq(od.base_ejection_time_ms, 30000);
	cr_expect_eq(od.max_ejection_percent, 10);
	cr_expect_eq(od.min_health_percent, 0);
	cr_expect_not(od.set);
}

Test(config_parse, destinationrule_host_forms)
{
	struct {
		const char *ns, *name, *host_ns, *host_name;
	} cases[] = {
		{ "default", "reviews", "default", "reviews" }, /* short name: the rule's namespace */
		{ "shop", "ratings", "shop", "ratings" },	/* name.ns.svc.cluster.local */
		{ "default", "dns", "kube-system", "dns" },	/* name.ns, from another namespace */
		{ "shop", "db", "shop", "db" },			/* name.ns.svc */
		{ "default", "external", "", "" },		/* wildcard: external */
		{ "default", "google", "", "" },		/* outside cluster.local */
		{ "default", "api", "", "" },			/* two labels, no such namespace: external */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct xm_destination_rule *r = config_find_rule(&cfg, cases[i].ns, cases[i].name);

		cr_assert_not_null(r, "rule %s/%s", cases[i].ns, cases[i].name);
		cr_expect_str_eq(r->host_ns, cases[i].host_ns, "rule %s/%s", cases[i].ns, cases[i].name);
		cr_expect_str_eq(r->host_name, cases[i].host_name, "rule %s/%s", cases[i].ns, cases[i].name);
	}
	cr_expect_eq(config_find_rule(&cfg, "default", "external")->policy.tls_mode, XM_TLS_SIMPLE);
	cr_expect_eq(config_find_rule(&cfg, "default", "dns")->policy.lb.simple, XM_DR_LB_RANDOM);
}

Test(config_parse, lookups_miss)
{
	cr_expect_null(config_find_service(&cfg, "shop", "reviews"));
	cr_expect_null(config_find_service(&cfg, "default", "nope"));
	cr_expect_null(config_find_rule(&cfg, "kube-system", "dns"));
	cr_expect_null(config_find_pod(&cfg, "default", "ratings-v1-0"));
	cr_expect_null(config_find_node(&cfg, "node-c"));
	cr_expect_null(config_find_service(&cfg, NULL, "reviews"));
}

Test(config_parse, lookup_unsorted_hand_built_config)
{
	struct xm_service svcs[3] = { 0 };
	struct xm_config c = { .services = svcs, .n_services = 3 };

	strcpy(svcs[0].ns, "z");
	strcpy(svcs[0].name, "a");
	strcpy(svcs[1].ns, "a");
	strcpy(svcs[1].name, "z");
	strcpy(svcs[2].ns, "m");
	strcpy(svcs[2].name, "m");
	cr_expect_eq(config_find_service(&c, "z", "a"), &svcs[0]);
	cr_expect_eq(config_find_service(&c, "a", "z"), &svcs[1]);
	cr_expect_eq(config_find_service(&c, "m", "m"), &svcs[2]);
}
