/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Access logs (--access-log PATH|-, --access-log-format json|text). Workers format a line into their own
 * bounded ring; one writer thread drains the rings to the file. A worker never blocks: a line that does not
 * fit is dropped and counted (xmesh_access_log_dropped_total).
 */
#ifndef XMESH_L7_ACCESS_LOG_H
#define XMESH_L7_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l7/record.h"

struct xm_scrape;
struct l7_access_log;

enum l7_log_format {
	L7_LOG_JSON = 0, /* the common mesh fields as one JSON object per line */
	L7_LOG_TEXT,	 /* Istio's default text format (Envoy's default format string plus Istio's fields) */
};

/* The longest line l7_access_log_format makes: untrusted fields are cut (with "...") to fit. */
#define L7_ACCESS_LOG_LINE_MAX 16384
/* Each worker's ring of queued lines (a power of two): ~50 ms of 30,000 requests/s while the disk stalls. */
#define L7_ACCESS_LOG_RING_BYTES (1024 * 1024)
/* How long close waits for the writer to drain into an output that stopped taking data. */
#define L7_ACCESS_LOG_CLOSE_WAIT_MS 5000

/*
 * path "-" is stderr; a file is opened for appending (created 0644). n_workers rings. Returns NULL with
 * *err = -errno (the file cannot be opened, no memory, no thread).
 */
struct l7_access_log *l7_access_log_open(const char *path, enum l7_log_format fmt, size_t n_workers, int *err);
/* The same over fd (taken: closed by close or on error), with rings of ring_bytes (rounded up to 2^n). */
struct l7_access_log *l7_access_log_open_fd(int fd, enum l7_log_format fmt, size_t n_workers, size_t ring_bytes,
					    int *err);
/*
 * After the workers stopped writing: drains what is queued, stops the writer thread, closes the file. An
 * output that takes no data for L7_ACCESS_LOG_CLOSE_WAIT_MS loses the rest.
 */
void l7_access_log_close(struct l7_access_log *log);

/*
 * Worker thread `worker` (each worker its own index < n_workers): formats and queues one line for r. Never
 * blocks and never allocates; a line that does not fit in the worker's ring is dropped and counted.
 */
void l7_access_log_write(struct l7_access_log *log, size_t worker, const struct l7_record *r);

/*
 * Formats r as one line (with '\n') into buf; returns its length, or the length needed if ≥ len (snprintf:
 * buf holds as much as fits, NUL-terminated when len > 0). Never more than L7_ACCESS_LOG_LINE_MAX - 1.
 * Untrusted bytes are escaped so that no request can end a line or a field early.
 */
size_t l7_access_log_format(enum l7_log_format fmt, const struct l7_record *r, char *buf, size_t len);

/*
 * value escaped for the inside of a JSON string (RFC 8259, control characters as \u00XX, invalid UTF-8 as
 * U+FFFD), cut with "..." past cap escaped bytes. snprintf-like into buf: returns the length it needs.
 */
size_t l7_json_escape(const char *value, size_t cap, char *buf, size_t len);

/* Metrics thread: xmesh_access_log_lines_total, xmesh_access_log_dropped_total, xmesh_access_log_write_errors_total. */
void l7_access_log_collect(struct l7_access_log *log, struct xm_scrape *sc);

#endif
