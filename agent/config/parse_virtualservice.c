// SPDX-License-Identifier: Apache-2.0
/*
 * networking.istio.io VirtualService: hosts, gateways (only the mesh), http[] routes with their matches and
 * actions, fault injection and retries. tcp[]/tls[] and the fields of later work (corsPolicy, delegate) are warned
 * about.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/http_fields.h"
#include "config/objects.h"
#include "config/parse_fault.h"
#include "config/parse_retries.h"

/* Fields that change behaviour but are not implemented yet: never silently ignored. */
static const char *const unsupported_route_fields[] = {
	"corsPolicy",
	"delegate",
	"uriRegexRewrite",
	"mirrors",
};

static void parse_hosts(struct obj_ctx *c, const struct ynode *spec, struct xm_virtual_service *vs)
{
	const struct ynode *hosts = get_seq(c, spec, "hosts", "spec.hosts");
	char field[64], q[QUOTE_BUF];

	if (!hosts || !hosts->n) {
		obj_error(c, spec, "spec.hosts is required");
		return;
	}
	for (size_t i = 0; i < hosts->n; i++) {
		char *h = NULL;
		char **slot;
		struct xm_loc *loc;
		size_t n_locs;

		snprintf(field, sizeof(field), "spec.hosts[%zu]", i);
		if (node_strdup(c, hosts->kids[i], field, XM_NAME_MAX - 1, &h) != FIELD_SET)
			continue;
		if (!h[0] || strchr(h, '/') || strchr(h, ' ')) {
			obj_error(c, hosts->kids[i], "%s %s is not a host name", field, quoted(q, h));
			free(h);
			continue;
		}
		n_locs = vs->n_hosts; /* host_locs grows beside hosts */
		slot = array_push(&vs->hosts, &vs->n_hosts, sizeof(*vs->hosts));
		loc = slot ? array_push(&vs->host_locs, &n_locs, sizeof(*vs->host_locs)) : NULL;
		if (!loc) {
			if (slot)
				vs->n_hosts--;
			obj_error(c, hosts, "out of memory");
			free(h);
			return;
		}
		*slot = h;
		*loc = obj_loc_of(c, hosts->kids[i]);
	}
}

/* Absent or naming "mesh": the routes apply to the mesh's own traffic; other gateways are not ours. */
static void parse_gateways(struct obj_ctx *c, const struct ynode *spec, struct xm_virtual_service *vs)
{
	const struct ynode *gws = get_seq(c, spec, "gateways", "spec.gateways");
	bool others = false;
	char q[QUOTE_BUF];

	vs->mesh = !gws || !gws->n;
	for (size_t i = 0; gws && i < gws->n; i++) {
		char gw[XM_NAME_MAX + 64];

		if (node_str(c, gws->kids[i], "spec.gateways[]", gw, sizeof(gw)) != FIELD_SET)
			continue;
		if (!strcmp(gw, "mesh")) {
			vs->mesh = true;
			continue;
		}
		obj_warn(c, gws->kids[i], "gateway %s is not served by xmesh: ignored", quoted(q, gw));
		others = true;
	}
	if (others && !vs->mesh)
		obj_warn(c, gws, "spec.gateways does not name \"mesh\": the VirtualService does not apply to the mesh");
}

static void parse_redirect(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_route *r)
{
	char name[256];
	long long v;

	r->has_redirect = true;
	r->redirect_loc = obj_loc_of(c, n);
	r->redirect_code = 301;
	r->redirect_code_loc = r->redirect_loc;
	if (n->kind != YNODE_MAP) {
		obj_error(c, n, "%s: expected a mapping", field);
		return;
	}
	get_strdup(c, n, "uri", field, HTTP_STR_MAX, &r->redirect_uri);
	get_strdup(c, n, "authority", field, XM_NAME_MAX, &r->redirect_authority);
	get_strdup(c, n, "scheme", field, 16, &r->redirect_scheme);
	if (get_int(c, n, "port", field_name(name, sizeof(name), field, "port"), 1, 65535, &v) == FIELD_SET)
		r->redirect_port = (uint16_t)v;
	if (map_value(c, n, "derivePort"))
		obj_warn(c, map_value(c, n, "derivePort"), "%s.derivePort is not supported yet: ignored", field);
	if (get_int(c, n, "redirectCode", field_name(name, sizeof(name), field, "redirectCode"), 0, 65535, &v) ==
	    FIELD_SET) {
		r->redirect_code_loc = obj_loc_of(c, map_value(c, n, "redirectCode"));
		if (v < 300 || v > 399)
			obj_error(c, map_value(c, n, "redirectCode"), "%s %lld is not a redirect (3xx) code", name, v);
		else
			r->redirect_code = (uint16_t)v;
	}
}

static void parse_direct_response(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_route *r)
{
	const struct ynode *body;
	char name[256];
	long long v;
	int rc;

	r->has_direct_response = true;
	r->direct_loc = r->direct_status_loc = obj_loc_of(c, n);
	if (n->kind != YNODE_MAP) {
		obj_error(c, n, "%s: expected a mapping", field);
		return;
	}
	rc = get_int(c, n, "status", field_name(name, sizeof(name), field, "status"), 0, 65535, &v);
	if (rc == FIELD_ABSENT)
		obj_error(c, n, "%s is required", name);
	if (rc == FIELD_SET) {
		r->direct_status_loc = obj_loc_of(c, map_value(c, n, "status"));
		if (v < 200 || v > 599)
			obj_error(c, map_value(c, n, "status"), "%s %lld is out of range 200-599", name, v);
		else
			r->direct_status = (uint16_t)v;
	}
	body = get_map(c, n, "body", field_name(name, sizeof(name), field, "body"));
	if (body) {
		get_strdup(c, body, "string", name, HTTP_BODY_MAX, &r->direct_body);
		if (map_value(c, body, "bytes"))
			obj_warn(c, map_value(c, body, "bytes"), "%s.bytes is not supported yet: the body is empty",
				 name);
	}
}

static void parse_mirror(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_route *r)
{
	const struct ynode *pct = get_map(c, n, "mirrorPercentage", NULL);
	const struct ynode *legacy = map_value(c, n, "mirror_percent");
	char name[256];

	if (!legacy)
		legacy = map_value(c, n, "mirrorPercent");
	r->mirror_percent = 100;
	parse_http_destination(c, map_value(c, n, "mirror"), field_name(name, sizeof(name), field, "mirror"),
			       &r->mirror);
	r->has_mirror = true;
	if (pct) {
		const struct ynode *v = map_value(c, pct, "value");
		char *end = NULL;
		double d;

		field_name(name, sizeof(name), field, "mirrorPercentage.value");
		if (!v || v->kind != YNODE_SCALAR || !v->plain || !v->len || ((d = strtod(v->str, &end)), *end) ||
		    d < 0 || d > 100)
			obj_error(c, v ? v : pct, "%s: expected a number from 0 to 100", name);
		else
			r->mirror_percent = d;
	} else if (legacy) {
		long long v;

		if (node_int(c, legacy, "mirror_percent", 0, 100, &v) == FIELD_SET)
			r->mirror_percent = (double)v;
	}
}

/* route[]: destinations with weights summing to 100 (when more than one, or any weight given). */
static void parse_route_dests(struct obj_ctx *c, const struct ynode *seq, const char *field, struct xm_http_route *r)
{
	long long sum = 0;
	bool any_weight = false;

	for (size_t i = 0; i < seq->n; i++) {
		const struct ynode *item = seq->kids[i];
		struct xm_http_route_dest *d = array_push(&r->route, &r->n_route, sizeof(*r->route));
		char name[300], sub[400];
		long long w;

		if (!d) {
			obj_error(c, seq, "out of memory");
			return;
		}
		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		d->loc = d->weight_loc = obj_loc_of(c, item);
		if (!item || item->kind != YNODE_MAP) {
			obj_error(c, item, "%s: expected a mapping", name);
			continue;
		}
		parse_http_destination(c, map_value(c, item, "destination"),
				       field_name(sub, sizeof(sub), name, "destination"), &d->dest);
		if (get_int(c, item, "weight", field_name(sub, sizeof(sub), name, "weight"), 0, 100, &w) == FIELD_SET) {
			d->weight = (int32_t)w;
			d->weight_set = true;
			d->weight_loc = obj_loc_of(c, map_value(c, item, "weight"));
			any_weight = true;
			sum += w;
		}
		parse_http_headers(c, map_value(c, item, "headers"), field_name(sub, sizeof(sub), name, "headers"),
				   &d->headers);
	}
	if ((seq->n > 1 || any_weight) && sum != 100)
		obj_error(c, seq, "%s: the weights sum to %lld, not 100", field, sum);
}

static void parse_http_route(struct obj_ctx *c, const struct ynode *item, size_t i, struct xm_http_route *r)
{
	const struct ynode *matches, *route, *redirect, *direct, *rewrite;
	char field[64], name[256];

	snprintf(field, sizeof(field), "spec.http[%zu]", i);
	r->loc = obj_loc_of(c, item);
	if (!item || item->kind != YNODE_MAP) {
		obj_error(c, item, "%s: expected a mapping", field);
		return;
	}
	get_strdup(c, item, "name", field, 256, &r->name);
	matches = get_seq(c, item, "match", field_name(name, sizeof(name), field, "match"));
	for (size_t m = 0; matches && m < matches->n; m++) {
		struct xm_http_match *hm = array_push(&r->matches, &r->n_matches, sizeof(*r->matches));

		if (!hm) {
			obj_error(c, matches, "out of memory");
			break;
		}
		snprintf(name, sizeof(name), "%s.match[%zu]", field, m);
		parse_http_match(c, matches->kids[m], name, hm);
	}
	route = get_seq(c, item, "route", field_name(name, sizeof(name), field, "route"));
	redirect = map_value(c, item, "redirect");
	direct = map_value(c, item, "directResponse");
	if (route && route->n)
		parse_route_dests(c, route, name, r);
	if (redirect)
		parse_redirect(c, redirect, field_name(name, sizeof(name), field, "redirect"), r);
	if (direct)
		parse_direct_response(c, direct, field_name(name, sizeof(name), field, "directResponse"), r);
	if (r->n_route && (redirect || direct))
		obj_error(c, redirect ? redirect : direct, "%s: route and %s cannot both be given", field,
			  redirect ? "redirect" : "directResponse");
	else if (redirect && direct)
		obj_error(c, direct, "%s: redirect and directResponse cannot both be given", field);
	else if (!r->n_route && !redirect && !direct && !map_value(c, item, "delegate"))
		obj_error(c, item, "%s: one of route, redirect or directResponse is required", field);
	rewrite = get_map(c, item, "rewrite", field_name(name, sizeof(name), field, "rewrite"));
	if (rewrite) {
		get_strdup(c, rewrite, "uri", name, HTTP_STR_MAX, &r->rewrite_uri);
		get_strdup(c, rewrite, "authority", name, XM_NAME_MAX, &r->rewrite_authority);
		if (redirect)
			obj_error(c, rewrite, "%s: rewrite and redirect cannot both be given", field);
	}
	if (map_value(c, item, "mirror"))
		parse_mirror(c, item, field, r);
	parse_http_headers(c, map_value(c, item, "headers"), field_name(name, sizeof(name), field, "headers"),
			   &r->headers);
	get_duration(c, item, "timeout", field_name(name, sizeof(name), field, "timeout"), 0, &r->timeout_ms);
	if (map_value(c, item, "fault"))
		parse_http_fault(c, map_value(c, item, "fault"), field_name(name, sizeof(name), field, "fault"),
				 &r->fault);
	if (map_value(c, item, "retries"))
		parse_http_retries(c, map_value(c, item, "retries"), field_name(name, sizeof(name), field, "retries"),
				   &r->retries);
	for (size_t k = 0; k < sizeof(unsupported_route_fields) / sizeof(unsupported_route_fields[0]); k++) {
		const struct ynode *v = map_value(c, item, unsupported_route_fields[k]);

		if (v)
			obj_warn(c, v, "%s.%s is not supported yet: ignored", field, unsupported_route_fields[k]);
	}
}

void parse_virtual_service(struct obj_ctx *c, const struct ynode *obj)
{
	const struct ynode *spec = get_map(c, obj, "spec", NULL);
	const struct ynode *http;
	struct xm_virtual_service vs = { .loc = c->loc };
	struct xm_virtual_service *slot;
	static const char *const l4_kinds[] = { "tcp", "tls" };

	snprintf(vs.ns, sizeof(vs.ns), "%s", c->ns);
	snprintf(vs.name, sizeof(vs.name), "%s", c->name);
	if (!spec) {
		obj_error(c, obj, "spec is required");
	} else {
		parse_hosts(c, spec, &vs);
		parse_gateways(c, spec, &vs);
		http = get_seq(c, spec, "http", "spec.http");
		for (size_t i = 0; http && i < http->n; i++) {
			struct xm_http_route *r = array_push(&vs.http, &vs.n_http, sizeof(*vs.http));

			if (!r) {
				obj_error(c, http, "out of memory");
				break;
			}
			parse_http_route(c, http->kids[i], i, r);
		}
		for (size_t k = 0; k < 2; k++) {
			const struct ynode *v = map_value(c, spec, l4_kinds[k]);

			if (v)
				obj_warn(c, v,
					 "spec.%s routes are not supported yet: ignored (the traffic is balanced "
					 "at L4 over the Service's endpoints)",
					 l4_kinds[k]);
		}
	}
	c->sub[0] = '\0';
	slot = array_push(&c->cfg->virtual_services, &c->cfg->n_virtual_services, sizeof(*c->cfg->virtual_services));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		virtual_service_free(&vs);
		return;
	}
	*slot = vs;
}
