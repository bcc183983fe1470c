// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: access-log lines from request values a client controls (path, Host, User-Agent,
 * X-Forwarded-For, method, details; NUL-separated in the input). Beyond memory safety it checks what log
 * readers rely on: one line, no raw control byte, valid UTF-8, the text format's seven quoted fields and
 * no more, a JSON line that is one valid object, and the snprintf contract.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "l7/access_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_FIELDS 6

static bool utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i], cp, len;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, cp = c & 0x07;
		else
			return false;
		if (i + len > n)
			return false;
		for (unsigned k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A JSON string at *p (RFC 8259): moves *p past it. */
static bool json_string(const char **p)
{
	const char *s = *p;

	if (*s++ != '"')
		return false;
	for (;;) {
		unsigned char c = (unsigned char)*s;

		if (c == '"')
			break;
		if (c < 0x20)
			return false;
		if (c == '\\') {
			s++;
			if (*s == 'u') {
				for (int k = 1; k <= 4; k++)
					if (!is_hex(s[k]))
						return false;
				s += 5;
				continue;
			}
			if (!strchr("\"\\/bfnrt", *s) || !*s)
				return false;
		}
		s++;
	}
	*p = s + 1;
	return true;
}

/* Our lines are one flat object: {"key":value,...} with string, unsigned number or null values. */
static bool json_line(const char *s)
{
	if (*s++ != '{')
		return false;
	for (bool first = true;; first = false) {
		if (*s == '}' && !first)
			break;
		if (!first && *s++ != ',')
			return false;
		if (!json_string(&s) || *s++ != ':')
			return false;
		if (*s == '"') {
			if (!json_string(&s))
				return false;
		} else if (!strncmp(s, "null", 4)) {
			s += 4;
		} else if (*s >= '0' && *s <= '9') {
			while (*s >= '0' && *s <= '9')
				s++;
		} else {
			return false;
		}
		if (*s != ',' && *s != '}')
			return false;
	}
	return !strcmp(s, "}\n");
}

/* Quotes that delimit fields: not preceded by an escaping backslash. */
static int unescaped_quotes(const char *s)
{
	int n = 0;

	for (; *s; s++) {
		if (*s == '\\' && s[1])
			s++;
		else if (*s == '"')
			n++;
	}
	return n;
}

static void check(enum l7_log_format fmt, const struct l7_record *r)
{
	static char line[L7_ACCESS_LOG_LINE_MAX];
	char small[32];
	size_t n = l7_access_log_format(fmt, r, line, sizeof(line));

	if (n >= sizeof(line) || strlen(line) != n || n < 2 || line[n - 1] != '\n' || memchr(line, '\n', n - 1))
		abort();
	for (size_t i = 0; i + 1 < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			abort();
	if (!utf8_valid((const unsigned char *)line, n))
		abort();
	if (fmt == L7_LOG_TEXT && unescaped_quotes(line) != 14)
		abort();
	if (fmt == L7_LOG_JSON && !json_line(line))
		abort();
	if (l7_access_log_format(fmt, r, small, sizeof(small)) != n || strncmp(small, line, sizeof(small) - 1))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *fields[N_FIELDS] = { 0 };
	struct l7_record r = { .start_unix_ns = 1796616873123456789ULL, .status = 200, .protocol = "HTTP/1.1" };
	size_t start = 0;

	/* Exact-size copies: ASan sees any read past a value. */
	for (int f = 0; f < N_FIELDS && start <= size; f++) {
		const uint8_t *end = memchr(data + start, 0, size - start);
		size_t len = end ? (size_t)(end - (data + start)) : size - start;

		fields[f] = malloc(len + 1);
		if (!fields[f])
			goto out;
		memcpy(fields[f], data + start, len);
		fields[f][len] = '\0';
		start += len + 1;
	}
	r.path = fields[0];
	r.authority = fields[1];
	r.user_agent = fields[2];
	r.forwarded_for = fields[3];
	r.method = fields[4];
	r.details = fields[5];
	if (size) {
		r.flags = data[0] | (uint32_t)data[size - 1] << 4;
		r.tunnelled = data[size - 1] & 0x80; /* connection_security_policy mutual_tls */
	}
	check(L7_LOG_JSON, &r);
	check(L7_LOG_TEXT, &r);
out:
	for (int f = 0; f < N_FIELDS; f++)
		free(fields[f]);
	return 0;
}
