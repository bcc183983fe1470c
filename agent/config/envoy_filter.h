/* SPDX-License-Identifier: Apache-2.0 */
/*
 * networking.istio.io EnvoyFilter, as far as xmesh honours it: the local rate limit recipe of Istio's
 * "Enabling Rate Limits using Envoy" task (envoy.filters.http.local_ratelimit inserted by an HTTP_FILTER patch,
 * optionally limited per route by an HTTP_ROUTE patch's typed_per_filter_config). Every other patch or field
 * is reported by the parser as ignored; docs/l7.md "Rate limiting" has the semantics and their sources.
 */
#ifndef XMESH_CONFIG_ENVOY_FILTER_H
#define XMESH_CONFIG_ENVOY_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/model.h"

/* EnvoyFilter.PatchContext: which proxies' listeners a patch applies to. */
enum xm_ef_context {
	XM_EF_ANY = 0, /* absent: inbound, outbound and gateway */
	XM_EF_SIDECAR_INBOUND,
	XM_EF_SIDECAR_OUTBOUND,
	XM_EF_GATEWAY,
};

struct xm_ef_header {
	char *name; /* lowercase */
	char *value;
	bool append; /* HeaderValueOption.append (default true in Envoy): add, else replace */
};

/* One LocalRateLimit (envoy.extensions.filters.http.local_ratelimit.v3) with a token_bucket. */
struct xm_local_ratelimit {
	uint32_t max_tokens;
	uint32_t tokens_per_fill; /* default 1 */
	uint64_t fill_interval_ms;
	uint32_t enabled_ppm;	      /* filter_enabled.default_value, in parts per million; 0 when absent (Envoy) */
	uint32_t enforced_ppm;	      /* filter_enforced.default_value, idem */
	uint16_t status;	      /* status.code, 429 when absent or below 400 (Envoy) */
	struct xm_ef_header *headers; /* response_headers_to_add */
	size_t n_headers;
};

/* A rate limit the EnvoyFilter sets up on the proxies it selects. */
struct xm_ef_ratelimit {
	enum xm_ef_context context;
	uint16_t port; /* 0: every port; else the pod's port (vhost "inbound|http|PORT", listener portNumber) */
	bool route;    /* from an HTTP_ROUTE patch (typed_per_filter_config) */
	struct xm_local_ratelimit rl;
	size_t patch;	   /* its index in configPatches */
	struct xm_loc loc; /* the patch */
};

struct xm_envoy_filter {
	char ns[64];
	char name[XM_NAME_MAX];
	bool has_selector; /* spec.workloadSelector given (an empty one selects every pod, as absent) */
	struct xm_label *labels;
	size_t n_labels;
	/* The HTTP_FILTER patch's filter-level limit (port 0; none when it has no token_bucket) and the
	 * HTTP_ROUTE patches' per-route limits, in patch order. */
	struct xm_ef_ratelimit *limits;
	size_t n_limits;
	bool inserts_filter; /* an HTTP_FILTER patch inserts envoy.filters.http.local_ratelimit */
	struct xm_loc loc;
};

void envoy_filter_free(struct xm_envoy_filter *ef);

#endif
