// SPDX-License-Identifier: Apache-2.0
#include "outlier/outlier.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>
#include <time.h>

static uint32_t clamp_u32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void outlier_cfg_from_policy(const struct xm_outlier_detection *od, uint32_t n_endpoints, struct xm_outlier_cfg *out)
{
	memset(out, 0, sizeof(*out));
	out->consecutive_5xx = od->consecutive_5xx_errors;
	out->consecutive_gateway = od->consecutive_gateway_errors;
	out->consecutive_local_origin = od->consecutive_local_origin_failures;
	out->split_local_origin = od->split_external_local_origin_errors;
	out->base_ejection_ms = clamp_u32(od->base_ejection_time_ms);
	out->max_ejection_ms = XM_OUTLIER_MAX_EJECTION_MS;
	out->interval_ms = clamp_u32(od->interval_ms);
	out->n_endpoints = n_endpoints > UINT16_MAX ? UINT16_MAX : (uint16_t)n_endpoints;
	out->max_ejection_pct = (uint8_t)(od->max_ejection_percent > 100 ? 100 : od->max_ejection_percent);
	out->min_health_pct = (uint8_t)(od->min_health_percent > 100 ? 100 : od->min_health_percent);
}

int outlier_report(int report_prog_fd, uint32_t svc_id, uint32_t backend_id, enum xm_outlier_report_kind kind,
		   uint32_t http_status)
{
	unsigned char pkt[XM_REPORT_PAD + sizeof(struct xm_outlier_report_msg)];
	struct xm_outlier_report_msg msg = { svc_id, backend_id, kind, http_status };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt));

	memset(pkt, 0, XM_REPORT_PAD);
	memcpy(pkt + XM_REPORT_PAD, &msg, sizeof(msg));
	if (bpf_prog_test_run_opts(report_prog_fd, &opts) < 0)
		return -errno;
	if (kind == XM_REPORT_PROBE)
		return opts.retval == XDP_DROP;
	return opts.retval == XDP_PASS ? 0 : -EINVAL;
}

uint64_t outlier_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int outlier_read(int outlier_map_fd, uint32_t svc_id, uint32_t backend_id, struct xm_endpoint_health *out)
{
	struct xm_outlier_key k = { .svc_id = svc_id, .backend_id = backend_id };
	struct xm_outlier_state st;
	uint64_t now = outlier_now_ns();

	memset(out, 0, sizeof(*out));
	if (bpf_map_lookup_elem_flags(outlier_map_fd, &k, &st, BPF_F_LOCK) < 0)
		return errno == ENOENT ? 0 : -errno;
	out->known = true;
	out->ejected = st.ejected_until_ns > now;
	out->expired = st.ejected_until_ns && st.ejected_until_ns <= now;
	out->ejected_for_ms = out->ejected ? (st.ejected_until_ns - now) / 1000000 : 0;
	out->times_ejected = st.times_ejected;
	out->consecutive_local = st.consecutive_local;
	out->consecutive_5xx = st.consecutive_5xx;
	out->consecutive_gateway = st.consecutive_gateway;
	return 0;
}

bool outlier_sweep(int outlier_map_fd, int report_prog_fd, uint32_t svc_id, uint32_t backend_id)
{
	struct xm_endpoint_health h;

	if (outlier_read(outlier_map_fd, svc_id, backend_id, &h) || !h.expired)
		return false;
	return outlier_report(report_prog_fd, svc_id, backend_id, XM_REPORT_PROBE, 0) == 0;
}

const char *outlier_reason_name(uint32_t reason)
{
	switch (reason) {
	case XM_OUTLIER_LOCAL_ORIGIN:
		return "local_origin";
	case XM_OUTLIER_5XX:
		return "consecutive_5xx";
	case XM_OUTLIER_GATEWAY:
		return "consecutive_gateway";
	default:
		return "unknown";
	}
}
