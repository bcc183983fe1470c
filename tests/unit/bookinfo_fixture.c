// SPDX-License-Identifier: Apache-2.0
/* Bookinfo's workloads and cluster for the L7 record tests: see bookinfo_fixture.h. */
#include "bookinfo_fixture.h"

const struct xm_workload bookinfo_productpage = {
	.ns = "default",
	.pod = "productpage-v1-7d6cfb7dfd-abcde",
	.name = "productpage-v1",
	.app = "productpage",
	.version = "v1",
	.canonical_service = "productpage",
	.canonical_revision = "v1",
	.service_account = "bookinfo-productpage",
	.principal = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
};

const struct xm_workload bookinfo_reviews_v2 = {
	.ns = "default",
	.pod = "reviews-v2-5b667bcbf8-xyz12",
	.name = "reviews-v2",
	.app = "reviews",
	.version = "v2",
	.canonical_service = "reviews",
	.canonical_revision = "v2",
	.service_account = "bookinfo-reviews",
	.principal = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
};

const struct l7_cluster bookinfo_reviews = {
	.name = "outbound|9080|v2|reviews.default.svc.cluster.local",
	.host_fqdn = "reviews.default.svc.cluster.local",
	.svc_name = "reviews",
	.svc_ns = "default",
	.subset = "v2",
	.port = 9080,
};
