/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics listener's request parsing (the HTTP/1 parser's, mapped to statuses), byte by byte, and its address
 * syntax. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "http/h1.h"
#include "metrics/http.h"

/* Every proper prefix must ask for more; the whole must parse to head_len. */
static void expect_parses_byte_by_byte(const char *raw, size_t head_len, const char *method, const char *path,
				       int minor)
{
	struct mhttp_request req;
	size_t len = strlen(raw), i;
	int r;

	for (i = 0; i < head_len; i++) {
		r = mhttp_parse_request(raw, i, &req);
		cr_assert_eq(r, 0, "prefix of %zu bytes of \"%s\": got %d, want 0 (need more)", i, raw, r);
	}
	for (i = head_len; i <= len; i++) {
		r = mhttp_parse_request(raw, i, &req);
		cr_assert_eq(r, (int)head_len, "%zu bytes of \"%s\": got %d, want %zu", i, raw, r, head_len);
	}
	cr_expect_eq(req.method_len, strlen(method));
	cr_expect(!memcmp(req.method, method, req.method_len), "method %.*s", (int)req.method_len, req.method);
	cr_expect_eq(req.path_len, strlen(path), "path \"%.*s\", want \"%s\"", (int)req.path_len, req.path, path);
	cr_expect(!memcmp(req.path, path, req.path_len), "path \"%.*s\", want \"%s\"", (int)req.path_len, req.path,
		  path);
	cr_expect_eq(req.minor_version, minor);
}

Test(metrics_http_parse, prometheus_scrape)
{
	const char *raw =
	    "GET /metrics HTTP/1.1\r\n"
	    "Host: 127.0.0.1:15090\r\n"
	    "User-Agent: Prometheus/2.42.0\r\n"
	    "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
	    "Accept-Encoding: gzip\r\n"
	    "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
	    "\r\n";

	expect_parses_byte_by_byte(raw, strlen(raw), "GET", "/metrics", 1);
}

Test(metrics_http_parse, variants)
{
	const char *http10 = "HEAD /metrics HTTP/1.0\r\n\r\n";
	const char *query = "GET /metrics?name[]=x HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *absolute = "GET http://node:15090/metrics?q HTTP/1.1\r\nHost: node\r\n\r\n";
	const char *absolute_no_path = "GET HTTPS://node:15090 HTTP/1.1\r\nHost: node\r\n\r\n";
	const char *leading_crlf = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *ows = "GET / HTTP/1.1\r\nhOsT:x\r\nX-Empty:\r\nX-Tab:\tv\t\r\nX-Obs: caf\xc3\xa9\r\n\r\n";
	const char *other_method = "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

	expect_parses_byte_by_byte(http10, strlen(http10), "HEAD", "/metrics", 0);
	expect_parses_byte_by_byte(query, strlen(query), "GET", "/metrics", 1);
	expect_parses_byte_by_byte(absolute, strlen(absolute), "GET", "/metrics", 1);
	expect_parses_byte_by_byte(absolute_no_path, strlen(absolute_no_path), "GET", "/", 1);
	expect_parses_byte_by_byte(leading_crlf, strlen(leading_crlf), "GET", "/", 1);
	expect_parses_byte_by_byte(ows, strlen(ows), "GET", "/", 1);
	/* The parser takes any method token; the server answers 405. */
	expect_parses_byte_by_byte(other_method, strlen(other_method), "DELETE", "/metrics", 1);
}

/* A body or a pipelined request after the head is not part of it. */
Test(metrics_http_parse, bytes_after_head)
{
	const char *head = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	char raw[256];

	snprintf(raw, sizeof(raw), "%sGET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n", head);
	expect_parses_byte_by_byte(raw, strlen(head), "GET", "/metrics", 1);
}

static void expect_rejected(const char *raw, size_t len, int status)
{
	struct mhttp_request req;
	int r = mhttp_parse_request(raw, len, &req);

	cr_expect_eq(r, -status, "\"%.*s\": got %d, want %d", (int)len, raw, r, -status);
}

#define REJECT(raw, status) expect_rejected(raw, sizeof(raw) - 1, status)

Test(metrics_http_parse, malformed)
{
	REJECT("GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400); /* two spaces */
	REJECT("GET /metrics  HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	REJECT(" GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	REJECT("GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400); /* not origin-form */
	REJECT("GET /metrics\r\nHost: x\r\n\r\n", 400);		/* HTTP/0.9 */
	REJECT("GET /metrics HTTP/1.1 x\r\nHost: x\r\n\r\n", 400);
	REJECT("GET /metrics http/1.1\r\nHost: x\r\n\r\n", 400);
	REJECT("GET /metrics HTTP/1.10\r\nHost: x\r\n\r\n", 400);
	REJECT("GET /m\x80 HTTP/1.1\r\nHost: x\r\n\r\n", 400);		    /* raw non-ASCII in the target */
	REJECT("G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400);	    /* not a token */
	REJECT("GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400); /* obs-fold */
	REJECT("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400);	    /* space before colon */
	REJECT("GET /metrics HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400);
	REJECT("GET /metrics HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n", 400);
	REJECT("GET /metrics HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400); /* bare CR */
	REJECT("GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n", 400);
	REJECT("GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\x7fz\r\n\r\n", 400);
	REJECT("GET /metrics HTTP/1.1\r\nX-A: b\r\n\r\n", 400);		    /* 1.1 without Host */
	REJECT("GET /metrics HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400); /* two Hosts */
	REJECT("GET /metrics HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	/* Bare LF line ends: the one HTTP/1 parser refuses them everywhere (request smuggling). */
	REJECT("GET /healthz/ready HTTP/1.1\nHost: x\n\n", 400);
	REJECT("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505);
	REJECT("GET /metrics HTTP/0.9\r\nHost: x\r\n\r\n", 505);
	REJECT("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 400); /* NUL in a value */
}

/* Binary junk is refused as soon as it is seen, without waiting for a line end or the buffer to fill. */
Test(metrics_http_parse, junk_rejected_early)
{
	static const char tls_hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, (char)0xfc, 0x03, 0x03 };
	struct mhttp_request req;

	cr_expect_eq(mhttp_parse_request(tls_hello, sizeof(tls_hello), &req), -400);
	cr_expect_eq(mhttp_parse_request("GET /\x00", 6, &req), -400);
	cr_expect_eq(mhttp_parse_request("GET /\rx", 7, &req), -400);
	cr_expect_eq(mhttp_parse_request("GET / HTTP/1.1\r", 15, &req), 0); /* CR LF split across reads */
}

Test(metrics_http_parse, reasons)
{
	cr_expect_str_eq(h1_reason_phrase(200), "OK");
	cr_expect_str_eq(h1_reason_phrase(431), "Request Header Fields Too Large");
	cr_expect_str_eq(h1_reason_phrase(505), "HTTP Version Not Supported");
}

Test(metrics_http_parse, addresses)
{
	static const char *const bad[] = { "",
					   "127.0.0.1",
					   ":15090",
					   "127.0.0.1:",
					   "127.0.0.1:65536",
					   "127.0.0.1:-1",
					   "127.0.0.1:1x",
					   "127.0.0.1:123456",
					   "::1:15090",
					   "[::1]15090",
					   "[::1]:",
					   "[::1",
					   "[]:80",
					   "[127.0.0.1]:80",
					   "localhost:15090",
					   "256.0.0.1:80",
					   "1.2.3.4:80:80" };
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	size_t i;

	cr_assert_eq(mhttp_parse_addr("127.0.0.1:15090", &ss, &len), 0);
	cr_expect_eq(ss.ss_family, AF_INET);
	cr_expect_eq(len, sizeof(struct sockaddr_in));
	cr_expect_eq(ntohs(sin->sin_port), 15090);
	cr_expect_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	cr_assert_eq(mhttp_parse_addr("0.0.0.0:0", &ss, &len), 0);
	cr_expect_eq(ntohs(sin->sin_port), 0);
	cr_assert_eq(mhttp_parse_addr("[::1]:65535", &ss, &len), 0);
	cr_expect_eq(ss.ss_family, AF_INET6);
	cr_expect_eq(ntohs(sin6->sin6_port), 65535);
	cr_expect(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	cr_assert_eq(mhttp_parse_addr("[::]:15090", &ss, &len), 0);
	cr_assert_eq(mhttp_parse_addr("[fe80::1%lo]:15090", &ss, &len), 0);
	cr_expect_neq(sin6->sin6_scope_id, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(mhttp_parse_addr(bad[i], &ss, &len), -EINVAL, "\"%s\" should be rejected", bad[i]);
	cr_expect_eq(mhttp_parse_addr(NULL, &ss, &len), -EINVAL);
}
