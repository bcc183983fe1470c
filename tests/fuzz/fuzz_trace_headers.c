// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: trace headers from a client (traceparent, b3, x-b3-*). Checks, beyond memory safety: a
 * value that parses names non-zero ids, and the proxy's span written as headers parses back as the same span.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "l7/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t zero[16];

static void check_parsed(const struct l7_trace_ctx *c)
{
	if (c->has_context && (!memcmp(c->trace_id, zero, 16) || !memcmp(c->span_id, zero, 8)))
		abort();
	if (c->has_parent && !memcmp(c->parent_id, zero, 8))
		abort();
}

/* The written headers of out, read back: the same trace, span and decision. */
static void check_round_trip(const struct l7_trace_ctx *out)
{
	char head[64 + L7_TRACE_HEADERS_MAX] = "GET / HTTP/1.1\r\nhost: a\r\n";
	size_t at = strlen(head);
	struct l7_trace_ctx back;
	struct h1_request req;
	enum h1_error err;
	int n = l7_trace_write_headers(out, head + at, sizeof(head) - at - 2);

	if (n < 0)
		abort();
	memcpy(head + at + (size_t)n, "\r\n", 2);
	if (h1_parse_request(head, at + (size_t)n + 2, &req, &err) <= 0)
		abort();
	l7_trace_from_headers(req.headers, req.n_headers, &back);
	if (!back.has_context || memcmp(back.trace_id, out->trace_id, 16) || memcmp(back.span_id, out->span_id, 8) ||
	    back.sampled != out->sampled)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1); /* exact size: ASan sees an overread */
	struct l7_trace_ctx in, out;
	struct l7_rng rng = { { 1, 2, 3, 4 } };
	struct h1_request req;
	enum h1_error err;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (!l7_trace_parse_traceparent(copy, size, &in))
		check_parsed(&in);
	if (!l7_trace_parse_b3(copy, size, &in))
		check_parsed(&in);
	/* The input as a request head: the proxy's whole path over its fields. */
	if (h1_parse_request(copy, size, &req, &err) > 0) {
		l7_trace_from_headers(req.headers, req.n_headers, &in);
		check_parsed(&in);
		l7_trace_child(&in, &rng, 50.0, &out);
		if (in.has_context && (memcmp(out.trace_id, in.trace_id, 16) || memcmp(out.parent_id, in.span_id, 8)))
			abort();
		if (in.sampled != L7_TRACE_UNDECIDED && out.sampled != in.sampled)
			abort();
		check_round_trip(&out);
	}
	free(copy);
	return 0;
}
