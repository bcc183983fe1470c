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

/* path "-" is stderr. n_workers rings. Returns NULL with *err = -errno (the file cannot be opened). */
struct l7_access_log *l7_access_log_open(const char *path, enum l7_log_format fmt, size_t n_workers, int *err);
/* Drains what is queued, stops the writer thread, closes the file. */
void l7_access_log_close(struct l7_access_log *log);

/* Worker thread `worker`: formats and queues one line for r. */
void l7_access_log_write(struct l7_access_log *log, size_t worker, const struct l7_record *r);

/* Formats r as one line (with '\n') into buf; returns its length, or the length needed if > len (snprintf). */
size_t l7_access_log_format(enum l7_log_format fmt, const struct l7_record *r, char *buf, size_t len);

/* Metrics thread: xmesh_access_log_lines_total, xmesh_access_log_dropped_total. */
void l7_access_log_collect(struct l7_access_log *log, struct xm_scrape *sc);

#endif
