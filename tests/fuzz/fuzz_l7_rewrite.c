// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the heads the proxy forwards (l7/rewrite.h). The first byte picks a request or a response
 * (to a HEAD request or not); the rest is a head the parser accepted or not. Whatever the client or the
 * upstream sent, what the proxy writes must be one valid head for the same message: it parses completely, with
 * the same method or status, the same body framing (the proxy streams the body bytes verbatim), Upgrade kept
 * for a request that had it, and no hop-by-hop field of the input left in it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "l7/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct h1_request req, out_req;
static struct h1_response resp, out_resp;
static char out[96 * 1024];

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool span_eq(struct h1_str a, struct h1_str b)
{
	return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

/* A route with every rewrite the proxy applies: prefix replacement, header set/add/remove on both sides. */
static char prefix[] = "/a", uri[] = "/r/", set_name[] = "x-set", set_value[] = "v", add_name[] = "x-add",
	    rm_name[] = "cookie";
static struct l7_match match = { .uri = { .kind = L7_MATCH_PREFIX, .value = prefix } };
static struct l7_header_op set_op = { set_name, set_value }, add_op = { add_name, set_value };
static char *rm_names[] = { rm_name };
static struct l7_route route = {
	.matches = &match,
	.n_matches = 1,
	.rewrite_uri = uri,
	.headers = { .req_set = &set_op,
		     .n_req_set = 1,
		     .req_add = &add_op,
		     .n_req_add = 1,
		     .req_remove = rm_names,
		     .n_req_remove = 1,
		     .resp_set = &set_op,
		     .n_resp_set = 1,
		     .resp_add = &add_op,
		     .n_resp_add = 1,
		     .resp_remove = rm_names,
		     .n_resp_remove = 1 },
};

/* Fields the proxy writes itself (framing, authority, Envoy's x-forwarded-*, the route's operations). */
static bool written_by_proxy(struct h1_str name)
{
	static const char *const own[] = { "transfer-encoding", "connection",	"upgrade", "host",  "x-forwarded-for",
					   "x-forwarded-proto", "x-request-id", "x-set",   "x-add", "set-cookie",
					   "content-length" /* the framing of the body streamed after the head */ };

	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (h1_name_eq(name, own[i]))
			return true;
	return false;
}

/* No hop-by-hop field of the input survives (a client may name any field in Connection). */
static void no_hop_by_hop(const struct h1_header *in, uint32_t n_in, const struct h1_header *h, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		check(written_by_proxy(h[i].name) || !h1_is_hop_by_hop(in, n_in, h[i].name));
}

static void check_request(const char *buf, size_t len)
{
	struct l7_req_rewrite rw = {
		.route = &route,
		.client_addr = "10.0.0.1",
		.request_id = "00000000-0000-4000-8000-000000000000",
		.default_authority = "svc.ns.svc.cluster.local",
	};
	enum h1_error err;
	int n = h1_parse_request(buf, len, &req, &err), k;

	if (n <= 0)
		return;
	k = l7_rewrite_request(&req, &rw, out, sizeof(out));
	if (k < 0)
		return; /* too long for the buffer: the proxy answers 431 */
	check(h1_parse_request(out, (size_t)k, &out_req, &err) == k);
	check(span_eq(out_req.method, req.method));
	check(out_req.body == req.body);
	check(req.body != H1_BODY_LENGTH || out_req.content_length == req.content_length);
	check(out_req.upgrade == (req.upgrade && h1_find(req.headers, req.n_headers, "upgrade")));
	check(h1_find(out_req.headers, out_req.n_headers, "x-forwarded-for") != NULL);
	check(h1_find(out_req.headers, out_req.n_headers, "cookie") == NULL);
	no_hop_by_hop(req.headers, req.n_headers, out_req.headers, out_req.n_headers);
}

static void check_response(const char *buf, size_t len, bool head)
{
	struct l7_resp_rewrite rw = { .route = &route, .set_cookie = "c=1", .close = true };
	enum h1_error err;
	int n = h1_parse_response(buf, len, head, false, &resp, &err), k;

	if (n <= 0)
		return;
	k = l7_rewrite_response(&resp, &rw, out, sizeof(out));
	if (k < 0)
		return;
	check(h1_parse_response(out, (size_t)k, head, false, &out_resp, &err) == k);
	check(out_resp.status == resp.status);
	check(out_resp.body == resp.body);
	check(resp.body != H1_BODY_LENGTH || out_resp.content_length == resp.content_length);
	no_hop_by_hop(resp.headers, resp.n_headers, out_resp.headers, out_resp.n_headers);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;

	if (size < 1 || size > 70 * 1024)
		return 0;
	buf = malloc(size - 1 ? size - 1 : 1);
	memcpy(buf, data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		check_request(buf, size - 1);
		break;
	case 1:
		check_response(buf, size - 1, false);
		break;
	default:
		check_response(buf, size - 1, true);
		break;
	}
	free(buf);
	return 0;
}
