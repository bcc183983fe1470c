// SPDX-License-Identifier: Apache-2.0
/*
 * Trace headers: the parsers take lowercase hex only and reject all-zero ids, as both specifications require;
 * a header that does not parse is ignored, as Envoy ignores it, and the request starts a trace of its own.
 */
#include "l7/trace.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 2*len lowercase hex digits into len bytes; false on any other character. */
static bool parse_hex(const char *s, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static bool all_zero(const uint8_t *id, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (id[i])
			return false;
	return true;
}

/* A B3 trace id: 16 or 32 hex digits, the 64-bit form widened to 128 with a zero high half. */
static bool parse_trace_id(const char *s, size_t n, uint8_t out[16])
{
	memset(out, 0, 16);
	if (n == 32)
		return parse_hex(s, out, 16) && !all_zero(out, 16);
	if (n == 16)
		return parse_hex(s, out + 8, 8) && !all_zero(out, 16);
	return false;
}

static bool parse_span_id(const char *s, size_t n, uint8_t out[8])
{
	return n == 16 && parse_hex(s, out, 8) && !all_zero(out, 8);
}

int l7_trace_parse_traceparent(const char *s, size_t n, struct l7_trace_ctx *out)
{
	uint8_t version, flags;

	memset(out, 0, sizeof(*out));
	if (n < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || !parse_hex(s, &version, 1))
		return -EINVAL;
	/* Version ff is invalid; a later version may append fields after a '-' (§3.2.4); 00 has none. */
	if (version == 0xff || (version == 0 && n != 55) || (n > 55 && s[55] != '-'))
		goto invalid;
	if (!parse_hex(s + 3, out->trace_id, 16) || !parse_hex(s + 36, out->span_id, 8) ||
	    !parse_hex(s + 53, &flags, 1) || all_zero(out->trace_id, 16) || all_zero(out->span_id, 8))
		goto invalid;
	out->has_context = true;
	out->sampled = flags & 1 ? L7_TRACE_SAMPLED : L7_TRACE_NOT_SAMPLED;
	return 0;
invalid:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

/* The sampling state of B3: "1", "0", or "d" (debug, which implies sampled). */
static bool parse_b3_sampled(const char *s, size_t n, enum l7_trace_sampled *out)
{
	if (n != 1)
		return false;
	if (s[0] == '1' || s[0] == 'd')
		*out = L7_TRACE_SAMPLED;
	else if (s[0] == '0')
		*out = L7_TRACE_NOT_SAMPLED;
	else
		return false;
	return true;
}

int l7_trace_parse_b3(const char *s, size_t n, struct l7_trace_ctx *out)
{
	const char *end = s + n, *dash;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (n == 1)
		return parse_b3_sampled(s, n, &out->sampled) ? 0 : -EINVAL;
	dash = memchr(s, '-', n);
	if (!dash || !parse_trace_id(s, (size_t)(dash - s), out->trace_id))
		goto invalid;
	s = dash + 1;
	dash = memchr(s, '-', (size_t)(end - s));
	len = (size_t)((dash ? dash : end) - s);
	if (!parse_span_id(s, len, out->span_id))
		goto invalid;
	if (dash) {
		s = dash + 1;
		dash = memchr(s, '-', (size_t)(end - s));
		if (!parse_b3_sampled(s, (size_t)((dash ? dash : end) - s), &out->sampled))
			goto invalid;
		if (dash) {
			if (!parse_span_id(dash + 1, (size_t)(end - dash - 1), out->parent_id))
				goto invalid;
			out->has_parent = true;
		}
	}
	out->has_context = true;
	return 0;
invalid:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

/* x-b3-sampled: "1"/"0", and "true"/"false" from older tracers (openzipkin/b3-propagation). */
static enum l7_trace_sampled b3_sampled_header(struct h1_str v)
{
	if ((v.len == 1 && v.p[0] == '1') || (v.len == 4 && !memcmp(v.p, "true", 4)))
		return L7_TRACE_SAMPLED;
	if ((v.len == 1 && v.p[0] == '0') || (v.len == 5 && !memcmp(v.p, "false", 5)))
		return L7_TRACE_NOT_SAMPLED;
	return L7_TRACE_UNDECIDED;
}

static const struct h1_str *first(const struct h1_header *headers, uint32_t n, const char *name)
{
	const struct h1_header *h = h1_find(headers, n, name);

	return h ? &h->value : NULL;
}

void l7_trace_from_headers(const struct h1_header *headers, uint32_t n, struct l7_trace_ctx *in)
{
	const struct h1_str *tp = first(headers, n, "traceparent"), *b3 = first(headers, n, "b3");
	const struct h1_str *tid, *sid, *pid, *smp, *flags;
	enum l7_trace_sampled sampled = L7_TRACE_UNDECIDED;

	memset(in, 0, sizeof(*in));
	if (tp && !l7_trace_parse_traceparent(tp->p, tp->len, in))
		return;
	if (b3 && !l7_trace_parse_b3(b3->p, b3->len, in) && in->has_context)
		return;
	sampled = in->sampled; /* a lone "b3: 1" still decides */
	memset(in, 0, sizeof(*in));
	tid = first(headers, n, "x-b3-traceid");
	sid = first(headers, n, "x-b3-spanid");
	pid = first(headers, n, "x-b3-parentspanid");
	smp = first(headers, n, "x-b3-sampled");
	flags = first(headers, n, "x-b3-flags");
	if (smp && sampled == L7_TRACE_UNDECIDED)
		sampled = b3_sampled_header(*smp);
	if (flags && flags->len == 1 && flags->p[0] == '1') /* debug */
		sampled = L7_TRACE_SAMPLED;
	in->sampled = sampled;
	if (!tid || !sid || !parse_trace_id(tid->p, tid->len, in->trace_id) ||
	    !parse_span_id(sid->p, sid->len, in->span_id)) {
		memset(in->trace_id, 0, sizeof(in->trace_id));
		memset(in->span_id, 0, sizeof(in->span_id));
		return;
	}
	in->has_context = true;
	in->has_parent = pid && parse_span_id(pid->p, pid->len, in->parent_id);
	if (!in->has_parent)
		memset(in->parent_id, 0, sizeof(in->parent_id));
}

static void random_id(struct l7_rng *rng, uint8_t *id, size_t len)
{
	do {
		for (size_t i = 0; i < len; i += 8) {
			uint64_t v = l7_rng_next(rng);

			memcpy(id + i, &v, len - i < 8 ? len - i : 8);
		}
	} while (all_zero(id, len));
}

void l7_trace_child(const struct l7_trace_ctx *in, struct l7_rng *rng, double sampling_percent,
		    struct l7_trace_ctx *out)
{
	memset(out, 0, sizeof(*out));
	if (in->has_context) {
		memcpy(out->trace_id, in->trace_id, sizeof(out->trace_id));
		memcpy(out->parent_id, in->span_id, sizeof(out->parent_id));
		out->has_parent = true;
	} else {
		random_id(rng, out->trace_id, sizeof(out->trace_id));
	}
	random_id(rng, out->span_id, sizeof(out->span_id));
	out->has_context = true;
	out->sampled = in->sampled;
	if (out->sampled == L7_TRACE_UNDECIDED) {
		/* In millionths, as Envoy's runtime fractional percent: 0.01% is 100 in a million. */
		double threshold = sampling_percent * 10000.0;

		out->sampled = (double)l7_rng_below(rng, 1000000) < threshold ? L7_TRACE_SAMPLED : L7_TRACE_NOT_SAMPLED;
	}
}

bool l7_trace_is_header(struct h1_str name)
{
	if (name.len >= 5 && !strncasecmp(name.p, "x-b3-", 5))
		return true;
	return h1_name_eq(name, "traceparent") || h1_name_eq(name, "b3");
}

void l7_trace_hex(const uint8_t *id, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 15];
	}
	out[2 * len] = '\0';
}

int l7_trace_write_headers(const struct l7_trace_ctx *ctx, char *buf, size_t cap)
{
	char trace[33], span[17], parent[17];
	bool sampled = ctx->sampled == L7_TRACE_SAMPLED;
	int n;

	l7_trace_hex(ctx->trace_id, 16, trace);
	l7_trace_hex(ctx->span_id, 8, span);
	l7_trace_hex(ctx->parent_id, 8, parent);
	n = snprintf(buf, cap,
		     "traceparent: 00-%s-%s-%s\r\nb3: %s-%s-%c%s%s\r\nx-b3-traceid: %s\r\nx-b3-spanid: %s\r\n"
		     "%s%s%sx-b3-sampled: %c\r\n",
		     trace, span, sampled ? "01" : "00", trace, span, sampled ? '1' : '0', ctx->has_parent ? "-" : "",
		     ctx->has_parent ? parent : "", trace, span, ctx->has_parent ? "x-b3-parentspanid: " : "",
		     ctx->has_parent ? parent : "", ctx->has_parent ? "\r\n" : "", sampled ? '1' : '0');
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}
