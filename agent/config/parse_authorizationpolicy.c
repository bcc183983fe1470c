// SPDX-License-Identifier: Apache-2.0
/*
 * security.istio.io/v1 and v1beta1 AuthorizationPolicy: selector.matchLabels, targetRef(s), action and rules
 * (from.source, to.operation, when), turned into the L4 form of config/authz_policy.h the way istiod turns
 * them for ztunnel (pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go). Validation follows
 * Istio's (ValidateAuthorizationPolicy) for what it reads: a from needs a non-empty source, a to a non-empty
 * operation, a when a known key and values or notValues; '*' only as a prefix or suffix; ipBlocks addresses
 * or CIDRs; ports decimal 0-65535. CUSTOM needs an external authorizer: refused. HTTP attributes are reported
 * as warnings saying what the agent does instead (ALLOW: the rule never matches; DENY: enforced without them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/authz_policy.h"
#include "config/fields.h"
#include "config/objects.h"

static const char *const action_names[] = { "ALLOW", "DENY", "AUDIT", "CUSTOM" };

/* The rule being parsed and the HTTP attributes it named (for one warning per rule). */
struct rule_ctx {
	struct obj_ctx *c;
	const struct xm_authz_policy *p;
	char prefix[64]; /* "spec.rules[2]" */
	const struct ynode *l7_at;
	char l7[160];
};

static void note_l7(struct rule_ctx *r, const struct ynode *at, const char *what)
{
	size_t len = strlen(r->l7);

	if (!r->l7_at)
		r->l7_at = at;
	if (strstr(r->l7, what))
		return;
	snprintf(r->l7 + len, sizeof(r->l7) - len, "%s%s", len ? ", " : "", what);
}

/* Istio's wildcard rule for principals and namespaces: "*" alone, or one '*' leading or trailing. */
static bool wildcard_ok(const char *v)
{
	const char *star = strchr(v, '*');
	size_t n = strlen(v);

	if (!star)
		return true;
	if (strchr(star + 1, '*'))
		return n == 1;
	return star == v || star == v + n - 1;
}

static bool port_ok(const char *v)
{
	size_t n = strlen(v);
	long p = 0;

	if (!n || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		p = p * 10 + (v[i] - '0');
	}
	return p <= 65535;
}

static bool value_ok(struct obj_ctx *c, const struct ynode *at, enum xm_authz_attr attr, const char *field,
		     const char *v)
{
	char q[QUOTE_BUF];
	struct xm_ip ip;
	uint8_t bits;

	if (!v[0]) {
		obj_error(c, at, "%s: empty value", field);
		return false;
	}
	switch (attr) {
	case XM_AUTHZ_PRINCIPAL:
	case XM_AUTHZ_NAMESPACE:
		if (wildcard_ok(v))
			return true;
		obj_error(c, at, "%s: %s: '*' is only allowed alone, as a prefix or as a suffix", field, quoted(q, v));
		return false;
	case XM_AUTHZ_SERVICE_ACCOUNT:
		if (!strchr(v, '*'))
			return true;
		obj_error(c, at, "%s: %s: wildcard is not supported", field, quoted(q, v));
		return false;
	case XM_AUTHZ_SOURCE_IP:
	case XM_AUTHZ_DEST_IP:
		if (!authz_cidr_parse(v, &ip, &bits))
			return true;
		obj_error(c, at, "%s: %s is not an IP address or CIDR", field, quoted(q, v));
		return false;
	case XM_AUTHZ_DEST_PORT:
		if (port_ok(v))
			return true;
		obj_error(c, at, "%s: %s is not a port (0-65535)", field, quoted(q, v));
		return false;
	}
	return false;
}

/*
 * The strings of seq (a sequence of strings, already fetched) as a condition on attr appended to alt; a
 * serviceAccounts value without a namespace is the policy's. Nothing is appended for an empty sequence.
 */
static void add_cond(struct rule_ctx *r, struct xm_authz_alt *alt, const struct ynode *seq, const char *field,
		     enum xm_authz_attr attr, bool negated)
{
	struct obj_ctx *c = r->c;
	struct xm_authz_cond cd = { .attr = attr, .negated = negated }, *slot;
	char name[160], buf[512];

	if (!seq || !seq->n)
		return;
	for (size_t i = 0; i < seq->n; i++) {
		char **v;

		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		if (node_str(c, seq->kids[i], name, buf, sizeof(buf)) != FIELD_SET)
			continue;
		if (!value_ok(c, seq->kids[i], attr, name, buf))
			continue;
		v = array_push(&cd.values, &cd.n_values, sizeof(*cd.values));
		if (!v || !(*v = attr == XM_AUTHZ_SERVICE_ACCOUNT && !strchr(buf, '/')
				     ? (snprintf(name, sizeof(name), "%s/%s", r->p->ns, buf), strdup(name))
				     : strdup(buf))) {
			obj_error(c, seq->kids[i], "out of memory");
			break;
		}
	}
	slot = cd.n_values ? array_push(&alt->conds, &alt->n_conds, sizeof(*alt->conds)) : NULL;
	if (slot) {
		*slot = cd;
		return;
	}
	for (size_t i = 0; i < cd.n_values; i++)
		free(cd.values[i]);
	free(cd.values);
}

struct field_desc {
	const char *key;
	int attr; /* enum xm_authz_attr, or -1: an HTTP attribute */
	bool negated;
};

static const struct field_desc source_fields[] = {
	{ "principals", XM_AUTHZ_PRINCIPAL, false },
	{ "notPrincipals", XM_AUTHZ_PRINCIPAL, true },
	{ "namespaces", XM_AUTHZ_NAMESPACE, false },
	{ "notNamespaces", XM_AUTHZ_NAMESPACE, true },
	{ "serviceAccounts", XM_AUTHZ_SERVICE_ACCOUNT, false },
	{ "notServiceAccounts", XM_AUTHZ_SERVICE_ACCOUNT, true },
	{ "ipBlocks", XM_AUTHZ_SOURCE_IP, false },
	{ "notIpBlocks", XM_AUTHZ_SOURCE_IP, true },
	{ "requestPrincipals", -1, false },
	{ "notRequestPrincipals", -1, true },
	{ "remoteIpBlocks", -1, false },
	{ "notRemoteIpBlocks", -1, true },
};

static const struct field_desc operation_fields[] = {
	{ "ports", XM_AUTHZ_DEST_PORT, false },
	{ "notPorts", XM_AUTHZ_DEST_PORT, true },
	{ "hosts", -1, false },
	{ "notHosts", -1, true },
	{ "methods", -1, false },
	{ "notMethods", -1, true },
	{ "paths", -1, false },
	{ "notPaths", -1, true },
};

/* One entry of from (under "source") or to (under "operation"): one alternative of the clause. */
static void parse_entry(struct rule_ctx *r, struct xm_authz_clause *cl, const struct ynode *entry, const char *inner,
			const char *field, const struct field_desc *fields, size_t n_fields)
{
	struct obj_ctx *c = r->c;
	struct xm_authz_alt alt = { 0 }, *slot;
	const struct ynode *m;
	char name[160];
	bool any = false;

	snprintf(name, sizeof(name), "%s.%s", field, inner);
	if (!entry || entry->kind != YNODE_MAP) {
		obj_error(c, entry, "%s: expected a mapping with %s", field, inner);
		return;
	}
	m = get_map(c, entry, inner, name);
	if (!m) {
		if (!map_value(c, entry, inner))
			obj_error(c, entry, "%s must not be nil", name);
		return;
	}
	for (size_t f = 0; f < n_fields; f++) {
		const struct ynode *seq;
		char fname[192];

		snprintf(fname, sizeof(fname), "%s.%s", name, fields[f].key);
		seq = get_seq(c, m, fields[f].key, fname);
		if (!seq || !seq->n)
			continue;
		any = true;
		if (fields[f].attr < 0)
			note_l7(r, seq, fields[f].key);
		else
			add_cond(r, &alt, seq, fname, (enum xm_authz_attr)fields[f].attr, fields[f].negated);
	}
	if (!any) {
		obj_error(c, m, "%s must not be empty", name);
		return;
	}
	slot = array_push(&cl->alts, &cl->n_alts, sizeof(*cl->alts));
	if (!slot) {
		obj_error(c, m, "out of memory");
		free(alt.conds);
		return;
	}
	*slot = alt;
}

static bool push_clause(struct obj_ctx *c, struct xm_authz_rule *rule, struct xm_authz_clause *cl)
{
	struct xm_authz_clause *slot = array_push(&rule->clauses, &rule->n_clauses, sizeof(*rule->clauses));

	if (!slot) {
		obj_error(c, NULL, "out of memory");
		return false;
	}
	*slot = *cl;
	return true;
}

/* A list of entries (from or to) as one clause: any entry may match. */
static void parse_entries(struct rule_ctx *r, struct xm_authz_rule *rule, const struct ynode *rnode, const char *key,
			  const char *inner, const struct field_desc *fields, size_t n_fields)
{
	struct xm_authz_clause cl = { 0 };
	char field[96];
	const struct ynode *seq;

	snprintf(field, sizeof(field), "%s.%s", r->prefix, key);
	seq = get_seq(r->c, rnode, key, field);
	if (!seq || !seq->n)
		return;
	for (size_t i = 0; i < seq->n; i++) {
		char name[128];

		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		parse_entry(r, &cl, seq->kids[i], inner, name, fields, n_fields);
	}
	if (cl.n_alts)
		push_clause(r->c, rule, &cl);
}

/* The when keys ztunnel enforces, and the HTTP ones Istio's validation knows. */
static int when_attr(const char *key)
{
	static const struct {
		const char *key;
		enum xm_authz_attr attr;
	} l4[] = {
		{ "source.ip", XM_AUTHZ_SOURCE_IP },	    { "source.namespace", XM_AUTHZ_NAMESPACE },
		{ "source.principal", XM_AUTHZ_PRINCIPAL }, { "destination.ip", XM_AUTHZ_DEST_IP },
		{ "destination.port", XM_AUTHZ_DEST_PORT },
	};
	static const char *const l7_prefixes[] = { "request.headers[", "request.auth.claims[",
						   "experimental.envoy.filters." };
	static const char *const l7[] = {
		"remote.ip",	  "request.auth.principal", "request.auth.audiences", "request.auth.presenter",
		"connection.sni", "request.regex.headers"
	};

	for (size_t i = 0; i < sizeof(l4) / sizeof(l4[0]); i++)
		if (!strcmp(key, l4[i].key))
			return (int)l4[i].attr;
	for (size_t i = 0; i < sizeof(l7) / sizeof(l7[0]); i++)
		if (!strcmp(key, l7[i]))
			return -1;
	for (size_t i = 0; i < sizeof(l7_prefixes) / sizeof(l7_prefixes[0]); i++)
		if (!strncmp(key, l7_prefixes[i], strlen(l7_prefixes[i])))
			return -1;
	return -2;
}

/* Each condition of when is a clause of its own (all must hold) with one alternative. */
static void parse_when(struct rule_ctx *r, struct xm_authz_rule *rule, const struct ynode *rnode)
{
	struct obj_ctx *c = r->c;
	char field[96], q[QUOTE_BUF];
	const struct ynode *seq;

	snprintf(field, sizeof(field), "%s.when", r->prefix);
	seq = get_seq(c, rnode, "when", field);
	for (size_t i = 0; seq && i < seq->n; i++) {
		const struct ynode *w = seq->kids[i], *values, *not_values;
		struct xm_authz_clause cl = { 0 };
		struct xm_authz_alt alt = { 0 };
		char name[128], vname[160], key[256];
		int attr;

		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		if (!w || w->kind != YNODE_MAP) {
			obj_error(c, w, "%s: expected a mapping with key and values", name);
			continue;
		}
		snprintf(vname, sizeof(vname), "%s.key", name);
		if (get_str(c, w, "key", vname, key, sizeof(key)) != FIELD_SET || !key[0]) {
			if (!key[0])
				obj_error(c, w, "%s.key cannot be empty", name);
			continue;
		}
		attr = when_attr(key);
		if (attr == -2) {
			obj_error(c, map_value(c, w, "key"), "%s.key: unknown attribute %s", name, quoted(q, key));
			continue;
		}
		snprintf(vname, sizeof(vname), "%s.values", name);
		values = get_seq(c, w, "values", vname);
		snprintf(vname, sizeof(vname), "%s.notValues", name);
		not_values = get_seq(c, w, "notValues", vname);
		if ((!values || !values->n) && (!not_values || !not_values->n)) {
			obj_error(c, w, "%s: at least one of values or notValues must be set for key %s", name,
				  quoted(q, key));
			continue;
		}
		if (attr < 0) {
			note_l7(r, w, key);
		} else {
			snprintf(vname, sizeof(vname), "%s.values", name);
			add_cond(r, &alt, values, vname, (enum xm_authz_attr)attr, false);
			snprintf(vname, sizeof(vname), "%s.notValues", name);
			add_cond(r, &alt, not_values, vname, (enum xm_authz_attr)attr, true);
		}
		cl.alts = calloc(1, sizeof(*cl.alts));
		if (!cl.alts) {
			obj_error(c, w, "out of memory");
			free(alt.conds);
			continue;
		}
		cl.alts[0] = alt;
		cl.n_alts = 1;
		if (!push_clause(c, rule, &cl))
			free(cl.alts);
	}
}

static void parse_rules(struct obj_ctx *c, const struct ynode *spec, struct xm_authz_policy *p)
{
	const struct ynode *rules = get_seq(c, spec, "rules", "spec.rules");

	for (size_t i = 0; rules && i < rules->n; i++) {
		const struct ynode *rn = rules->kids[i];
		struct rule_ctx r = { .c = c, .p = p };
		struct xm_authz_rule rule = { 0 }, *slot;

		snprintf(r.prefix, sizeof(r.prefix), "spec.rules[%zu]", i);
		if (rn && !ynode_is_null(rn) && rn->kind != YNODE_MAP) {
			obj_error(c, rn, "%s: expected a mapping", r.prefix);
			continue;
		}
		parse_entries(&r, &rule, rn, "from", "source", source_fields,
			      sizeof(source_fields) / sizeof(source_fields[0]));
		parse_entries(&r, &rule, rn, "to", "operation", operation_fields,
			      sizeof(operation_fields) / sizeof(operation_fields[0]));
		parse_when(&r, &rule, rn);
		if (r.l7_at) {
			rule.never = p->action == XM_AUTHZ_ALLOW;
			obj_warn(
			    c, r.l7_at, "%s: HTTP attributes (%s) are not enforced by the node agent (no waypoint): %s",
			    r.prefix, r.l7,
			    rule.never ? "within an ALLOW policy this rule never matches (more restrictive than "
					 "requested)"
				       : "this DENY rule is enforced without them (more restrictive than requested)");
		}
		slot = array_push(&p->rules, &p->n_rules, sizeof(*p->rules));
		if (!slot) {
			struct xm_authz_policy tmp = { .n_rules = 1 };

			obj_error(c, rn, "out of memory");
			tmp.rules = malloc(sizeof(rule));
			if (tmp.rules) {
				tmp.rules[0] = rule;
				authz_policy_free(&tmp);
			}
			return;
		}
		*slot = rule;
	}
}

void parse_authorization_policy(struct obj_ctx *c, const struct ynode *obj)
{
	const struct ynode *spec = get_map(c, obj, "spec", NULL);
	const struct ynode *sel = get_map(c, spec, "selector", "spec.selector");
	struct xm_authz_policy p = { .loc = c->loc }, *slot;
	const struct ynode *tr;
	size_t idx = 0;
	char q[QUOTE_BUF];

	snprintf(p.ns, sizeof(p.ns), "%s", c->ns);
	snprintf(p.name, sizeof(p.name), "%s", c->name);
	get_labels(c, sel, "matchLabels", "spec.selector.matchLabels", &p.selector, &p.n_selector);
	for (size_t i = 0; i < p.n_selector; i++)
		if (strchr(p.selector[i].key, '*') || strchr(p.selector[i].value, '*'))
			obj_error(c, map_value(c, sel, "matchLabels"),
				  "spec.selector.matchLabels[%s]: wildcard is not supported in selector",
				  quoted(q, p.selector[i].key));
	if (get_enum(c, spec, "action", "spec.action", action_names, 4, &idx) == FIELD_SET && idx == 3) {
		obj_error(c, map_value(c, spec, "action"),
			  "spec.action CUSTOM is not supported: the node agent has no external authorizer (extension "
			  "provider)");
		idx = 0;
	}
	p.action = (enum xm_authz_action)idx;
	tr = map_value(c, spec, "targetRefs");
	if (!tr)
		tr = map_value(c, spec, "targetRef");
	if (tr) {
		p.targeted = true;
		if (sel)
			obj_error(c, tr, "spec: selector and targetRef(s) cannot both be set");
		else
			obj_warn(
			    c, tr,
			    "spec.targetRef(s): a policy bound to a Gateway or Service is for a waypoint; the node "
			    "agent does not apply it (as istiod leaves it out for ztunnel)");
	}
	if (p.action == XM_AUTHZ_AUDIT)
		obj_warn(c, map_value(c, spec, "action"),
			 "spec.action AUDIT: accepted and not enforced (the node agent has no audit log)");
	parse_rules(c, spec, &p);

	slot = array_push(&c->cfg->authz_policies, &c->cfg->n_authz_policies, sizeof(*c->cfg->authz_policies));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		authz_policy_free(&p);
		return;
	}
	*slot = p;
}
