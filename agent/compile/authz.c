// SPDX-License-Identifier: Apache-2.0
/* AuthorizationPolicy: the snapshot's copy and the evaluation of a CONNECT (compile/authz.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile/authz.h"
#include "compile/peer_auth.h"
#include "identity/identity.h"

/* Every value of the table's copy of p pre-parsed (cond.match), so that a CONNECT parses nothing. */
static int policy_compile(struct xm_authz_policy *p)
{
	for (size_t r = 0; r < p->n_rules; r++)
		for (size_t c = 0; c < p->rules[r].n_clauses; c++) {
			struct xm_authz_clause *cl = &p->rules[r].clauses[c];

			for (size_t a = 0; a < cl->n_alts; a++)
				for (size_t k = 0; k < cl->alts[a].n_conds; k++) {
					struct xm_authz_cond *cd = &cl->alts[a].conds[k];

					if (!cd->n_values)
						continue;
					cd->match = calloc(cd->n_values, sizeof(*cd->match));
					if (!cd->match)
						return -ENOMEM;
					for (size_t i = 0; i < cd->n_values; i++)
						authz_match_compile(cd->attr, cd->values[i], &cd->match[i]);
				}
		}
	return 0;
}

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
		if (policy_compile(&out->items[out->n - 1])) {
			authz_table_free(out);
			return -ENOMEM;
		}
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
static void string_matcher(const char *v, struct xm_authz_match *m)
{
	size_t len = strlen(v);

	m->s = v;
	m->len = (uint32_t)len;
	if (!strcmp(v, "*")) {
		m->kind = XM_AUTHZ_ANY;
	} else if (v[0] == '*') {
		m->kind = XM_AUTHZ_SUFFIX;
		m->s = v + 1;
		m->len = (uint32_t)(len - 1);
	} else if (len && v[len - 1] == '*') {
		m->kind = XM_AUTHZ_PREFIX;
		m->len = (uint32_t)(len - 1);
	} else {
		m->kind = XM_AUTHZ_EXACT;
	}
}

void authz_match_compile(enum xm_authz_attr attr, const char *v, struct xm_authz_match *m)
{
	char *end;
	unsigned long n;

	memset(m, 0, sizeof(*m));
	switch (attr) {
	case XM_AUTHZ_PRINCIPAL:
	case XM_AUTHZ_NAMESPACE:
		string_matcher(v, m);
		return;
	case XM_AUTHZ_SERVICE_ACCOUNT: /* "NS/SA" as written: no wildcard */
		m->kind = XM_AUTHZ_EXACT;
		m->s = v;
		m->len = (uint32_t)strlen(v);
		return;
	case XM_AUTHZ_SOURCE_IP:
	case XM_AUTHZ_DEST_IP:
		if (!authz_cidr_parse(v, &m->ip, &m->bits))
			m->kind = XM_AUTHZ_CIDR;
		return;
	case XM_AUTHZ_DEST_PORT:
		n = strtoul(v, &end, 10);
		if (!*end && n <= 65535) {
			m->kind = XM_AUTHZ_PORT;
			m->port = (uint16_t)n;
		}
		return;
	}
}

static bool string_matches(const struct xm_authz_match *m, const char *s, size_t len)
{
	switch (m->kind) {
	case XM_AUTHZ_ANY:
		return len > 0;
	case XM_AUTHZ_EXACT:
		return len == m->len && !memcmp(s, m->s, len);
	case XM_AUTHZ_PREFIX:
		return len >= m->len && !memcmp(s, m->s, m->len);
	case XM_AUTHZ_SUFFIX:
		return len >= m->len && !memcmp(s + len - m->len, m->s, m->len);
	}
	return false;
}

/* The peer identity in the forms a principal may name it: "td/ns/NS/sa/SA" and, for the agent's own trust
 * domain, Istio's default "cluster.local/ns/NS/sa/SA" too; each with its length, taken once per request. */
struct peer {
	const char *principal; /* "" without a SPIFFE identity */
	size_t principal_len, alias_len, ns_len, sa_len;
	char alias[XM_SPIFFE_MAX + 1];
	struct xm_spiffe_id id; /* ns and sa "" unless Istio's form */
	char sa[sizeof(((struct xm_spiffe_id *)0)->ns) + sizeof(((struct xm_spiffe_id *)0)->sa) + 2]; /* "NS/SA" */
};

static void peer_of(const struct xm_authz_request *req, struct peer *p)
{
	const char *why;
	const char *uri = req->peer_id ? req->peer_id : "";

	p->principal = "";
	p->principal_len = p->alias_len = p->ns_len = p->sa_len = 0;
	p->alias[0] = p->sa[0] = '\0';
	memset(&p->id, 0, sizeof(p->id));
	if (strncmp(uri, "spiffe://", 9) || spiffe_parse(uri, strlen(uri), &p->id, &why))
		return;
	p->principal = uri + 9;
	p->principal_len = strlen(p->principal);
	p->ns_len = strlen(p->id.ns);
	if (p->id.ns[0]) {
		snprintf(p->sa, sizeof(p->sa), "%s/%s", p->id.ns, p->id.sa);
		p->sa_len = strlen(p->sa); /* what was written, not what did not fit */
	}
	if (p->id.ns[0] && req->trust_domain && !strcmp(p->id.trust_domain, req->trust_domain) &&
	    strcmp(p->id.trust_domain, "cluster.local")) {
		snprintf(p->alias, sizeof(p->alias), "cluster.local%s", p->principal + strlen(p->id.trust_domain));
		p->alias_len = strlen(p->alias);
	}
}

static bool value_matches(enum xm_authz_attr attr, const struct xm_authz_match *m, const struct peer *peer,
			  const struct xm_authz_request *req)
{
	switch (attr) {
	case XM_AUTHZ_PRINCIPAL:
		return peer->principal_len && (string_matches(m, peer->principal, peer->principal_len) ||
					       (peer->alias_len && string_matches(m, peer->alias, peer->alias_len)));
	case XM_AUTHZ_NAMESPACE:
		return string_matches(m, peer->id.ns, peer->ns_len);
	case XM_AUTHZ_SERVICE_ACCOUNT:
		return peer->sa_len && string_matches(m, peer->sa, peer->sa_len);
	case XM_AUTHZ_SOURCE_IP:
		return req->src && m->kind == XM_AUTHZ_CIDR && authz_cidr_contains(&m->ip, m->bits, req->src);
	case XM_AUTHZ_DEST_IP:
		return req->dst && m->kind == XM_AUTHZ_CIDR && authz_cidr_contains(&m->ip, m->bits, req->dst);
	case XM_AUTHZ_DEST_PORT:
		return m->kind == XM_AUTHZ_PORT && m->port == req->dport;
	}
	return false;
}

static bool cond_holds(const struct xm_authz_cond *c, const struct peer *peer, const struct xm_authz_request *req)
{
	bool any = false;

	for (size_t i = 0; i < c->n_values && !any; i++) {
		struct xm_authz_match once;

		if (c->match) {
			any = value_matches(c->attr, &c->match[i], peer, req);
		} else { /* a config's policy (authz_policy_matches): compiled for this use */
			authz_match_compile(c->attr, c->values[i], &once);
			any = value_matches(c->attr, &once, peer, req);
		}
	}
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
