// SPDX-License-Identifier: Apache-2.0
/*
 * Trace context propagation (l7/trace.h): the W3C and B3 parsers over valid and invalid tables, the child span
 * and the sampling decision, and the forwarded head carrying exactly one set of trace headers.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "http/h1.h"
#include "l7/rewrite.h"
#include "l7/trace.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"
#define PID "a1b2c3d4e5f60718"

static void hex_of(const struct l7_trace_ctx *c, char trace[33], char span[17])
{
	l7_trace_hex(c->trace_id, 16, trace);
	l7_trace_hex(c->span_id, 8, span);
}

Test(l7_trace, traceparent_valid)
{
	static const struct {
		const char *in;
		enum l7_trace_sampled sampled;
	} cases[] = {
		{ "00-" TID "-" SID "-01", L7_TRACE_SAMPLED },
		{ "00-" TID "-" SID "-00", L7_TRACE_NOT_SAMPLED },
		{ "00-" TID "-" SID "-03", L7_TRACE_SAMPLED },	      /* other flag bits are ignored */
		{ "01-" TID "-" SID "-01-future", L7_TRACE_SAMPLED }, /* a later version may add fields */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct l7_trace_ctx c;
		char trace[33], span[17];

		cr_assert_eq(l7_trace_parse_traceparent(cases[i].in, strlen(cases[i].in), &c), 0, "%s", cases[i].in);
		hex_of(&c, trace, span);
		cr_expect_str_eq(trace, TID);
		cr_expect_str_eq(span, SID);
		cr_expect(c.has_context && !c.has_parent);
		cr_expect_eq(c.sampled, cases[i].sampled, "%s", cases[i].in);
	}
}

Test(l7_trace, traceparent_invalid)
{
	static const char *const cases[] = {
		"",
		"00",
		"00-" TID "-" SID "-0",	       /* short flags */
		"00-" TID "-" SID "-01-extra", /* version 00 has no more fields */
		"ff-" TID "-" SID "-01",       /* version ff is invalid */
		"00-"
		"4BF92F3577B34DA6A3CE929D0E0E4736"
		"-" SID "-01",					  /* uppercase */
		"00-00000000000000000000000000000000-" SID "-01", /* zero trace id */
		"00-" TID "-0000000000000000-01",		  /* zero span id */
		"00_" TID "-" SID "-01",
		"00-" TID "-" SID "-0g",
		"01-" TID "-" SID "-01x", /* later version: a field starts with '-' */
		"0-" TID "-" SID "-01",
		"00-" TID "a-" SID "-01",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct l7_trace_ctx c;

		cr_expect_eq(l7_trace_parse_traceparent(cases[i], strlen(cases[i]), &c), -EINVAL, "%s", cases[i]);
		cr_expect(!c.has_context, "%s", cases[i]);
	}
}

Test(l7_trace, b3_single_valid)
{
	struct l7_trace_ctx c;
	char trace[33], span[17], parent[17];

	cr_assert_eq(l7_trace_parse_b3(TID "-" SID "-1-" PID, strlen(TID "-" SID "-1-" PID), &c), 0);
	hex_of(&c, trace, span);
	l7_trace_hex(c.parent_id, 8, parent);
	cr_expect_str_eq(trace, TID);
	cr_expect_str_eq(span, SID);
	cr_expect_str_eq(parent, PID);
	cr_expect(c.has_parent && c.sampled == L7_TRACE_SAMPLED);

	cr_assert_eq(l7_trace_parse_b3("a3ce929d0e0e4736-" SID, 33, &c), 0); /* 64-bit trace id, no decision */
	hex_of(&c, trace, span);
	cr_expect_str_eq(trace, "0000000000000000a3ce929d0e0e4736");
	cr_expect_eq(c.sampled, L7_TRACE_UNDECIDED);

	cr_assert_eq(l7_trace_parse_b3(TID "-" SID "-d", strlen(TID "-" SID "-d"), &c), 0); /* debug */
	cr_expect_eq(c.sampled, L7_TRACE_SAMPLED);
	cr_assert_eq(l7_trace_parse_b3("0", 1, &c), 0); /* a decision alone */
	cr_expect(!c.has_context && c.sampled == L7_TRACE_NOT_SAMPLED);
}

Test(l7_trace, b3_single_invalid)
{
	static const char *const cases[] = {
		"",
		"x",
		"2",
		TID,
		TID "-",
		TID "-" SID "-",
		TID "-" SID "-2",
		TID "-" SID "-1-",
		TID "-" SID "-1-" PID "-",
		TID "-" SID "-1-0000000000000000",
		"00000000000000000000000000000000-" SID,
		TID "-00f067aa0ba902b",
		"4bf92f3577b34da6a3ce929d0e0e473-" SID, /* 31 digits */
		TID "-00F067AA0BA902B7",
		"-" SID,
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct l7_trace_ctx c;

		cr_expect_eq(l7_trace_parse_b3(cases[i], strlen(cases[i]), &c), -EINVAL, "%s", cases[i]);
		cr_expect(!c.has_context && c.sampled == L7_TRACE_UNDECIDED, "%s", cases[i]);
	}
}

/* The incoming context of a request head. */
static void from(const char *raw, struct l7_trace_ctx *in)
{
	struct h1_request req;
	enum h1_error err;

	cr_assert_gt(h1_parse_request(raw, strlen(raw), &req, &err), 0, "%s", h1_error_name(err));
	l7_trace_from_headers(req.headers, req.n_headers, in);
}

Test(l7_trace, headers_precedence_and_fallback)
{
	struct l7_trace_ctx in;
	char trace[33], span[17];

	/* traceparent first; an invalid one falls back to B3 */
	from("GET / HTTP/1.1\r\nHost: a\r\ntraceparent: 00-" TID "-" SID "-01\r\nx-b3-traceid: " PID PID
	     "\r\nx-b3-spanid: " PID "\r\n\r\n",
	     &in);
	hex_of(&in, trace, span);
	cr_expect_str_eq(trace, TID);
	from("GET / HTTP/1.1\r\nHost: a\r\ntraceparent: junk\r\nx-b3-traceid: " TID "\r\nx-b3-spanid: " SID
	     "\r\nx-b3-parentspanid: " PID "\r\nx-b3-sampled: 1\r\n\r\n",
	     &in);
	hex_of(&in, trace, span);
	cr_expect_str_eq(trace, TID);
	cr_expect_str_eq(span, SID);
	cr_expect(in.has_parent && in.sampled == L7_TRACE_SAMPLED);
	/* x-b3-sampled alone: no context, a decision */
	from("GET / HTTP/1.1\r\nHost: a\r\nx-b3-sampled: 1\r\n\r\n", &in);
	cr_expect(!in.has_context && in.sampled == L7_TRACE_SAMPLED);
	from("GET / HTTP/1.1\r\nHost: a\r\nx-b3-sampled: false\r\n\r\n", &in);
	cr_expect(!in.has_context && in.sampled == L7_TRACE_NOT_SAMPLED);
	from("GET / HTTP/1.1\r\nHost: a\r\nx-b3-flags: 1\r\n\r\n", &in);
	cr_expect(in.sampled == L7_TRACE_SAMPLED);
	/* a span id without a trace id, or a bad one, is no context */
	from("GET / HTTP/1.1\r\nHost: a\r\nx-b3-spanid: " SID "\r\n\r\n", &in);
	cr_expect(!in.has_context);
	from("GET / HTTP/1.1\r\nHost: a\r\nx-b3-traceid: " TID "\r\nx-b3-spanid: zz\r\nx-b3-parentspanid: " PID
	     "\r\n\r\n",
	     &in);
	cr_expect(!in.has_context && !in.has_parent);
	/* a bad parent is dropped, the context kept */
	from("GET / HTTP/1.1\r\nHost: a\r\nx-b3-traceid: " TID "\r\nx-b3-spanid: " SID
	     "\r\nx-b3-parentspanid: 12\r\n\r\n",
	     &in);
	cr_expect(in.has_context && !in.has_parent && in.sampled == L7_TRACE_UNDECIDED);
	from("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &in);
	cr_expect(!in.has_context && in.sampled == L7_TRACE_UNDECIDED);
}

Test(l7_trace, child_keeps_the_trace_and_parents_the_incoming_span)
{
	struct l7_trace_ctx in, out;
	struct l7_rng rng;

	l7_rng_seed(&rng);
	cr_assert_eq(l7_trace_parse_traceparent("00-" TID "-" SID "-00", 55, &in), 0);
	l7_trace_child(&in, &rng, 100.0, &out);
	cr_expect(!memcmp(out.trace_id, in.trace_id, 16));
	cr_expect(!memcmp(out.parent_id, in.span_id, 8) && out.has_parent && out.has_context);
	cr_expect(memcmp(out.span_id, in.span_id, 8));
	cr_expect_eq(out.sampled, L7_TRACE_NOT_SAMPLED, "the caller's decision wins over the local rate");
}

Test(l7_trace, sampling_rate_for_new_traces)
{
	static const double rates[] = { 0.0, 1.0, 25.5, 100.0 };
	struct l7_trace_ctx none = { 0 }, out, prev = { 0 };
	struct l7_rng rng;

	l7_rng_seed(&rng);
	for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
		int sampled = 0, n = 40000;

		for (int i = 0; i < n; i++) {
			l7_trace_child(&none, &rng, rates[r], &out);
			cr_assert(out.has_context && !out.has_parent);
			cr_assert(memcmp(out.trace_id, prev.trace_id, 16), "trace ids repeat");
			prev = out;
			sampled += out.sampled == L7_TRACE_SAMPLED;
		}
		/* binomial: 5 standard deviations at most 0.0125 of n at p = 0.5 */
		cr_expect(sampled >= n * rates[r] / 100.0 - n * 0.0125 && sampled <= n * rates[r] / 100.0 + n * 0.0125,
			  "rate %.1f%%: %d of %d sampled", rates[r], sampled, n);
		if (rates[r] == 0.0 || rates[r] == 100.0)
			cr_expect_eq(sampled, rates[r] == 0.0 ? 0 : n);
	}
	none.sampled = L7_TRACE_SAMPLED; /* x-b3-sampled: 1 forces it */
	l7_trace_child(&none, &rng, 0.0, &out);
	cr_expect_eq(out.sampled, L7_TRACE_SAMPLED);
}

Test(l7_trace, written_headers_parse_back_as_the_same_span)
{
	struct l7_trace_ctx in, out, back;
	struct l7_rng rng;
	struct h1_request req;
	enum h1_error err;
	char head[1024], buf[32];
	int n;

	l7_rng_seed(&rng);
	cr_assert_eq(l7_trace_parse_b3(TID "-" SID "-1", strlen(TID "-" SID "-1"), &in), 0);
	l7_trace_child(&in, &rng, 0.0, &out);
	strcpy(head, "GET / HTTP/1.1\r\nHost: a\r\n");
	n = l7_trace_write_headers(&out, head + strlen(head), sizeof(head) - strlen(head) - 3);
	cr_assert_gt(n, 0);
	cr_assert_lt(n, L7_TRACE_HEADERS_MAX);
	strcat(head, "\r\n");
	cr_assert_gt(h1_parse_request(head, strlen(head), &req, &err), 0, "%s", head);
	cr_assert_eq(l7_trace_parse_traceparent(h1_find(req.headers, req.n_headers, "traceparent")->value.p,
						h1_find(req.headers, req.n_headers, "traceparent")->value.len, &back),
		     0);
	cr_expect(!memcmp(back.trace_id, out.trace_id, 16) && !memcmp(back.span_id, out.span_id, 8));
	cr_expect(h1_name_eq(h1_find(req.headers, req.n_headers, "x-b3-parentspanid")->value, SID));
	cr_expect(h1_name_eq(h1_find(req.headers, req.n_headers, "x-b3-sampled")->value, "1"));
	l7_trace_from_headers(req.headers, req.n_headers, &back);
	cr_expect(!memcmp(back.trace_id, out.trace_id, 16) && !memcmp(back.span_id, out.span_id, 8));
	cr_expect(!back.has_parent, "traceparent, read first, carries no parent");
	cr_assert_eq(l7_trace_parse_b3(h1_find(req.headers, req.n_headers, "b3")->value.p,
				       h1_find(req.headers, req.n_headers, "b3")->value.len, &back),
		     0);
	cr_expect(!memcmp(back.span_id, out.span_id, 8) && back.sampled == L7_TRACE_SAMPLED);
	cr_expect(back.has_parent && !memcmp(back.parent_id, in.span_id, 8));
	cr_expect_eq(l7_trace_write_headers(&out, buf, sizeof(buf)), -ENOSPC);
}

Test(l7_trace, rewrite_replaces_the_request_trace_headers)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: web\r\ntraceparent: 00-" TID "-" SID "-01\r\n"
				  "tracestate: congo=t61rcWkgMzE\r\nX-B3-TraceId: " TID "\r\nx-b3-spanid: " SID
				  "\r\nb3: " TID "-" SID "\r\nx-b3-sampled: 1\r\n\r\n";
	struct l7_req_rewrite rw = { .client_addr = "10.0.0.7",
				     .trace_headers = "traceparent: new\r\nx-b3-spanid: new\r\n" };
	static const char *const names[] = { "traceparent", "x-b3-spanid",  "x-b3-traceid",
					     "b3",	    "x-b3-sampled", "tracestate" };
	static const unsigned want[] = { 1, 1, 0, 0, 0, 1 };
	struct h1_request req, out;
	enum h1_error err;
	char buf[4096];
	int k;

	cr_assert_gt(h1_parse_request(raw, strlen(raw), &req, &err), 0);
	k = l7_rewrite_request(&req, &rw, buf, sizeof(buf));
	cr_assert_gt(k, 0);
	cr_assert_eq(h1_parse_request(buf, (size_t)k, &out, &err), k);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		unsigned seen = 0;

		for (uint32_t j = 0; j < out.n_headers; j++)
			seen += h1_name_eq(out.headers[j].name, names[i]);
		cr_expect_eq(seen, want[i], "%s: %u fields, want %u\n%.*s", names[i], seen, want[i], k, buf);
	}
	cr_expect(h1_name_eq(h1_find(out.headers, out.n_headers, "traceparent")->value, "new"));
}
