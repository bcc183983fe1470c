/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Trace context propagation: W3C traceparent and B3 (multi-header x-b3-* and single-header b3) parsed strictly
 * from untrusted requests, the proxy's child span or a new trace (sampled at a percentage), and the headers sent on.
 */
#ifndef XMESH_L7_TRACE_H
#define XMESH_L7_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/h1.h"
#include "l7/request_id.h"

/* The sampling decision a request carries: none (B3 lets the next hop decide), or one either way. */
enum l7_trace_sampled {
	L7_TRACE_UNDECIDED = 0,
	L7_TRACE_SAMPLED,
	L7_TRACE_NOT_SAMPLED
};

/* A span's identity as carried in headers. has_context: the trace and span ids are valid (non-zero). */
struct l7_trace_ctx {
	uint8_t trace_id[16]; /* a 64-bit B3 id is the low half, the high half zero */
	uint8_t span_id[8];
	uint8_t parent_id[8];
	bool has_context, has_parent;
	enum l7_trace_sampled sampled;
};

/* "00-<32 hex>-<16 hex>-<2 hex>" (W3C Trace Context level 1 §3.2). -EINVAL for anything else. */
int l7_trace_parse_traceparent(const char *s, size_t n, struct l7_trace_ctx *out);
/* "<trace>-<span>[-<sampled>[-<parent>]]" or "<sampled>" alone (openzipkin/b3-propagation). -EINVAL else. */
int l7_trace_parse_b3(const char *s, size_t n, struct l7_trace_ctx *out);

/* The incoming context: traceparent when valid, else b3, else the x-b3-* set; invalid values are ignored. */
void l7_trace_from_headers(const struct h1_header *headers, uint32_t n, struct l7_trace_ctx *in);

/*
 * The proxy's span: a child of in (same trace, new span id, parent = in's span) when in has a context, else a
 * new trace (random 128-bit id, no parent). Sampled as in says, else when a uniform draw falls under
 * sampling_percent (0..100).
 */
void l7_trace_child(const struct l7_trace_ctx *in, struct l7_rng *rng, double sampling_percent,
		    struct l7_trace_ctx *out);

/* Is name one of the headers the proxy replaces (traceparent, b3, x-b3-*)? tracestate is forwarded as it came. */
bool l7_trace_is_header(struct h1_str name);

/* Longest l7_trace_write_headers output, NUL included. */
#define L7_TRACE_HEADERS_MAX 320

/* The header lines (CRLF each) for ctx: traceparent, b3 and the x-b3-* set, all naming the same span. Returns
 * the length, or -ENOSPC. */
int l7_trace_write_headers(const struct l7_trace_ctx *ctx, char *buf, size_t cap);

/* Lowercase hex of ids: 32 + NUL for a trace id, 16 + NUL for a span id. */
void l7_trace_hex(const uint8_t *id, size_t len, char *out);

#endif
