// SPDX-License-Identifier: Apache-2.0
/*
 * A workload's locality as istiod derives it (the HBONE baggage's cloud.region and cloud.availability_zone):
 * the Pod's istio-locality label, else its Node's topology labels, else empty.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile/identity.h"
#include "daemon/hbone_baggage.h"
#include "test_config.h"

static struct xm_config cfg;
static struct xm_identities ids;

static void teardown(void)
{
	identities_free(&ids);
	config_free(&cfg);
}

TestSuite(workload_locality, .fini = teardown);

static const char *pod(const char *name, const char *node, const char *ip, const char *labels, char *buf, size_t len)
{
	snprintf(buf, len,
		 "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: shop%s}\nspec: {nodeName: %s}\n"
		 "status: {podIPs: [{ip: %s}]}\n",
		 name, labels, node, ip);
	return buf;
}

static void build(const char *text)
{
	char *path = temp_yaml(text);
	const char *paths[] = { path };

	load_clean(paths, 1, &cfg);
	unlink(path);
	free(path);
	cr_assert_eq(identities_build(&cfg, "cluster.local", &ids), 0);
}

static const struct xm_workload *at(const char *ip)
{
	union xm_addr a = { 0 };
	const struct xm_identity *id;

	cr_assert_eq(inet_pton(AF_INET, ip, a.bytes), 1);
	id = identities_find(&ids, &a, 4);
	cr_assert_not_null(id, "no workload at %s", ip);
	return id->wl;
}

Test(workload_locality, node_labels_then_the_pod_label_then_nothing)
{
	char baggage[1024];

	static const char nodes[] =
	    "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n  labels:\n"
	    "    topology.kubernetes.io/region: us-east1\n    topology.kubernetes.io/zone: us-east1-b\n"
	    "---\napiVersion: v1\nkind: Node\nmetadata: {name: node-b, labels: {topology.kubernetes.io/zone: z9}}\n"
	    "---\napiVersion: v1\nkind: Node\nmetadata: {name: node-c}\n";
	char text[4096], p[6][256];

	snprintf(text, sizeof(text), "%s%s%s%s%s%s%s", nodes, pod("a", "node-a", "10.200.1.1", "", p[0], 256),
		 pod("b", "node-b", "10.200.2.1", "", p[1], 256), pod("c", "node-c", "10.200.3.1", "", p[2], 256),
		 pod("x", "node-x", "10.200.4.1", "", p[3], 256),
		 pod("o", "node-a", "10.200.1.2", ", labels: {istio-locality: eu-west1.eu-west1-c.rack7}", p[4], 256),
		 pod("r", "node-a", "10.200.1.3", ", labels: {istio-locality: eu-west2}", p[5], 256));
	build(text);

	cr_expect_str_eq(at("10.200.1.1")->region, "us-east1");
	cr_expect_str_eq(at("10.200.1.1")->zone, "us-east1-b");
	cr_expect_str_eq(at("10.200.2.1")->region, "", "a Node with a zone and no region");
	cr_expect_str_eq(at("10.200.2.1")->zone, "z9");
	cr_expect_str_eq(at("10.200.3.1")->region, "", "a Node without topology labels");
	cr_expect_str_eq(at("10.200.3.1")->zone, "");
	cr_expect_str_eq(at("10.200.4.1")->region, "", "no Node object for the pod's node");
	cr_expect_str_eq(at("10.200.1.2")->region, "eu-west1", "istio-locality overrides the Node");
	cr_expect_str_eq(at("10.200.1.2")->zone, "eu-west1-c");
	cr_expect_str_eq(at("10.200.1.3")->region, "eu-west2");
	cr_expect_str_eq(at("10.200.1.3")->zone, "", "a region-only istio-locality");

	cr_assert_gt(workload_baggage(at("10.200.1.1"), "Kubernetes", baggage, sizeof(baggage)), 0);
	cr_expect_str_eq(baggage, "k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.pod.name=a,service.name=a,"
				  "service.version=latest,cloud.region=us-east1,cloud.availability_zone=us-east1-b");
}
