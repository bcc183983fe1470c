/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outlier detection, agent side: the DestinationRule policy in the kernel's terms, the one function
 * through which userspace (the L7 proxy) reports outcomes into the kernel's per-endpoint state, and
 * reading that state for status and metrics.
 */
#ifndef XMESH_OUTLIER_AGENT_H
#define XMESH_OUTLIER_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include <xmesh/outlier.h>

#include "config/model.h"

/* Istio's maxEjectionTime default. */
#define XM_OUTLIER_MAX_EJECTION_MS 300000u

void outlier_cfg_from_policy(const struct xm_outlier_detection *od, uint32_t n_endpoints, struct xm_outlier_cfg *out);

/*
 * Reports one outcome for (svc_id, backend_id) through the kernel's own code path (the xm_outlier_report
 * program), so it is locked and counted exactly like sockops' events. Returns 0 (for XM_REPORT_PROBE:
 * 1 when ejected, 0 when not), or a negative errno.
 */
int outlier_report(int report_prog_fd, uint32_t svc_id, uint32_t backend_id, enum xm_outlier_report_kind kind,
		   uint32_t http_status);

struct xm_endpoint_health {
	bool known; /* the kernel has state for it */
	bool ejected;
	bool expired;		 /* an ejection whose time is up, not yet ended by a selection */
	uint64_t ejected_for_ms; /* remaining */
	uint64_t times_ejected;
	uint32_t consecutive_local, consecutive_5xx, consecutive_gateway;
};

int outlier_read(int outlier_map_fd, uint32_t svc_id, uint32_t backend_id, struct xm_endpoint_health *out);

/*
 * Ends the endpoint's ejection if its time is up, through the kernel's own code path (so the return is
 * counted once even if a selection ends it at the same moment). True when this call ended it.
 */
bool outlier_sweep(int outlier_map_fd, int report_prog_fd, uint32_t svc_id, uint32_t backend_id);

/* CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns(). */
uint64_t outlier_now_ns(void);

const char *outlier_reason_name(uint32_t reason);

#endif
