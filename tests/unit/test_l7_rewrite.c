// SPDX-License-Identifier: Apache-2.0
/*
 * The request head the proxy forwards (l7/rewrite.h) when the client names fields in Connection: those fields
 * go no further (RFC 9110 §7.6.1), and the proxy's own fields are written after that removal.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http/h1.h"
#include "l7/rewrite.h"

static char add_name[] = "x-add", add_value[] = "route";
static struct l7_header_op add_op = { add_name, add_value };
static struct l7_route route = { .headers = { .req_add = &add_op, .n_req_add = 1 } };

/* Forwards raw through l7_rewrite_request and parses the result into out. */
static void forward(const char *raw, char *buf, size_t cap, struct h1_request *out)
{
	struct l7_req_rewrite rw = {
		.route = &route,
		.client_addr = "10.0.0.7",
		.request_id = "11111111-2222-4333-8444-555555555555",
	};
	struct h1_request req;
	enum h1_error err;
	int n = h1_parse_request(raw, strlen(raw), &req, &err), k;

	cr_assert_gt(n, 0, "the input does not parse: %s", h1_error_name(err));
	k = l7_rewrite_request(&req, &rw, buf, cap);
	cr_assert_gt(k, 0);
	cr_assert_eq(h1_parse_request(buf, (size_t)k, out, &err), k, "the forwarded head does not parse:\n%.*s", k,
		     buf);
}

static void expect_only(const struct h1_request *r, const char *name, const char *value)
{
	uint32_t seen = 0;

	for (uint32_t i = 0; i < r->n_headers; i++) {
		if (!h1_name_eq(r->headers[i].name, name))
			continue;
		seen++;
		cr_expect(h1_name_eq(r->headers[i].value, value), "%s: %.*s, want %s", name,
			  (int)r->headers[i].value.len, r->headers[i].value.p, value);
	}
	cr_expect_eq(seen, 1, "%u %s fields, want 1", seen, name);
}

Test(l7_rewrite, fields_named_in_connection_are_not_forwarded)
{
	static const char raw[] = "GET /x HTTP/1.1\r\nHost: web\r\nx-forwarded-for: 6.6.6.6\r\nx-add: client\r\n"
				  "x-request-id: forged\r\nx-private: 1\r\nx-kept: 2\r\n"
				  "Connection: keep-alive, x-forwarded-for, x-add, x-request-id, x-private\r\n\r\n";
	struct h1_request out;
	char buf[4096];

	forward(raw, buf, sizeof(buf), &out);
	expect_only(&out, "x-forwarded-for", "10.0.0.7");
	expect_only(&out, "x-add", "route");
	expect_only(&out, "x-request-id", "11111111-2222-4333-8444-555555555555");
	expect_only(&out, "x-kept", "2");
	cr_expect_null(h1_find(out.headers, out.n_headers, "x-private"));
	cr_expect_null(h1_find(out.headers, out.n_headers, "connection"));
}

Test(l7_rewrite, forwarding_fields_not_named_in_connection_are_extended)
{
	static const char raw[] = "GET /x HTTP/1.1\r\nHost: web\r\nx-forwarded-for: 1.1.1.1\r\nx-add: client\r\n"
				  "x-forwarded-for: 2.2.2.2\r\nx-request-id: abc\r\n\r\n";
	struct h1_request out;
	char buf[4096];
	uint32_t adds = 0;

	forward(raw, buf, sizeof(buf), &out);
	expect_only(&out, "x-forwarded-for", "1.1.1.1, 2.2.2.2, 10.0.0.7");
	expect_only(&out, "x-request-id", "abc");
	for (uint32_t i = 0; i < out.n_headers; i++)
		adds += h1_name_eq(out.headers[i].name, "x-add");
	cr_expect_eq(adds, 2, "add appends to the client's own x-add");
}

/* A peer naming Content-Length in Connection must not unframe the body the proxy streams after the head. */
Test(l7_rewrite, content_length_stays_whatever_connection_names)
{
	static const char raw[] =
	    "POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 38\r\nConnection: content-length\r\n\r\n";
	static const char raw_resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length, x-a\r\n"
				       "x-a: 1\r\n\r\n";
	struct l7_resp_rewrite rrw = { 0 };
	struct h1_response resp, out_resp;
	struct h1_request out;
	enum h1_error err;
	char buf[4096];
	int k;

	forward(raw, buf, sizeof(buf), &out);
	cr_expect_eq(out.body, H1_BODY_LENGTH);
	cr_expect_eq(out.content_length, 38);
	cr_assert_gt(h1_parse_response(raw_resp, sizeof(raw_resp) - 1, false, false, &resp, &err), 0);
	k = l7_rewrite_response(&resp, &rrw, buf, sizeof(buf));
	cr_assert_gt(k, 0);
	cr_assert_eq(h1_parse_response(buf, (size_t)k, false, false, &out_resp, &err), k);
	cr_expect_eq(out_resp.body, H1_BODY_LENGTH, "the response is still delimited by its length:\n%.*s", k, buf);
	cr_expect_eq(out_resp.content_length, 5);
	cr_expect_null(h1_find(out_resp.headers, out_resp.n_headers, "x-a"));
}

/* Istio's include_request_attempt_count: one x-envoy-attempt-count, 1, last (a retry rewrites the number), the
 * client's own replaced. */
Test(l7_rewrite, attempt_count_replaces_the_clients_and_ends_the_head)
{
	static const char raw[] = "GET /x HTTP/1.1\r\nHost: web\r\nx-envoy-attempt-count: 7\r\nx-kept: 2\r\n\r\n";
	struct l7_req_rewrite rw = { .client_addr = "10.0.0.7", .attempt_count = true };
	struct h1_request req, out;
	enum h1_error err;
	char buf[4096];
	int k;

	cr_assert_gt(h1_parse_request(raw, strlen(raw), &req, &err), 0);
	k = l7_rewrite_request(&req, &rw, buf, sizeof(buf));
	cr_assert_gt(k, 0);
	cr_assert_eq(h1_parse_request(buf, (size_t)k, &out, &err), k);
	expect_only(&out, "x-envoy-attempt-count", "1");
	expect_only(&out, "x-kept", "2");
	cr_expect(k > 30 && !memcmp(buf + k - 30, "\r\nx-envoy-attempt-count: 1\r\n\r\n", 30), "%.*s", k, buf);
	rw.attempt_count = false;
	k = l7_rewrite_request(&req, &rw, buf, sizeof(buf));
	cr_assert_eq(h1_parse_request(buf, (size_t)k, &out, &err), k);
	expect_only(&out, "x-envoy-attempt-count", "7"); /* without the option, the client's goes on */
}
