// SPDX-License-Identifier: Apache-2.0
/*
 * One HTTPMatchRequest against a request (Istio's semantics): uri (ignoreUriCase), scheme, method,
 * authority, headers present/matching, withoutHeaders, queryParams, port, sourceLabels, sourceNamespace.
 */
#include <ctype.h>
#include <string.h>

#include "compile/identity.h"
#include "l7/regex.h"
#include "l7/routes.h"
#include "l7/routes_internal.h"

const char *l7_match_kind_name(enum l7_str_match_kind kind)
{
	switch (kind) {
	case L7_MATCH_EXACT:
		return "exact";
	case L7_MATCH_PREFIX:
		return "prefix";
	case L7_MATCH_REGEX:
		return "regex";
	default:
		return "any";
	}
}

static bool bytes_eq(const char *s, size_t len, const char *z, bool caseless)
{
	return caseless ? l7_ieq(s, len, z) : strlen(z) == len && !memcmp(s, z, len);
}

static bool str_match(const struct l7_str_match *m, const char *s, size_t len, bool caseless)
{
	size_t vlen;

	switch (m->kind) {
	case L7_MATCH_EXACT:
		return bytes_eq(s, len, m->value, caseless);
	case L7_MATCH_PREFIX:
		vlen = strlen(m->value);
		return vlen <= len && bytes_eq(s, vlen, m->value, caseless);
	case L7_MATCH_REGEX:
		return m->regex && l7_regex_match(m->regex, s, len);
	default:
		return true;
	}
}

static const struct h1_header *find_header(const struct l7_request_view *rq, const char *name)
{
	for (uint32_t i = 0; i < rq->n_headers; i++)
		if (l7_ieq(rq->headers[i].name.p, rq->headers[i].name.len, name))
			return &rq->headers[i];
	return NULL;
}

/* A header matcher: present (any value when the match is {}), and the value matching. */
static bool header_matches(const struct l7_request_view *rq, const struct l7_kv_match *kv)
{
	const struct h1_header *h = find_header(rq, kv->name);

	return h && str_match(&kv->m, h->value.p, h->value.len, false);
}

/* The value of query parameter name (the first one), raw as sent; false when absent. */
static bool query_param(struct h1_str q, const char *name, struct h1_str *value)
{
	size_t nlen = strlen(name);
	const char *p = q.p, *end = q.p + q.len;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *key_end = eq ? eq : stop;

		if ((size_t)(key_end - p) == nlen && !memcmp(p, name, nlen)) {
			value->p = eq ? eq + 1 : stop;
			value->len = (uint32_t)(eq ? stop - eq - 1 : 0);
			return true;
		}
		p = stop + 1;
	}
	return false;
}

static bool labels_match(const struct l7_match *m, const struct xm_workload *src)
{
	for (size_t i = 0; i < m->n_source_labels; i++) {
		const char *v = src ? workload_label(src, m->source_labels[i].key) : NULL;

		if (!v || strcmp(v, m->source_labels[i].value))
			return false;
	}
	return true;
}

bool l7_match_request(const struct l7_match *m, const struct l7_request_view *rq)
{
	static const char scheme[] = "http"; /* the proxy serves plaintext HTTP/1.1 */

	if (m->port && m->port != rq->port)
		return false;
	if (!str_match(&m->uri, rq->path.p, rq->path.len, m->ignore_uri_case))
		return false;
	if (!str_match(&m->scheme, scheme, sizeof(scheme) - 1, false))
		return false;
	if (!str_match(&m->method, rq->method.p, rq->method.len, false))
		return false;
	if (m->authority.kind && !str_match(&m->authority, rq->host.p, rq->host.len, false))
		return false;
	for (size_t i = 0; i < m->n_headers; i++)
		if (!header_matches(rq, &m->headers[i]))
			return false;
	for (size_t i = 0; i < m->n_without_headers; i++)
		if (header_matches(rq, &m->without_headers[i]))
			return false;
	for (size_t i = 0; i < m->n_query_params; i++) {
		struct h1_str v;

		if (!query_param(rq->query, m->query_params[i].name, &v) ||
		    !str_match(&m->query_params[i].m, v.p, v.len, false))
			return false;
	}
	if (m->n_source_labels && !labels_match(m, rq->source))
		return false;
	if (m->source_namespace && (!rq->source || strcmp(rq->source->ns, m->source_namespace)))
		return false;
	return true;
}
