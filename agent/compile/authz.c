// SPDX-License-Identifier: Apache-2.0
/* AuthorizationPolicy: the snapshot's copy and the evaluation of a CONNECT (compile/authz.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile/authz.h"
#include "compile/peer_auth.h"
#include "identity/identity.h"

int authz_table_build(const struct xm_config *cfg, const char *root_ns, struct xm_authz_table *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->root_ns, sizeof(out->root_ns), "%s", root_ns ? root_ns : XM_DEFAULT_ROOT_NAMESPACE);
	for (size_t i = 0; i < cfg->n_authz_policies; i++) {
		const struct xm_authz_policy *p = &cfg->authz_policies[i];

		if (p->targeted || p->action == XM_AUTHZ_AUDIT)
			continue;
		if (!out->items) {
			out->items = calloc(cfg->n_authz_policies, sizeof(*out->items));
			if (!out->items)
				return -ENOMEM;
		}
		if (authz_policy_copy(&out->items[out->n], p)) {
			authz_table_free(out);
			return -ENOMEM;
		}
		out->n++;
	}
	return 0;
}

void authz_table_free(struct xm_authz_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		authz_policy_free(&t->items[i]);
	free(t->items);
	t->items = NULL;
	t->n = 0;
}

static bool cond_equal(const struct xm_authz_cond *a, const struct xm_authz_cond *b)
{
	if (a->attr != b->attr || a->negated != b->negated || a->n_values != b->n_values)
		return false;
	for (size_t i = 0; i < a->n_values; i++)
		if (strcmp(a->values[i], b->values[i]))
			return false;
	return true;
}

static bool clause_equal(const struct xm_authz_clause *a, const struct xm_authz_clause *b)
{
	if (a->n_alts != b->n_alts)
		return false;
	for (size_t i = 0; i < a->n_alts; i++) {
		if (a->alts[i].n_conds != b->alts[i].n_conds)
			return false;
		for (size_t k = 0; k < a->alts[i].n_conds; k++)
			if (!cond_equal(&a->alts[i].conds[k], &b->alts[i].conds[k]))
				return false;
	}
	return true;
}

static bool policy_equal(const struct xm_authz_policy *a, const struct xm_authz_policy *b)
{
	if (strcmp(a->ns, b->ns) || strcmp(a->name, b->name) || a->action != b->action ||
	    a->n_selector != b->n_selector || a->n_rules != b->n_rules)
		return false;
	for (size_t i = 0; i < a->n_selector; i++)
		if (strcmp(a->selector[i].key, b->selector[i].key) ||
		    strcmp(a->selector[i].value, b->selector[i].value))
			return false;
	for (size_t r = 0; r < a->n_rules; r++) {
		const struct xm_authz_rule *x = &a->rules[r], *y = &b->rules[r];

		if (x->never != y->never || x->n_clauses != y->n_clauses)
			return false;
		for (size_t c = 0; c < x->n_clauses; c++)
			if (!clause_equal(&x->clauses[c], &y->clauses[c]))
				return false;
	}
	return true;
}

bool authz_table_equal(const struct xm_authz_table *a, const struct xm_authz_table *b)
{
	if (a->n != b->n || strcmp(a->root_ns, b->root_ns))
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!policy_equal(&a->items[i], &b->items[i]))
			return false;
	return true;
}

bool authz_policy_applies(const struct xm_authz_table *t, const struct xm_authz_policy *p, const char *ns,
			  const struct xm_label *labels, size_t n_labels)
{
	/* A root-namespace policy applies in every namespace (with its selector, to the workloads it selects). */
	if (strcmp(p->ns, t->root_ns) && strcmp(p->ns, ns))
		return false;
	for (size_t i = 0; i < p->n_selector; i++) {
		bool found = false;

		for (size_t j = 0; j < n_labels && !found; j++)
			found = !strcmp(p->selector[i].key, labels[j].key) &&
				!strcmp(p->selector[i].value, labels[j].value);
		if (!found)
			return false;
	}
	return true;
}

/* ztunnel's StringMatch: "*" any non-empty value, "*suffix", "prefix*", else exact. */
static bool string_match(const char *pattern, const char *s)
{
	size_t pl = strlen(pattern), sl = strlen(s);

	if (!strcmp(pattern, "*"))
		return sl > 0;
	if (pattern[0] == '*')
		return sl >= pl - 1 && !strcmp(s + sl - (pl - 1), pattern + 1);
	if (pl && pattern[pl - 1] == '*')
		return !strncmp(s, pattern, pl - 1);
	return !strcmp(pattern, s);
}

/* The peer identity in the forms a principal may name it: "td/ns/NS/sa/SA" and, for the agent's own trust
 * domain, Istio's default "cluster.local/ns/NS/sa/SA" too. */
struct peer {
	const char *principal; /* "" without a SPIFFE identity */
	char alias[XM_SPIFFE_MAX + 1];
	struct xm_spiffe_id id; /* ns and sa "" unless Istio's form */
};

static void peer_of(const struct xm_authz_request *req, struct peer *p)
{
	const char *why;
	const char *uri = req->peer_id ? req->peer_id : "";

	memset(p, 0, sizeof(*p));
	p->principal = "";
	if (strncmp(uri, "spiffe://", 9) || spiffe_parse(uri, strlen(uri), &p->id, &why))
		return;
	p->principal = uri + 9;
	if (p->id.ns[0] && req->trust_domain && !strcmp(p->id.trust_domain, req->trust_domain) &&
	    strcmp(p->id.trust_domain, "cluster.local"))
		snprintf(p->alias, sizeof(p->alias), "cluster.local%s", p->principal + strlen(p->id.trust_domain));
}

static bool port_value(const char *v, uint16_t *port)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);

	if (*end || n > 65535)
		return false;
	*port = (uint16_t)n;
	return true;
}

static bool value_matches(enum xm_authz_attr attr, const char *v, const struct peer *peer,
			  const struct xm_authz_request *req)
{
	struct xm_ip block;
	uint8_t bits;
	uint16_t port;
	char sa[sizeof(peer->id.ns) + sizeof(peer->id.sa) + 2];

	switch (attr) {
	case XM_AUTHZ_PRINCIPAL:
		return peer->principal[0] &&
		       (string_match(v, peer->principal) || (peer->alias[0] && string_match(v, peer->alias)));
	case XM_AUTHZ_NAMESPACE:
		return string_match(v, peer->id.ns);
	case XM_AUTHZ_SERVICE_ACCOUNT:
		if (!peer->id.ns[0])
			return false;
		snprintf(sa, sizeof(sa), "%s/%s", peer->id.ns, peer->id.sa);
		return !strcmp(v, sa);
	case XM_AUTHZ_SOURCE_IP:
		return req->src && !authz_cidr_parse(v, &block, &bits) && authz_cidr_contains(&block, bits, req->src);
	case XM_AUTHZ_DEST_IP:
		return req->dst && !authz_cidr_parse(v, &block, &bits) && authz_cidr_contains(&block, bits, req->dst);
	case XM_AUTHZ_DEST_PORT:
		return port_value(v, &port) && port == req->dport;
	}
	return false;
}

static bool cond_holds(const struct xm_authz_cond *c, const struct peer *peer, const struct xm_authz_request *req)
{
	bool any = false;

	for (size_t i = 0; i < c->n_values && !any; i++)
		any = value_matches(c->attr, c->values[i], peer, req);
	return c->negated ? !any : any;
}

static bool rule_matches(const struct xm_authz_rule *r, const struct peer *peer, const struct xm_authz_request *req)
{
	if (r->never)
		return false;
	for (size_t c = 0; c < r->n_clauses; c++) {
		const struct xm_authz_clause *cl = &r->clauses[c];
		bool clause = false;

		for (size_t a = 0; a < cl->n_alts && !clause; a++) {
			bool all = true;

			for (size_t k = 0; k < cl->alts[a].n_conds && all; k++)
				all = cond_holds(&cl->alts[a].conds[k], peer, req);
			clause = all;
		}
		if (!clause)
			return false;
	}
	return true;
}

static bool matches_peer(const struct xm_authz_policy *p, const struct peer *peer, const struct xm_authz_request *req)
{
	for (size_t r = 0; r < p->n_rules; r++)
		if (rule_matches(&p->rules[r], peer, req))
			return true;
	return false;
}

bool authz_policy_matches(const struct xm_authz_policy *p, const struct xm_authz_request *req)
{
	struct peer peer;

	peer_of(req, &peer);
	return matches_peer(p, &peer, req);
}

void authz_evaluate(const struct xm_authz_table *t, const char *ns, const struct xm_label *labels, size_t n_labels,
		    const struct xm_authz_request *req, struct xm_authz_verdict *out)
{
	const struct xm_authz_policy *allow_match = NULL;
	bool any_allow = false;
	struct peer peer;

	memset(out, 0, sizeof(*out));
	peer_of(req, &peer);
	for (size_t i = 0; i < t->n; i++) {
		const struct xm_authz_policy *p = &t->items[i];

		if (!authz_policy_applies(t, p, ns, labels, n_labels))
			continue;
		out->n_applied++;
		if (p->action == XM_AUTHZ_DENY) {
			if (matches_peer(p, &peer, req)) {
				out->policy = p;
				return;
			}
		} else if (p->action == XM_AUTHZ_ALLOW) {
			any_allow = true;
			if (!allow_match && matches_peer(p, &peer, req))
				allow_match = p;
		}
	}
	out->allowed = !any_allow || allow_match;
}
