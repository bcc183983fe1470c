// SPDX-License-Identifier: Apache-2.0
/* xmesh_build_info: the build's version as a label on a constant 1, the usual Prometheus idiom. */
#include "metrics/metrics.h"
#include "metrics/prom.h"

#ifndef XMESH_VERSION
#define XMESH_VERSION "unknown"
#endif

void metrics_render_build_info(struct strbuf *out)
{
	static const char *const names[] = { "version" };
	const char *const values[] = { XMESH_VERSION };

	prom_family(out, "xmesh_build_info", "gauge", "The xmesh agent build serving these metrics (always 1).");
	prom_sample_u64(out, "xmesh_build_info", names, values, 1, 1);
}
