// SPDX-License-Identifier: Apache-2.0
/* VirtualService http[] building blocks: StringMatch, HTTPMatchRequest, Headers and Destination. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/http_fields.h"
#include "l7/regex.h"

int node_strdup(struct obj_ctx *c, const struct ynode *n, const char *field, size_t max, char **out)
{
	char got[QUOTE_BUF + 16];

	*out = NULL;
	if (ynode_is_null(n))
		return FIELD_ABSENT;
	if (n->kind != YNODE_SCALAR) {
		obj_error(c, n, "%s: expected a string, got %s", field, ynode_describe(n, got, sizeof(got)));
		return FIELD_ERR;
	}
	if (strlen(n->str) != n->len) {
		obj_error(c, n, "%s contains a NUL character", field);
		return FIELD_ERR;
	}
	if (n->len > max) {
		obj_error(c, n, "%s is too long (%zu characters, at most %zu)", field, n->len, max);
		return FIELD_ERR;
	}
	*out = strdup(n->str);
	if (!*out) {
		obj_error(c, n, "out of memory");
		return FIELD_ERR;
	}
	return FIELD_SET;
}

int get_strdup(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, size_t max, char **out)
{
	char name[256];

	return node_strdup(c, map_value(c, map, key), field_name(name, sizeof(name), field, key), max, out);
}

static bool expect_map(struct obj_ctx *c, const struct ynode *n, const char *field)
{
	char got[QUOTE_BUF + 16];

	if (n && n->kind == YNODE_MAP)
		return true;
	obj_error(c, n, "%s: expected a mapping, got %s", field, ynode_describe(n, got, sizeof(got)));
	return false;
}

void parse_string_match(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_string_match *out)
{
	static const char *const keys[] = { "exact", "prefix", "regex" };
	static const enum xm_match_kind kinds[] = { XM_MATCH_EXACT, XM_MATCH_PREFIX, XM_MATCH_REGEX };
	const struct ynode *first = NULL;

	memset(out, 0, sizeof(*out));
	out->loc = obj_loc_of(c, n);
	if (ynode_is_null(n))
		return; /* headers: {name: } is a presence check, as {} */
	if (!expect_map(c, n, field))
		return;
	for (size_t k = 0; k < 3; k++) {
		const struct ynode *v = map_value(c, n, keys[k]);
		char name[256];

		if (!v)
			continue;
		if (first) {
			obj_error(c, v, "%s: only one of exact, prefix, regex may be given", field);
			continue;
		}
		first = v;
		snprintf(name, sizeof(name), "%s.%s", field, keys[k]);
		if (node_strdup(c, v, name, HTTP_STR_MAX, &out->value) != FIELD_SET)
			return;
		out->kind = kinds[k];
		out->loc = obj_loc_of(c, v);
		if (out->kind == XM_MATCH_REGEX) {
			char why[256];

			if (l7_regex_check(out->value, why, sizeof(why)))
				obj_error(c, v, "%s: bad regex: %s", name, why);
		}
	}
}

/* A map of name → StringMatch (headers, withoutHeaders, queryParams). */
static void parse_kv_matches(struct obj_ctx *c, const struct ynode *match, const char *key, const char *field,
			     bool lowercase, struct xm_kv_match **out, size_t *n)
{
	const struct ynode *m = map_value(c, match, key);
	char name[512], q[QUOTE_BUF];

	snprintf(name, sizeof(name), "%s.%s", field, key);
	if (!m || !expect_map(c, m, name))
		return;
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		struct xm_kv_match *kv;
		char *k = NULL;
		char sub[600];

		if (node_strdup(c, m->kids[i], name, 256, &k) != FIELD_SET)
			continue;
		if (!k[0]) {
			obj_error(c, m->kids[i], "%s: empty name", name);
			free(k);
			continue;
		}
		kv = array_push(out, n, sizeof(**out));
		if (!kv) {
			obj_error(c, m, "out of memory");
			free(k);
			return;
		}
		for (char *p = k; lowercase && *p; p++)
			*p = (char)tolower((unsigned char)*p);
		kv->name = k;
		kv->loc = obj_loc_of(c, m->kids[i]);
		snprintf(sub, sizeof(sub), "%s[%s]", name, quoted(q, k));
		parse_string_match(c, m->kids[i + 1], sub, &kv->m);
	}
}

void parse_http_match(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_match *out)
{
	char name[512];
	long long port;

	out->loc = obj_loc_of(c, n);
	if (!expect_map(c, n, field))
		return;
	get_strdup(c, n, "name", field, 256, &out->name);
	parse_string_match(c, map_value(c, n, "uri"), field_name(name, sizeof(name), field, "uri"), &out->uri);
	parse_string_match(c, map_value(c, n, "scheme"), field_name(name, sizeof(name), field, "scheme"), &out->scheme);
	parse_string_match(c, map_value(c, n, "method"), field_name(name, sizeof(name), field, "method"), &out->method);
	parse_string_match(c, map_value(c, n, "authority"), field_name(name, sizeof(name), field, "authority"),
			   &out->authority);
	parse_kv_matches(c, n, "headers", field, true, &out->headers, &out->n_headers);
	parse_kv_matches(c, n, "withoutHeaders", field, true, &out->without_headers, &out->n_without_headers);
	parse_kv_matches(c, n, "queryParams", field, false, &out->query_params, &out->n_query_params);
	if (get_int(c, n, "port", field_name(name, sizeof(name), field, "port"), 1, 65535, &port) == FIELD_SET)
		out->port = (uint16_t)port;
	get_labels(c, n, "sourceLabels", field_name(name, sizeof(name), field, "sourceLabels"), &out->source_labels,
		   &out->n_source_labels);
	get_strdup(c, n, "sourceNamespace", field, 64, &out->source_namespace);
	get_bool(c, n, "ignoreUriCase", field_name(name, sizeof(name), field, "ignoreUriCase"), &out->ignore_uri_case);
	if (map_value(c, n, "gateways"))
		obj_warn(c, map_value(c, n, "gateways"), "%s.gateways: only the mesh is served; ignored", field);
}

/* set/add: a map of header → value; remove: a list of headers. */
static void parse_header_ops(struct obj_ctx *c, const struct ynode *m, const char *field, struct xm_header_op **ops,
			     size_t *n_ops, char ***remove, size_t *n_remove)
{
	static const char *const op_keys[] = { "set", "add" };
	char name[512];

	if (!expect_map(c, m, field))
		return;
	for (size_t k = 0; k < 2; k++) {
		const struct ynode *ops_map = map_value(c, m, op_keys[k]);

		field_name(name, sizeof(name), field, op_keys[k]);
		if (!ops_map || !expect_map(c, ops_map, name))
			continue;
		for (size_t i = 0; i + 1 < ops_map->n; i += 2) {
			struct xm_header_op op = { 0 };
			struct xm_header_op *slot;

			if (node_strdup(c, ops_map->kids[i], name, 256, &op.name) != FIELD_SET ||
			    node_strdup(c, ops_map->kids[i + 1], name, HTTP_STR_MAX, &op.value) == FIELD_ERR) {
				free(op.name);
				free(op.value);
				continue;
			}
			if (!op.value)
				op.value = strdup("");
			slot = op.value ? array_push(&ops[k], &n_ops[k], sizeof(*ops[k])) : NULL;
			if (!slot) {
				obj_error(c, ops_map, "out of memory");
				free(op.name);
				free(op.value);
				return;
			}
			*slot = op;
		}
	}
	{
		const struct ynode *rm = get_seq(c, m, "remove", field_name(name, sizeof(name), field, "remove"));

		for (size_t i = 0; rm && i < rm->n; i++) {
			char *h = NULL;
			char **slot;

			if (node_strdup(c, rm->kids[i], name, 256, &h) != FIELD_SET)
				continue;
			slot = array_push(remove, n_remove, sizeof(**remove));
			if (!slot) {
				obj_error(c, rm, "out of memory");
				free(h);
				return;
			}
			*slot = h;
		}
	}
}

void parse_http_headers(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_headers *out)
{
	const struct ynode *req, *resp;
	char name[512];

	if (!n || !expect_map(c, n, field))
		return;
	req = map_value(c, n, "request");
	resp = map_value(c, n, "response");
	if (req) {
		struct xm_header_op *ops[2] = { NULL, NULL };
		size_t n_ops[2] = { 0, 0 };

		parse_header_ops(c, req, field_name(name, sizeof(name), field, "request"), ops, n_ops, &out->req_remove,
				 &out->n_req_remove);
		out->req_set = ops[0], out->n_req_set = n_ops[0];
		out->req_add = ops[1], out->n_req_add = n_ops[1];
	}
	if (resp) {
		struct xm_header_op *ops[2] = { NULL, NULL };
		size_t n_ops[2] = { 0, 0 };

		parse_header_ops(c, resp, field_name(name, sizeof(name), field, "response"), ops, n_ops,
				 &out->resp_remove, &out->n_resp_remove);
		out->resp_set = ops[0], out->n_resp_set = n_ops[0];
		out->resp_add = ops[1], out->n_resp_add = n_ops[1];
	}
}

void parse_http_destination(struct obj_ctx *c, const struct ynode *n, const char *field,
			    struct xm_http_destination *out)
{
	const struct ynode *host, *port;
	char name[512], q[QUOTE_BUF];
	long long v;
	int r;

	out->loc = obj_loc_of(c, n);
	out->host_loc = out->subset_loc = out->loc;
	if (!expect_map(c, n, field))
		return;
	host = map_value(c, n, "host");
	r = node_str(c, host, field_name(name, sizeof(name), field, "host"), out->host, sizeof(out->host));
	if (host)
		out->host_loc = obj_loc_of(c, host);
	if (r == FIELD_ABSENT || (r == FIELD_SET && !out->host[0]))
		obj_error(c, n, "%s is required", name);
	else if (r == FIELD_SET && (strchr(out->host, '/') || strchr(out->host, ' ')))
		obj_error(c, host, "%s %s is not a host name", name, quoted(q, out->host));
	if (get_str(c, n, "subset", field, out->subset, sizeof(out->subset)) == FIELD_SET)
		out->subset_loc = obj_loc_of(c, map_value(c, n, "subset"));
	port = get_map(c, n, "port", field_name(name, sizeof(name), field, "port"));
	if (port &&
	    get_int(c, port, "number", field_name(name, sizeof(name), field, "port.number"), 1, 65535, &v) == FIELD_SET)
		out->port = (uint16_t)v;
}
