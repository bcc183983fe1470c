// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the HTTP/1 parser (http/h1.h). The first byte picks a request head, a response head (to a
 * HEAD or CONNECT request or not) or a chunked body, the second where to cut the input in two; the rest is
 * the bytes. Beyond memory safety it checks what the proxy relies on: a head's length is within the input,
 * every span points into the head, the head alone parses the same, a prefix never answers differently from
 * the whole ("more", or the same error), and a chunked body scanned in pieces ends where it ends in one go;
 * decoded (in pieces, in place or not) it ends there too, with the payload the byte-wise scan counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct h1_request req, req2;
static struct h1_response resp, resp2;

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool inside(struct h1_str s, const char *buf, size_t len)
{
	return s.p >= buf && s.len <= len && s.p + s.len <= buf + len;
}

static bool same_span(struct h1_str a, struct h1_str b, const char *buf_a, const char *buf_b)
{
	/* Spans of two copies of the same bytes sit at the same offsets (or both on the constant "/"). */
	if (a.len != b.len)
		return false;
	if (a.p - buf_a == b.p - buf_b)
		return true;
	return a.len == 1 && a.p[0] == '/' && b.p[0] == '/';
}

static void check_headers(const struct h1_header *h, uint32_t n, const char *buf, size_t len)
{
	uint32_t i;

	check(n <= H1_MAX_HEADERS);
	for (i = 0; i < n; i++) {
		check(h[i].name.len > 0 && inside(h[i].name, buf, len) && inside(h[i].value, buf, len));
		(void)h1_is_hop_by_hop(h, n, h[i].name);
	}
	(void)h1_find(h, n, "content-length");
}

/* Parses buf[0..len) as a request or a response head into the given struct. */
static int parse(int kind, bool head, bool connect, const char *buf, size_t len, struct h1_request *rq,
		 struct h1_response *rs, enum h1_error *err)
{
	if (kind == 0)
		return h1_parse_request(buf, len, rq, err);
	return h1_parse_response(buf, len, head, connect, rs, err);
}

/* A prefix answers "more", the same error, or (once the head is in it) the same head. */
static void check_prefix(int kind, bool head, bool connect, const char *buf, size_t len, int whole,
			 enum h1_error whole_err, size_t cut)
{
	char *part = malloc(cut ? cut : 1);
	enum h1_error err = H1_E_NONE;
	int r;

	check(part != NULL);
	memcpy(part, buf, cut);
	r = parse(kind, head, connect, part, cut, &req2, &resp2, &err);
	if (whole > 0 && cut >= (size_t)whole)
		check(r == whole);
	else if (whole < 0)
		check(r == 0 || (r == -1 && err == whole_err));
	else
		check(r == 0);
	if (r > 0 && kind == 0) {
		check(same_span(req.method, req2.method, buf, part) && same_span(req.target, req2.target, buf, part));
		check(same_span(req.path, req2.path, buf, part) && same_span(req.query, req2.query, buf, part));
		check(same_span(req.host, req2.host, buf, part) || (!req.host.len && !req2.host.len));
		check(req.n_headers == req2.n_headers && req.body == req2.body &&
		      req.content_length == req2.content_length && req.keep_alive == req2.keep_alive);
	} else if (r > 0) {
		check(resp.status == resp2.status && resp.body == resp2.body && resp.n_headers == resp2.n_headers &&
		      resp.content_length == resp2.content_length && resp.keep_alive == resp2.keep_alive);
	}
	free(part);
	(void)len;
}

static void fuzz_head(int kind, bool head, bool connect, const char *buf, size_t len, size_t cut)
{
	enum h1_error err = H1_E_NONE;
	int r = parse(kind, head, connect, buf, len, &req, &resp, &err);

	check(r >= -1 && (r < 0 || (size_t)r <= len));
	check((r == -1) == (err != H1_E_NONE) && err < H1_E_MAX);
	if (r > 0 && kind == 0) {
		size_t n = (size_t)r;

		check(req.method.len > 0 && inside(req.method, buf, n) && inside(req.target, buf, n));
		check(inside(req.path, buf, n) || (req.path.len == 1 && req.path.p[0] == '/'));
		check(inside(req.query, buf, n) && inside(req.host, buf, n));
		check(req.minor_version <= 1 && req.body <= H1_BODY_CHUNKED);
		check_headers(req.headers, req.n_headers, buf, n);
	} else if (r > 0) {
		check(resp.status >= 100 && resp.status <= 599 && inside(resp.reason, buf, (size_t)r));
		check_headers(resp.headers, resp.n_headers, buf, (size_t)r);
		check(resp.body != H1_BODY_CLOSE || !resp.keep_alive);
	}
	if (len)
		check_prefix(kind, head, connect, buf, len, r, err, cut % len);
	if (r > 1)
		check_prefix(kind, head, connect, buf, len, r, err, (size_t)r - 1);
	if (r > 0)
		check_prefix(kind, head, connect, buf, len, r, err, (size_t)r);
}

struct scan_result {
	long consumed;
	enum h1_error err;
	bool done;
	uint64_t data_bytes;
};

/* Scans buf in pieces of step bytes (0: one piece). */
static struct scan_result scan(const char *buf, size_t len, size_t step)
{
	struct scan_result res = { 0, H1_E_NONE, false, 0 };
	struct h1_chunked c;
	size_t off = 0;

	h1_chunked_init(&c);
	while (off < len && !c.done) {
		size_t n = step && len - off > step ? step : len - off;
		long r = h1_chunked_scan(&c, buf + off, n, &res.err);

		if (r < 0) {
			res.consumed = -1;
			return res;
		}
		check((size_t)r <= n && ((size_t)r == n || c.done));
		off += (size_t)r;
	}
	res.consumed = (long)off;
	res.done = c.done;
	res.data_bytes = c.data_bytes;
	check(c.data_bytes <= off);
	return res;
}

/* Decodes buf in pieces of step bytes (0: one piece), in place when in_place (buf is then changed); the
 * payload goes to out (room for len bytes). Same verdict as scan, and exactly data_bytes of payload. */
static struct scan_result decode(char *buf, size_t len, size_t step, bool in_place, char *out, size_t *out_len)
{
	struct scan_result res = { 0, H1_E_NONE, false, 0 };
	struct h1_chunked c;
	size_t off = 0, total = 0;

	h1_chunked_init(&c);
	while (off < len && !c.done) {
		size_t n = step && len - off > step ? step : len - off, got;
		long r = h1_chunked_decode(&c, buf + off, n, in_place ? buf + off : out + total, &got, &res.err);

		if (r < 0) {
			res.consumed = -1;
			return res;
		}
		check((size_t)r <= n && ((size_t)r == n || c.done) && got <= (size_t)r);
		if (in_place)
			memmove(out + total, buf + off, got);
		total += got;
		off += (size_t)r;
	}
	res.consumed = (long)off;
	res.done = c.done;
	res.data_bytes = c.data_bytes;
	check(total == c.data_bytes);
	*out_len = total;
	return res;
}

static bool same(struct scan_result a, struct scan_result b)
{
	return a.consumed == b.consumed && a.err == b.err && a.done == b.done && a.data_bytes == b.data_bytes;
}

/* The payload as the scanner sees it a byte at a time: a byte is payload exactly when it moves data_bytes. */
static size_t payload_by_scan(const char *buf, size_t len, char *out)
{
	struct h1_chunked c;
	enum h1_error err;
	size_t off = 0, n = 0;

	h1_chunked_init(&c);
	for (; off < len && !c.done; off++) {
		uint64_t before = c.data_bytes;

		if (h1_chunked_scan(&c, buf + off, 1, &err) < 0)
			break;
		if (c.data_bytes > before)
			out[n++] = buf[off];
	}
	return n;
}

static void fuzz_chunked(const char *buf, size_t len, size_t cut)
{
	struct scan_result whole = scan(buf, len, 0), other[2], dec[3];
	char *work = malloc(len ? len : 1), *out[4];
	size_t out_len[3] = { 0 }, ref_len;
	int i;

	other[0] = scan(buf, len, cut % 64 + 1);
	other[1] = len <= 1024 ? scan(buf, len, 1) : whole;
	for (i = 0; i < 2; i++)
		check(same(other[i], whole));
	for (i = 0; i < 4; i++)
		out[i] = malloc(len ? len : 1);
	if (!work || !out[0] || !out[1] || !out[2] || !out[3])
		goto done;
	memcpy(work, buf, len);
	dec[0] = decode(work, len, 0, false, out[0], &out_len[0]);
	dec[1] = decode(work, len, cut % 64 + 1, true, out[1], &out_len[1]); /* work is compacted from here */
	memcpy(work, buf, len);
	dec[2] = len <= 1024 ? decode(work, len, 1, false, out[2], &out_len[2]) : dec[0];
	for (i = 0; i < 3; i++)
		check(same(dec[i], whole));
	if (whole.consumed >= 0) {
		check(out_len[1] == out_len[0] && !memcmp(out[1], out[0], out_len[0]));
		if (len <= 1024)
			check(out_len[2] == out_len[0] && !memcmp(out[2], out[0], out_len[0]));
		ref_len = payload_by_scan(buf, len, out[3]);
		check(ref_len == out_len[0] && !memcmp(out[3], out[0], ref_len));
	}
done:
	for (i = 0; i < 4; i++)
		free(out[i]);
	free(work);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len, cut;
	char *buf;
	int mode;

	if (size < 2)
		return 0;
	mode = data[0];
	cut = data[1];
	len = size - 2;
	/* An exact-size copy: ASan sees any read past what arrived. */
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 2, len);
	cut = cut * len / 255;
	switch (mode % 3) {
	case 0:
		fuzz_head(0, false, false, buf, len, cut);
		break;
	case 1:
		fuzz_head(1, mode & 4, mode & 8, buf, len, cut);
		break;
	default:
		fuzz_chunked(buf, len, data[1]);
		break;
	}
	free(buf);
	return 0;
}
