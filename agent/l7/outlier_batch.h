/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker's upstream HTTP statuses for the kernel's outlier detection, batched per endpoint: what happened since
 * the last flush is kept in compressed form and flushed as the shortest report sequence with the same effect.
 */
#ifndef XMESH_L7_OUTLIER_BATCH_H
#define XMESH_L7_OUTLIER_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#define L7_OB_ENTRIES 64 /* endpoints a worker batches for; a full table flushes and forgets a clean one */
#define L7_OB_SEGS    6	 /* runs kept per endpoint between flushes; one more flushes first */

/* Statuses as the kernel tells them apart (bpf/lib/outlier.h xm_outlier_http). */
enum l7_ob_kind {
	L7_OB_OK = 0,  /* not 5xx: ends both runs */
	L7_OB_5XX,     /* 5xx other than 502/503/504: extends the 5xx run, ends the gateway run */
	L7_OB_GATEWAY, /* 502, 503, 504: extends both runs */
};

/* The service's outlierDetection, as far as the batching needs it (0: that threshold is off). */
struct l7_ob_policy {
	uint32_t consecutive_5xx, consecutive_gateway;
};

struct l7_ob_seg {
	uint8_t kind;	/* enum l7_ob_kind */
	uint32_t count; /* reports it stands for (an OK run is always reported once) */
};

struct l7_ob_entry {
	uint64_t key; /* svc_id << 32 | backend_id */
	struct l7_ob_policy policy;
	struct l7_ob_seg seg[L7_OB_SEGS]; /* not reported yet, oldest first */
	uint32_t n_seg;
	bool dirty; /* the kernel's runs for it may be non-zero from what this worker reported: report an OK */
};

/* Emits one report: status 200, 500 or 503 for an HTTP outcome (the kernel tells no more apart). */
typedef void (*l7_ob_emit_fn)(void *ctx, uint32_t svc_id, uint32_t backend_id, uint16_t status);

struct l7_outlier_batch {
	struct l7_ob_entry e[L7_OB_ENTRIES];
	uint32_t n;
	uint32_t pending; /* entries with segments to flush */
	l7_ob_emit_fn emit;
	void *ctx;
};

void l7_ob_init(struct l7_outlier_batch *b, l7_ob_emit_fn emit, void *ctx);
enum l7_ob_kind l7_ob_classify(uint16_t status);
/*
 * Notes one upstream status. Reports at once (flushing the endpoint) when the runs noted since a known zero reach
 * a threshold, so an ejection waits for no timer. Returns true while something waits for l7_ob_flush.
 */
bool l7_ob_note(struct l7_outlier_batch *b, uint32_t svc_id, uint32_t backend_id, const struct l7_ob_policy *p,
		uint16_t status);
/* Reports what waits for every endpoint. */
void l7_ob_flush(struct l7_outlier_batch *b);
/*
 * Before a connect outcome is reported for the endpoint: what waits goes first (the kernel sees the real order),
 * and, unsplit, what the outcome does to the kernel's HTTP runs is remembered (a failure extends them, a success
 * ends them).
 */
void l7_ob_connect_outcome(struct l7_outlier_batch *b, uint32_t svc_id, uint32_t backend_id, bool split, bool failed);

#endif
