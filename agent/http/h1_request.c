// SPDX-License-Identifier: Apache-2.0
/*
 * Request heads (RFC 9112 §3): the request line, the four forms of request target and what the header
 * section means for framing (§6), keep-alive (§9.3) and Host (§3.2). Anything ambiguous is an error.
 */
#include <string.h>

#include "http/h1_scan.h"

static const char root_path[] = "/";

static int fail(enum h1_error *err, enum h1_error e)
{
	*err = e;
	return H1_ERROR;
}

static void split_path_query(struct h1_request *req, const char *p, uint32_t len)
{
	const char *q = memchr(p, '?', len);

	req->path.p = p;
	req->path.len = q ? (uint32_t)(q - p) : len;
	req->query.p = q ? q + 1 : p + len;
	req->query.len = q ? len - req->path.len - 1 : 0;
}

/* absolute-form: "http" or "https" "://" authority [path] ["?" query]; sets host, path and query. */
static bool absolute_form(struct h1_request *req)
{
	const char *p = req->target.p, *end = p + req->target.len, *auth, *auth_end;

	if (req->target.len >= 7 && h1_eq_lower(p, "http://", 7))
		auth = p + 7;
	else if (req->target.len >= 8 && h1_eq_lower(p, "https://", 8))
		auth = p + 8;
	else
		return false;
	for (auth_end = auth; auth_end < end && *auth_end != '/' && *auth_end != '?'; auth_end++)
		;
	req->host.p = auth;
	req->host.len = (uint32_t)(auth_end - auth);
	/* No userinfo (RFC 9110 §4.2.4 says to treat it as an error: '@' is no reg-name byte) and no empty host. */
	if (!h1_authority_valid(req->host, true, false))
		return false;
	if (auth_end < end && *auth_end == '/') {
		split_path_query(req, auth_end, (uint32_t)(end - auth_end));
	} else {
		/* No path: the origin-form of this target is "/" (RFC 9112 §3.2.1), a constant outside the buffer. */
		split_path_query(req, auth_end, (uint32_t)(end - auth_end));
		req->path.p = root_path;
		req->path.len = 1;
	}
	return true;
}

/* Which form the target has, and whether the method allows it (RFC 9112 §3.2). */
static bool target_valid(struct h1_request *req)
{
	struct h1_str t = req->target;

	if (req->is_connect) {
		if (!h1_authority_valid(t, true, true)) /* authority-form: host ":" port */
			return false;
		req->host = t;
		req->path = (struct h1_str){ t.p + t.len, 0 };
		req->query = req->path;
		return true;
	}
	if (t.p[0] == '/') {
		split_path_query(req, t.p, t.len);
		return true;
	}
	if (t.len == 1 && t.p[0] == '*') {
		req->path = t;
		req->query = (struct h1_str){ t.p + 1, 0 };
		return req->method.len == 7 && !memcmp(req->method.p, "OPTIONS", 7);
	}
	return absolute_form(req);
}

/* The request line from p, bounded by end; on success *next is past its CR LF. */
static int parse_request_line(const char *p, const char *end, struct h1_request *req, const char **next,
			      enum h1_error *err)
{
	const char *q = h1_skip_token(p, end), *v;
	int minor;

	if (q == end)
		return H1_MORE;
	if (q == p || *q != ' ')
		return fail(err, H1_E_BAD_METHOD);
	req->method = (struct h1_str){ p, (uint32_t)(q - p) };
	req->is_head = req->method.len == 4 && !memcmp(p, "HEAD", 4);
	req->is_connect = req->method.len == 7 && !memcmp(p, "CONNECT", 7);

	p = q + 1;
	q = h1_skip_target(p, end);
	if (q == end)
		return H1_MORE;
	if (q == p || *q != ' ') {
		if (q > p && *q == '\r' && q + 1 == end)
			return H1_MORE;
		if (q > p && *q == '\r' && q[1] != '\n')
			return fail(err, H1_E_BARE_CR);
		if (q > p && *q == '\r') /* HTTP/0.9: no version */
			return fail(err, H1_E_BAD_VERSION);
		return fail(err, *q == '\n' ? H1_E_BARE_LF : H1_E_BAD_TARGET);
	}
	req->target = (struct h1_str){ p, (uint32_t)(q - p) };
	if (!target_valid(req))
		return fail(err, H1_E_BAD_TARGET);

	v = q + 1;
	minor = h1_parse_version(v, (size_t)(end - v), err);
	if (minor == H1_VERSION_MORE)
		return H1_MORE;
	if (minor < 0)
		return H1_ERROR;
	req->minor_version = (uint8_t)minor;
	if (v + 8 == end)
		return H1_MORE;
	if (v[8] != '\r')
		return fail(err, v[8] == '\n' ? H1_E_BARE_LF : H1_E_BAD_VERSION);
	if (v + 9 == end)
		return H1_MORE;
	if (v[9] != '\n')
		return fail(err, H1_E_BARE_CR);
	*next = v + 10;
	return 1;
}

/* Framing (RFC 9112 §6.1-6.3) and the connection, once the whole section is known. */
static int finish(struct h1_request *req, const struct h1_fields *f, enum h1_error *err)
{
	bool v11 = req->minor_version >= 1;

	if (!f->n_host && v11)
		return fail(err, H1_E_MISSING_HOST);
	if (!req->host.p) /* origin-form or asterisk-form: the Host header names the origin */
		req->host = f->host;
	if (!req->host.p) /* none (HTTP/1.0): still a span of the buffer, for callers that compare it */
		req->host = (struct h1_str){ req->target.p, 0 };
	req->body = H1_BODY_NONE;
	req->content_length = 0;
	if (f->n_transfer_encoding) {
		if (f->n_content_length)
			return fail(err, H1_E_CL_AND_TE);
		/* HTTP/1.0 has no chunked coding: a 1.0 recipient would frame by close or Content-Length. */
		if (!v11 || h1_te_final_chunked(f->transfer_encoding) != 1)
			return fail(err, H1_E_BAD_TRANSFER_ENCODING);
		req->body = H1_BODY_CHUNKED;
	} else if (f->n_content_length) {
		req->content_length = f->content_length;
		req->body = f->content_length ? H1_BODY_LENGTH : H1_BODY_NONE;
	}
	req->keep_alive = v11 ? !f->conn_close : f->conn_keep_alive && !f->conn_close;
	/* An HTTP/1.0 request's Expect and Upgrade are ignored (RFC 9110 §10.1.1, §7.8). */
	req->expect_continue = v11 && f->expect_continue;
	req->upgrade = v11 && f->conn_upgrade && f->has_upgrade;
	return 0;
}

static int parse_request(const char *buf, const char *end, struct h1_request *req, enum h1_error *err)
{
	struct h1_fields f = { .headers = req->headers };
	const char *p = buf, *line_end, *next;
	int r;

	/* RFC 9112 §2.2: empty lines before the request line (left over after a body) are ignored. */
	while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
		p += 2;
	if (p == end || (*p == '\r' && p + 1 == end))
		return H1_MORE;
	if (*p == '\r')
		return fail(err, H1_E_BARE_CR);
	if (*p == '\n')
		return fail(err, H1_E_BARE_LF);

	line_end = (size_t)(end - p) > H1_MAX_REQUEST_LINE + 2 ? p + H1_MAX_REQUEST_LINE + 2 : end;
	req->host = (struct h1_str){ NULL, 0 };
	r = parse_request_line(p, line_end, req, &next, err);
	if (r == H1_MORE && line_end < end)
		return fail(err, H1_E_TOO_LARGE);
	if (r <= 0)
		return r;
	r = h1_parse_fields(buf, next, end, &f, err);
	req->n_headers = f.n_headers;
	if (r <= 0)
		return r;
	return finish(req, &f, err) < 0 ? H1_ERROR : r;
}

int h1_parse_request(const char *buf, size_t len, struct h1_request *req, enum h1_error *err)
{
	size_t limit = len < H1_MAX_HEAD_BYTES ? len : H1_MAX_HEAD_BYTES;
	int r;

	*err = H1_E_NONE;
	r = parse_request(buf, buf + limit, req, err);
	/* A head can only complete within the limit: at the limit without its end, it never will. */
	if (r == H1_MORE && len >= H1_MAX_HEAD_BYTES)
		return fail(err, H1_E_TOO_LARGE);
	return r;
}
