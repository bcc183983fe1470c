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

/* A descriptor entry (envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry). */
struct xm_rl_entry {
	char *key;
	char *value;
};

/* LocalRateLimit.descriptors[]: entries that a request's generated descriptor must equal, and their bucket. */
struct xm_rl_descriptor {
	struct xm_rl_entry *entries;
	size_t n_entries;
	uint32_t max_tokens, tokens_per_fill;
	uint64_t fill_interval_ms;
};

/* RouteAction.RateLimit.Action.HeaderValueMatch.headers[] (a HeaderMatcher). */
enum xm_rl_hmatch_kind {
	XM_RLH_EXACT = 0,
	XM_RLH_PREFIX,
	XM_RLH_PRESENT
};
struct xm_rl_hmatch {
	char *name; /* lowercase */
	enum xm_rl_hmatch_kind kind;
	char *value;  /* exact / prefix */
	bool present; /* present_match's value */
	bool invert;  /* invert_match */
};

/* RouteAction.RateLimit.Action: the ones local rate limits are written with. */
enum xm_rl_action_kind {
	XM_RLA_REQUEST_HEADERS = 0,
	XM_RLA_GENERIC_KEY,
	XM_RLA_HEADER_VALUE_MATCH
};
struct xm_rl_action {
	enum xm_rl_action_kind kind;
	char *key;	     /* descriptor_key */
	char *value;	     /* request_headers: header_name (lowercase); else descriptor_value */
	bool skip_if_absent; /* request_headers */
	bool expect_match;   /* header_value_match (default true) */
	struct xm_rl_hmatch *headers;
	size_t n_headers;
};

/* route.rate_limits[]: one descriptor per item, from its actions in order. */
struct xm_rl_policy {
	struct xm_rl_action *actions;
	size_t n_actions;
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
	struct xm_rl_descriptor *descriptors; /* only in a per-route config (HTTP_ROUTE) */
	size_t n_descriptors;
	bool always_consume_default; /* always_consume_default_token_bucket (default true) */
};

/* A rate limit the EnvoyFilter sets up on the proxies it selects. */
struct xm_ef_ratelimit {
	enum xm_ef_context context;
	uint16_t port; /* 0: every port; else the pod's port (vhost "inbound|http|PORT", listener portNumber) */
	bool route;    /* from an HTTP_ROUTE patch (typed_per_filter_config) */
	struct xm_local_ratelimit rl;
	struct xm_rl_policy *policies; /* the HTTP_ROUTE patch's route.rate_limits */
	size_t n_policies;
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
void xm_ef_ratelimit_clear(struct xm_ef_ratelimit *lim);
/* A deep copy of n policies (NULL when n is 0 or out of memory: check n), and its release. */
struct xm_rl_policy *xm_rl_policies_dup(const struct xm_rl_policy *p, size_t n);
void xm_rl_policies_free(struct xm_rl_policy *p, size_t n);

#endif
