/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Local rate limits (Envoy's envoy.filters.http.local_ratelimit, set up by Istio's EnvoyFilter recipe;
 * config/envoy_filter.h): one token bucket per (EnvoyFilter patch, selected pod, pod port), shared lock-free by every
 * worker and kept across applies (l7/shared_state.h). A destination pod's limit (SIDECAR_INBOUND) is checked after the
 * endpoint pick; a client pod's (SIDECAR_OUTBOUND) on each request it sends. docs/l7.md "Rate limiting".
 */
#ifndef XMESH_L7_RATELIMIT_H
#define XMESH_L7_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "compile/identity.h"
#include "config/model.h"
#include "l7/shared_state.h"

struct l7_route_table;
struct l7_cluster;
struct l7_down;
struct strbuf;
struct h1_request;
struct xm_rl_policy;

enum l7_rl_role {
	L7_RL_INBOUND = 0, /* the pod's inbound sidecar: requests to it */
	L7_RL_OUTBOUND,	   /* the pod's outbound sidecar: requests from it */
};

/* The slots of l7_ratelimit.bucket. */
enum l7_rl_slot {
	L7_RL_EMPTY_AT = 0, /* double (bits): seconds since EPOCH at which the bucket was (or would be) empty */
	L7_RL_EPOCH,	    /* CLOCK_MONOTONIC ns of the bucket's creation */
	L7_RL_LIMITED,	    /* requests answered 429 */
	L7_RL_NOT_ENFORCED, /* requests over the limit let through (enabled, not enforced) */
};

struct l7_ratelimit {
	char filter[64 + XM_NAME_MAX + 1]; /* "istio-system/filter-local-ratelimit-svc" */
	char pod[64 + XM_NAME_MAX + 1];	   /* "default/productpage-v1-abc" */
	enum l7_rl_role role;
	bool per_route; /* from typed_per_filter_config (HTTP_ROUTE) */
	uint16_t port;	/* inbound: the pod's port (a bucket per port); outbound: the service port dialed, 0: any */
	uint32_t max_tokens, tokens_per_fill;
	uint64_t fill_interval_ns;
	uint32_t enabled_ppm, enforced_ppm;
	uint16_t status;
	char *extra; /* response_headers_to_add as "name: value\r\n" lines */
	size_t patch;
	struct l7_shared *bucket; /* never NULL in a built table; swapped by l7_proxy_apply */
	/*
	 * Descriptors (per-route config): the route's rate_limits make a request's descriptors; each of the limit's
	 * descriptors whose entries equal one of them consumes from its own bucket. descs are also in
	 * t->ratelimits (their buckets carried over as the default one), sorted by fill rate (Envoy's order).
	 */
	struct xm_rl_policy *policies; /* owned */
	size_t n_policies;
	struct l7_ratelimit **descs;
	size_t n_descs;
	bool always_consume_default; /* always_consume_default_token_bucket */
	/* In a descriptor's own object: its parent limit and its entries ("key", "value", ...). */
	const struct l7_ratelimit *parent;
	char **kv;
	size_t n_entries;
};

/* A client pod's outbound limit. */
struct l7_rl_client {
	const struct xm_workload *wl;
	const struct l7_ratelimit *rl;
};

/*
 * The limits of cfg's EnvoyFilters for the pods of ids: t->ratelimits, each cluster's endpoint_rl, the
 * clients' limits. Buckets start full at now_ns (CLOCK_MONOTONIC) unless adopted. 0 or -ENOMEM.
 */
int l7_ratelimit_build(const struct xm_config *cfg, const struct xm_identities *ids, struct l7_route_table *t,
		       uint64_t now_ns);
void l7_ratelimit_free(struct l7_route_table *t);

/* The token bucket (Envoy's AtomicTokenBucket): a full bucket at now_ns; one token if there is one. */
void l7_bucket_init(struct l7_shared *b, const struct l7_ratelimit *rl, uint64_t now_ns);
bool l7_bucket_take(struct l7_shared *b, const struct l7_ratelimit *rl, uint64_t now_ns);
double l7_bucket_tokens(const struct l7_shared *b, const struct l7_ratelimit *rl, uint64_t now_ns);

/*
 * Envoy's LocalRateLimiterImpl::requestAllowed for limit rl and request req (NULL: no headers) at now_ns: the
 * matched descriptors' buckets in fill-rate order, then the default bucket when none matched or
 * always_consume_default. NULL when allowed, else the limit (rl or one of its descs) whose bucket had no token.
 */
const struct l7_ratelimit *l7_ratelimit_take(const struct l7_ratelimit *rl, const struct h1_request *req,
					     uint64_t now_ns);

/*
 * The limits that apply to the exchange of d forwarded to cluster's endpoint idx, in Envoy's order (the
 * client's outbound filter, then the destination's inbound one). true when the request was answered (429,
 * RL) and the caller must stop; counts requests over the limit that are let through.
 */
bool l7_ratelimit_check(struct l7_down *d, const struct h1_request *req, const struct l7_cluster *cluster, int idx);

/* CLOCK_MONOTONIC in ns: what the workers' buckets run on. */
uint64_t l7_ratelimit_clock_ns(void);

/* `xmesh routes`: the limits and their buckets now. */
void l7_ratelimit_render(const struct l7_route_table *t, bool json, struct strbuf *out);

#endif
