/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1 parser: request and response tables (every smuggling case), prefixes, chunked bodies, limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

/* One request head; for accepted ones, the fields to check (NULL / unset: not checked, except as noted). */
struct req_case {
	const char *name;
	const char *raw;
	size_t len;
	enum h1_error err; /* H1_E_NONE: the whole of raw is one head */
	const char *method, *target, *path, *query, *host;
	bool v10, closes; /* HTTP/1.0; keep_alive false */
	enum h1_body body;
	uint64_t content_length;
	bool expect_continue, upgrade;
	uint32_t n_headers;
};

#define OK(n, r, ...)                                                                                                  \
	{                                                                                                              \
		.name = n, .raw = r, .len = sizeof(r) - 1, .err = H1_E_NONE, __VA_ARGS__                               \
	}
#define BAD(n, r, e)                                                                                                   \
	{                                                                                                              \
		.name = n, .raw = r, .len = sizeof(r) - 1, .err = e                                                    \
	}

static const struct req_case requests[] = {
	/* Accepted. */
	OK("simple get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "/", .path = "/", .query = "",
	   .host = "a", .n_headers = 1),
	OK("path and query", "GET /p/q?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", .path = "/p/q",
	   .query = "x=1&y=%20", .host = "example.com:8080"),
	OK("empty query", "GET /p? HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/p", .query = ""),
	OK("http/1.0 no host", "GET /x HTTP/1.0\r\n\r\n", .v10 = true, .closes = true, .host = ""),
	OK("http/1.0 keep-alive", "GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", .v10 = true),
	OK("close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", .closes = true),
	OK("connection list", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE ,bar\r\n\r\n", .closes = true),
	OK("connection lines", "GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nconnection: Close\r\n\r\n",
	   .closes = true),
	OK("keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", .v10 = true,
	   .closes = true),
	OK("content-length", "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n", .method = "POST",
	   .body = H1_BODY_LENGTH, .content_length = 42),
	OK("content-length zero", "POST /u HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n", .body = H1_BODY_NONE),
	OK("content-length leading zeros", "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
	   .body = H1_BODY_LENGTH, .content_length = 7),
	OK("content-length spaces", "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length:   7  \r\n\r\n",
	   .body = H1_BODY_LENGTH, .content_length = 7),
	OK("content-length max", "PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
	   .body = H1_BODY_LENGTH, .content_length = UINT64_MAX),
	OK("chunked", "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", .body = H1_BODY_CHUNKED),
	OK("chunked case", "POST /u HTTP/1.1\r\nHost: a\r\ntransfer-encoding: ChUnKeD\r\n\r\n",
	   .body = H1_BODY_CHUNKED),
	OK("gzip then chunked", "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip , chunked\r\n\r\n",
	   .body = H1_BODY_CHUNKED),
	OK("expect", "PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n",
	   .expect_continue = true, .body = H1_BODY_LENGTH, .content_length = 5),
	OK("expect on 1.0 ignored", "PUT /u HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", .v10 = true, .closes = true,
	   .expect_continue = false),
	OK("upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	   .upgrade = true),
	OK("upgrade without connection", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", .upgrade = false),
	OK("head", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", .method = "HEAD"),
	OK("connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", .method = "CONNECT",
	   .target = "example.com:443", .host = "example.com:443", .path = "", .query = ""),
	OK("connect ipv6", "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", .host = "[::1]:443"),
	OK("options asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", .path = "*", .query = ""),
	OK("absolute-form", "GET http://Other.example:81/p/q?r HTTP/1.1\r\nHost: ignored\r\n\r\n",
	   .target = "http://Other.example:81/p/q?r", .host = "Other.example:81", .path = "/p/q", .query = "r"),
	OK("absolute-form https no path", "GET HTTPS://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", .host = "h", .path = "/",
	   .query = "q=1"),
	OK("absolute-form bare", "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", .host = "h", .path = "/", .query = ""),
	OK("any token method", "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", .method = "PURGE"),
	OK("lower case method", "get /x HTTP/1.1\r\nHost: a\r\n\r\n", .method = "get"),
	OK("leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET"),
	OK("whitespace around values", "GET / HTTP/1.1\r\nHost:a\r\nX-A: \t b c \t \r\nX-E:\r\nX-F:   \r\n\r\n",
	   .host = "a", .n_headers = 4),
	OK("obs-text in value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\x80\xff\r\n\r\n"),
	OK("host ipv6 and port", "GET / HTTP/1.1\r\nHost: [fe80::1]:8080\r\n\r\n", .host = "[fe80::1]:8080"),
	OK("host empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", .host = "a:"),
	OK("absolute-form ipv6", "GET http://[::1]:80/x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", .host = "[::1]:80",
	   .path = "/x"),
	OK("empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", .host = ""),
	OK("tchar names", "GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09Az: v\r\n\r\n", .n_headers = 2),
	OK("unusual target bytes", "GET /a|b{c}^\"<>\\ HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/a|b{c}^\"<>\\"),

	/* Request smuggling: framing two implementations could read differently. */
	BAD("cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	    H1_E_CL_AND_TE),
	BAD("te and cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	    H1_E_CL_AND_TE),
	BAD("duplicate cl equal", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	    H1_E_BAD_CONTENT_LENGTH),
	BAD("duplicate cl differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n",
	    H1_E_BAD_CONTENT_LENGTH),
	BAD("cl list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	BAD("cl sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	BAD("cl negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	BAD("cl hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	BAD("cl inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	BAD("cl empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	BAD("cl overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
	    H1_E_BAD_CONTENT_LENGTH),
	BAD("cl trailing tab", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\t\r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	BAD("cl leading tab", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t5\r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	BAD("te tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n", H1_E_BAD_TRANSFER_ENCODING),
	BAD("te not final chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	    H1_E_BAD_TRANSFER_ENCODING),
	BAD("te chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	    H1_E_BAD_TRANSFER_ENCODING),
	BAD("te gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", H1_E_BAD_TRANSFER_ENCODING),
	BAD("te identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
	    H1_E_BAD_TRANSFER_ENCODING),
	BAD("te lookalike", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
	    H1_E_BAD_TRANSFER_ENCODING),
	BAD("te quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
	    H1_E_BAD_TRANSFER_ENCODING),
	BAD("te trailing comma", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n",
	    H1_E_BAD_TRANSFER_ENCODING),
	BAD("te empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", H1_E_BAD_TRANSFER_ENCODING),
	BAD("te two lines",
	    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
	    H1_E_BAD_TRANSFER_ENCODING),
	BAD("te on http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_BAD_TRANSFER_ENCODING),
	BAD("te with parameter", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
	    H1_E_BAD_TRANSFER_ENCODING),
	BAD("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", H1_E_OBS_FOLD),
	BAD("obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", H1_E_OBS_FOLD),
	BAD("space before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", H1_E_OBS_FOLD),
	BAD("folded te", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", H1_E_OBS_FOLD),
	BAD("bare cr in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", H1_E_BARE_CR),
	BAD("bare cr line end", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", H1_E_BARE_CR),
	BAD("bare cr request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", H1_E_BARE_CR),
	BAD("bare cr in target", "GET /\rx HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BARE_CR),
	BAD("bare cr end of head", "GET / HTTP/1.1\r\nHost: a\r\n\rX", H1_E_BARE_CR),
	BAD("bare lf line end", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", H1_E_BARE_LF),
	BAD("bare lf request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", H1_E_BARE_LF),
	BAD("bare lf end of head", "GET / HTTP/1.1\r\nHost: a\r\n\n", H1_E_BARE_LF),
	BAD("bare lf in name", "GET / HTTP/1.1\r\nHost: a\r\nX\n: b\r\n\r\n", H1_E_BARE_LF),
	BAD("bare lf before request", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BARE_LF),
	BAD("space before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", H1_E_BAD_HEADER_NAME),
	BAD("tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n",
	    H1_E_BAD_HEADER_NAME),
	BAD("empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", H1_E_BAD_HEADER_NAME),
	BAD("no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", H1_E_BAD_HEADER_NAME),
	BAD("name not token", "GET / HTTP/1.1\r\nHost: a\r\nX(y): v\r\n\r\n", H1_E_BAD_HEADER_NAME),
	BAD("name utf-8", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: v\r\n\r\n", H1_E_BAD_HEADER_NAME),
	BAD("nul in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("ctl in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("del in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("esc in value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[31m\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("host two colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("host bad port", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("host userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", H1_E_BAD_HEADER_VALUE),
	BAD("missing host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", H1_E_MISSING_HOST),
	BAD("duplicate host", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", H1_E_MISSING_HOST),
	BAD("duplicate host equal", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", H1_E_MISSING_HOST),
	BAD("duplicate host 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", H1_E_MISSING_HOST),
	BAD("absolute-form without host", "GET http://a/ HTTP/1.1\r\n\r\n", H1_E_MISSING_HOST),

	/* Request line. */
	BAD("method not token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_METHOD),
	BAD("method utf-8", "G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_METHOD),
	BAD("leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_METHOD),
	BAD("tls hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", H1_E_BAD_METHOD),
	BAD("method tab", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_METHOD),
	BAD("two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("target two spaces", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_VERSION),
	BAD("target nul", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("target ctl", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("target tab", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("target del", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("target non-ascii", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("target fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("target relative", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("asterisk not options", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("authority-form not connect", "GET a.b:443 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("connect origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("connect no port", "CONNECT a.b HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("connect bad port", "CONNECT a.b:4x3 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("connect empty host", "CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("connect colons", "CONNECT ::888 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("connect open bracket", "CONNECT [::1:443 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("connect userinfo", "CONNECT u@a.b:443 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("absolute-form userinfo", "GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("absolute-form empty host", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("absolute-form other scheme", "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
	BAD("http/0.9", "GET /\r\n\r\n", H1_E_BAD_VERSION),
	BAD("version lower case", "GET / http/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_VERSION),
	BAD("version 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", H1_E_BAD_VERSION),
	BAD("version trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", H1_E_BAD_VERSION),
	BAD("version 2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", H1_E_VERSION_NOT_SUPPORTED),
	BAD("version 0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", H1_E_VERSION_NOT_SUPPORTED),
	BAD("version 1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", H1_E_VERSION_NOT_SUPPORTED),
};

static void check_str(const char *what, const char *name, struct h1_str got, const char *want)
{
	if (!want)
		return;
	cr_expect(got.p && got.len == strlen(want) && !memcmp(got.p, want, got.len), "%s: %s \"%.*s\", want \"%s\"",
		  name, what, (int)got.len, got.p ? got.p : "", want);
}

/* A heap copy of exactly len bytes: ASan sees any read past what arrived. */
static char *exact_copy(const char *raw, size_t len)
{
	char *buf = malloc(len ? len : 1);

	cr_assert(buf);
	memcpy(buf, raw, len);
	return buf;
}

static void check_request(const struct req_case *c)
{
	static struct h1_request req;
	enum h1_error err;
	char *buf = exact_copy(c->raw, c->len);
	size_t i;
	int r;

	/* Every proper prefix: "more", or (for a refused head) already the same error. */
	for (i = 0; i < c->len; i++) {
		char *part = exact_copy(c->raw, i);

		r = h1_parse_request(part, i, &req, &err);
		free(part);
		if (c->err == H1_E_NONE)
			cr_assert_eq(r, 0, "%s: prefix of %zu bytes: got %d (%s), want 0", c->name, i, r,
				     h1_error_name(err));
		else
			cr_assert(r == 0 || (r == -1 && err == c->err),
				  "%s: prefix of %zu bytes: got %d (%s), want 0 or %s", c->name, i, r,
				  h1_error_name(err), h1_error_name(c->err));
	}
	r = h1_parse_request(buf, c->len, &req, &err);
	if (c->err != H1_E_NONE) {
		cr_expect(r == -1 && err == c->err, "%s: got %d (%s), want %s", c->name, r, h1_error_name(err),
			  h1_error_name(c->err));
		free(buf);
		return;
	}
	cr_assert_eq(r, (int)c->len, "%s: got %d (%s), want %zu", c->name, r, h1_error_name(err), c->len);
	check_str("method", c->name, req.method, c->method);
	check_str("target", c->name, req.target, c->target);
	check_str("path", c->name, req.path, c->path);
	check_str("query", c->name, req.query, c->query);
	check_str("host", c->name, req.host, c->host);
	cr_expect_eq(req.minor_version, c->v10 ? 0 : 1, "%s: minor %d", c->name, req.minor_version);
	cr_expect_eq(req.body, c->body, "%s: body %d, want %d", c->name, req.body, c->body);
	cr_expect_eq(req.content_length, c->content_length, "%s: content length %llu", c->name,
		     (unsigned long long)req.content_length);
	cr_expect_eq(req.keep_alive, !c->closes, "%s: keep_alive %d", c->name, req.keep_alive);
	cr_expect_eq(req.expect_continue, c->expect_continue, "%s: expect_continue", c->name);
	cr_expect_eq(req.upgrade, c->upgrade, "%s: upgrade", c->name);
	if (c->n_headers)
		cr_expect_eq(req.n_headers, c->n_headers, "%s: %u headers", c->name, req.n_headers);
	cr_expect_eq(req.is_head, req.method.len == 4 && !memcmp(req.method.p, "HEAD", 4));
	cr_expect_eq(req.is_connect, req.method.len == 7 && !memcmp(req.method.p, "CONNECT", 7));
	free(buf);
}

Test(h1, request_table)
{
	size_t i;

	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		check_request(&requests[i]);
}

Test(h1, header_fields_and_lookup)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long:  v1 v2\t\r\nx-long: second\r\n"
				  "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\nX-Keep: 2\r\n\r\n";
	static struct h1_request req;
	const struct h1_header *h;
	enum h1_error err;

	cr_assert_eq(h1_parse_request(raw, sizeof(raw) - 1, &req, &err), (int)sizeof(raw) - 1);
	cr_assert_eq(req.n_headers, 7);
	check_str("name", "fields", req.headers[1].name, "X-Long");
	check_str("value", "fields", req.headers[1].value, "v1 v2");
	h = h1_find(req.headers, req.n_headers, "X-LONG");
	cr_assert(h == &req.headers[1]);
	cr_expect_null(h1_find(req.headers, req.n_headers, "x-lon"));
	cr_expect(h1_name_eq(req.headers[0].name, "HOST"));
	cr_expect(!h1_name_eq(req.headers[0].name, "hosts"));

	/* RFC 9110 §7.6.1: the fixed list, and what Connection names. */
	cr_expect(h1_is_hop_by_hop(req.headers, req.n_headers, req.headers[3].name)); /* Connection */
	cr_expect(h1_is_hop_by_hop(req.headers, req.n_headers, req.headers[4].name)); /* X-Drop, listed */
	cr_expect(h1_is_hop_by_hop(req.headers, req.n_headers, req.headers[5].name)); /* TE */
	cr_expect(!h1_is_hop_by_hop(req.headers, req.n_headers, req.headers[6].name));
	cr_expect(!h1_is_hop_by_hop(req.headers, req.n_headers, req.headers[0].name));
	cr_expect(h1_is_hop_by_hop(req.headers, req.n_headers, (struct h1_str){ "keep-alive", 10 }));
	cr_expect(h1_is_hop_by_hop(req.headers, req.n_headers, (struct h1_str){ "Proxy-Authorization", 19 }));
	cr_expect(h1_is_hop_by_hop(NULL, 0, (struct h1_str){ "Transfer-Encoding", 17 }));
	cr_expect(h1_is_hop_by_hop(NULL, 0, (struct h1_str){ "trailer", 7 }));
	cr_expect(!h1_is_hop_by_hop(NULL, 0, (struct h1_str){ "x-drop", 6 }));
}

/* Connection may come on several lines, its options in any case, with empty list elements. */
Test(h1, hop_by_hop_from_several_connection_lines)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: , x-one ,,\r\nCONNECTION: X-TWO\r\n"
				  "X-One: 1\r\nx-two: 2\r\nX-Three: 3\r\n\r\n";
	static struct h1_request req;
	enum h1_error err;

	cr_assert_eq(h1_parse_request(raw, sizeof(raw) - 1, &req, &err), (int)sizeof(raw) - 1);
	cr_expect(req.keep_alive);
	cr_expect(h1_is_hop_by_hop(req.headers, req.n_headers, req.headers[3].name));
	cr_expect(h1_is_hop_by_hop(req.headers, req.n_headers, req.headers[4].name));
	cr_expect(!h1_is_hop_by_hop(req.headers, req.n_headers, req.headers[5].name));
	cr_expect(!h1_is_hop_by_hop(req.headers, req.n_headers, (struct h1_str){ "x-on", 4 }));
}

/* The head ends at its blank line: a body or a pipelined request after it is not read. */
Test(h1, bytes_after_head)
{
	static const char raw[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n";
	static struct h1_request req;
	enum h1_error err;
	int head = (int)(strstr(raw, "hello") - raw);

	cr_expect_eq(h1_parse_request(raw, sizeof(raw) - 1, &req, &err), head);
	cr_expect_eq(h1_parse_request(raw + head + 5, sizeof(raw) - 1 - (size_t)head - 5, &req, &err), 0);
}

struct resp_case {
	const char *name;
	const char *raw;
	size_t len;
	bool head, connect; /* what the request was */
	enum h1_error err;
	uint16_t status;
	enum h1_body body;
	uint64_t content_length;
	bool keep_alive;
	bool v10;
};

#define ROK(n, r, ...)                                                                                                 \
	{                                                                                                              \
		.name = n, .raw = r, .len = sizeof(r) - 1, __VA_ARGS__                                                 \
	}
#define RBAD(n, r, e)                                                                                                  \
	{                                                                                                              \
		.name = n, .raw = r, .len = sizeof(r) - 1, .err = e                                                    \
	}

static const struct resp_case responses[] = {
	ROK("content-length", "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", .status = 200, .body = H1_BODY_LENGTH,
	    .content_length = 12, .keep_alive = true),
	ROK("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .status = 200, .body = H1_BODY_CHUNKED,
	    .keep_alive = true),
	ROK("no framing: close", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", .status = 200, .body = H1_BODY_CLOSE),
	ROK("te not final chunked: close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .status = 200,
	    .body = H1_BODY_CLOSE),
	ROK("te chunked then gzip: close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .status = 200,
	    .body = H1_BODY_CLOSE),
	ROK("head", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", .head = true, .status = 200, .body = H1_BODY_NONE,
	    .content_length = 100, .keep_alive = true),
	ROK("head chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .head = true, .status = 200,
	    .body = H1_BODY_NONE, .keep_alive = true),
	ROK("204", "HTTP/1.1 204 No Content\r\n\r\n", .status = 204, .body = H1_BODY_NONE, .keep_alive = true),
	ROK("304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", .status = 304,
	    .body = H1_BODY_NONE, .content_length = 50, .keep_alive = true),
	ROK("100 continue", "HTTP/1.1 100 Continue\r\n\r\n", .status = 100, .body = H1_BODY_NONE, .keep_alive = true),
	ROK("101 upgrade", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	    .status = 101, .body = H1_BODY_TUNNEL),
	ROK("2xx to connect", "HTTP/1.1 200 Connection Established\r\n\r\n", .connect = true, .status = 200,
	    .body = H1_BODY_TUNNEL),
	ROK("4xx to connect", "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\n", .connect = true, .status = 407,
	    .body = H1_BODY_NONE, .keep_alive = true),
	ROK("1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", .v10 = true,
	    .status = 200, .body = H1_BODY_LENGTH, .content_length = 1, .keep_alive = true),
	ROK("1.0 default close", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", .v10 = true, .status = 200,
	    .body = H1_BODY_LENGTH, .content_length = 1),
	ROK("close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", .status = 200,
	    .body = H1_BODY_LENGTH, .content_length = 1),
	ROK("no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", .status = 200, .keep_alive = true),
	ROK("empty reason", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", .status = 404, .keep_alive = true),
	ROK("599", "HTTP/1.1 599 Custom\tReason \xc3\xa9\r\nContent-Length: 0\r\n\r\n", .status = 599,
	    .keep_alive = true),
	RBAD("cl and te", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_CL_AND_TE),
	RBAD("duplicate cl", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	     H1_E_BAD_CONTENT_LENGTH),
	RBAD("cl list", "HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n", H1_E_BAD_CONTENT_LENGTH),
	RBAD("te on 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_BAD_TRANSFER_ENCODING),
	RBAD("te malformed", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,,\r\n\r\n", H1_E_BAD_TRANSFER_ENCODING),
	RBAD("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", H1_E_OBS_FOLD),
	RBAD("bare lf", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", H1_E_BARE_LF),
	RBAD("bare cr", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", H1_E_BARE_CR),
	RBAD("status two digits", "HTTP/1.1 20 OK\r\n\r\n", H1_E_BAD_STATUS),
	RBAD("status four digits", "HTTP/1.1 2000 OK\r\n\r\n", H1_E_BAD_STATUS),
	RBAD("status 600", "HTTP/1.1 600 X\r\n\r\n", H1_E_BAD_STATUS),
	RBAD("status 099", "HTTP/1.1 099 X\r\n\r\n", H1_E_BAD_STATUS),
	RBAD("reason ctl", "HTTP/1.1 200 O\x01K\r\n\r\n", H1_E_BAD_STATUS),
	RBAD("version", "HTTP/1.1x200 OK\r\n\r\n", H1_E_BAD_VERSION),
	RBAD("version 2", "HTTP/2.0 200 OK\r\n\r\n", H1_E_VERSION_NOT_SUPPORTED),
	RBAD("not http", "ICY 200 OK\r\n\r\n", H1_E_BAD_VERSION),
	RBAD("leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n", H1_E_BAD_VERSION),
	RBAD("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", H1_E_BAD_HEADER_NAME),
	RBAD("nul", "HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", H1_E_BAD_HEADER_VALUE),
};

Test(h1, response_table)
{
	static struct h1_response resp;
	enum h1_error err;
	size_t i, k;
	int r;

	for (i = 0; i < sizeof(responses) / sizeof(responses[0]); i++) {
		const struct resp_case *c = &responses[i];
		char *buf = exact_copy(c->raw, c->len);

		for (k = 0; k < c->len; k++) {
			r = h1_parse_response(buf, k, c->head, c->connect, &resp, &err);
			cr_assert(r == 0 || (c->err && r == -1 && err == c->err),
				  "%s: prefix of %zu bytes: got %d (%s)", c->name, k, r, h1_error_name(err));
		}
		r = h1_parse_response(buf, c->len, c->head, c->connect, &resp, &err);
		free(buf);
		if (c->err) {
			cr_expect(r == -1 && err == c->err, "%s: got %d (%s), want %s", c->name, r, h1_error_name(err),
				  h1_error_name(c->err));
			continue;
		}
		cr_assert_eq(r, (int)c->len, "%s: got %d (%s)", c->name, r, h1_error_name(err));
		cr_expect_eq(resp.status, c->status, "%s: status %u", c->name, resp.status);
		cr_expect_eq(resp.body, c->body, "%s: body %d, want %d", c->name, resp.body, c->body);
		cr_expect_eq(resp.content_length, c->content_length, "%s: content length", c->name);
		cr_expect_eq(resp.keep_alive, c->keep_alive, "%s: keep_alive %d", c->name, resp.keep_alive);
		cr_expect_eq(resp.minor_version, c->v10 ? 0 : 1, "%s: minor", c->name);
	}
}

Test(h1, response_reason)
{
	static const char raw[] = "HTTP/1.1 418 I'm a teapot\r\n\r\n";
	static struct h1_response resp;
	enum h1_error err;

	cr_assert_eq(h1_parse_response(raw, sizeof(raw) - 1, false, false, &resp, &err), (int)sizeof(raw) - 1);
	check_str("reason", "teapot", resp.reason, "I'm a teapot");
	cr_expect_eq(resp.n_headers, 0);
}

/* One chunked body case: the bytes, what the body's length is within them, and its payload. */
struct chunk_case {
	const char *name;
	const char *raw;
	size_t len;
	long body_len; /* -1: an error */
	enum h1_error err;
	const char *payload;
	bool done;
};

#define CHUNK(n, r, bl, pl, d)                                                                                         \
	{                                                                                                              \
		.name = n, .raw = r, .len = sizeof(r) - 1, .body_len = bl, .payload = pl, .done = d                    \
	}
#define CHUNK_BAD(n, r, e)                                                                                             \
	{                                                                                                              \
		.name = n, .raw = r, .len = sizeof(r) - 1, .body_len = -1, .err = e                                    \
	}

static const struct chunk_case chunks[] = {
	CHUNK("one chunk", "5\r\nhello\r\n0\r\n\r\n", 15, "hello", true),
	CHUNK("two chunks hex", "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", 28, "abc0123456789", true),
	CHUNK("leading zeros", "00000b\r\nhello world\r\n0\r\n\r\n", 26, "hello world", true),
	CHUNK("extensions", "5;name=value;q=\"a b\"\r\nhello\r\n0 ; last\r\n\r\n", 41, "hello", true),
	CHUNK("trailers", "2\r\nhi\r\n0\r\nX-Sum: 1\r\nX-Other:\tv\r\n\r\n", 34, "hi", true),
	CHUNK("next message after", "1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 11, "x", true),
	CHUNK("empty body", "0\r\n\r\nrest", 5, "", true),
	CHUNK("unfinished", "5\r\nhel", 6, "hel", false),
	CHUNK("unfinished trailer", "0\r\nX: y\r\n", 9, "", false),
	CHUNK_BAD("size not hex", "5x\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size 0x", "0x5\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size sign", "+5\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size empty", "\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size empty with extension", ";x\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size leading space", " 5\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size trailing space", "5 \r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size overflow", "10000000000000000\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size bare lf", "5\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("size bare cr", "5\rhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("no crlf after data", "5\r\nhelloX\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("lf only after data", "5\r\nhello\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("cr only after data", "5\r\nhello\r0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("data longer than size", "3\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("bare lf in extension", "5;a\nb\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("ctl in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("trailer no colon", "0\r\nX\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("trailer space before colon", "0\r\nX : a\r\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("trailer bare lf", "0\r\nX: a\n\r\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("final bare lf", "0\r\n\n", H1_E_BAD_CHUNK),
	CHUNK_BAD("trailer nul", "0\r\nX: \0\r\n\r\n", H1_E_BAD_CHUNK),
};

/* Scans raw in pieces of at most step bytes; returns the body length, or -1 with *err. */
static long scan_in_steps(const char *raw, size_t len, size_t step, struct h1_chunked *c, char *payload,
			  enum h1_error *err)
{
	size_t off = 0, out = 0;

	h1_chunked_init(c);
	while (off < len && !c->done) {
		size_t n = len - off < step ? len - off : step;
		uint64_t before = c->data_bytes;
		char *piece = exact_copy(raw + off, n);
		long r = h1_chunked_scan(c, piece, n, err);

		free(piece);
		if (r < 0)
			return -1;
		cr_assert(r <= (long)n && (r == (long)n || c->done), "scan took %ld of %zu and is not done", r, n);
		/* Byte by byte, a byte is payload exactly when it moved data_bytes. */
		if (step == 1 && c->data_bytes > before)
			payload[out++] = raw[off];
		off += (size_t)r;
	}
	payload[out] = '\0';
	return (long)off;
}

Test(h1, chunked_table)
{
	static const size_t steps[] = { 1, 2, 3, 7, SIZE_MAX };
	char payload[256];
	size_t i, s;

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		const struct chunk_case *c = &chunks[i];

		for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			struct h1_chunked st;
			enum h1_error err = H1_E_NONE;
			long r = scan_in_steps(c->raw, c->len, steps[s], &st, payload, &err);

			if (c->body_len < 0) {
				cr_expect(r == -1 && err == c->err, "%s (step %zu): got %ld (%s), want %s", c->name,
					  steps[s], r, h1_error_name(err), h1_error_name(c->err));
				continue;
			}
			cr_expect_eq(r, c->body_len, "%s (step %zu): body of %ld bytes, want %ld", c->name, steps[s], r,
				     c->body_len);
			cr_expect_eq(st.done, c->done, "%s (step %zu): done %d", c->name, steps[s], st.done);
			cr_expect_eq(st.data_bytes, strlen(c->payload), "%s (step %zu): %llu data bytes", c->name,
				     steps[s], (unsigned long long)st.data_bytes);
			if (steps[s] == 1)
				cr_expect_str_eq(payload, c->payload, "%s: payload \"%s\"", c->name, payload);
		}
	}
}

/* Decodes raw in pieces of at most step bytes, each from an exact-size copy, into payload (in place when
 * in_place: the piece's own buffer); returns the body length, or -1 with *err. */
static long decode_in_steps(const char *raw, size_t len, size_t step, bool in_place, struct h1_chunked *c,
			    char *payload, enum h1_error *err)
{
	size_t off = 0, out = 0;

	h1_chunked_init(c);
	while (off < len && !c->done) {
		size_t n = len - off < step ? len - off : step, got = SIZE_MAX;
		char *piece = exact_copy(raw + off, n);
		char *dst = in_place ? piece : payload + out;
		long r = h1_chunked_decode(c, piece, n, dst, &got, err);

		if (r < 0) {
			free(piece);
			return -1;
		}
		cr_assert(r <= (long)n && (r == (long)n || c->done), "decode took %ld of %zu and is not done", r, n);
		cr_assert(got <= (size_t)r, "%zu payload bytes out of %ld", got, r);
		if (in_place)
			memcpy(payload + out, piece, got);
		free(piece);
		out += got;
		off += (size_t)r;
	}
	payload[out] = '\0';
	cr_assert_eq(out, c->data_bytes);
	return (long)off;
}

Test(h1, chunked_decode_table)
{
	static const size_t steps[] = { 1, 2, 3, 7, SIZE_MAX };
	char payload[256];

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		const struct chunk_case *c = &chunks[i];

		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]) * 2; s++) {
			size_t step = steps[s / 2];
			bool in_place = s % 2;
			struct h1_chunked st;
			enum h1_error err = H1_E_NONE;
			long r = decode_in_steps(c->raw, c->len, step, in_place, &st, payload, &err);

			if (c->body_len < 0) {
				cr_expect(r == -1 && err == c->err, "%s (step %zu): got %ld (%s), want %s", c->name,
					  step, r, h1_error_name(err), h1_error_name(c->err));
				continue;
			}
			cr_expect_eq(r, c->body_len, "%s (step %zu): body of %ld bytes, want %ld", c->name, step, r,
				     c->body_len);
			cr_expect_eq(st.done, c->done, "%s (step %zu): done %d", c->name, step, st.done);
			cr_expect_str_eq(payload, c->payload, "%s (step %zu%s): payload \"%s\"", c->name, step,
					 in_place ? ", in place" : "", payload);
		}
	}
}

/* Every cut of a body with extensions and trailers into two pieces decodes to the same payload. */
Test(h1, chunked_decode_every_split)
{
	static const char raw[] = "4;a=b\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
	static const char want[] = "Wikipedia in\r\n\r\nchunks.";
	const size_t len = sizeof(raw) - 1;
	char buf[sizeof(raw)], out[sizeof(raw)];

	for (size_t cut = 0; cut <= len; cut++) {
		struct h1_chunked c;
		enum h1_error err;
		size_t a = 0, b = 0;
		long r1, r2 = 0;

		memcpy(buf, raw, len);
		h1_chunked_init(&c);
		r1 = h1_chunked_decode(&c, buf, cut, buf, &a, &err);
		cr_assert_geq(r1, 0, "cut %zu: %s", cut, h1_error_name(err));
		memcpy(out, buf, a);
		if (!c.done) {
			r2 = h1_chunked_decode(&c, buf + cut, len - cut, out + a, &b, &err);
			cr_assert_geq(r2, 0, "cut %zu: %s", cut, h1_error_name(err));
		}
		cr_expect(c.done, "cut %zu", cut);
		cr_expect_eq((size_t)(r1 + r2), len - 4, "cut %zu: body of %ld bytes", cut, r1 + r2);
		cr_expect_eq(a + b, sizeof(want) - 1, "cut %zu: %zu payload bytes", cut, a + b);
		cr_expect(!memcmp(out, want, sizeof(want) - 1), "cut %zu: payload %.*s", cut, (int)(a + b), out);
	}
}

Test(h1, chunked_large_sizes)
{
	struct h1_chunked c;
	enum h1_error err;
	static const char big[] = "fffffffffffffff\r\n"; /* 2^60 - 1: accepted, then data */
	char data[4096];

	h1_chunked_init(&c);
	cr_assert_eq(h1_chunked_scan(&c, big, sizeof(big) - 1, &err), (long)sizeof(big) - 1);
	memset(data, 'x', sizeof(data));
	cr_assert_eq(h1_chunked_scan(&c, data, sizeof(data), &err), (long)sizeof(data));
	cr_expect_eq(c.data_bytes, sizeof(data));
	cr_expect(!c.done);
}

Test(h1, chunked_limits)
{
	static char line[H1_MAX_CHUNK_LINE + 8], trailer[H1_MAX_TRAILER_BYTES + 64];
	struct h1_chunked c;
	enum h1_error err;
	size_t n;

	/* A size line with extensions over H1_MAX_CHUNK_LINE. */
	memset(line, 'a', sizeof(line));
	line[0] = '1';
	line[1] = ';';
	h1_chunked_init(&c);
	cr_expect_eq(h1_chunked_scan(&c, line, sizeof(line), &err), -1);
	cr_expect_eq(err, H1_E_TOO_LARGE);
	/* One just under it is fine. */
	h1_chunked_init(&c);
	cr_expect_eq(h1_chunked_scan(&c, line, H1_MAX_CHUNK_LINE - 2, &err), H1_MAX_CHUNK_LINE - 2);

	/* Trailers over H1_MAX_TRAILER_BYTES. */
	n = (size_t)snprintf(trailer, sizeof(trailer), "0\r\n");
	while (n + 16 < sizeof(trailer))
		n += (size_t)snprintf(trailer + n, sizeof(trailer) - n, "X-Trailer: abc\r\n");
	h1_chunked_init(&c);
	cr_expect_eq(h1_chunked_scan(&c, trailer, n, &err), -1);
	cr_expect_eq(err, H1_E_TOO_LARGE);
}

Test(h1, chunked_decode_limits)
{
	static char line[H1_MAX_CHUNK_LINE + 8], trailer[H1_MAX_TRAILER_BYTES + 64], dst[H1_MAX_TRAILER_BYTES + 64];
	struct h1_chunked c;
	enum h1_error err;
	size_t n, got;

	memset(line, 'a', sizeof(line));
	line[0] = '1';
	line[1] = ';';
	h1_chunked_init(&c);
	cr_expect_eq(h1_chunked_decode(&c, line, sizeof(line), dst, &got, &err), -1);
	cr_expect_eq(err, H1_E_TOO_LARGE);
	h1_chunked_init(&c);
	cr_expect_eq(h1_chunked_decode(&c, line, H1_MAX_CHUNK_LINE - 2, dst, &got, &err), H1_MAX_CHUNK_LINE - 2);
	cr_expect_eq(got, 0);

	n = (size_t)snprintf(trailer, sizeof(trailer), "0\r\n");
	while (n + 16 < sizeof(trailer))
		n += (size_t)snprintf(trailer + n, sizeof(trailer) - n, "X-Trailer: abc\r\n");
	h1_chunked_init(&c);
	cr_expect_eq(h1_chunked_decode(&c, trailer, n, dst, &got, &err), -1);
	cr_expect_eq(err, H1_E_TOO_LARGE);
}

static size_t build_head(char *buf, size_t size, unsigned int n_fields, size_t value_len)
{
	size_t n = (size_t)snprintf(buf, size, "GET / HTTP/1.1\r\nHost: a\r\n");
	unsigned int i;

	for (i = 1; i < n_fields; i++) {
		n += (size_t)snprintf(buf + n, size - n, "X-%u: ", i);
		memset(buf + n, 'v', value_len);
		n += value_len;
		n += (size_t)snprintf(buf + n, size - n, "\r\n");
	}
	n += (size_t)snprintf(buf + n, size - n, "\r\n");
	return n;
}

Test(h1, header_count_limit)
{
	static char buf[16384];
	static struct h1_request req;
	enum h1_error err;
	size_t n;

	n = build_head(buf, sizeof(buf), H1_MAX_HEADERS, 4);
	cr_expect_eq(h1_parse_request(buf, n, &req, &err), (int)n);
	cr_expect_eq(req.n_headers, H1_MAX_HEADERS);
	n = build_head(buf, sizeof(buf), H1_MAX_HEADERS + 1, 4);
	cr_expect_eq(h1_parse_request(buf, n, &req, &err), -1);
	cr_expect_eq(err, H1_E_TOO_MANY_HEADERS);
}

Test(h1, head_size_limit)
{
	static char buf[H1_MAX_HEAD_BYTES * 2];
	static struct h1_request req;
	enum h1_error err;
	size_t n, extra;

	/* 90 fields, the last value grown so that the head is exactly H1_MAX_HEAD_BYTES: accepted. */
	n = build_head(buf, sizeof(buf), 90, 600);
	cr_assert(n < H1_MAX_HEAD_BYTES);
	extra = H1_MAX_HEAD_BYTES - n;
	memmove(buf + n - 4 + extra, buf + n - 4, 4); /* the last value's CR LF and the blank line */
	memset(buf + n - 4, 'w', extra);
	n += extra;
	cr_assert_eq(n, H1_MAX_HEAD_BYTES);
	cr_expect_eq(h1_parse_request(buf, n, &req, &err), (int)n, "%s", h1_error_name(err));
	cr_expect_eq(h1_parse_request(buf, n - 1, &req, &err), 0);
	/* One more byte of value: the head can no longer end within the limit. */
	memmove(buf + n - 3, buf + n - 4, 4);
	buf[n - 4] = 'w';
	cr_expect_eq(h1_parse_request(buf, n + 1, &req, &err), -1);
	cr_expect_eq(err, H1_E_TOO_LARGE);
	cr_expect_eq(h1_parse_request(buf, n, &req, &err), -1, "at the limit without its end: never complete");
	cr_expect_eq(h1_parse_request(buf, n - 1, &req, &err), 0);
	/* Endless junk-free header bytes are refused at the limit, not buffered. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
	cr_expect_eq(h1_parse_request(buf, sizeof(buf), &req, &err), -1);
	cr_expect_eq(err, H1_E_TOO_LARGE);
}

Test(h1, request_line_limit)
{
	static char buf[H1_MAX_REQUEST_LINE + 64];
	static struct h1_request req;
	enum h1_error err;
	size_t target = H1_MAX_REQUEST_LINE - strlen("GET  HTTP/1.1"), n;

	/* A request line of exactly H1_MAX_REQUEST_LINE bytes. */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'p', target - 1);
	n = 4 + target;
	n += (size_t)sprintf(buf + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
	cr_expect_eq(h1_parse_request(buf, n, &req, &err), (int)n, "%s", h1_error_name(err));
	/* One byte longer. */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'p', target);
	n = 5 + target;
	n += (size_t)sprintf(buf + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
	cr_expect_eq(h1_parse_request(buf, n, &req, &err), -1);
	cr_expect_eq(err, H1_E_TOO_LARGE);
}

Test(h1, error_names)
{
	int e;

	cr_expect_str_eq(h1_error_name(H1_E_CL_AND_TE), "cl_and_te");
	cr_expect_str_eq(h1_error_name(H1_E_BARE_LF), "bare_lf");
	for (e = 0; e < H1_E_MAX; e++) {
		const char *n = h1_error_name((enum h1_error)e);
		size_t i;

		cr_expect(strcmp(n, "unknown"), "error %d has no name", e);
		for (i = 0; n[i]; i++)
			cr_expect((n[i] >= 'a' && n[i] <= 'z') || n[i] == '_', "%s: not snake_case", n);
	}
	cr_expect_str_eq(h1_error_name(H1_E_MAX), "unknown");
}
