/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm-http: the HTTP/1.1 backend of the L7 e2e tests and benchmark, an independent peer of the agent's proxy:
 * requests are parsed by Debian's libhttp-parser, never by the agent's own parser. One epoll loop, non-blocking.
 *
 *   xm-http --id NAME [--port 8080] [--bind ADDR] [--idle-timeout-ms MS] [--max-time SEC] [--fail-status N]
 *           [--delay-ms N] [--log-requests]
 *
 * Endpoints (every response carries "x-backend: NAME"; HEAD answers the same headers without a body):
 *   GET /               "NAME\n"
 *   /echo               JSON {id, method, path, query, version, headers: [[name, value]...], body_len, body_sha256}
 *   /bytes/N            N bytes of a pattern: line k of 16 bytes is printf("%015x\n", k), cut at N bytes;
 *                       ?chunked=1 sends them in chunks of varying size
 *   POST|PUT /upload    reads the body (Content-Length or chunked), answers JSON {id, body_len, body_sha256}
 *   /status/N           status N (200..599); 204 and 304 without a body
 *   /slow?ms=N          "NAME\n" after N ms (a timer: other connections are served meanwhile)
 *   /upgrade            with an Upgrade header: 101 Switching Protocols, then echoes every byte back
 * --fail-status N (500..599): every request is answered "NAME\n" with status N (a failing backend).
 * --delay-ms N: every request is answered as /slow?ms=N (a slow backend). --log-requests: prints
 * "request MS METHOD PATH attempt=N" for each request (MS: CLOCK_MONOTONIC ms; N: x-envoy-attempt-count, "-").
 * Keep-alive and pipelining (responses in request order), `Expect: 100-continue` (100 Continue at the end of
 * the header section), `Connection: close` and HTTP/1.0. A request the parser rejects gets 400 and a close.
 * The default bind address "::" with IPV6_V6ONLY off serves IPv4 and IPv6. Prints "xm-http NAME ready" once
 * listening, and "accepted=N requests=N idle_closed=N" when it exits on SIGTERM, SIGINT or after --max-time
 * seconds. --idle-timeout-ms: a keep-alive connection idle between requests that long is closed without a word,
 * as servers' keep-alive timeouts do (what a client or proxy must survive by reconnecting).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <http_parser.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS   256
#define IN_CAP	     16384	 /* input read but not yet parsed; reading pauses when full */
#define OUT_HIGH     65536	 /* parsing and generating pause while this much output is unsent */
#define REQ_TEXT_MAX (64 * 1024) /* request target plus header section: beyond it, 431 */
#define LINGER_MS    2000	 /* after our FIN, how long unread request bytes are drained before close */
#define ID_MAX	     64

enum conn_mode {
	MODE_HTTP,
	MODE_TUNNEL, /* after a 101: every byte read is written back */
	MODE_LINGER, /* our side is shut down; input is read and dropped until EOF so the peer gets no RST */
};

/* The request being parsed: its target, then "name\0value\0" per header, in one buffer. */
struct request {
	char *text;
	size_t len, cap;
	size_t url_len;
	bool url_done, in_value, too_large;
	unsigned nheaders;
	uint64_t body_len;
	bool sha_started;
};

struct conn {
	int fd;
	uint32_t interest;
	enum conn_mode mode;
	bool peer_eof;
	bool close_after;	    /* the response queued last ends the connection */
	bool waiting_slow;	    /* a /slow response is due at deadline_ms */
	int64_t deadline_ms;	    /* of a /slow response, or of the linger; 0: none */
	struct conn *tprev, *tnext; /* on g_timed while deadline_ms is set */
	struct conn *prev, *next;   /* on g_conns */
	bool in_message;	    /* a request has begun and is not complete */
	int64_t active_ms;	    /* last read or write, for --idle-timeout-ms */
	http_parser parser;
	struct request req;
	EVP_MD_CTX *sha;
	/* a /bytes response generated as the output drains */
	uint64_t gen_left, gen_off;
	bool gen_active, gen_chunked;
	unsigned gen_chunk;
	char *out;
	size_t out_len, out_off, out_cap;
	size_t in_len;
	char in[IN_CAP];
};

static char g_id[ID_MAX];
static unsigned long g_accepted, g_requests;
static struct conn *g_timed;
static struct conn *g_conns; /* all connections, for the idle sweep */
static long g_idle_timeout_ms;
static long g_fail_status; /* --fail-status: 0, or the status every request gets */
static long g_delay_ms;	   /* --delay-ms: 0, or how long every request waits (as /slow) */
static bool g_log_requests;
static unsigned long g_idle_closed;
static int g_ep;
static http_parser_settings g_settings;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die_oom(void)
{
	fprintf(stderr, "xm-http: out of memory\n");
	exit(1);
}

/* ---- output buffer ---- */

static void out_reserve(struct conn *c, size_t more)
{
	size_t need;

	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	need = c->out_len + more;
	if (need <= c->out_cap)
		return;
	if (c->out_off) { /* compact before growing */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
		need = c->out_len + more;
		if (need <= c->out_cap)
			return;
	}
	c->out_cap = c->out_cap ? c->out_cap : 4096;
	while (c->out_cap < need)
		c->out_cap *= 2;
	c->out = realloc(c->out, c->out_cap);
	if (!c->out)
		die_oom();
}

static void out_put(struct conn *c, const void *p, size_t n)
{
	out_reserve(c, n);
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void out_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	out_reserve(c, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(c->out + c->out_len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	c->out_len += (size_t)n;
}

static size_t out_pending(const struct conn *c)
{
	return c->out_len - c->out_off;
}

/* ---- a growing string for JSON bodies ---- */

struct strbuf {
	char *p;
	size_t len, cap;
};

static void sb_put(struct strbuf *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = s->cap ? s->cap : 512;
		while (s->len + n + 1 > s->cap)
			s->cap *= 2;
		s->p = realloc(s->p, s->cap);
		if (!s->p)
			die_oom();
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void sb_str(struct strbuf *s, const char *p)
{
	sb_put(s, p, strlen(p));
}

/* A JSON string; bytes outside printable ASCII become \u00XX, so any input gives valid JSON. */
static void sb_json(struct strbuf *s, const char *p, size_t n)
{
	size_t i;

	sb_put(s, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		char esc[8];

		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			sb_put(s, esc, 2);
		} else if (ch < 0x20 || ch >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			sb_put(s, esc, 6);
		} else {
			sb_put(s, (const char *)&ch, 1);
		}
	}
	sb_put(s, "\"", 1);
}

/* ---- timers: few connections wait at once (slow responses, lingering closes), so a list is enough ---- */

static void timer_set(struct conn *c, int64_t deadline)
{
	if (!c->deadline_ms) {
		c->tprev = NULL;
		c->tnext = g_timed;
		if (g_timed)
			g_timed->tprev = c;
		g_timed = c;
	}
	c->deadline_ms = deadline;
}

static void timer_clear(struct conn *c)
{
	if (!c->deadline_ms)
		return;
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		g_timed = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	c->deadline_ms = 0;
}

/* ---- request capture (libhttp-parser callbacks) ---- */

static struct conn *conn_of(http_parser *p)
{
	return p->data;
}

static int req_append(struct request *r, const char *p, size_t n)
{
	if (r->len + n > REQ_TEXT_MAX) {
		r->too_large = true;
		return -1;
	}
	if (r->len + n > r->cap) {
		r->cap = r->cap ? r->cap : 1024;
		while (r->len + n > r->cap)
			r->cap *= 2;
		r->text = realloc(r->text, r->cap);
		if (!r->text)
			die_oom();
	}
	memcpy(r->text + r->len, p, n);
	r->len += n;
	return 0;
}

static int req_end_url(struct request *r)
{
	if (r->url_done)
		return 0;
	r->url_done = true;
	r->url_len = r->len;
	return req_append(r, "", 1);
}

static int on_message_begin(http_parser *p)
{
	struct request *r = &conn_of(p)->req;

	r->len = r->url_len = 0;
	r->url_done = r->in_value = r->too_large = false;
	r->nheaders = 0;
	r->body_len = 0;
	r->sha_started = false;
	conn_of(p)->in_message = true;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	return req_append(&conn_of(p)->req, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct request *r = &conn_of(p)->req;

	if (req_end_url(r))
		return -1;
	if (r->in_value) { /* a new header begins: end the previous value */
		if (req_append(r, "", 1))
			return -1;
		r->in_value = false;
		r->nheaders++;
	}
	return req_append(r, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct request *r = &conn_of(p)->req;

	if (!r->in_value) {
		if (req_append(r, "", 1))
			return -1;
		r->in_value = true;
	}
	return req_append(r, at, n);
}

/* Walks the "name\0value\0" pairs: *pos starts at 0; returns false after the last. */
static bool req_next_header(const struct request *r, size_t *pos, const char **name, const char **value)
{
	size_t i = *pos ? *pos : r->url_len + 1;

	if (i >= r->len)
		return false;
	*name = r->text + i;
	i += strlen(*name) + 1;
	*value = r->text + i;
	i += strlen(*value) + 1;
	*pos = i;
	return true;
}

static const char *req_header(const struct request *r, const char *want)
{
	const char *name, *value;
	size_t pos = 0;

	while (req_next_header(r, &pos, &name, &value))
		if (!strcasecmp(name, want))
			return value;
	return NULL;
}

static int on_headers_complete(http_parser *p)
{
	struct conn *c = conn_of(p);
	struct request *r = &c->req;
	const char *expect;

	if (req_end_url(r))
		return -1;
	if (r->in_value) {
		if (req_append(r, "", 1))
			return -1;
		r->in_value = false;
		r->nheaders++;
	}
	/* The client waits for this before sending the body; a final response ends the wait otherwise. */
	expect = req_header(r, "expect");
	if (expect && !strcasecmp(expect, "100-continue") && p->http_major == 1 && p->http_minor >= 1)
		out_printf(c, "HTTP/1.1 100 Continue\r\nx-backend: %s\r\n\r\n", g_id);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct conn *c = conn_of(p);

	if (!c->req.sha_started) {
		EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL);
		c->req.sha_started = true;
	}
	EVP_DigestUpdate(c->sha, at, n);
	c->req.body_len += n;
	return 0;
}

static void body_sha256_hex(struct conn *c, char hex[65])
{
	unsigned char md[32];
	unsigned int len = 0, i;

	if (!c->req.sha_started)
		EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL);
	EVP_DigestFinal_ex(c->sha, md, &len);
	c->req.sha_started = false;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* ---- responses ---- */

static const char *reason(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Status";
	}
}

#define BODY_CHUNKED (-1)
#define BODY_NONE    (-2)

/* The status line and headers; clen is the Content-Length, BODY_CHUNKED or BODY_NONE (204, 304). */
static void respond_head(struct conn *c, int status, const char *ctype, long long clen)
{
	http_parser *p = &c->parser;

	out_printf(c, "HTTP/1.1 %d %s\r\nx-backend: %s\r\n", status, reason(status), g_id);
	if (clen >= 0)
		out_printf(c, "Content-Length: %lld\r\n", clen);
	else if (clen == BODY_CHUNKED)
		out_printf(c, "Transfer-Encoding: chunked\r\n");
	if (ctype && clen != BODY_NONE)
		out_printf(c, "Content-Type: %s\r\n", ctype);
	if (c->close_after)
		out_printf(c, "Connection: close\r\n");
	else if (p->http_major == 1 && p->http_minor == 0)
		out_printf(c, "Connection: keep-alive\r\n");
	out_put(c, "\r\n", 2);
}

static void respond(struct conn *c, int status, const char *ctype, const char *body, size_t len)
{
	bool head = c->parser.method == HTTP_HEAD;
	bool bodiless = status == 204 || status == 304;

	respond_head(c, status, ctype, bodiless ? BODY_NONE : (long long)len);
	if (!head && !bodiless)
		out_put(c, body, len);
}

static void respond_id(struct conn *c, int status)
{
	char body[ID_MAX + 2];
	int n = snprintf(body, sizeof(body), "%s\n", g_id);

	respond(c, status, "text/plain", body, (size_t)n);
}

/* Byte o of the /bytes pattern: line o/16 is "%015x\n" of its number, so any lost, doubled or reordered
 * range shows in a comparison. */
static void pattern_fill(char *dst, uint64_t off, size_t n)
{
	while (n) {
		char line[17];
		size_t in_line = off % 16, take = 16 - in_line;

		snprintf(line, sizeof(line), "%015" PRIx64 "\n", (uint64_t)((off / 16) & 0xfffffffffffffffULL));
		if (take > n)
			take = n;
		memcpy(dst, line + in_line, take);
		dst += take;
		off += take;
		n -= take;
	}
}

/* Chunk sizes cycle through these, so a peer sees tiny, odd and large chunks in one body. */
static const size_t chunk_sizes[] = { 1, 7, 100, 1000, 4096, 16384, 65536, 3, 12345, 32768 };

/* Generates /bytes output until OUT_HIGH is pending or the body is complete. */
static void generate(struct conn *c)
{
	while (c->gen_active && out_pending(c) < OUT_HIGH) {
		size_t n;

		if (!c->gen_left) {
			if (c->gen_chunked)
				out_put(c, "0\r\n\r\n", 5);
			c->gen_active = false;
			break;
		}
		n = c->gen_chunked ? chunk_sizes[c->gen_chunk++ % (sizeof(chunk_sizes) / sizeof(chunk_sizes[0]))]
				   : 16384;
		if (n > c->gen_left)
			n = (size_t)c->gen_left;
		if (c->gen_chunked)
			out_printf(c, "%zx\r\n", n);
		out_reserve(c, n);
		pattern_fill(c->out + c->out_len, c->gen_off, n);
		c->out_len += n;
		if (c->gen_chunked)
			out_put(c, "\r\n", 2);
		c->gen_off += n;
		c->gen_left -= n;
	}
}

/* The value of KEY in a query string "a=1&b=2", or NULL. */
static const char *query_param(const char *query, const char *key, char *val, size_t cap)
{
	size_t klen = strlen(key);
	const char *q = query;

	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);

		if (len > klen && !strncmp(q, key, klen) && q[klen] == '=') {
			size_t vlen = len - klen - 1;

			if (vlen >= cap)
				vlen = cap - 1;
			memcpy(val, q + klen + 1, vlen);
			val[vlen] = '\0';
			return val;
		}
		q = amp ? amp + 1 : NULL;
	}
	return NULL;
}

/* A decimal number that is the whole string, or -1. */
static long long parse_count(const char *s, long long max)
{
	long long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	return v;
}

static void respond_echo(struct conn *c, const char *path, const char *query)
{
	struct strbuf s = { 0 };
	const char *name, *value;
	size_t pos = 0;
	char hex[65], num[64];
	bool first = true;

	body_sha256_hex(c, hex);
	sb_str(&s, "{\"id\":");
	sb_json(&s, g_id, strlen(g_id));
	sb_str(&s, ",\"method\":");
	sb_str(&s, "\"");
	sb_str(&s, http_method_str(c->parser.method));
	sb_str(&s, "\",\"path\":");
	sb_json(&s, path, strlen(path));
	sb_str(&s, ",\"query\":");
	sb_json(&s, query, strlen(query));
	snprintf(num, sizeof(num), ",\"version\":\"%u.%u\",\"headers\":[", c->parser.http_major, c->parser.http_minor);
	sb_str(&s, num);
	while (req_next_header(&c->req, &pos, &name, &value)) {
		sb_str(&s, first ? "[" : ",[");
		sb_json(&s, name, strlen(name));
		sb_str(&s, ",");
		sb_json(&s, value, strlen(value));
		sb_str(&s, "]");
		first = false;
	}
	snprintf(num, sizeof(num), "],\"body_len\":%" PRIu64 ",\"body_sha256\":\"", c->req.body_len);
	sb_str(&s, num);
	sb_str(&s, hex);
	sb_str(&s, "\"}\n");
	respond(c, 200, "application/json", s.p, s.len);
	free(s.p);
}

static void respond_upload(struct conn *c)
{
	char body[256], hex[65];
	int n;

	if (c->parser.method != HTTP_POST && c->parser.method != HTTP_PUT) {
		respond_id(c, 405);
		return;
	}
	body_sha256_hex(c, hex);
	n = snprintf(body, sizeof(body), "{\"id\":\"%s\",\"body_len\":%" PRIu64 ",\"body_sha256\":\"%s\"}\n", g_id,
		     c->req.body_len, hex);
	respond(c, 200, "application/json", body, (size_t)n);
}

static void respond_bytes(struct conn *c, long long n, bool chunked)
{
	/* HTTP/1.0 has no chunked encoding. */
	chunked = chunked && !(c->parser.http_major == 1 && c->parser.http_minor == 0);
	respond_head(c, 200, "application/octet-stream", chunked ? BODY_CHUNKED : n);
	if (c->parser.method == HTTP_HEAD)
		return;
	c->gen_active = true;
	c->gen_chunked = chunked;
	c->gen_left = (uint64_t)n;
	c->gen_off = 0;
	c->gen_chunk = 0;
	generate(c);
}

static void respond_upgrade(struct conn *c)
{
	const char *proto = req_header(&c->req, "upgrade");

	out_printf(c, "HTTP/1.1 101 Switching Protocols\r\nx-backend: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n",
		   g_id, proto ? proto : "");
	c->mode = MODE_TUNNEL;
	c->close_after = false;
}

/* The request is complete: queue its response (or arm the timer of a /slow one). */
static void dispatch(struct conn *c)
{
	http_parser *p = &c->parser;
	char *url = c->req.text, *query, val[32];
	const char *path;
	long long n;

	g_requests++;
	url[c->req.url_len] = '\0';
	query = strchr(url, '?');
	if (query)
		*query++ = '\0';
	path = url;
	/* absolute-form: the path begins after the authority */
	if (!strncasecmp(path, "http://", 7)) {
		path = strchr(path + 7, '/');
		path = path ? path : "/";
	}
	if (!http_should_keep_alive(p))
		c->close_after = true;
	if (g_log_requests) {
		const char *attempt = req_header(&c->req, "x-envoy-attempt-count");

		printf("request %" PRId64 " %s %s attempt=%s\n", now_ms(), http_method_str(p->method), path,
		       attempt ? attempt : "-");
		fflush(stdout);
	}

	if (g_fail_status) {
		respond_id(c, (int)g_fail_status);
	} else if (p->upgrade && !strcmp(path, "/upgrade") && p->method != HTTP_CONNECT) {
		respond_upgrade(c);
	} else if (!strcmp(path, "/")) {
		respond_id(c, 200);
	} else if (!strcmp(path, "/echo")) {
		respond_echo(c, path, query ? query : "");
	} else if (!strcmp(path, "/upload")) {
		respond_upload(c);
	} else if (!strncmp(path, "/bytes/", 7) && (n = parse_count(path + 7, 1LL << 40)) >= 0) {
		respond_bytes(c, n, query && query_param(query, "chunked", val, sizeof(val)) && !strcmp(val, "1"));
	} else if (!strncmp(path, "/status/", 8) && (n = parse_count(path + 8, 999)) >= 200 && n <= 599) {
		respond_id(c, (int)n);
	} else if (g_delay_ms || !strcmp(path, "/slow")) {
		n = g_delay_ms ? g_delay_ms
			       : (query && query_param(query, "ms", val, sizeof(val)) ? parse_count(val, 3600000) : 0);
		c->waiting_slow = true;
		timer_set(c, now_ms() + (n > 0 ? n : 0));
	} else if (!strcmp(path, "/upgrade")) {
		respond_id(c, 426);
	} else {
		respond_id(c, 404);
	}
}

static int on_message_complete(http_parser *p)
{
	conn_of(p)->in_message = false;
	dispatch(conn_of(p));
	/* One request at a time: the next is parsed once this one's response is queued in full. */
	http_parser_pause(p, 1);
	return 0;
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
	timer_clear(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		g_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	EVP_MD_CTX_free(c->sha);
	free(c->req.text);
	free(c->out);
	free(c);
}

/* Parses buffered input while nothing holds the next request back. */
static void conn_parse(struct conn *c)
{
	size_t off = 0;

	while (off < c->in_len && c->mode == MODE_HTTP && !c->close_after && !c->waiting_slow && !c->gen_active &&
	       out_pending(c) < OUT_HIGH) {
		http_parser *p = &c->parser;
		size_t n = http_parser_execute(p, &g_settings, c->in + off, c->in_len - off);
		enum http_errno err = HTTP_PARSER_ERRNO(p);

		off += n;
		if (err == HPE_PAUSED) {
			http_parser_pause(p, 0);
			/* An Upgrade this server declined: what follows is HTTP again. */
			if (p->upgrade && c->mode == MODE_HTTP)
				http_parser_init(p, HTTP_REQUEST);
			continue;
		}
		if (err != HPE_OK) {
			c->close_after = true;
			respond_id(c, c->req.too_large ? 431 : 400);
			off = c->in_len;
			break;
		}
	}
	/* bytes after the upgrade request, and all later ones, are the tunnel's */
	if (c->mode == MODE_TUNNEL && off < c->in_len && out_pending(c) < OUT_HIGH) {
		out_put(c, c->in + off, c->in_len - off);
		off = c->in_len;
	}
	if (c->mode == MODE_LINGER)
		off = c->in_len;
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

/* Writes what is pending; -1 when the connection is dead. */
static int conn_flush(struct conn *c)
{
	while (out_pending(c)) {
		ssize_t n = send(c->fd, c->out + c->out_off, out_pending(c), MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	if (c->out_cap > 4 * OUT_HIGH) { /* give back what a large response grew */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return 0;
}

static bool conn_idle(const struct conn *c)
{
	return !out_pending(c) && !c->gen_active && !c->waiting_slow;
}

/* Moves the connection as far as it can go now; false once it is closed. */
static bool conn_progress(struct conn *c)
{
	if (g_idle_timeout_ms) /* a keep-alive connection is idle from its last response on */
		c->active_ms = now_ms();
	for (;;) {
		bool was_idle = conn_idle(c);
		size_t before = c->in_len;

		conn_parse(c);
		generate(c);
		if (conn_flush(c) < 0) {
			conn_close(c);
			return false;
		}
		if (c->gen_active && !out_pending(c))
			continue; /* the socket took all of it: generate more */
		/* Output drained behind a held-back pipeline: parse on, unless parsing could not move at all. */
		if (!c->in_len || !conn_idle(c) || c->mode == MODE_LINGER || c->close_after ||
		    (was_idle && c->in_len == before))
			break;
	}
	if (c->mode == MODE_LINGER)
		return true;
	if (conn_idle(c) && (c->close_after || (c->peer_eof && (c->mode == MODE_TUNNEL || !c->in_len)))) {
		if (c->peer_eof) {
			conn_close(c);
			return false;
		}
		shutdown(c->fd, SHUT_WR);
		c->mode = MODE_LINGER;
		c->in_len = 0;
		timer_set(c, now_ms() + LINGER_MS);
		return true;
	}
	if (c->peer_eof && c->mode == MODE_HTTP && conn_idle(c) && c->in_len) {
		/* Half a request and no more to come. */
		conn_close(c);
		return false;
	}
	return true;
}

static void conn_rearm(struct conn *c)
{
	uint32_t want = 0;
	struct epoll_event ev;

	if (!c->peer_eof && c->in_len < IN_CAP)
		want |= EPOLLIN;
	if (out_pending(c) || c->gen_active)
		want |= EPOLLOUT;
	if (want == c->interest)
		return;
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->interest = want;
}

static void conn_event(struct conn *c, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (c->in_len < IN_CAP && !c->peer_eof) {
			ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);

			if (n == 0) {
				c->peer_eof = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				conn_close(c);
				return;
			} else if (n > 0) {
				c->in_len += (size_t)n;
			}
		} else if (events & (EPOLLERR | EPOLLHUP)) {
			/* reset, or closed both ways while input waits: nothing more can be answered */
			conn_close(c);
			return;
		}
	}
	if (c->mode == MODE_LINGER) {
		c->in_len = 0;
		if (c->peer_eof)
			conn_close(c);
		return;
	}
	if (c->peer_eof && c->mode == MODE_HTTP && !c->in_len && conn_idle(c)) {
		conn_close(c);
		return;
	}
	if (conn_progress(c))
		conn_rearm(c);
}

static void conn_timer(struct conn *c)
{
	timer_clear(c);
	if (c->mode == MODE_LINGER) {
		conn_close(c);
		return;
	}
	if (c->waiting_slow) {
		c->waiting_slow = false;
		respond_id(c, 200);
		if (conn_progress(c))
			conn_rearm(c);
	}
}

/* --idle-timeout-ms: closes keep-alive connections that have waited that long between requests. */
static void idle_sweep(int64_t now)
{
	struct conn *c, *next;

	for (c = g_conns; c; c = next) {
		next = c->next;
		if (c->mode == MODE_HTTP && !c->in_message && !c->in_len && conn_idle(c) && !c->close_after &&
		    now - c->active_ms >= g_idle_timeout_ms) {
			g_idle_closed++;
			conn_close(c);
		}
	}
}

static void accept_all(int lfd)
{
	for (;;) {
		struct epoll_event ev;
		struct conn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;

		if (fd < 0)
			return; /* EAGAIN, or a connection reset before accept */
		g_accepted++;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c)
			die_oom();
		c->fd = fd;
		c->active_ms = now_ms();
		c->sha = EVP_MD_CTX_new();
		if (!c->sha)
			die_oom();
		http_parser_init(&c->parser, HTTP_REQUEST);
		c->parser.data = c;
		c->interest = EPOLLIN;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			EVP_MD_CTX_free(c->sha);
			free(c);
			continue;
		}
		c->next = g_conns;
		if (g_conns)
			g_conns->prev = c;
		g_conns = c;
	}
}

static int open_listener(const char *host, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int one = 1, zero = 0, fd;

	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		len = sizeof(*sin6);
	} else {
		fprintf(stderr, "xm-http: bad bind address %s\n", host);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("xm-http: socket");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6) /* one socket for both families */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "xm-http: bind/listen %s:%u: %s\n", host, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: xm-http --id NAME [--port N] [--bind ADDR] [--idle-timeout-ms MS] [--max-time SEC]\n"
			"              [--fail-status N] [--delay-ms N] [--log-requests]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "max-time", required_argument, NULL, 'm' },
		{ "idle-timeout-ms", required_argument, NULL, 'I' },
		{ "fail-status", required_argument, NULL, 'f' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "log-requests", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	static char tag_listen, tag_sig; /* tell these descriptors from connections in epoll data */
	const char *id = NULL, *host = "::";
	long port = 8080, max_time = 0;
	int64_t stop_at = 0, next_sweep = 0;
	struct epoll_event ev;
	struct rlimit rl;
	int opt, sfd, lfd;
	sigset_t mask;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			id = optarg;
			break;
		case 'p':
			port = strtol(optarg, NULL, 10);
			break;
		case 'b':
			host = optarg;
			break;
		case 'I':
			g_idle_timeout_ms = strtol(optarg, NULL, 10);
			break;
		case 'm':
			max_time = strtol(optarg, NULL, 10);
			break;
		case 'f':
			g_fail_status = strtol(optarg, NULL, 10);
			break;
		case 'd':
			g_delay_ms = strtol(optarg, NULL, 10);
			break;
		case 'l':
			g_log_requests = true;
			break;
		default:
			usage();
		}
	}
	if (!id || strlen(id) >= ID_MAX - 1 || strpbrk(id, "\r\n\"\\") || port <= 0 || port > 65535 || max_time < 0 ||
	    g_idle_timeout_ms < 0 || g_delay_ms < 0 || g_delay_ms > 3600000 ||
	    (g_fail_status && (g_fail_status < 500 || g_fail_status > 599)))
		usage();
	snprintf(g_id, sizeof(g_id), "%s", id);

	g_settings.on_message_begin = on_message_begin;
	g_settings.on_url = on_url;
	g_settings.on_header_field = on_header_field;
	g_settings.on_header_value = on_header_value;
	g_settings.on_headers_complete = on_headers_complete;
	g_settings.on_body = on_body;
	g_settings.on_message_complete = on_message_complete;

	/* thousands of keep-alive connections need more descriptors than the usual soft limit */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	lfd = open_listener(host, (uint16_t)port);
	if (sfd < 0 || g_ep < 0 || lfd < 0)
		return 1;
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_sig;
	epoll_ctl(g_ep, EPOLL_CTL_ADD, sfd, &ev);
	ev.data.ptr = &tag_listen;
	epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("xm-http %s ready\n", id);
	fflush(stdout);
	if (max_time)
		stop_at = now_ms() + max_time * 1000;
	if (g_idle_timeout_ms)
		next_sweep = now_ms() + 10;

	for (;;) {
		struct epoll_event events[MAX_EVENTS];
		int64_t next = next_sweep ? next_sweep : stop_at, now;
		struct conn *t, *tn;
		int timeout = -1, n, i;

		for (t = g_timed; t; t = t->tnext)
			if (!next || t->deadline_ms < next)
				next = t->deadline_ms;
		if (next) {
			int64_t left = next - now_ms();

			timeout = left < 0 ? 0 : left > 1000 ? 1000 : (int)left;
		}
		n = epoll_wait(g_ep, events, MAX_EVENTS, timeout);
		if (n < 0 && errno != EINTR) {
			perror("xm-http: epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			void *p = events[i].data.ptr;

			if (p == &tag_sig)
				goto out;
			if (p == &tag_listen)
				accept_all(lfd);
			else
				conn_event(p, events[i].events);
		}
		now = now_ms();
		if (stop_at && now >= stop_at)
			break;
		if (next_sweep && now >= next_sweep) {
			idle_sweep(now);
			next_sweep = now + (g_idle_timeout_ms >= 40 ? g_idle_timeout_ms / 4 : 10);
		}
		for (t = g_timed; t; t = tn) {
			tn = t->tnext;
			if (t->deadline_ms <= now) {
				conn_timer(t);
				tn = g_timed; /* the list may have changed under us: rescan */
			}
		}
	}
out:
	printf("accepted=%lu requests=%lu idle_closed=%lu\n", g_accepted, g_requests, g_idle_closed);
	return 0;
}
