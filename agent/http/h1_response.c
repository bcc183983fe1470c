// SPDX-License-Identifier: Apache-2.0
/*
 * Response heads (RFC 9112 §4): the status line, and how the body is delimited, which depends on the request
 * (HEAD, CONNECT) as well as on the status and the header section (§6.3).
 */
#include "http/h1_scan.h"

static int fail(enum h1_error *err, enum h1_error e)
{
	*err = e;
	return H1_ERROR;
}

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF; the SP before an empty reason is optional. */
static int parse_status_line(const char *p, const char *end, struct h1_response *resp, const char **next,
			     enum h1_error *err)
{
	const char *s = p + 9, *q;
	int minor = h1_parse_version(p, (size_t)(end - p), err), i;

	if (minor == H1_VERSION_MORE)
		return H1_MORE;
	if (minor < 0)
		return H1_ERROR;
	resp->minor_version = (uint8_t)minor;
	if (p + 8 == end)
		return H1_MORE;
	if (p[8] != ' ')
		return fail(err, H1_E_BAD_VERSION);
	resp->status = 0;
	for (i = 0; i < 3; i++) {
		if (s + i == end)
			return H1_MORE;
		if (s[i] < '0' || s[i] > '9')
			return fail(err, H1_E_BAD_STATUS);
		resp->status = (uint16_t)(resp->status * 10 + (s[i] - '0'));
	}
	if (resp->status < 100 || resp->status > 599)
		return fail(err, H1_E_BAD_STATUS);
	q = s + 3;
	if (q == end)
		return H1_MORE;
	if (*q == ' ')
		q++;
	else if (*q != '\r')
		return fail(err, *q == '\n' ? H1_E_BARE_LF : H1_E_BAD_STATUS);
	resp->reason.p = q;
	for (;;) {
		q = h1_skip_value(q, end);
		if (q == end)
			return H1_MORE;
		if (*q != '\t')
			break;
		q++;
	}
	resp->reason.len = (uint32_t)(q - resp->reason.p);
	if (*q == '\n')
		return fail(err, H1_E_BARE_LF);
	if (*q != '\r')
		return fail(err, H1_E_BAD_STATUS);
	if (q + 1 == end)
		return H1_MORE;
	if (q[1] != '\n')
		return fail(err, H1_E_BARE_CR);
	*next = q + 2;
	return 1;
}

/* RFC 9112 §6.3, in its order; a response is never framed two ways (CL with TE is refused). */
static int finish(struct h1_response *resp, const struct h1_fields *f, bool req_is_head, bool req_is_connect,
		  enum h1_error *err)
{
	bool v11 = resp->minor_version >= 1;
	uint16_t st = resp->status;
	int chunked = 0;

	if (f->n_transfer_encoding) {
		if (f->n_content_length)
			return fail(err, H1_E_CL_AND_TE);
		if (!v11) /* §6.1: a 1.0 message with Transfer-Encoding has faulty framing */
			return fail(err, H1_E_BAD_TRANSFER_ENCODING);
		chunked = h1_te_final_chunked(f->transfer_encoding);
		if (chunked < 0)
			return fail(err, H1_E_BAD_TRANSFER_ENCODING);
	}
	resp->content_length = f->n_content_length ? f->content_length : 0;
	resp->keep_alive = v11 ? !f->conn_close : f->conn_keep_alive && !f->conn_close;
	if (st == 101 || (req_is_connect && st >= 200 && st < 300))
		resp->body = H1_BODY_TUNNEL;
	else if (req_is_head || st < 200 || st == 204 || st == 304)
		resp->body = H1_BODY_NONE;
	else if (f->n_transfer_encoding)
		resp->body = chunked ? H1_BODY_CHUNKED : H1_BODY_CLOSE;
	else if (f->n_content_length)
		resp->body = f->content_length ? H1_BODY_LENGTH : H1_BODY_NONE;
	else
		resp->body = H1_BODY_CLOSE;
	if (resp->body == H1_BODY_CLOSE || resp->body == H1_BODY_TUNNEL)
		resp->keep_alive = false;
	return 0;
}

int h1_parse_response(const char *buf, size_t len, bool req_is_head, bool req_is_connect, struct h1_response *resp,
		      enum h1_error *err)
{
	size_t limit = len < H1_MAX_HEAD_BYTES ? len : H1_MAX_HEAD_BYTES;
	const char *end = buf + limit, *line_end, *next;
	struct h1_fields f = { .headers = resp->headers };
	int r;

	*err = H1_E_NONE;
	line_end = limit > H1_MAX_REQUEST_LINE + 2 ? buf + H1_MAX_REQUEST_LINE + 2 : end;
	r = parse_status_line(buf, line_end, resp, &next, err);
	if (r == H1_MORE && line_end < end)
		return fail(err, H1_E_TOO_LARGE);
	if (r > 0) {
		r = h1_parse_fields(buf, next, end, &f, err);
		resp->n_headers = f.n_headers;
		if (r > 0 && finish(resp, &f, req_is_head, req_is_connect, err) < 0)
			r = H1_ERROR;
	}
	if (r == H1_MORE && len >= H1_MAX_HEAD_BYTES)
		return fail(err, H1_E_TOO_LARGE);
	return r;
}
