// SPDX-License-Identifier: Apache-2.0
#include "metrics/map_errors.h"

#include <stdbool.h>
#include <string.h>

#include <xmesh/lb.h>

#include "core/log.h"
#include "core/percpu.h"
#include "metrics/registry.h"

static const char *const names[XM_MAPERR_MAX] = {
	[XM_MAPERR_UDP_REVNAT] = "xm_udp_revnat",
	[XM_MAPERR_SOCK_STATE] = "xm_sock_state",
	[XM_MAPERR_L7_ORIGDST] = "xm_l7_origdst",
	[XM_MAPERR_HBONE_ORIGDST] = "xm_hbone_origdst",
};

const char *map_error_name(unsigned int idx)
{
	return idx < XM_MAPERR_MAX && names[idx] ? names[idx] : "?";
}

int map_errors_metrics_collect(int fd, struct xm_scrape *sc)
{
	static const char *const label[] = { "map" };
	static bool warned;
	struct xm_scrape_family *f;
	uint64_t v[XM_MAPERR_MAX];
	int err = percpu_sum_u64(fd, XM_MAPERR_MAX, v);
	unsigned int i;

	if (err) {
		if (!warned)
			log_warn("metrics: xm_map_errors: %s; xmesh_map_update_errors_total left out of scrapes",
				 strerror(-err));
		warned = true;
		return err;
	}
	f = scrape_family(
	    sc, "xmesh_map_update_errors_total", "counter",
	    "Map updates a BPF program could not make (the socket went ahead without the entry), by map.");
	for (i = 0; i < XM_MAPERR_MAX; i++) {
		const char *value[] = { names[i] };

		scrape_u64(f, label, value, 1, v[i]);
	}
	return 0;
}
