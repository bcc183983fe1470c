/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio's request metrics (reporter="source"): istio_requests_total, istio_request_duration_milliseconds,
 * istio_request_bytes, istio_response_bytes, with Istio's full label set. Each worker records into its own
 * shard (no lock shared with another worker); the metrics thread sums the shards at scrape time without ever
 * making a worker wait. The number of series is bounded (docs/l7.md says how).
 */
#ifndef XMESH_L7_STATS_H
#define XMESH_L7_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "l7/record.h"

struct xm_scrape;
struct l7_stats_shard;

/*
 * Series one shard holds at most. A request whose labels would make one more is counted in the shard's
 * overflow series (every label but reporter, request_protocol, connection_security_policy and
 * grpc_response_status is "overflow") and in xmesh_l7_series_overflow_total.
 */
#define L7_STATS_SERIES_MAX 4096

/* One shard per worker, created before the worker starts, freed after it stopped. */
struct l7_stats_shard *l7_stats_shard_new(void);
/* The same, holding at most max_series series instead of L7_STATS_SERIES_MAX. */
struct l7_stats_shard *l7_stats_shard_new_bounded(uint32_t max_series);
void l7_stats_shard_free(struct l7_stats_shard *s);

/* Worker thread: counts one finished request. Never blocks, never allocates once the series exists. */
void l7_stats_record(struct l7_stats_shard *s, const struct l7_record *r);

/*
 * Metrics thread: adds the four families (and xmesh_l7_series, xmesh_l7_series_overflow_total), summed over
 * shards[0..n). Runs while the workers record; never makes one wait.
 */
void l7_stats_collect(struct l7_stats_shard *const *shards, size_t n, struct xm_scrape *sc);

/* Requests per destination service (for `xmesh status`), summed over shards: calls fn per service. */
void l7_stats_per_service(struct l7_stats_shard *const *shards, size_t n,
			  void (*fn)(void *ctx, const char *service, uint64_t requests), void *ctx);

#endif
