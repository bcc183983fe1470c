// SPDX-License-Identifier: Apache-2.0
/* xmesh_build_info: the build's version as a label on a constant 1, the usual Prometheus idiom. */
#include "metrics/metrics.h"
#include "metrics/registry.h"

#ifndef XMESH_VERSION
#define XMESH_VERSION "unknown"
#endif

void metrics_collect_build_info(struct xm_scrape *sc)
{
	static const char *const names[] = { "version" };
	const char *const values[] = { XMESH_VERSION };

	scrape_u64(
	    scrape_family(sc, "xmesh_build_info", "gauge", "The xmesh agent build serving these metrics (always 1)."),
	    names, values, 1, 1);
}
