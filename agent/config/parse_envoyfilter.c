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
		if (!strcmp(k->str, "descriptors"))
			obj_warn(c, k,
				 "%s.descriptors are not supported by xmesh (they need the route's rate_limits "
				 "actions): ignored, only the default token bucket applies",
				 field);
		else
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
			     "filter_enforced", "response_headers_to_add",
			     "local_rate_limit_per_downstream_connection");
	else
		WARN_UNKNOWN(c, m, field, "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
			     "response_headers_to_add", "local_rate_limit_per_downstream_connection");
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
	WARN_UNKNOWN(c, value, "patch.value", "typed_per_filter_config");
	tpfc = get_map(c, value, "typed_per_filter_config", "patch.value.typed_per_filter_config");
	if (!tpfc)
		return;
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
			free(lim.rl.headers);
			return;
		}
		*slot = lim;
	} else {
		for (size_t i = 0; i < lim.rl.n_headers; i++) {
			free(lim.rl.headers[i].name);
			free(lim.rl.headers[i].value);
		}
		free(lim.rl.headers);
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
	for (size_t i = 0; i < ef->n_limits; i++) {
		for (size_t h = 0; h < ef->limits[i].rl.n_headers; h++) {
			free(ef->limits[i].rl.headers[h].name);
			free(ef->limits[i].rl.headers[h].value);
		}
		free(ef->limits[i].rl.headers);
	}
	free(ef->limits);
	memset(ef, 0, sizeof(*ef));
}
