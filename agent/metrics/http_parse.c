// SPDX-License-Identifier: Apache-2.0
/*
 * The request head parser of the metrics listener: a pure function over the bytes received so far, so that
 * the server and its fuzz target run the same code.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "metrics/http.h"

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A byte no request head may hold anywhere: controls other than HT, CR and LF, and DEL. */
static bool never_valid(unsigned char c)
{
	return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

/*
 * The line starting at pos: *line_len excludes the CR LF (or bare LF); returns the offset past it, 0 if
 * the line is not complete yet, or -1 for a CR inside the line.
 */
static size_t next_line(const char *buf, size_t len, size_t pos, size_t *line_len, bool *bad)
{
	const char *lf = memchr(buf + pos, '\n', len - pos);
	size_t end;

	*bad = false;
	if (!lf)
		return 0;
	end = (size_t)(lf - buf);
	*line_len = end - pos;
	if (*line_len && buf[end - 1] == '\r')
		(*line_len)--;
	if (memchr(buf + pos, '\r', *line_len))
		*bad = true;
	return end + 1;
}

static int parse_request_line(const char *s, size_t n, struct mhttp_request *req)
{
	const char *end = s + n, *p = s, *target, *q;
	size_t tlen;

	while (p < end && is_tchar((unsigned char)*p))
		p++;
	if (p == s || p == end || *p != ' ')
		return -400;
	req->method = s;
	req->method_len = (size_t)(p - s);
	target = ++p;
	while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
		p++;
	if (p == target || p == end || *p != ' ')
		return -400;
	tlen = (size_t)(p - target);
	p++;
	if (end - p != 8 || memcmp(p, "HTTP/", 5) || p[6] != '.' || p[5] < '0' || p[5] > '9' || p[7] < '0' ||
	    p[7] > '9')
		return -400;
	if (p[5] != '1')
		return -505;
	req->minor_version = p[7] - '0';

	/* absolute-form (RFC 9112 §3.2.2): servers must accept it; only its path matters here. */
	if (tlen > 7 && (!strncasecmp(target, "http://", 7) || !strncasecmp(target, "https://", 8))) {
		const char *auth = target + (target[4] == ':' ? 7 : 8);

		q = memchr(auth, '/', (size_t)(target + tlen - auth));
		if (!q) {
			req->path = "/";
			req->path_len = 1;
			return 0;
		}
		tlen -= (size_t)(q - target);
		target = q;
	} else if (*target != '/' && !(tlen == 1 && *target == '*')) {
		return -400;
	}
	q = memchr(target, '?', tlen);
	req->path = target;
	req->path_len = q ? (size_t)(q - target) : tlen;
	return 0;
}

static int parse_header(const char *s, size_t n, int *n_host)
{
	const char *end = s + n, *p = s;

	if (*s == ' ' || *s == '\t') /* obs-fold: RFC 9112 §5.2 lets a server reject it */
		return -400;
	while (p < end && is_tchar((unsigned char)*p))
		p++;
	if (p == s || p == end || *p != ':') /* also "Name : value", which RFC 9112 §5.1 forbids */
		return -400;
	if (p - s == 4 && !strncasecmp(s, "host", 4))
		(*n_host)++;
	for (p++; p < end; p++)
		if ((unsigned char)*p < 0x20 ? *p != '\t' : *p == 0x7f)
			return -400;
	return 0;
}

int mhttp_parse_request(const char *buf, size_t len, struct mhttp_request *req)
{
	size_t pos = 0, next, n = 0, i;
	bool bad, have_line = false;
	int n_host = 0, err;

	memset(req, 0, sizeof(*req));
	for (;;) {
		next = next_line(buf, len, pos, &n, &bad);
		if (!next)
			break;
		if (bad)
			return -400;
		if (!have_line) {
			/* RFC 9112 §2.2: empty lines before the request line are ignored. */
			if (n) {
				err = parse_request_line(buf + pos, n, req);
				if (err)
					return err;
				have_line = true;
			}
		} else if (!n) {
			if (n_host > 1 || (req->minor_version >= 1 && n_host == 0))
				return -400;
			return (int)next;
		} else {
			err = parse_header(buf + pos, n, &n_host);
			if (err)
				return err;
		}
		pos = next;
	}
	/* Incomplete: wait for more, unless what is there can never become a request (TLS, binary junk). */
	for (i = pos; i < len; i++)
		if (never_valid((unsigned char)buf[i]) || (buf[i] == '\r' && i + 1 < len))
			return -400;
	return 0;
}
