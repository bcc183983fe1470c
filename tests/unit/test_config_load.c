/* SPDX-License-Identifier: Apache-2.0 */
/* Config reader: streams, Lists, directories, unknown kinds and fields, a real kubectl dump, anchors. */
#include <criterion/criterion.h>

#include "config/model.h"
#include "test_config.h"

Test(config_load, multi_document_stream)
{
	const char *paths[] = { fixture("services.yaml") };
	struct xm_config cfg;

	load_clean(paths, 1, &cfg);
	cr_expect_eq(cfg.n_services, 5, "five documents, then an empty one after the last ---");
	cr_assert_eq(cfg.n_files, 1);
	cr_expect_str_eq(cfg.files[0], paths[0]);
	/* sorted by namespace/name */
	cr_expect_str_eq(cfg.services[0].name, "reviews");
	cr_expect_str_eq(cfg.services[1].ns, "kube-system");
	cr_expect_str_eq(cfg.services[2].name, "db");
	cr_expect_str_eq(cfg.services[3].name, "legacy");
	cr_expect_str_eq(cfg.services[4].name, "ratings");
	config_free(&cfg);
}

Test(config_load, kubectl_list_with_every_kind)
{
	const char *paths[] = { fixture("kubectl_bookinfo.yaml") };
	const struct xm_endpoint_slice *reviews = NULL;
	const struct xm_service *svc;
	const struct xm_pod *pod;
	const struct xm_node *node;
	struct xm_config cfg;

	load_clean(paths, 1, &cfg);
	cr_assert_eq(cfg.n_services, 3);
	cr_assert_eq(cfg.n_slices, 3);
	cr_assert_eq(cfg.n_pods, 4);
	cr_assert_eq(cfg.n_nodes, 2);
	cr_expect_eq(cfg.n_rules, 0);

	svc = config_find_service(&cfg, "bookinfo", "reviews");
	cr_assert_not_null(svc);
	cr_assert_eq(svc->n_cluster_ips, 1);
	assert_ip(&svc->cluster_ips[0], "10.96.140.21");
	cr_assert_eq(svc->n_ports, 1);
	cr_expect_str_eq(svc->ports[0].name, "http");
	cr_expect_eq(svc->ports[0].port, 9080);
	cr_expect_eq(svc->ports[0].target_port, 9080);
	cr_expect_not(svc->session_affinity_client_ip, "sessionAffinity: None");
	cr_expect_eq(svc->n_external_ips, 0, "status.loadBalancer: {}");

	for (size_t i = 0; i < cfg.n_slices; i++) {
		if (strcmp(cfg.slices[i].service_name, "reviews") == 0)
			reviews = &cfg.slices[i];
	}
	cr_assert_not_null(reviews);
	cr_expect_str_eq(reviews->name, "reviews-8jq2r");
	cr_expect_str_eq(reviews->ns, "bookinfo");
	cr_assert_eq(reviews->n_endpoints, 2);
	cr_expect(reviews->endpoints[0].ready);
	cr_expect_not(reviews->endpoints[1].ready);
	cr_expect_str_eq(reviews->endpoints[1].node_name, "kind-control-plane");
	cr_expect_str_eq(reviews->endpoints[1].target_ns, "bookinfo");
	cr_expect_str_eq(reviews->endpoints[1].target_name, "reviews-v2-5c757d5846-9hdfr");
	assert_ip(&reviews->endpoints[1].addrs[0], "10.200.0.4");

	pod = config_find_pod(&cfg, "bookinfo", "reviews-v2-5c757d5846-9hdfr");
	cr_assert_not_null(pod);
	cr_expect_str_eq(pod->service_account, "bookinfo-reviews");
	cr_expect_str_eq(pod->node_name, "kind-control-plane");
	cr_assert_eq(pod->n_ips, 1);
	assert_ip(&pod->ips[0], "10.200.0.4");
	cr_expect_eq(pod->n_labels, 3);

	node = config_find_node(&cfg, "kind-worker");
	cr_assert_not_null(node);
	cr_assert_eq(node->n_internal_ips, 1);
	assert_ip(&node->internal_ips[0], "10.199.0.3");
	node = config_find_node(&cfg, "kind-control-plane");
	cr_assert_not_null(node);
	assert_ip(&node->internal_ips[0], "10.199.0.2");
	config_free(&cfg);
}

Test(config_load, typed_list_items_inherit_kind)
{
	char *path = temp_yaml("apiVersion: v1\n"
			       "kind: ServiceList\n"
			       "metadata: {resourceVersion: \"12\"}\n"
			       "items:\n"
			       "- metadata: {name: a, namespace: x}\n"
			       "  spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n"
			       "- metadata: {name: b, namespace: x}\n"
			       "  spec: {clusterIP: 10.96.0.2, ports: [{port: 81}]}\n");
	const char *paths[] = { path };
	struct xm_config cfg;

	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	cr_assert_eq(cfg.n_services, 2);
	cr_expect_eq(config_find_service(&cfg, "x", "b")->ports[0].port, 81);
	config_free(&cfg);
}

Test(config_load, directory_sorted_not_recursive)
{
	const char *paths[] = { fixture("dir") };
	struct xm_config cfg;

	load_clean(paths, 1, &cfg);
	cr_assert_eq(cfg.n_files, 2, "only *.yaml and *.yml, no hidden file, no subdirectory");
	cr_expect(strstr(cfg.files[0], "dir/10-reviews.yaml") != NULL, "got %s", cfg.files[0]);
	cr_expect(strstr(cfg.files[1], "dir/20-ratings.yml") != NULL, "got %s", cfg.files[1]);
	cr_assert_eq(cfg.n_services, 2);
	cr_expect_not_null(config_find_service(&cfg, "default", "reviews"));
	cr_expect_not_null(config_find_service(&cfg, "default", "ratings"));
	cr_expect_null(config_find_service(&cfg, "default", "details"));
	cr_expect_eq(config_find_service(&cfg, "default", "ratings")->loc.file, cfg.files[1]);
	config_free(&cfg);
}

Test(config_load, directory_order_decides_which_duplicate_is_reported)
{
	char dir[] = "/tmp/xmesh-cfg-dir-XXXXXX";
	char a[64], b[64];
	const char *paths[] = { dir };
	struct xm_config cfg;
	struct xm_diags d = { 0 };
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/b.yaml", dir);
	snprintf(b, sizeof(b), "%s/a.yaml", dir);
	/* written in reverse name order: the directory's own order must not matter */
	f = fopen(a, "w");
	fputs("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n", f);
	fclose(f);
	f = fopen(b, "w");
	fputs("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n", f);
	fclose(f);
	cr_expect_eq(config_load(paths, 1, &cfg, &d), -EINVAL);
	cr_assert_eq(d.n, 1);
	find_diag(&d, "/b.yaml", 3, 18, "node n1: defined twice (first at ", "/a.yaml:3:18)");
	cr_expect_eq(cfg.n_nodes, 1);
	diags_free(&d);
	config_free(&cfg);
	unlink(a);
	unlink(b);
	rmdir(dir);
}

Test(config_load, unknown_kinds_and_fields_ignored)
{
	const char *paths[] = { fixture("unknown.yaml") };
	const struct xm_service *s;
	struct xm_config cfg;

	load_clean(paths, 1, &cfg);
	cr_assert_eq(cfg.n_services, 1, "the Knative Service is another API");
	s = &cfg.services[0];
	cr_expect_str_eq(s->name, "reviews");
	cr_assert_eq(s->n_ports, 1);
	cr_expect_eq(s->ports[0].port, 9080);
	cr_expect_eq(cfg.n_slices + cfg.n_pods + cfg.n_nodes + cfg.n_rules, 0);
	config_free(&cfg);
}

Test(config_load, several_paths_and_same_file_twice)
{
	const char *paths[] = { fixture("services.yaml"), fixture("nodes.yaml"), fixture("services.yaml") };
	struct xm_config cfg;

	load_clean(paths, 3, &cfg);
	cr_expect_eq(cfg.n_services, 5, "a file named twice is read once");
	cr_expect_eq(cfg.n_nodes, 2);
	config_free(&cfg);
}

Test(config_load, anchors_aliases_and_merge_keys)
{
	char *path = temp_yaml("apiVersion: v1\n"
			       "kind: List\n"
			       "items:\n"
			       "- &common\n"
			       "  apiVersion: v1\n"
			       "  kind: Service\n"
			       "  metadata: {name: a}\n"
			       "  spec: {clusterIP: 10.96.0.1, ports: &ports [{name: http, port: 80}]}\n"
			       "- <<: *common\n"
			       "  metadata: {name: b}\n"
			       "  spec: {clusterIP: 10.96.0.2, ports: *ports}\n");
	const char *paths[] = { path };
	struct xm_config cfg;
	const struct xm_service *b;

	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	cr_assert_eq(cfg.n_services, 2);
	b = config_find_service(&cfg, "default", "b");
	cr_assert_not_null(b);
	assert_ip(&b->cluster_ips[0], "10.96.0.2");
	cr_assert_eq(b->n_ports, 1);
	cr_expect_eq(b->ports[0].port, 80);
	config_free(&cfg);
}

Test(config_load, empty_inputs)
{
	char *path = temp_yaml("# nothing but comments\n---\n---\n...\n");
	char *empty = temp_yaml("");
	const char *paths[] = { path, empty };
	struct xm_config cfg;

	load_clean(paths, 2, &cfg);
	cr_expect_eq(cfg.n_services + cfg.n_slices + cfg.n_pods + cfg.n_nodes + cfg.n_rules, 0);
	cr_expect_eq(cfg.n_files, 2);
	config_free(&cfg);
	config_free(&cfg); /* idempotent on a zeroed config */
	unlink(path);
	unlink(empty);
	free(path);
	free(empty);
}
