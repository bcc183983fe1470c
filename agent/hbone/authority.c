// SPDX-License-Identifier: Apache-2.0
/*
 * The CONNECT :authority: a pod's "IP:port" ("[IPv6]:port"), as ztunnel sends it (a SocketAddr printed by
 * Rust); names are not accepted (ztunnel answers 400 to a hostname it does not serve, and xmesh serves none).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "hbone/hbone.h"

static int parse_port(const char *s, size_t len, uint16_t *port)
{
	uint32_t v = 0;
	size_t i;

	if (len == 0 || len > 5 || (s[0] == '0'))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int hbone_parse_authority(const char *s, size_t len, struct sockaddr_storage *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon;
	size_t hlen;
	uint16_t port;

	memset(out, 0, sizeof(*out));
	if (len == 0 || memchr(s, '\0', len))
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;

		if (!close || (size_t)(close - s) + 1 >= len || close[1] != ':')
			return -EINVAL;
		hlen = (size_t)(close - s) - 1;
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (parse_port(close + 2, len - (size_t)(close + 2 - s), &port) ||
		    inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return 0;
	}
	colon = memchr(s, ':', len);
	if (!colon || memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)))
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (hlen == 0 || hlen >= INET_ADDRSTRLEN)
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	{
		struct sockaddr_in *in = (struct sockaddr_in *)out;

		if (parse_port(colon + 1, len - hlen - 1, &port) || inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return -EINVAL;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
	}
	return 0;
}

int hbone_format_authority(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		n = snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		n = snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		return -EAFNOSUPPORT;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}
