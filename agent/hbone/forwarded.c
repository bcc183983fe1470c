// SPDX-License-Identifier: Apache-2.0
/*
 * The Forwarded header of an HBONE CONNECT (RFC 7239), as ztunnel sends it (src/proxy/outbound.rs
 * build_forwarded): for="<client ip:port>" and, when a Service was addressed, ;host=<its hostname>. Only the
 * first element of the list is read: it names the original client. Untrusted input (any peer with a
 * certificate sends it): tests/fuzz/fuzz_hbone_forwarded.c.
 *
 *   Forwarded         = 1#forwarded-element
 *   forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
 *   forwarded-pair    = token "=" value ; value = token / quoted-string
 *   node              = nodename [ ":" node-port ] ; nodename = IPv4 / "[" IPv6 "]" / "unknown" / obfnode
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "hbone/hbone.h"

static bool tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t skip_ows(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

/* A token or quoted-string at s[*i] into out (unescaped, NUL-terminated); false when malformed or too long. */
static bool read_value(const char *s, size_t len, size_t *i, char *out, size_t cap)
{
	size_t n = 0, j = *i;

	if (j < len && s[j] == '"') {
		for (j++; j < len && s[j] != '"'; j++) {
			unsigned char c = (unsigned char)s[j];

			if (c == '\\') {
				if (++j >= len)
					return false;
				c = (unsigned char)s[j];
			}
			/* qdtext / quoted-pair: HTAB, SP, VCHAR, obs-text; no controls */
			if ((c < 0x20 && c != '\t') || c == 0x7f || n + 1 >= cap)
				return false;
			out[n++] = (char)c;
		}
		if (j >= len)
			return false;
		j++;
	} else {
		for (; j < len && tchar(s[j]); j++) {
			if (n + 1 >= cap)
				return false;
			out[n++] = s[j];
		}
		if (n == 0)
			return false;
	}
	out[n] = '\0';
	*i = j;
	return true;
}

/* A node port: 1 to 5 digits, 0..65535 (obfuscated ports "_x" are no address). */
static bool node_port(const char *p, uint16_t *port)
{
	uint32_t v = 0;
	size_t n = strlen(p);

	if (n == 0 || n > 5)
		return false;
	for (size_t k = 0; k < n; k++) {
		if (p[k] < '0' || p[k] > '9')
			return false;
		v = v * 10 + (uint32_t)(p[k] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* The node of for=: an address (with its port, 0 when none) or nothing ("unknown", obfuscated, not an address). */
static bool node_addr(const char *v, struct sockaddr_storage *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *port = NULL;
	uint16_t p = 0;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;

		if (!close)
			return false;
		hlen = (size_t)(close - v) - 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			return false;
		if (hlen == 0 || hlen >= sizeof(host))
			return false;
		memcpy(host, v + 1, hlen);
		host[hlen] = '\0';
		if ((port && !node_port(port, &p)) || inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return false;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(p);
		return true;
	}
	{
		const char *colon = strchr(v, ':');
		struct sockaddr_in *in = (struct sockaddr_in *)out;

		hlen = colon ? (size_t)(colon - v) : strlen(v);
		if (colon)
			port = colon + 1;
		if (hlen == 0 || hlen >= INET_ADDRSTRLEN)
			return false;
		memcpy(host, v, hlen);
		host[hlen] = '\0';
		if ((port && !node_port(port, &p)) || inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return false;
		in->sin_family = AF_INET;
		in->sin_port = htons(p);
		return true;
	}
}

int hbone_parse_forwarded(const char *s, size_t len, struct hbone_forwarded *out)
{
	char name[32], value[HBONE_FORWARDED_VALUE_MAX];
	bool seen_for = false, seen_host = false;
	size_t i = 0;

	memset(out, 0, sizeof(*out));
	if (memchr(s, '\0', len))
		return -EINVAL;
	i = skip_ows(s, len, i);
	while (i < len && s[i] != ',') {
		size_t n = 0;

		if (s[i] == ';') { /* an empty pair */
			i = skip_ows(s, len, i + 1);
			continue;
		}
		for (; i < len && tchar(s[i]); i++) {
			if (n + 1 >= sizeof(name))
				goto bad;
			name[n++] = s[i];
		}
		name[n] = '\0';
		if (n == 0 || i >= len || s[i] != '=')
			goto bad;
		i++;
		if (!read_value(s, len, &i, value, sizeof(value)))
			goto bad;
		/* RFC 7239 §4: a parameter appears at most once per element. */
		if (!strcasecmp(name, "for")) {
			if (seen_for)
				goto bad;
			seen_for = true;
			out->has_for = node_addr(value, &out->for_addr);
			if (!out->has_for)
				memset(&out->for_addr, 0, sizeof(out->for_addr));
		} else if (!strcasecmp(name, "host")) {
			if (seen_host)
				goto bad;
			seen_host = true;
			memcpy(out->host, value, strlen(value) + 1);
		}
		i = skip_ows(s, len, i);
		if (i < len && s[i] == ';')
			i = skip_ows(s, len, i + 1);
		else if (i < len && s[i] != ',')
			goto bad;
	}
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}
