/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Span export (--trace-endpoint URL): workers format each sampled request's client span as Zipkin v2 JSON into
 * their own bounded ring; one exporter thread posts them in batches. A worker never blocks: a span that does not
 * fit is dropped and counted (xmesh_trace_spans_total{result="dropped"}).
 */
#ifndef XMESH_L7_SPAN_EXPORT_H
#define XMESH_L7_SPAN_EXPORT_H

#include <stddef.h>

#include "l7/record.h"

struct xm_scrape;
struct l7_span_export;

/* The longest span l7_span_format makes: untrusted fields are cut (with "...") to fit. */
#define L7_SPAN_MAX 4096
/* Each worker's ring of queued spans (a power of two): ~500 spans of ~500 bytes, a second of 1% of 50k req/s. */
#define L7_SPAN_RING_BYTES (256 * 1024)
/* A POST carries up to this many spans, and a span waits at most L7_SPAN_FLUSH_MS for its batch to fill. */
#define L7_SPAN_BATCH	 100
#define L7_SPAN_FLUSH_MS 1000
/* Connecting, sending and waiting for the collector's answer each give up after this long. */
#define L7_SPAN_POST_TIMEOUT_MS 2000

/* "http://HOST[:PORT]/PATH" (HOST a name, an IPv4 address or [IPv6]; PORT 80 by default). -EINVAL otherwise. */
int l7_span_parse_url(const char *url, char *host, size_t host_len, char *port, size_t port_len, char *path,
		      size_t path_len);

/*
 * Starts the exporter for url with n_workers rings of ring_bytes. node_id is the node_id tag. NULL with
 * *err = -EINVAL (a bad URL), -ENOMEM or a thread error.
 */
struct l7_span_export *l7_span_export_open(const char *url, const char *node_id, size_t n_workers, size_t ring_bytes,
					   int *err);
/* After the workers stopped: posts what is queued (one attempt), stops the thread, frees. */
void l7_span_export_close(struct l7_span_export *e);

/* Worker `worker`: queues r's span when r is sampled. Never blocks, never allocates. */
void l7_span_export_record(struct l7_span_export *e, size_t worker, const struct l7_record *r);

/*
 * r's client span as one Zipkin v2 JSON object (no newline) into buf; returns its length, or the length needed
 * if ≥ len (snprintf-like). Never more than L7_SPAN_MAX - 1.
 */
size_t l7_span_format(const struct l7_record *r, const char *node_id, char *buf, size_t len);

/* Metrics thread: xmesh_trace_spans_total{result="exported|dropped|failed"}. */
void l7_span_export_collect(struct l7_span_export *e, struct xm_scrape *sc);

#endif
