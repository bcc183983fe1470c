/* SPDX-License-Identifier: Apache-2.0 */
/*
 * networking.istio.io/v1alpha3 EnvoyFilter: the local rate limit recipe (config/envoy_filter.h). Anything
 * else an EnvoyFilter can say is reported as ignored, each time at its own position: an EnvoyFilter patches
 * Envoy's generated config, which xmesh does not have, so only the recipe's meaning can be honoured.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/envoy_filter.h"
#include "config/fields.h"
#include "config/objects.h"

#define LOCAL_RATELIMIT	     "envoy.filters.http.local_ratelimit"
#define LOCAL_RATELIMIT_TYPE "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
#define FILL_INTERVAL_MIN_MS 50 /* Envoy: "local rate limit token bucket fill timer must be >= 50ms" */
#define RESPONSE_HEADERS_MAX 10 /* LocalRateLimit.response_headers_to_add max_items */

static const char *const context_names[] = { "ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY" };

static bool plain_key(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_-.@/", *s))
			return false;
	return true;
}

/* Keys of map not in known[]: each one a warning that it is ignored. */
static void warn_unknown(struct obj_ctx *c, const struct ynode *map, const char *field, const char *const *known,
			 size_t n_known)
{
	char q[QUOTE_BUF];

	if (!map || map->kind != YNODE_MAP)
		return;
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct ynode *k = map->kids[i];
		bool found = false;

		if (k->kind != YNODE_SCALAR)
			continue;
		for (size_t j = 0; j < n_known && !found; j++)
			found = strcmp(k->str, known[j]) == 0;
		if (found)
			continue;
		obj_warn(c, k, "%s%s%s is not supported by xmesh: ignored", field, field[0] ? "." : "",
			 plain_key(k->str) ? k->str : quoted(q, k->str));
	}
}

#define WARN_UNKNOWN(c, map, field, ...)                                                                               \
	do {                                                                                                           \
		static const char *const known_[] = { __VA_ARGS__ };                                                   \
		warn_unknown(c, map, field, known_, sizeof(known_) / sizeof(known_[0]));                               \
	} while (0)

static bool is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* A FractionalPercent (RuntimeFractionalPercent.default_value) in parts per million, capped at 100%. */
static int parse_fraction(struct obj_ctx *c, const struct ynode *rfp, const char *field, uint32_t *ppm)
{
	static const char *const denominators[] = { "HUNDRED", "TEN_THOUSAND", "MILLION" };
	static const uint32_t scale[] = { 10000, 100, 1 };
	const struct ynode *dv;
	char sub[256];
	long long num = 0;
	size_t d = 0;

	if (!rfp)
		return FIELD_ABSENT;
	if (rfp->kind != YNODE_MAP) {
		obj_error(c, rfp, "%s must be a mapping", field);
		return FIELD_ERR;
	}
	/* runtime_key: xmesh has no runtime layer, so the default value always applies (as in an Envoy whose
	 * runtime does not set the key, Istio's case). */
	WARN_UNKNOWN(c, rfp, field, "runtime_key", "default_value");
	snprintf(sub, sizeof(sub), "%s.default_value", field);
	dv = get_map(c, rfp, "default_value", sub);
	if (!dv)
		return FIELD_ABSENT; /* no default value: 0% (proto default) */
	WARN_UNKNOWN(c, dv, sub, "numerator", "denominator");
	snprintf(sub, sizeof(sub), "%s.default_value.numerator", field);
	if (get_int(c, dv, "numerator", sub, 0, UINT32_MAX, &num) == FIELD_ERR)
		return FIELD_ERR;
	snprintf(sub, sizeof(sub), "%s.default_value.denominator", field);
	if (get_enum(c, dv, "denominator", sub, denominators, 3, &d) == FIELD_ERR)
		return FIELD_ERR;
	*ppm = (uint64_t)num * scale[d] > 1000000 ? 1000000 : (uint32_t)((uint64_t)num * scale[d]);
	return FIELD_SET;
}

static int parse_header_option(struct obj_ctx *c, const struct ynode *opt, const char *field, struct xm_ef_header *h)
{
	char name[256], value[1024], sub[320], q[QUOTE_BUF];
	const struct ynode *hdr;
	bool append = true; /* HeaderValueOption.append defaults to true */
	int r;

	if (!opt || opt->kind != YNODE_MAP) {
		obj_error(c, opt, "%s must be a mapping", field);
		return FIELD_ERR;
	}
	WARN_UNKNOWN(c, opt, field, "header", "append");
	snprintf(sub, sizeof(sub), "%s.append", field);
	if (get_bool(c, opt, "append", sub, &append) == FIELD_ERR)
		return FIELD_ERR;
	snprintf(sub, sizeof(sub), "%s.header", field);
	hdr = get_map(c, opt, "header", sub);
	if (!hdr) {
		obj_error(c, opt, "%s.header is required", field);
		return FIELD_ERR;
	}
	WARN_UNKNOWN(c, hdr, sub, "key", "value");
	snprintf(sub, sizeof(sub), "%s.header.key", field);
	r = get_str(c, hdr, "key", sub, name, sizeof(name));
	if (r == FIELD_ERR)
		return r;
	if (r == FIELD_ABSENT || !name[0]) {
		obj_error(c, hdr, "%s is required", sub);
		return FIELD_ERR;
	}
	for (char *p = name; *p; p++) {
		if (!is_tchar((unsigned char)*p)) {
			obj_error(c, map_value(c, hdr, "key"), "%s %s is not a valid header name", sub,
				  quoted(q, name));
			return FIELD_ERR;
		}
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	snprintf(sub, sizeof(sub), "%s.header.value", field);
	if (get_str(c, hdr, "value", sub, value, sizeof(value)) == FIELD_ERR)
		return FIELD_ERR;
	if (strpbrk(value, "\r\n")) {
		obj_error(c, map_value(c, hdr, "value"), "%s must not contain CR or LF", sub);
		return FIELD_ERR;
	}
	h->name = strdup(name);
	h->value = strdup(value);
	h->append = append;
	if (!h->name || !h->value) {
		obj_error(c, opt, "out of memory");
		return FIELD_ERR;
	}
	return FIELD_SET;
}

/* A protobuf Duration in its JSON form ("1s", "0.5s", "60s"); Go's units are read too ("500ms"). */
static int parse_fill_interval(struct obj_ctx *c, const struct ynode *tb, const char *field, uint64_t *ms)
{
	const struct ynode *n = map_value(c, tb, "fill_interval");
	char q[QUOTE_BUF];
	int r;

	if (!n) {
		obj_error(c, tb, "%s is required", field);
		return FIELD_ERR;
	}
	if (n->kind == YNODE_MAP) {
		long long s = 0, ns = 0;
		char sub[320];

		WARN_UNKNOWN(c, n, field, "seconds", "nanos");
		snprintf(sub, sizeof(sub), "%s.seconds", field);
		if (get_int(c, n, "seconds", sub, 0, 315576000000LL, &s) == FIELD_ERR)
			return FIELD_ERR;
		snprintf(sub, sizeof(sub), "%s.nanos", field);
		if (get_int(c, n, "nanos", sub, 0, 999999999, &ns) == FIELD_ERR)
			return FIELD_ERR;
		*ms = (uint64_t)s * 1000 + (uint64_t)ns / 1000000;
	} else {
		r = get_duration(c, tb, "fill_interval", field, 0, ms);
		if (r != FIELD_SET)
			return FIELD_ERR;
	}
	if (*ms < FILL_INTERVAL_MIN_MS) {
		obj_error(c, n, "%s %s is below Envoy's minimum of %dms", field,
			  n->kind == YNODE_SCALAR ? quoted(q, n->str) : "", FILL_INTERVAL_MIN_MS);
		return FIELD_ERR;
	}
	return FIELD_SET;
}

/* The key node of key in map (for a warning about the key itself). */
static const struct ynode *map_key(const struct ynode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n; i += 2)
		if (map->kids[i]->kind == YNODE_SCALAR && !strcmp(map->kids[i]->str, key))
			return map->kids[i];
	return map;
}

/* A string field into a fresh copy; FIELD_ERR when invalid or out of memory, FIELD_ABSENT when absent. */
static int dup_str(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, char **out)
{
	char buf[1024];
	int r = get_str(c, map, key, field, buf, sizeof(buf));

	if (r != FIELD_SET)
		return r;
	if (!(*out = strdup(buf))) {
		obj_error(c, map, "out of memory");
		return FIELD_ERR;
	}
	return FIELD_SET;
}

/* A header name for matching: lowercase; a token, or one of the pseudo-headers :path :method :authority. */
static int dup_header_name(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, char **out)
{
	char q[QUOTE_BUF];
	int r = dup_str(c, map, key, field, out);
	bool ok;

	if (r == FIELD_ABSENT || (r == FIELD_SET && !**out)) {
		obj_error(c, map, "%s is required", field);
		return FIELD_ERR;
	}
	if (r != FIELD_SET)
		return r;
	for (char *p = *out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	ok = !strcmp(*out, ":path") || !strcmp(*out, ":method") || !strcmp(*out, ":authority");
	for (const char *p = *out; !ok && *p && is_tchar((unsigned char)*p); p++)
		ok = !p[1];
	if (!ok) {
		obj_error(c, map_value(c, map, key), "%s %s is not a header name xmesh can match", field,
			  quoted(q, *out));
		free(*out);
		*out = NULL;
		return FIELD_ERR;
	}
	return FIELD_SET;
}

/* LocalRateLimit.descriptors[] (per-route config only). */
static int parse_descriptors(struct obj_ctx *c, const struct ynode *seq, const char *field, uint64_t fill_ms,
			     struct xm_local_ratelimit *rl)
{
	char sub[320];
	long long num;
	int err = 0;

	for (size_t i = 0; i < seq->n; i++) {
		const struct ynode *d = seq->kids[i], *ents, *tb;
		struct xm_rl_descriptor *x = array_push(&rl->descriptors, &rl->n_descriptors, sizeof(*x));

		snprintf(sub, sizeof(sub), "%s[%zu]", field, i);
		if (!x) {
			obj_error(c, d, "out of memory");
			return FIELD_ERR;
		}
		if (!d || d->kind != YNODE_MAP) {
			obj_error(c, d, "%s must be a mapping", sub);
			err = -1;
			continue;
		}
		WARN_UNKNOWN(c, d, sub, "entries", "token_bucket");
		snprintf(sub, sizeof(sub), "%s[%zu].entries", field, i);
		ents = get_seq(c, d, "entries", sub);
		if (!ents || !ents->n) {
			obj_error(c, ents ? ents : d, "%s is required (at least one entry)", sub);
			err = -1;
		}
		for (size_t e = 0; ents && e < ents->n; e++) {
			const struct ynode *en = ents->kids[e];
			struct xm_rl_entry *y = array_push(&x->entries, &x->n_entries, sizeof(*y));

			snprintf(sub, sizeof(sub), "%s[%zu].entries[%zu]", field, i, e);
			if (!y) {
				obj_error(c, en, "out of memory");
				return FIELD_ERR;
			}
			if (!en || en->kind != YNODE_MAP) {
				obj_error(c, en, "%s must be a mapping", sub);
				err = -1;
				continue;
			}
			WARN_UNKNOWN(c, en, sub, "key", "value");
			snprintf(sub, sizeof(sub), "%s[%zu].entries[%zu].key", field, i, e);
			if (dup_str(c, en, "key", sub, &y->key) != FIELD_SET || !y->key[0]) {
				if (!y->key || !y->key[0])
					obj_error(c, en, "%s is required", sub);
				err = -1;
			}
			snprintf(sub, sizeof(sub), "%s[%zu].entries[%zu].value", field, i, e);
			if (dup_str(c, en, "value", sub, &y->value) == FIELD_ERR)
				err = -1;
			else if (!y->value || !y->value[0]) {
				/* Envoy 1.34+ reads an empty value as a wildcard with a bucket per value
				 * (max_dynamic_descriptors): not implemented, so refused rather than misread. */
				obj_error(c, en,
					  "%s is required: xmesh does not implement Envoy's dynamic (wildcard) "
					  "descriptors",
					  sub);
				err = -1;
			}
		}
		snprintf(sub, sizeof(sub), "%s[%zu].token_bucket", field, i);
		tb = get_map(c, d, "token_bucket", sub);
		if (!tb) {
			obj_error(c, d, "%s is required", sub);
			err = -1;
			continue;
		}
		WARN_UNKNOWN(c, tb, sub, "max_tokens", "tokens_per_fill", "fill_interval");
		x->tokens_per_fill = 1;
		snprintf(sub, sizeof(sub), "%s[%zu].token_bucket.max_tokens", field, i);
		if (!map_value(c, tb, "max_tokens")) {
			obj_error(c, tb, "%s is required", sub);
			err = -1;
		} else if (get_int(c, tb, "max_tokens", sub, 1, UINT32_MAX, &num) == FIELD_SET) {
			x->max_tokens = (uint32_t)num;
		} else {
			err = -1;
		}
		snprintf(sub, sizeof(sub), "%s[%zu].token_bucket.tokens_per_fill", field, i);
		if (get_int(c, tb, "tokens_per_fill", sub, 1, UINT32_MAX, &num) == FIELD_SET)
			x->tokens_per_fill = (uint32_t)num;
		else if (map_value(c, tb, "tokens_per_fill"))
			err = -1;
		snprintf(sub, sizeof(sub), "%s[%zu].token_bucket.fill_interval", field, i);
		if (parse_fill_interval(c, tb, sub, &x->fill_interval_ms) == FIELD_ERR) {
			err = -1;
		} else if (fill_ms && x->fill_interval_ms % fill_ms) {
			obj_error(c, map_value(c, tb, "fill_interval"),
				  "%s is not a multiple of the token_bucket's fill_interval (Envoy: \"local rate "
				  "descriptor limit is not a multiple of token bucket fill timer\")",
				  sub);
			err = -1;
		}
		for (size_t j = 0; j < i && x->n_entries; j++) {
			const struct xm_rl_descriptor *o = &rl->descriptors[j];
			bool same = o->n_entries == x->n_entries;

			for (size_t e = 0; same && e < o->n_entries; e++)
				same = o->entries[e].key && x->entries[e].key && o->entries[e].value &&
				       x->entries[e].value && !strcmp(o->entries[e].key, x->entries[e].key) &&
				       !strcmp(o->entries[e].value, x->entries[e].value);
			if (same) {
				obj_error(c, d, "%s[%zu] duplicates %s[%zu] (Envoy: \"duplicate descriptor\")", field,
					  i, field, j);
				err = -1;
				break;
			}
		}
	}
	return err ? FIELD_ERR : FIELD_SET;
}

/*
 * The LocalRateLimit message (the TypedStruct's value, or the typed_config itself when it is of that type).
 * Returns FIELD_SET with a token bucket, FIELD_ABSENT without one (the filter is inserted but limits nothing
 * by itself), FIELD_ERR.
 */
static int parse_local_ratelimit(struct obj_ctx *c, const struct ynode *m, const char *field, bool typed,
				 bool per_route, struct xm_local_ratelimit *rl)
{
	const struct ynode *tb, *status, *hdrs, *v;
	char sub[256], prefix[64];
	long long num;
	int err = 0;

	memset(rl, 0, sizeof(*rl));
	rl->tokens_per_fill = 1;
	rl->status = 429;
	if (!m || m->kind != YNODE_MAP) {
		obj_error(c, m, "%s must be a mapping", field);
		return FIELD_ERR;
	}
	if (typed)
		WARN_UNKNOWN(c, m, field, "@type", "stat_prefix", "status", "token_bucket", "filter_enabled",
			     "filter_enforced", "response_headers_to_add", "local_rate_limit_per_downstream_connection",
			     "descriptors", "always_consume_default_token_bucket");
	else
		WARN_UNKNOWN(c, m, field, "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
			     "response_headers_to_add", "local_rate_limit_per_downstream_connection", "descriptors",
			     "always_consume_default_token_bucket");
	rl->always_consume_default = true;
	snprintf(sub, sizeof(sub), "%s.always_consume_default_token_bucket", field);
	if (get_bool(c, m, "always_consume_default_token_bucket", sub, &rl->always_consume_default) == FIELD_ERR)
		err = -1;
	snprintf(sub, sizeof(sub), "%s.stat_prefix", field);
	switch (get_str(c, m, "stat_prefix", sub, prefix, sizeof(prefix))) {
	case FIELD_ABSENT:
		obj_error(c, m, "%s is required (Envoy rejects the filter without it)", sub);
		err = -1;
		break;
	case FIELD_SET:
		if (!prefix[0]) {
			obj_error(c, map_value(c, m, "stat_prefix"), "%s must not be empty", sub);
			err = -1;
		}
		break;
	default:
		err = -1;
	}
	v = map_value(c, m, "local_rate_limit_per_downstream_connection");
	if (v && !(v->kind == YNODE_SCALAR && strcmp(v->str, "false") == 0))
		obj_warn(c, v,
			 "%s.local_rate_limit_per_downstream_connection is not supported by xmesh: the bucket is "
			 "per pod, shared by all connections",
			 field);
	status = get_map(c, m, "status", NULL);
	if (status) {
		snprintf(sub, sizeof(sub), "%s.status", field);
		WARN_UNKNOWN(c, status, sub, "code");
		snprintf(sub, sizeof(sub), "%s.status.code", field);
		if (get_int(c, status, "code", sub, 0, 999, &num) == FIELD_ERR)
			err = -1;
		else if (map_value(c, status, "code") && num >= 400)
			rl->status = (uint16_t)num; /* below 400: 429 (Envoy) */
	}
	snprintf(sub, sizeof(sub), "%s.filter_enabled", field);
	if (parse_fraction(c, map_value(c, m, "filter_enabled"), sub, &rl->enabled_ppm) == FIELD_ERR)
		err = -1;
	snprintf(sub, sizeof(sub), "%s.filter_enforced", field);
	if (parse_fraction(c, map_value(c, m, "filter_enforced"), sub, &rl->enforced_ppm) == FIELD_ERR)
		err = -1;
	snprintf(sub, sizeof(sub), "%s.response_headers_to_add", field);
	hdrs = get_seq(c, m, "response_headers_to_add", sub);
	if (hdrs && hdrs->n > RESPONSE_HEADERS_MAX) {
		obj_error(c, hdrs, "%s has %zu items, at most %d", sub, hdrs->n, RESPONSE_HEADERS_MAX);
		err = -1;
	}
	for (size_t i = 0; hdrs && i < hdrs->n && i < RESPONSE_HEADERS_MAX; i++) {
		struct xm_ef_header *h = array_push(&rl->headers, &rl->n_headers, sizeof(*rl->headers));

		snprintf(sub, sizeof(sub), "%s.response_headers_to_add[%zu]", field, i);
		if (!h) {
			obj_error(c, hdrs, "out of memory");
			return FIELD_ERR;
		}
		if (parse_header_option(c, hdrs->kids[i], sub, h) == FIELD_ERR)
			err = -1;
	}
	snprintf(sub, sizeof(sub), "%s.token_bucket", field);
	tb = get_map(c, m, "token_bucket", sub);
	if (!tb) {
		if (per_route) {
			obj_error(c, m,
				  "%s is required in typed_per_filter_config (Envoy rejects a per-route local rate "
				  "limit without one)",
				  sub);
			return FIELD_ERR;
		}
		return err ? FIELD_ERR : FIELD_ABSENT;
	}
	WARN_UNKNOWN(c, tb, sub, "max_tokens", "tokens_per_fill", "fill_interval");
	snprintf(sub, sizeof(sub), "%s.token_bucket.max_tokens", field);
	if (!map_value(c, tb, "max_tokens")) {
		obj_error(c, tb, "%s is required", sub);
		err = -1;
	} else if (get_int(c, tb, "max_tokens", sub, 1, UINT32_MAX, &num) == FIELD_SET) {
		rl->max_tokens = (uint32_t)num;
	} else {
		err = -1;
	}
	snprintf(sub, sizeof(sub), "%s.token_bucket.tokens_per_fill", field);
	if (get_int(c, tb, "tokens_per_fill", sub, 1, UINT32_MAX, &num) == FIELD_SET)
		rl->tokens_per_fill = (uint32_t)num;
	else if (map_value(c, tb, "tokens_per_fill"))
		err = -1;
	snprintf(sub, sizeof(sub), "%s.token_bucket.fill_interval", field);
	if (parse_fill_interval(c, tb, sub, &rl->fill_interval_ms) == FIELD_ERR)
		err = -1;
	snprintf(sub, sizeof(sub), "%s.descriptors", field);
	v = get_seq(c, m, "descriptors", sub);
	if (v && !per_route)
		obj_warn(c, map_key(m, "descriptors"),
			 "%s are applied by xmesh only in an HTTP_ROUTE patch's typed_per_filter_config, with that "
			 "patch's route.rate_limits: ignored, only the default token bucket applies",
			 sub);
	else if (v && parse_descriptors(c, v, sub, rl->fill_interval_ms, rl) == FIELD_ERR)
		err = -1;
	return err ? FIELD_ERR : FIELD_SET;
}

/* A typed_config: a TypedStruct wrapping a LocalRateLimit, or a LocalRateLimit itself. */
static int parse_typed_config(struct obj_ctx *c, const struct ynode *tc, const char *field, bool per_route,
			      struct xm_local_ratelimit *rl)
{
	char type[256], url[256], sub[256], q[QUOTE_BUF];
	const struct ynode *value;

	if (!tc || tc->kind != YNODE_MAP) {
		obj_error(c, tc, "%s must be a mapping", field);
		return FIELD_ERR;
	}
	snprintf(sub, sizeof(sub), "%s[\"@type\"]", field);
	if (get_str(c, tc, "@type", sub, type, sizeof(type)) != FIELD_SET) {
		if (!map_value(c, tc, "@type"))
			obj_error(c, tc, "%s is required", sub);
		return FIELD_ERR;
	}
	if (!strcmp(type, LOCAL_RATELIMIT_TYPE))
		return parse_local_ratelimit(c, tc, field, true, per_route, rl);
	if (strcmp(type, "type.googleapis.com/udpa.type.v1.TypedStruct") &&
	    strcmp(type, "type.googleapis.com/xds.type.v3.TypedStruct")) {
		obj_warn(c, map_value(c, tc, "@type"), "%s %s is not a local rate limit: ignored", sub,
			 quoted(q, type));
		return FIELD_ERR;
	}
	WARN_UNKNOWN(c, tc, field, "@type", "type_url", "value");
	snprintf(sub, sizeof(sub), "%s.type_url", field);
	if (get_str(c, tc, "type_url", sub, url, sizeof(url)) == FIELD_ERR)
		return FIELD_ERR;
	if (strcmp(url, LOCAL_RATELIMIT_TYPE)) {
		obj_warn(c, map_value(c, tc, "type_url") ? map_value(c, tc, "type_url") : tc,
			 "%s %s is not a local rate limit (%s): ignored", sub, quoted(q, url), LOCAL_RATELIMIT_TYPE);
		return FIELD_ERR;
	}
	snprintf(sub, sizeof(sub), "%s.value", field);
	value = map_value(c, tc, "value");
	if (!value) {
		obj_error(c, tc, "%s is required", sub);
		return FIELD_ERR;
	}
	return parse_local_ratelimit(c, value, sub, false, per_route, rl);
}

static bool is_hcm(const char *name)
{
	return !strcmp(name, "envoy.filters.network.http_connection_manager") ||
	       !strcmp(name, "envoy.http_connection_manager");
}

/* match.listener of an HTTP_FILTER patch: the HTTP connection manager of a listener, optionally its port. */
static bool parse_listener_match(struct obj_ctx *c, const struct ynode *l, uint16_t *port)
{
	const struct ynode *fc, *f, *sf;
	char name[256], q[QUOTE_BUF];
	long long num;

	if (!l)
		return true; /* every listener: every HTTP connection manager gets the filter */
	WARN_UNKNOWN(c, l, "match.listener", "filterChain", "portNumber");
	if (get_int(c, l, "portNumber", "match.listener.portNumber", 1, 65535, &num) == FIELD_SET)
		*port = (uint16_t)num;
	fc = get_map(c, l, "filterChain", "match.listener.filterChain");
	WARN_UNKNOWN(c, fc, "match.listener.filterChain", "filter");
	f = fc ? get_map(c, fc, "filter", "match.listener.filterChain.filter") : NULL;
	if (!f)
		return true;
	WARN_UNKNOWN(c, f, "match.listener.filterChain.filter", "name", "subFilter");
	if (get_str(c, f, "name", "match.listener.filterChain.filter.name", name, sizeof(name)) == FIELD_SET &&
	    !is_hcm(name)) {
		obj_warn(c, map_value(c, f, "name"),
			 "match.listener.filterChain.filter.name %s is not the HTTP connection manager: patch ignored",
			 quoted(q, name));
		return false;
	}
	sf = get_map(c, f, "subFilter", "match.listener.filterChain.filter.subFilter");
	WARN_UNKNOWN(c, sf, "match.listener.filterChain.filter.subFilter", "name");
	if (sf &&
	    get_str(c, sf, "name", "match.listener.filterChain.filter.subFilter.name", name, sizeof(name)) ==
		FIELD_SET &&
	    strcmp(name, "envoy.filters.http.router") && strcmp(name, "envoy.router"))
		obj_warn(
		    c, map_value(c, sf, "name"),
		    "match.listener.filterChain.filter.subFilter.name %s: xmesh applies the rate limit whatever the "
		    "filter's position (before the router)",
		    quoted(q, name));
	return true;
}

static void parse_http_filter(struct obj_ctx *c, const struct ynode *match, const struct ynode *patch,
			      struct xm_envoy_filter *ef, struct xm_ef_ratelimit *lim, bool *have)
{
	static const char *const ops[] = { "INSERT_BEFORE", "INSERT_FIRST", "INSERT_AFTER", "ADD" };
	const struct ynode *value;
	char op[32], name[256], q[QUOTE_BUF];
	size_t idx;

	if (!parse_listener_match(c, match ? map_value(c, match, "listener") : NULL, &lim->port))
		return;
	if (get_str(c, patch, "operation", "patch.operation", op, sizeof(op)) == FIELD_ERR)
		return;
	for (idx = 0; idx < 4 && strcmp(op, ops[idx]); idx++)
		;
	if (idx == 4) {
		obj_warn(
		    c, map_value(c, patch, "operation") ? map_value(c, patch, "operation") : patch,
		    "patch.operation %s does not insert a filter (INSERT_BEFORE, INSERT_FIRST, INSERT_AFTER, ADD): "
		    "patch ignored",
		    quoted(q, op));
		return;
	}
	value = get_map(c, patch, "value", "patch.value");
	if (!value) {
		obj_error(c, patch, "patch.value is required");
		return;
	}
	WARN_UNKNOWN(c, value, "patch.value", "name", "typed_config");
	if (get_str(c, value, "name", "patch.value.name", name, sizeof(name)) != FIELD_SET)
		return;
	if (strcmp(name, LOCAL_RATELIMIT)) {
		obj_warn(c, map_value(c, value, "name"),
			 "patch.value.name %s is not supported by xmesh (only %s): "
			 "patch ignored",
			 quoted(q, name), LOCAL_RATELIMIT);
		return;
	}
	if (!map_value(c, value, "typed_config")) {
		obj_error(c, value, "patch.value.typed_config is required");
		return;
	}
	switch (
	    parse_typed_config(c, map_value(c, value, "typed_config"), "patch.value.typed_config", false, &lim->rl)) {
	case FIELD_SET:
		*have = true;
		/* fallthrough */
	case FIELD_ABSENT:
		ef->inserts_filter = true;
		break;
	default:
		break;
	}
}

/* "inbound|http|9080" → 9080; 0 for other names. */
static uint16_t inbound_vhost_port(const char *name)
{
	const char *p = name + strlen("inbound|http|");
	char *end;
	unsigned long v;

	if (strncmp(name, "inbound|http|", strlen("inbound|http|")) || *p < '1' || *p > '9')
		return 0;
	v = strtoul(p, &end, 10);
	return *end || v > 65535 ? 0 : (uint16_t)v;
}

static void policy_free(struct xm_rl_policy *p)
{
	for (size_t a = 0; a < p->n_actions; a++) {
		struct xm_rl_action *x = &p->actions[a];

		for (size_t h = 0; h < x->n_headers; h++) {
			free(x->headers[h].name);
			free(x->headers[h].value);
		}
		free(x->headers);
		free(x->key);
		free(x->value);
	}
	free(p->actions);
	memset(p, 0, sizeof(*p));
}

/* HeaderValueMatch.headers[i] (a HeaderMatcher): FIELD_SET, FIELD_ABSENT (unsupported: warned), FIELD_ERR. */
static int parse_hmatch(struct obj_ctx *c, const struct ynode *h, const char *field, struct xm_rl_hmatch *m)
{
	static const char *const kinds[] = { "exact_match", "prefix_match", "present_match", "string_match" };
	const struct ynode *sm;
	char sub[512], q[QUOTE_BUF];
	size_t n_kinds = 0, kind = 0;

	if (!h || h->kind != YNODE_MAP) {
		obj_error(c, h, "%s must be a mapping", field);
		return FIELD_ERR;
	}
	for (size_t i = 0; i + 1 < h->n; i += 2) {
		const char *k = h->kids[i]->kind == YNODE_SCALAR ? h->kids[i]->str : "";
		bool known = !strcmp(k, "name") || !strcmp(k, "invert_match");

		for (size_t j = 0; j < 4 && !known; j++)
			if (!strcmp(k, kinds[j])) {
				known = true;
				kind = j;
				n_kinds++;
			}
		if (!known) {
			obj_warn(c, h->kids[i], "%s.%s is not supported by xmesh: this rate_limits item is ignored",
				 field, plain_key(k) ? k : quoted(q, k));
			return FIELD_ABSENT;
		}
	}
	snprintf(sub, sizeof(sub), "%s.name", field);
	if (dup_header_name(c, h, "name", sub, &m->name) != FIELD_SET)
		return FIELD_ERR;
	snprintf(sub, sizeof(sub), "%s.invert_match", field);
	if (get_bool(c, h, "invert_match", sub, &m->invert) == FIELD_ERR)
		return FIELD_ERR;
	if (n_kinds != 1) {
		obj_error(c, h, "%s needs exactly one of exact_match, prefix_match, present_match, string_match",
			  field);
		return FIELD_ERR;
	}
	snprintf(sub, sizeof(sub), "%s.%s", field, kinds[kind]);
	if (kind == 2) {
		m->kind = XM_RLH_PRESENT;
		return get_bool(c, h, "present_match", sub, &m->present) == FIELD_ERR ? FIELD_ERR : FIELD_SET;
	}
	if (kind < 2) {
		m->kind = kind ? XM_RLH_PREFIX : XM_RLH_EXACT;
		return dup_str(c, h, kinds[kind], sub, &m->value) == FIELD_SET ? FIELD_SET : FIELD_ERR;
	}
	sm = get_map(c, h, "string_match", sub);
	if (!sm)
		return FIELD_ERR;
	for (size_t i = 0; i + 1 < sm->n; i += 2) {
		const char *k = sm->kids[i]->kind == YNODE_SCALAR ? sm->kids[i]->str : "";

		if (strcmp(k, "exact") && strcmp(k, "prefix")) {
			obj_warn(c, sm->kids[i], "%s.%s is not supported by xmesh: this rate_limits item is ignored",
				 sub, plain_key(k) ? k : quoted(q, k));
			return FIELD_ABSENT;
		}
	}
	m->kind = map_value(c, sm, "exact") ? XM_RLH_EXACT : XM_RLH_PREFIX;
	strncat(sub, m->kind == XM_RLH_EXACT ? ".exact" : ".prefix", sizeof(sub) - strlen(sub) - 1);
	if (sm->n != 2 || dup_str(c, sm, m->kind == XM_RLH_EXACT ? "exact" : "prefix", sub, &m->value) != FIELD_SET) {
		obj_error(c, sm, "%s needs exactly one of exact, prefix", field);
		return FIELD_ERR;
	}
	return FIELD_SET;
}

/* One action of route.rate_limits[i].actions: FIELD_SET, FIELD_ABSENT (unsupported: warned), FIELD_ERR. */
static int parse_action(struct obj_ctx *c, const struct ynode *a, const char *field, struct xm_rl_action *x)
{
	const struct ynode *v, *hs;
	char sub[400], q[QUOTE_BUF];
	const char *k;

	if (!a || a->kind != YNODE_MAP || a->n != 2) {
		obj_error(c, a, "%s must be a mapping with one action", field);
		return FIELD_ERR;
	}
	k = a->kids[0]->kind == YNODE_SCALAR ? a->kids[0]->str : "";
	v = a->kids[1];
	snprintf(sub, sizeof(sub), "%s.%s", field, plain_key(k) ? k : quoted(q, k));
	if (strcmp(k, "request_headers") && strcmp(k, "generic_key") && strcmp(k, "header_value_match")) {
		obj_warn(c, a->kids[0],
			 "%s is not supported by xmesh (only request_headers, generic_key, header_value_match): this "
			 "rate_limits item is ignored",
			 sub);
		return FIELD_ABSENT;
	}
	if (!v || v->kind != YNODE_MAP) {
		obj_error(c, v ? v : a, "%s must be a mapping", sub);
		return FIELD_ERR;
	}
	if (!strcmp(k, "request_headers")) {
		char f[440];

		x->kind = XM_RLA_REQUEST_HEADERS;
		WARN_UNKNOWN(c, v, sub, "header_name", "descriptor_key", "skip_if_absent");
		snprintf(f, sizeof(f), "%s.header_name", sub);
		if (dup_header_name(c, v, "header_name", f, &x->value) != FIELD_SET)
			return FIELD_ERR;
		snprintf(f, sizeof(f), "%s.descriptor_key", sub);
		if (dup_str(c, v, "descriptor_key", f, &x->key) != FIELD_SET || !x->key[0]) {
			if (!x->key || !x->key[0])
				obj_error(c, v, "%s is required", f);
			return FIELD_ERR;
		}
		snprintf(f, sizeof(f), "%s.skip_if_absent", sub);
		return get_bool(c, v, "skip_if_absent", f, &x->skip_if_absent) == FIELD_ERR ? FIELD_ERR : FIELD_SET;
	}
	if (!strcmp(k, "generic_key")) {
		char f[440];

		x->kind = XM_RLA_GENERIC_KEY;
		WARN_UNKNOWN(c, v, sub, "descriptor_key", "descriptor_value");
		snprintf(f, sizeof(f), "%s.descriptor_value", sub);
		if (dup_str(c, v, "descriptor_value", f, &x->value) != FIELD_SET || !x->value[0]) {
			if (!x->value || !x->value[0])
				obj_error(c, v, "%s is required", f);
			return FIELD_ERR;
		}
		snprintf(f, sizeof(f), "%s.descriptor_key", sub);
		if (dup_str(c, v, "descriptor_key", f, &x->key) == FIELD_ERR)
			return FIELD_ERR;
		if (!x->key || !x->key[0]) {
			free(x->key);
			x->key = strdup("generic_key"); /* Envoy's default */
		}
		return x->key ? FIELD_SET : FIELD_ERR;
	}
	x->kind = XM_RLA_HEADER_VALUE_MATCH;
	x->expect_match = true;
	WARN_UNKNOWN(c, v, sub, "descriptor_key", "descriptor_value", "expect_match", "headers");
	{
		char f[440];
		int r;

		snprintf(f, sizeof(f), "%s.descriptor_value", sub);
		if (dup_str(c, v, "descriptor_value", f, &x->value) != FIELD_SET || !x->value[0]) {
			if (!x->value || !x->value[0])
				obj_error(c, v, "%s is required", f);
			return FIELD_ERR;
		}
		snprintf(f, sizeof(f), "%s.descriptor_key", sub);
		if (dup_str(c, v, "descriptor_key", f, &x->key) == FIELD_ERR)
			return FIELD_ERR;
		if (!x->key || !x->key[0]) {
			free(x->key);
			if (!(x->key = strdup("header_match"))) /* Envoy's default */
				return FIELD_ERR;
		}
		snprintf(f, sizeof(f), "%s.expect_match", sub);
		if (get_bool(c, v, "expect_match", f, &x->expect_match) == FIELD_ERR)
			return FIELD_ERR;
		snprintf(f, sizeof(f), "%s.headers", sub);
		hs = get_seq(c, v, "headers", f);
		if (!hs || !hs->n) {
			obj_error(c, hs ? hs : v, "%s is required (at least one)", f);
			return FIELD_ERR;
		}
		for (size_t i = 0; i < hs->n; i++) {
			struct xm_rl_hmatch *m = array_push(&x->headers, &x->n_headers, sizeof(*m));

			snprintf(f, sizeof(f), "%s.headers[%zu]", sub, i);
			if (!m)
				return FIELD_ERR;
			if ((r = parse_hmatch(c, hs->kids[i], f, m)) != FIELD_SET)
				return r;
		}
	}
	return FIELD_SET;
}

/* The HTTP_ROUTE patch's value.route: its rate_limits (the actions that make a request's descriptors). */
static void parse_route_rate_limits(struct obj_ctx *c, const struct ynode *route, struct xm_ef_ratelimit *lim)
{
	const struct ynode *rls;
	char sub[320];

	WARN_UNKNOWN(c, route, "patch.value.route", "rate_limits");
	rls = get_seq(c, route, "rate_limits", "patch.value.route.rate_limits");
	for (size_t i = 0; rls && i < rls->n; i++) {
		const struct ynode *item = rls->kids[i], *acts;
		struct xm_rl_policy p = { 0 };
		int r = FIELD_SET;

		snprintf(sub, sizeof(sub), "patch.value.route.rate_limits[%zu]", i);
		if (!item || item->kind != YNODE_MAP) {
			obj_error(c, item, "%s must be a mapping", sub);
			continue;
		}
		WARN_UNKNOWN(c, item, sub, "actions");
		snprintf(sub, sizeof(sub), "patch.value.route.rate_limits[%zu].actions", i);
		acts = get_seq(c, item, "actions", sub);
		if (!acts || !acts->n) {
			obj_error(c, acts ? acts : item, "%s is required (at least one)", sub);
			continue;
		}
		for (size_t a = 0; r == FIELD_SET && a < acts->n; a++) {
			struct xm_rl_action *x = array_push(&p.actions, &p.n_actions, sizeof(*x));

			snprintf(sub, sizeof(sub), "patch.value.route.rate_limits[%zu].actions[%zu]", i, a);
			r = x ? parse_action(c, acts->kids[a], sub, x) : FIELD_ERR;
		}
		if (r == FIELD_SET) {
			struct xm_rl_policy *slot = array_push(&lim->policies, &lim->n_policies, sizeof(*slot));

			if (slot) {
				*slot = p;
				continue;
			}
			obj_error(c, item, "out of memory");
		}
		policy_free(&p);
	}
}

static void parse_http_route(struct obj_ctx *c, const struct ynode *match, const struct ynode *patch,
			     struct xm_ef_ratelimit *lim, bool *have)
{
	static const char *const actions[] = { "ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE" };
	const struct ynode *rc, *vh, *route, *value, *tpfc;
	char name[256], op[32], q[QUOTE_BUF];
	size_t action = 0;

	rc = match ? get_map(c, match, "routeConfiguration", "match.routeConfiguration") : NULL;
	vh = rc ? get_map(c, rc, "vhost", "match.routeConfiguration.vhost") : NULL;
	WARN_UNKNOWN(c, rc, "match.routeConfiguration", "vhost");
	if (!vh || get_str(c, vh, "name", "match.routeConfiguration.vhost.name", name, sizeof(name)) != FIELD_SET) {
		obj_warn(c,
			 rc	 ? rc
			 : match ? match
				 : patch,
			 "an HTTP_ROUTE patch without match.routeConfiguration.vhost.name \"inbound|http|PORT\" is not "
			 "supported by xmesh: patch ignored");
		return;
	}
	WARN_UNKNOWN(c, vh, "match.routeConfiguration.vhost", "name", "route");
	lim->port = inbound_vhost_port(name);
	if (!lim->port) {
		obj_warn(c, map_value(c, vh, "name"),
			 "match.routeConfiguration.vhost.name %s is not an inbound vhost \"inbound|http|PORT\": patch "
			 "ignored",
			 quoted(q, name));
		return;
	}
	if (lim->context == XM_EF_SIDECAR_OUTBOUND) {
		obj_warn(c, map_value(c, match, "context"),
			 "context SIDECAR_OUTBOUND has no vhost %s (Istio names inbound vhosts so): patch ignored",
			 quoted(q, name));
		return;
	}
	route = get_map(c, vh, "route", "match.routeConfiguration.vhost.route");
	WARN_UNKNOWN(c, route, "match.routeConfiguration.vhost.route", "action", "name");
	if (route && get_enum(c, route, "action", "match.routeConfiguration.vhost.route.action", actions, 4, &action) ==
			 FIELD_ERR)
		return;
	if (action >= 2) {
		obj_warn(c, map_value(c, route, "action"),
			 "match.routeConfiguration.vhost.route.action %s matches no inbound route: patch ignored",
			 actions[action]);
		return;
	}
	/* Istio's inbound vhost has one route, named "default". */
	if (route &&
	    get_str(c, route, "name", "match.routeConfiguration.vhost.route.name", name, sizeof(name)) == FIELD_SET &&
	    strcmp(name, "default")) {
		obj_warn(
		    c, map_value(c, route, "name"),
		    "match.routeConfiguration.vhost.route.name %s matches no inbound route (Istio's is \"default\"): "
		    "patch ignored",
		    quoted(q, name));
		return;
	}
	if (get_str(c, patch, "operation", "patch.operation", op, sizeof(op)) == FIELD_ERR)
		return;
	if (strcmp(op, "MERGE")) {
		obj_warn(c, map_value(c, patch, "operation") ? map_value(c, patch, "operation") : patch,
			 "patch.operation %s: only MERGE of typed_per_filter_config is supported on HTTP_ROUTE: patch "
			 "ignored",
			 quoted(q, op));
		return;
	}
	value = get_map(c, patch, "value", "patch.value");
	if (!value) {
		obj_error(c, patch, "patch.value is required");
		return;
	}
	WARN_UNKNOWN(c, value, "patch.value", "typed_per_filter_config", "route");
	if (get_map(c, value, "route", "patch.value.route"))
		parse_route_rate_limits(c, map_value(c, value, "route"), lim);
	tpfc = get_map(c, value, "typed_per_filter_config", "patch.value.typed_per_filter_config");
	if (!tpfc) {
		if (lim->n_policies)
			obj_warn(c, map_value(c, value, "route"),
				 "patch.value.route.rate_limits without a typed_per_filter_config local rate limit in "
				 "the same patch: ignored");
		return;
	}
	WARN_UNKNOWN(c, tpfc, "patch.value.typed_per_filter_config", LOCAL_RATELIMIT);
	if (!map_value(c, tpfc, LOCAL_RATELIMIT))
		return;
	if (parse_typed_config(c, map_value(c, tpfc, LOCAL_RATELIMIT),
			       "patch.value.typed_per_filter_config[\"" LOCAL_RATELIMIT "\"]", true,
			       &lim->rl) == FIELD_SET)
		*have = true;
}

static void parse_patch(struct obj_ctx *c, const struct ynode *p, size_t idx, struct xm_envoy_filter *ef)
{
	static const char *const apply_names[] = { "HTTP_FILTER", "HTTP_ROUTE" };
	const struct ynode *match, *patch;
	struct xm_ef_ratelimit lim = { 0 };
	char apply[64], q[QUOTE_BUF];
	size_t ctx = 0;
	bool have = false;

	if (!p || p->kind != YNODE_MAP) {
		obj_error(c, p, "must be a mapping");
		return;
	}
	lim.loc = obj_loc_of(c, p);
	lim.patch = idx;
	WARN_UNKNOWN(c, p, "", "applyTo", "match", "patch");
	if (get_str(c, p, "applyTo", "applyTo", apply, sizeof(apply)) != FIELD_SET)
		return;
	if (strcmp(apply, apply_names[0]) && strcmp(apply, apply_names[1])) {
		obj_warn(c, map_value(c, p, "applyTo"),
			 "applyTo %s is not supported by xmesh (only the local rate limit's HTTP_FILTER and HTTP_ROUTE "
			 "patches): patch ignored",
			 quoted(q, apply));
		return;
	}
	match = get_map(c, p, "match", "match");
	if (!strcmp(apply, "HTTP_FILTER"))
		WARN_UNKNOWN(c, match, "match", "context", "listener");
	else
		WARN_UNKNOWN(c, match, "match", "context", "routeConfiguration");
	if (match && get_enum(c, match, "context", "match.context", context_names, 4, &ctx) == FIELD_ERR)
		return;
	lim.context = (enum xm_ef_context)ctx;
	if (lim.context == XM_EF_GATEWAY) {
		obj_warn(c, map_value(c, match, "context"), "context GATEWAY: xmesh serves no gateway: patch ignored");
		return;
	}
	patch = get_map(c, p, "patch", "patch");
	if (!patch) {
		obj_error(c, p, "patch is required");
		return;
	}
	WARN_UNKNOWN(c, patch, "patch", "operation", "value");
	if (!strcmp(apply, "HTTP_FILTER"))
		parse_http_filter(c, match, patch, ef, &lim, &have);
	else
		parse_http_route(c, match, patch, &lim, &have);
	lim.route = !strcmp(apply, "HTTP_ROUTE");
	for (size_t i = 0; have && i < ef->n_limits; i++) {
		if (ef->limits[i].route == lim.route && ef->limits[i].port == lim.port &&
		    ef->limits[i].context == lim.context) {
			obj_warn(c, p,
				 "configPatches[%zu] already sets this rate limit: patch ignored (the first one "
				 "applies)",
				 ef->limits[i].patch);
			have = false;
		}
	}
	if (have) {
		struct xm_ef_ratelimit *slot = array_push(&ef->limits, &ef->n_limits, sizeof(*ef->limits));

		if (!slot) {
			obj_error(c, p, "out of memory");
			xm_ef_ratelimit_clear(&lim);
			return;
		}
		*slot = lim;
	} else {
		xm_ef_ratelimit_clear(&lim);
	}
}

void parse_envoy_filter(struct obj_ctx *c, const struct ynode *obj)
{
	const struct ynode *spec = get_map(c, obj, "spec", NULL);
	const struct ynode *ws, *patches = NULL;
	struct xm_envoy_filter ef = { 0 };
	struct xm_envoy_filter *slot;

	snprintf(ef.ns, sizeof(ef.ns), "%s", c->ns);
	snprintf(ef.name, sizeof(ef.name), "%s", c->name);
	ef.loc = c->loc;
	if (!spec) {
		obj_error(c, obj, "spec is required");
	} else {
		WARN_UNKNOWN(c, spec, "spec", "workloadSelector", "configPatches");
		ws = get_map(c, spec, "workloadSelector", "spec.workloadSelector");
		if (ws) {
			WARN_UNKNOWN(c, ws, "spec.workloadSelector", "labels");
			ef.has_selector = true;
			get_labels(c, ws, "labels", "spec.workloadSelector.labels", &ef.labels, &ef.n_labels);
		}
		patches = get_seq(c, spec, "configPatches", "spec.configPatches");
		for (size_t i = 0; patches && i < patches->n; i++) {
			snprintf(c->sub, sizeof(c->sub), "configPatches[%zu]", i);
			parse_patch(c, patches->kids[i], i, &ef);
		}
		for (size_t i = 0; patches && i < ef.n_limits && !ef.inserts_filter; i++) {
			if (!ef.limits[i].route)
				continue;
			snprintf(c->sub, sizeof(c->sub), "configPatches[%zu]", ef.limits[i].patch);
			obj_warn(c, patches->kids[ef.limits[i].patch],
				 "the HTTP_ROUTE rate limit has no effect: no HTTP_FILTER patch of this EnvoyFilter "
				 "inserts " LOCAL_RATELIMIT);
		}
		c->sub[0] = '\0';
	}
	slot = array_push(&c->cfg->envoy_filters, &c->cfg->n_envoy_filters, sizeof(*c->cfg->envoy_filters));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		envoy_filter_free(&ef);
		return;
	}
	*slot = ef;
}

void envoy_filter_free(struct xm_envoy_filter *ef)
{
	free(ef->labels);
	for (size_t i = 0; i < ef->n_limits; i++)
		xm_ef_ratelimit_clear(&ef->limits[i]);
	free(ef->limits);
	memset(ef, 0, sizeof(*ef));
}

void xm_ef_ratelimit_clear(struct xm_ef_ratelimit *lim)
{
	for (size_t h = 0; h < lim->rl.n_headers; h++) {
		free(lim->rl.headers[h].name);
		free(lim->rl.headers[h].value);
	}
	free(lim->rl.headers);
	for (size_t d = 0; d < lim->rl.n_descriptors; d++) {
		for (size_t e = 0; e < lim->rl.descriptors[d].n_entries; e++) {
			free(lim->rl.descriptors[d].entries[e].key);
			free(lim->rl.descriptors[d].entries[e].value);
		}
		free(lim->rl.descriptors[d].entries);
	}
	free(lim->rl.descriptors);
	for (size_t p = 0; p < lim->n_policies; p++)
		policy_free(&lim->policies[p]);
	free(lim->policies);
	memset(lim, 0, sizeof(*lim));
}

void xm_rl_policies_free(struct xm_rl_policy *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++)
		policy_free(&p[i]);
	free(p);
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*oom = true;
	return d;
}

struct xm_rl_policy *xm_rl_policies_dup(const struct xm_rl_policy *p, size_t n)
{
	struct xm_rl_policy *out = n ? calloc(n, sizeof(*out)) : NULL;
	bool oom = !out;

	for (size_t i = 0; !oom && i < n; i++) {
		out[i].actions = calloc(p[i].n_actions ? p[i].n_actions : 1, sizeof(*out[i].actions));
		if (!out[i].actions) {
			oom = true;
			break;
		}
		out[i].n_actions = p[i].n_actions;
		for (size_t a = 0; !oom && a < p[i].n_actions; a++) {
			const struct xm_rl_action *s = &p[i].actions[a];
			struct xm_rl_action *d = &out[i].actions[a];

			*d = *s;
			d->headers = NULL;
			d->n_headers = 0;
			d->key = dup_or_null(s->key, &oom);
			d->value = dup_or_null(s->value, &oom);
			if (s->n_headers && !(d->headers = calloc(s->n_headers, sizeof(*d->headers)))) {
				oom = true;
				break;
			}
			d->n_headers = s->n_headers;
			for (size_t h = 0; h < s->n_headers; h++) {
				d->headers[h] = s->headers[h];
				d->headers[h].name = dup_or_null(s->headers[h].name, &oom);
				d->headers[h].value = dup_or_null(s->headers[h].value, &oom);
			}
		}
	}
	if (oom && out) {
		xm_rl_policies_free(out, n);
		out = NULL;
	}
	return out;
}
