// SPDX-License-Identifier: Apache-2.0
/*
 * The route table at request time: the captured service of a VIP:port, the vhost a Host header selects,
 * the first matching route, a destination by weight; and freeing a table.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "l7/ratelimit.h"
#include "l7/regex.h"
#include "l7/routes.h"
#include "l7/routes_internal.h"

#define CLUSTER_SUFFIX ".svc.cluster.local"

bool l7_ieq(const char *s, size_t len, const char *z)
{
	size_t i;

	for (i = 0; i < len && z[i]; i++)
		if (tolower((unsigned char)s[i]) != tolower((unsigned char)z[i]))
			return false;
	return i == len && !z[i];
}

static void str_match_free(struct l7_str_match *m)
{
	free(m->value);
	l7_regex_free(m->regex);
}

static void kv_free(struct l7_kv_match *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].name);
		str_match_free(&kv[i].m);
	}
	free(kv);
}

static void ops_free(struct l7_header_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ops[i].name);
		free(ops[i].value);
	}
	free(ops);
}

static void names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void headers_free(struct l7_headers *h)
{
	ops_free(h->req_set, h->n_req_set);
	ops_free(h->req_add, h->n_req_add);
	ops_free(h->resp_set, h->n_resp_set);
	ops_free(h->resp_add, h->n_resp_add);
	names_free(h->req_remove, h->n_req_remove);
	names_free(h->resp_remove, h->n_resp_remove);
}

static void route_free(struct l7_route *r)
{
	free(r->name);
	for (size_t i = 0; i < r->n_matches; i++) {
		struct l7_match *m = &r->matches[i];

		free(m->name);
		str_match_free(&m->uri);
		str_match_free(&m->scheme);
		str_match_free(&m->method);
		str_match_free(&m->authority);
		kv_free(m->headers, m->n_headers);
		kv_free(m->without_headers, m->n_without_headers);
		kv_free(m->query_params, m->n_query_params);
		free(m->source_labels);
		free(m->source_namespace);
	}
	free(r->matches);
	for (size_t i = 0; i < r->n_dests; i++)
		headers_free(&r->dests[i].headers);
	free(r->dests);
	headers_free(&r->headers);
	free(r->rewrite_uri);
	free(r->rewrite_authority);
	free(r->redirect_uri);
	free(r->redirect_authority);
	free(r->redirect_scheme);
	free(r->direct_body);
}

void l7_routes_free(struct l7_route_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_vhosts; i++) {
		struct l7_vhost *v = &t->vhosts[i];

		names_free(v->domains, v->n_domains);
		for (size_t r = 0; r < v->n_routes; r++)
			route_free(&v->routes[r]);
		free(v->routes);
	}
	free(t->vhosts);
	l7_ratelimit_free(t);
	for (size_t i = 0; i < t->n_clusters; i++) {
		free(t->clusters[i].endpoints);
		l7_shared_put(t->clusters[i].load);
		free(t->clusters[i].endpoint_wl);
	}
	free(t->clusters);
	free(t->services);
	names_free(t->files, t->n_files);
	free(t->exact);
	free(t->wildcards);
	memset(t, 0, sizeof(*t));
}

static int key_cmp(const void *key, const void *svc)
{
	return memcmp(key, &((const struct l7_service *)svc)->key, sizeof(struct xm_svc_key));
}

const struct l7_service *l7_service_find(const struct l7_route_table *t, const struct xm_svc_key *key)
{
	return t->n_services ? bsearch(key, t->services, t->n_services, sizeof(*t->services), key_cmp) : NULL;
}

/* host without ":port" (or "[v6]:port" without brackets and port) and without a trailing dot. */
static struct h1_str strip_port(struct h1_str h)
{
	if (!h.len) /* an empty Host (HTTP/1.0) may come with a NULL pointer: memchr must not see it */
		return h;
	if (h.p[0] == '[') {
		const char *end = memchr(h.p, ']', h.len);

		if (end)
			return (struct h1_str){ h.p + 1, (uint32_t)(end - h.p - 1) };
	} else {
		const char *colon = memchr(h.p, ':', h.len);

		if (colon)
			h.len = (uint32_t)(colon - h.p);
	}
	if (h.len && h.p[h.len - 1] == '.')
		h.len--;
	return h;
}

/*
 * Kubernetes' short forms as a FQDN: "name" (in ns), "name.ns", "name.ns.svc" → name.ns.svc.cluster.local;
 * false when host has another shape.
 */
static bool expand_host(struct h1_str h, const char *ns, char *out, size_t size)
{
	size_t dots = 0;
	int n;

	for (uint32_t i = 0; i < h.len; i++)
		dots += h.p[i] == '.';
	if (dots == 0 && ns && ns[0])
		n = snprintf(out, size, "%.*s.%s" CLUSTER_SUFFIX, (int)h.len, h.p, ns);
	else if (dots == 1)
		n = snprintf(out, size, "%.*s" CLUSTER_SUFFIX, (int)h.len, h.p);
	else if (dots == 2 && h.len > 4 && l7_ieq(h.p + h.len - 4, 4, ".svc"))
		n = snprintf(out, size, "%.*s.cluster.local", (int)h.len, h.p);
	else
		return false;
	return n > 0 && (size_t)n < size;
}

static int domain_key_cmp(const void *key, const void *elem)
{
	const struct l7_domain *k = key, *d = elem;

	if (k->port != d->port)
		return k->port < d->port ? -1 : 1;
	return strcmp(k->name, d->name);
}

static const struct l7_vhost *exact_vhost(const struct l7_route_table *t, uint16_t port, const char *name)
{
	struct l7_domain key = { port, name, NULL };
	const struct l7_domain *d =
	    t->n_exact ? bsearch(&key, t->exact, t->n_exact, sizeof(*t->exact), domain_key_cmp) : NULL;

	return d ? d->vhost : NULL;
}

const struct l7_vhost *l7_vhost_for_host(const struct l7_route_table *t, uint16_t port, struct h1_str host,
					 const char *source_ns)
{
	struct h1_str h = strip_port(host);
	char lower[256], fqdn[320];
	const struct l7_vhost *v;
	size_t len;

	if (!h.len || h.len >= sizeof(lower))
		return NULL;
	for (uint32_t i = 0; i < h.len; i++)
		lower[i] = (char)tolower((unsigned char)h.p[i]);
	lower[h.len] = '\0';
	h.p = lower;
	v = exact_vhost(t, port, lower);
	if (!v && expand_host(h, source_ns, fqdn, sizeof(fqdn))) {
		for (char *c = fqdn; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		v = exact_vhost(t, port, fqdn);
	}
	if (v)
		return v; /* an exact domain wins over any wildcard */
	len = h.len;
	for (size_t i = 0; i < t->n_wildcards; i++) {
		const struct l7_domain *d = &t->wildcards[i];
		size_t dl = strlen(d->name);

		if (d->port == port && dl <= len && !memcmp(lower + len - dl, d->name, dl))
			return d->vhost; /* the longest suffix comes first */
	}
	return NULL;
}

const struct l7_route *l7_route_select(const struct l7_route_table *t, const struct l7_service *svc,
				       const struct l7_request_view *rq)
{
	const struct l7_vhost *v =
	    l7_vhost_for_host(t, rq->port ? rq->port : (svc ? ntohs(svc->key.port) : 0), rq->host,
			      rq->source ? rq->source->ns : (svc && svc->svc ? svc->svc->ns : NULL));

	if (!v && svc)
		v = svc->vhost;
	for (size_t r = 0; v && r < v->n_routes; r++) {
		const struct l7_route *route = &v->routes[r];

		if (!route->n_matches)
			return route;
		for (size_t m = 0; m < route->n_matches; m++)
			if (l7_match_request(&route->matches[m], rq))
				return route;
	}
	return NULL;
}

const struct l7_destination *l7_route_pick_destination(const struct l7_route *route, uint32_t r)
{
	uint32_t total = 0, acc = 0;

	for (size_t i = 0; i < route->n_dests; i++)
		total += route->dests[i].weight;
	if (!route->n_dests || !total)
		return route->n_dests ? &route->dests[0] : NULL;
	/* Weights sum to 100 (validated); scaled otherwise so every r in [0, 100) lands somewhere. */
	r = (uint32_t)((uint64_t)(r % 100) * total / 100);
	for (size_t i = 0; i < route->n_dests; i++) {
		acc += route->dests[i].weight;
		if (r < acc)
			return &route->dests[i];
	}
	return &route->dests[route->n_dests - 1];
}
