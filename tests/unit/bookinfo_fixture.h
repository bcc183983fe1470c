/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio's bookinfo as the L7 record tests see it: productpage-v1 calling reviews-v2 through the cluster of
 * reviews' subset v2. Shared by test_l7_stats.c and test_l7_access_log.c.
 */
#ifndef XMESH_TEST_BOOKINFO_FIXTURE_H
#define XMESH_TEST_BOOKINFO_FIXTURE_H

#include "compile/identity.h"
#include "l7/routes.h"

extern const struct xm_workload bookinfo_productpage, bookinfo_reviews_v2;
extern const struct l7_cluster bookinfo_reviews; /* outbound|9080|v2|reviews.default.svc.cluster.local */

#endif
