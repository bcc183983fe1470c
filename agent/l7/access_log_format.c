// SPDX-License-Identifier: Apache-2.0
/*
 * One access-log line from a request record: the JSON object or Istio's default text format. Every value
 * that came from a request or a config is escaped, so no byte a client sends can end a line or a field.
 */
#include "l7/access_log.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/fixbuf.h"

/* Output caps of the untrusted values (escaped bytes), so a line stays under L7_ACCESS_LOG_LINE_MAX. */
#define CAP_PATH   4096
#define CAP_HEADER 1024 /* authority, user agent, x-forwarded-for, request id, method */
#define CAP_NAME   512	/* names from the config: clusters, services, workloads, routes */
#define TRUNCATED  "..."

/* JSON, the longer format: one path, 7 header fields, 8 names, each perhaps cut, and under 900 bytes of the rest
 * (connection_security_policy is a constant). */
_Static_assert(CAP_PATH + 7 * CAP_HEADER + 8 * CAP_NAME + 16 * (sizeof(TRUNCATED) - 1) + 900 < L7_ACCESS_LOG_LINE_MAX,
	       "the caps keep every line under L7_ACCESS_LOG_LINE_MAX");

enum style {
	JSON,	       /* inside a JSON string */
	TEXT_QUOTED,   /* inside "..." of the text format */
	TEXT_UNQUOTED, /* a bare text field: spaces would split it */
};

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one (RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0], cp;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Appends s escaped for style, at most cap bytes of output (then TRUNCATED). JSON: the escapes of RFC 8259,
 * control characters (C0, DEL, C1) as \u00XX, invalid UTF-8 as U+FFFD. Text: \" \\ and \xNN for control
 * characters and invalid UTF-8 (and spaces outside quotes); valid UTF-8 stays readable.
 */
static void put_escaped(struct fixbuf *o, const char *str, size_t cap, enum style style)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), used = 0;
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n;) {
		char esc[16];
		const char *unit = esc;
		size_t ulen, seq, run = i;
		unsigned c, cp2;
		bool control;

		/* Printable ASCII that needs nothing goes out as one run (most of every value). */
		while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\' &&
		       !(s[run] == ' ' && style == TEXT_UNQUOTED))
			run++;
		if (run > i) {
			size_t take = run - i;

			if (used + take > cap) {
				fb_put(o, str + i, cap - used);
				fb_puts(o, TRUNCATED);
				return;
			}
			fb_put(o, str + i, take);
			used += take;
			i = run;
			continue;
		}
		seq = utf8_len(s + i, n - i);
		c = s[i];
		/* The code point of a 2-byte sequence, to find C1 controls (U+0080..U+009F). */
		cp2 = seq == 2 ? ((c & 0x1f) << 6) | (s[i + 1] & 0x3f) : 0;
		control = (seq == 1 && (c < 0x20 || c == 0x7f)) || (seq == 2 && cp2 < 0xa0);
		if (!seq) {
			if (style == JSON)
				unit = "\\ufffd", ulen = 6;
			else
				ulen = (size_t)snprintf(esc, sizeof(esc), "\\x%c%c", hex[c >> 4], hex[c & 15]);
			seq = 1;
		} else if (c == '"' || c == '\\') {
			esc[0] = '\\', esc[1] = (char)c, ulen = 2;
		} else if (control) {
			unsigned cp = seq == 1 ? c : cp2;

			if (style == JSON && cp == '\n')
				unit = "\\n", ulen = 2;
			else if (style == JSON && cp == '\r')
				unit = "\\r", ulen = 2;
			else if (style == JSON && cp == '\t')
				unit = "\\t", ulen = 2;
			else if (style == JSON)
				ulen = (size_t)snprintf(esc, sizeof(esc), "\\u00%c%c", hex[cp >> 4], hex[cp & 15]);
			else
				ulen = seq == 1
					   ? (size_t)snprintf(esc, sizeof(esc), "\\x%c%c", hex[c >> 4], hex[c & 15])
					   : (size_t)snprintf(esc, sizeof(esc), "\\x%c%c\\x%c%c", hex[c >> 4],
							      hex[c & 15], hex[s[i + 1] >> 4], hex[s[i + 1] & 15]);
		} else if (c == ' ') {
			unit = "\\x20", ulen = 4; /* only outside quotes: inside, the run above took it */
		} else {
			unit = (const char *)s + i, ulen = seq;
		}
		if (used + ulen > cap) {
			fb_puts(o, TRUNCATED);
			return;
		}
		fb_put(o, unit, ulen);
		used += ulen;
		i += seq;
	}
}

size_t l7_json_escape(const char *value, size_t cap, char *buf, size_t len)
{
	struct fixbuf o;

	fb_init(&o, buf, len);
	put_escaped(&o, value, cap, JSON);
	return fb_finish(&o);
}

/* A JSON member: ,"key":"value", or null when value is NULL or empty. */
static void json_str(struct fixbuf *o, const char *key, const char *value, size_t cap)
{
	fb_put(o, ",\"", 2);
	fb_puts(o, key);
	if (!value || !*value) {
		fb_puts(o, "\":null");
		return;
	}
	fb_put(o, "\":\"", 3);
	put_escaped(o, value, cap, JSON);
	fb_put(o, "\"", 1);
}

static void json_u64(struct fixbuf *o, const char *key, uint64_t v)
{
	fb_put(o, ",\"", 2);
	fb_puts(o, key);
	fb_put(o, "\":", 2);
	fb_put_u64(o, v);
}

/* A text field: the escaped value, or "-" when NULL or empty (Envoy's absent value). */
static void text_str(struct fixbuf *o, const char *value, size_t cap, enum style style)
{
	if (!value || !*value)
		fb_put(o, "-", 1);
	else
		put_escaped(o, value, cap, style);
}

/* RFC 3339 in UTC with milliseconds, as Envoy's %START_TIME%: 2026-12-07T04:14:33.123Z. No tz lock. */
static void format_time(uint64_t unix_ns, char *buf, size_t len)
{
	uint64_t secs = unix_ns / 1000000000ULL;
	unsigned ms = (unsigned)(unix_ns / 1000000ULL % 1000), sod = (unsigned)(secs % 86400);
	/* Civil date from days since the epoch (H. Hinnant's days_from_civil, inverted). */
	uint64_t z = secs / 86400 + 719468, era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	unsigned day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
	uint64_t year = yoe + era * 400 + (month <= 2);

	const unsigned parts[] = { (unsigned)(year % 10000), month, day, sod / 3600, sod / 60 % 60, sod % 60, ms };
	static const char sep[] = "--T::.Z";
	static const int width[] = { 4, 2, 2, 2, 2, 2, 3 };
	char *p = buf;

	/* By hand: snprintf costs more than the rest of a line. */
	if (len < 25)
		return;
	for (int i = 0; i < 7; i++) {
		for (unsigned v = parts[i], d = (unsigned)width[i]; d > 0; d--, v /= 10)
			p[d - 1] = (char)('0' + v % 10);
		p += width[i];
		*p++ = sep[i];
	}
	*p = '\0';
}

/* "10.0.0.1:8080", "[fd00::1]:8080", or "" when family is 0. */
static void format_addr(const union xm_addr *a, uint16_t port, uint8_t family, char *buf, size_t len)
{
	char digits[8];
	size_t n = 0, d = 0;

	buf[0] = '\0';
	if (len < INET6_ADDRSTRLEN + 9 || (family != XM_FAMILY_V4 && family != XM_FAMILY_V6))
		return;
	if (family == XM_FAMILY_V6)
		buf[n++] = '[';
	if (!inet_ntop(family == XM_FAMILY_V4 ? AF_INET : AF_INET6, a->bytes, buf + n, INET6_ADDRSTRLEN)) {
		buf[0] = '\0';
		return;
	}
	n += strlen(buf + n);
	if (family == XM_FAMILY_V6)
		buf[n++] = ']';
	buf[n++] = ':';
	do {
		digits[d++] = (char)('0' + port % 10);
		port /= 10;
	} while (port);
	while (d)
		buf[n++] = digits[--d];
	buf[n] = '\0';
}

/* Envoy's %RESPONSE_CODE_DETAILS% when the proxy did not name one. */
static const char *response_details(const struct l7_record *r)
{
	if (r->details)
		return r->details;
	if (r->flags & L7_RF_BAD_REQUEST)
		return "http1.codec_error";
	if (r->flags & L7_RF_NR)
		return "route_not_found";
	if (r->flags & L7_RF_UH)
		return "no_healthy_upstream";
	if (r->flags & L7_RF_UF)
		return "upstream_reset_before_response_started{connection_failure}";
	if (r->flags & L7_RF_UC)
		return "upstream_reset_before_response_started{connection_termination}";
	if (r->flags & L7_RF_DC)
		return "downstream_remote_disconnect";
	if (r->route && r->route->action != L7_ACTION_ROUTE)
		return "direct_response";
	if (r->upstream_service_ns)
		return "via_upstream";
	return NULL;
}

struct fields {
	char start[40], flags[L7_FLAGS_MAX];
	char upstream_host[INET6_ADDRSTRLEN + 16], upstream_local[INET6_ADDRSTRLEN + 16];
	char downstream_local[INET6_ADDRSTRLEN + 16], downstream_remote[INET6_ADDRSTRLEN + 16];
};

static void fields_of(const struct l7_record *r, struct fields *f)
{
	format_time(r->start_unix_ns, f->start, sizeof(f->start));
	l7_flags_format(r->flags, f->flags, sizeof(f->flags));
	f->upstream_host[0] = '\0';
	if (r->upstream)
		format_addr(&r->upstream->addr, r->upstream->port, r->upstream->family, f->upstream_host,
			    sizeof(f->upstream_host));
	format_addr(&r->upstream_local_addr, r->upstream_local_port, r->upstream_local_family, f->upstream_local,
		    sizeof(f->upstream_local));
	format_addr(&r->downstream_local_addr, r->downstream_local_port, r->downstream_local_family,
		    f->downstream_local, sizeof(f->downstream_local));
	format_addr(&r->downstream_addr, r->downstream_port, r->downstream_family, f->downstream_remote,
		    sizeof(f->downstream_remote));
}

static void format_json(struct fixbuf *o, const struct l7_record *r, const struct fields *f)
{
	fb_put(o, "{\"timestamp\":\"", 14);
	fb_puts(o, f->start);
	fb_put(o, "\"", 1);
	json_str(o, "method", r->method, CAP_HEADER);
	json_str(o, "path", r->path, CAP_PATH);
	json_str(o, "protocol", r->protocol, CAP_HEADER);
	json_u64(o, "status", r->status);
	json_str(o, "response_flags", f->flags, CAP_NAME);
	json_str(o, "response_code_details", response_details(r), CAP_NAME);
	json_u64(o, "duration_ms", r->duration_ns / 1000000);
	json_u64(o, "bytes_received", r->request_bytes);
	json_u64(o, "bytes_sent", r->response_bytes);
	json_str(o, "upstream_service", r->cluster ? r->cluster->host_fqdn : NULL, CAP_NAME);
	json_str(o, "upstream_host", f->upstream_host, CAP_NAME);
	json_str(o, "upstream_cluster", r->cluster ? r->cluster->name : NULL, CAP_NAME);
	json_u64(o, "upstream_request_attempt_count", r->attempts); /* %UPSTREAM_REQUEST_ATTEMPT_COUNT%: retries + 1 */
	json_str(o, "request_id", r->request_id, CAP_HEADER);
	json_str(o, "trace_id", r->trace_id, CAP_HEADER);
	json_str(o, "user_agent", r->user_agent, CAP_HEADER);
	json_str(o, "authority", r->authority, CAP_HEADER);
	json_str(o, "x_forwarded_for", r->forwarded_for, CAP_HEADER);
	json_str(o, "downstream_remote_address", f->downstream_remote, CAP_NAME);
	json_str(o, "source_workload", r->source ? r->source->name : NULL, CAP_NAME);
	json_str(o, "source_namespace", r->source ? r->source->ns : NULL, CAP_NAME);
	/* The request metric's label: the upstream went through the node's mTLS tunnel, or not (unknown). */
	json_str(o, "connection_security_policy", r->tunnelled ? "mutual_tls" : "unknown", CAP_NAME);
	fb_put(o, "}\n", 2);
}

/*
 * Istio's default (pilot's EnvoyTextLogFormat):
 * [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
 * %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
 * %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%"
 * "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
 * %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%
 * %ROUTE_NAME%
 * Plaintext HTTP/1 has no server name, transport failure reason or connection termination details: "-".
 */
static void format_text(struct fixbuf *o, const struct l7_record *r, const struct fields *f)
{
	fb_put(o, "[", 1);
	fb_puts(o, f->start);
	fb_put(o, "] \"", 3);
	text_str(o, r->method, CAP_HEADER, TEXT_QUOTED);
	fb_put(o, " ", 1);
	text_str(o, r->path, CAP_PATH, TEXT_QUOTED);
	fb_put(o, " ", 1);
	text_str(o, r->protocol, CAP_HEADER, TEXT_QUOTED);
	fb_put(o, "\" ", 2);
	fb_put_u64(o, r->status);
	fb_put(o, " ", 1);
	fb_puts(o, f->flags);
	fb_put(o, " ", 1);
	text_str(o, response_details(r), CAP_NAME, TEXT_UNQUOTED);
	fb_puts(o, " - \"-\" ");
	fb_put_u64(o, r->request_bytes);
	fb_put(o, " ", 1);
	fb_put_u64(o, r->response_bytes);
	fb_put(o, " ", 1);
	fb_put_u64(o, r->duration_ns / 1000000);
	fb_put(o, " ", 1);
	if (r->upstream_service_ns)
		fb_put_u64(o, r->upstream_service_ns / 1000000);
	else
		fb_put(o, "-", 1);
	fb_put(o, " \"", 2);
	text_str(o, r->forwarded_for, CAP_HEADER, TEXT_QUOTED);
	fb_put(o, "\" \"", 3);
	text_str(o, r->user_agent, CAP_HEADER, TEXT_QUOTED);
	fb_put(o, "\" \"", 3);
	text_str(o, r->request_id, CAP_HEADER, TEXT_QUOTED);
	fb_put(o, "\" \"", 3);
	text_str(o, r->authority, CAP_HEADER, TEXT_QUOTED);
	fb_put(o, "\" \"", 3);
	text_str(o, f->upstream_host, CAP_NAME, TEXT_QUOTED);
	fb_put(o, "\" ", 2);
	text_str(o, r->cluster ? r->cluster->name : NULL, CAP_NAME, TEXT_UNQUOTED);
	fb_put(o, " ", 1);
	text_str(o, f->upstream_local, CAP_NAME, TEXT_UNQUOTED);
	fb_put(o, " ", 1);
	text_str(o, f->downstream_local, CAP_NAME, TEXT_UNQUOTED);
	fb_put(o, " ", 1);
	text_str(o, f->downstream_remote, CAP_NAME, TEXT_UNQUOTED);
	fb_puts(o, " - ");
	text_str(o, r->route ? r->route->name : NULL, CAP_NAME, TEXT_UNQUOTED);
	fb_put(o, "\n", 1);
}

size_t l7_access_log_format(enum l7_log_format fmt, const struct l7_record *r, char *buf, size_t len)
{
	struct fixbuf o;
	struct fields f;

	fb_init(&o, buf, len);
	fields_of(r, &f);
	if (fmt == L7_LOG_TEXT)
		format_text(&o, r, &f);
	else
		format_json(&o, r, &f);
	return fb_finish(&o);
}
