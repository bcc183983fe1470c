/* SPDX-License-Identifier: Apache-2.0 */
/*
 * consistentHash request keys with Envoy's semantics (source/common/http/hash_policy.cc): which bytes of a
 * request are hashed for httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "l7/balance_key.h"

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Header names compare without case (RFC 9110 §5.1). */
static bool name_is(struct h1_str s, const char *name)
{
	size_t len = strlen(name);

	if (s.len != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (ascii_lower(s.p[i]) != ascii_lower(name[i]))
			return false;
	}
	return true;
}

/*
 * Every value of the header, in any order, gives one hash: Envoy sorts the values before hashing; a sum of
 * per-value hashes is order-free without sorting (the values differ from Envoy's hash anyway).
 */
static bool header_hash(const struct l7_request_view *rq, const char *name, uint64_t *hash)
{
	uint64_t sum = 0;
	uint32_t found = 0;

	for (uint32_t i = 0; i < rq->n_headers; i++) {
		if (!name_is(rq->headers[i].name, name))
			continue;
		sum += l7_key_hash(rq->headers[i].value.p, rq->headers[i].value.len);
		found++;
	}
	if (!found)
		return false;
	*hash = found == 1 ? sum : xm_mix64(sum ^ found);
	return true;
}

/*
 * The first cookie called name in the Cookie headers, as Envoy's parseCookieValue finds it: pairs split at
 * ';', leading spaces skipped, the name compared exactly, a value in double quotes unquoted.
 */
static bool cookie_value(const struct l7_request_view *rq, const char *name, struct h1_str *out)
{
	size_t name_len = strlen(name);

	for (uint32_t i = 0; i < rq->n_headers; i++) {
		const char *p, *end;

		if (!name_is(rq->headers[i].name, "cookie"))
			continue;
		p = rq->headers[i].value.p;
		end = p + rq->headers[i].value.len;
		while (p < end) {
			const char *semi = memchr(p, ';', (size_t)(end - p));
			const char *pair_end = semi ? semi : end;
			const char *eq;

			while (p < pair_end && *p == ' ')
				p++;
			eq = memchr(p, '=', (size_t)(pair_end - p));
			if (eq && (size_t)(eq - p) == name_len && memcmp(p, name, name_len) == 0) {
				const char *v = eq + 1;
				size_t len = (size_t)(pair_end - v);

				if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
					v++;
					len -= 2;
				}
				out->p = v;
				out->len = (uint32_t)len;
				return true;
			}
			p = semi ? semi + 1 : end;
		}
	}
	return false;
}

/*
 * The first value of parameter name in the query string, undecoded (Envoy's getFirstValue): pairs split at
 * '&', a parameter without '=' has the empty value.
 */
static bool query_value(struct h1_str query, const char *name, struct h1_str *out)
{
	size_t name_len = strlen(name);
	const char *p = query.p, *end = query.p ? query.p + query.len : NULL;

	while (p && p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pair_end = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pair_end - p));
		const char *key_end = eq ? eq : pair_end;

		if ((size_t)(key_end - p) == name_len && memcmp(p, name, name_len) == 0) {
			out->p = eq ? eq + 1 : pair_end;
			out->len = (uint32_t)(pair_end - out->p);
			return true;
		}
		p = amp ? amp + 1 : end;
	}
	return false;
}

bool l7_balance_key_hash(const struct xm_load_balancer *lb, const struct l7_request_view *rq,
			 const union xm_addr *client, uint8_t family, uint64_t *hash)
{
	struct h1_str v;

	switch (lb->hash_key) {
	case XM_DR_HASH_HTTP_HEADER:
		return rq && lb->hash_param[0] && header_hash(rq, lb->hash_param, hash);
	case XM_DR_HASH_HTTP_COOKIE:
		/* An empty cookie counts as absent, as in Envoy. */
		if (!rq || !lb->hash_param[0] || !cookie_value(rq, lb->hash_param, &v) || !v.len)
			return false;
		*hash = l7_key_hash(v.p, v.len);
		return true;
	case XM_DR_HASH_SOURCE_IP:
		if (!client || (family != XM_FAMILY_V4 && family != XM_FAMILY_V6))
			return false;
		*hash = l7_key_hash(client->bytes, family == XM_FAMILY_V4 ? 4 : 16);
		return true;
	case XM_DR_HASH_QUERY_PARAMETER:
		if (!rq || !lb->hash_param[0] || !query_value(rq->query, lb->hash_param, &v))
			return false;
		*hash = l7_key_hash(v.p, v.len);
		return true;
	case XM_DR_HASH_NONE:
		break;
	}
	return false;
}

int l7_balance_set_cookie(const struct xm_load_balancer *lb, const char *value, char *out, size_t size)
{
	uint64_t max_age = lb->cookie_ttl_ms / 1000; /* Envoy keeps the ttl's whole seconds */
	char age[40] = "", path[XM_COOKIE_PATH_MAX + 8] = "";
	int n;

	if (max_age)
		snprintf(age, sizeof(age), "; Max-Age=%llu", (unsigned long long)max_age);
	if (lb->cookie_path[0])
		snprintf(path, sizeof(path), "; Path=%s", lb->cookie_path);
	n = snprintf(out, size, "%s=\"%s\"%s%s; HttpOnly", lb->hash_param, value, age, path);
	if (n < 0 || (size_t)n >= size) {
		if (size)
			out[0] = '\0';
		return -ENOSPC;
	}
	return n;
}
