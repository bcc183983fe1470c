// SPDX-License-Identifier: Apache-2.0
/*
 * VirtualServices against the rest of the config: destination hosts and subsets, hosts claimed twice (the
 * first VirtualService by namespace/name keeps a host), and which Service ports the L7 proxy serves.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/diag.h"
#include "config/fields.h"
#include "config/objects.h"

#include <xmesh/lb.h>

static void error_at(struct xm_diags *diags, int *n_errors, const struct xm_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void error_at(struct xm_diags *diags, int *n_errors, const struct xm_loc *loc, const char *fmt, ...)
{
	char msg[sizeof(((struct xm_diag *)0)->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n_errors) {
		diags_add(diags, loc, "%s", msg);
		(*n_errors)++;
	} else {
		diags_warn(diags, loc, "%s", msg);
	}
}

static bool has_subset(const struct xm_destination_rule *dr, const char *subset)
{
	for (size_t i = 0; dr && i < dr->n_subsets; i++)
		if (!strcmp(dr->subsets[i].name, subset))
			return true;
	return false;
}

static void check_destination(const struct xm_config *cfg, const struct xm_virtual_service *vs,
			      const struct xm_http_destination *d, const char *what, struct xm_diags *diags,
			      int *n_errors)
{
	const struct xm_service *svc;
	char q[QUOTE_BUF], q2[QUOTE_BUF];
	bool port_found = !d->port;

	if (!d->host[0])
		return;
	svc = config_host_service(cfg, d->host, vs->ns);
	if (!svc) {
		error_at(diags, NULL, &d->host_loc,
			 "virtualservice %s/%s: %s host %s names no known Service: its requests get 503 (UH)", vs->ns,
			 vs->name, what, quoted(q, d->host));
		return;
	}
	for (size_t p = 0; p < svc->n_ports && !port_found; p++)
		port_found = svc->ports[p].port == d->port;
	if (!port_found)
		error_at(diags, n_errors, &d->loc, "virtualservice %s/%s: %s: service %s/%s has no port %u", vs->ns,
			 vs->name, what, svc->ns, svc->name, d->port);
	if (d->subset[0] && !has_subset(config_rule_of(cfg, svc), d->subset))
		error_at(diags, n_errors, &d->subset_loc,
			 "virtualservice %s/%s: %s: unknown subset %s (no DestinationRule subset of that name for "
			 "host %s)",
			 vs->ns, vs->name, what, quoted(q, d->subset), quoted(q2, d->host));
}

/* One host a mesh VirtualService claims: the Service it resolves to, or its text (wildcards, external). */
struct host_claim {
	const struct xm_service *svc;
	const char *host;
	const struct xm_virtual_service *vs;
	const struct xm_loc *loc;
	size_t order;
};

static int claim_cmp(const void *a, const void *b)
{
	const struct host_claim *x = a, *y = b;
	int r;

	if (x->svc != y->svc)
		return x->svc < y->svc ? -1 : 1;
	r = x->svc ? 0 : strcasecmp(x->host, y->host);
	return r ? r : (x->order < y->order ? -1 : x->order > y->order);
}

static bool same_claim(const struct host_claim *x, const struct host_claim *y)
{
	return x->svc == y->svc && (x->svc || !strcasecmp(x->host, y->host));
}

/* Claims of mesh VirtualServices with http routes, sorted so that equal claims are adjacent, first first. */
static struct host_claim *collect_claims(const struct xm_config *cfg, size_t *n)
{
	struct host_claim *claims = NULL;

	*n = 0;
	for (size_t i = 0; i < cfg->n_virtual_services; i++) {
		const struct xm_virtual_service *vs = &cfg->virtual_services[i];

		for (size_t h = 0; vs->mesh && vs->n_http && h < vs->n_hosts; h++) {
			struct host_claim *c = array_push(&claims, n, sizeof(*claims));

			if (!c)
				break;
			c->svc = config_host_service(cfg, vs->hosts[h], vs->ns);
			c->host = vs->hosts[h];
			c->vs = vs;
			c->loc = &vs->host_locs[h];
			c->order = *n;
		}
	}
	if (*n > 1)
		qsort(claims, *n, sizeof(*claims), claim_cmp);
	return claims;
}

static void warn_duplicate_claims(const struct host_claim *claims, size_t n, struct xm_diags *diags)
{
	char q[QUOTE_BUF];

	for (size_t i = 1; i < n; i++) {
		size_t first = i - 1;

		if (!same_claim(&claims[first], &claims[i]))
			continue;
		while (first > 0 && same_claim(&claims[first - 1], &claims[i]))
			first--;
		if (claims[first].vs == claims[i].vs)
			continue; /* one VirtualService naming a Service twice ("reviews", "reviews.default") */
		diags_warn(diags, claims[i].loc,
			   "virtualservice %s/%s: host %s is also claimed by virtualservice %s/%s (%s:%d:%d), which "
			   "comes first by namespace/name: ignored here",
			   claims[i].vs->ns, claims[i].vs->name, quoted(q, claims[i].host), claims[first].vs->ns,
			   claims[first].vs->name, claims[first].loc->file, claims[first].loc->line,
			   claims[first].loc->col);
	}
}

static bool claimed(const struct host_claim *claims, size_t n, const struct xm_service *svc)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* claims are sorted by svc pointer first */
		size_t mid = lo + (hi - lo) / 2;

		if (claims[mid].svc == svc)
			return true;
		if ((uintptr_t)claims[mid].svc < (uintptr_t)svc)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Istio's protocol selection; HTTP/2 ports are served at L4 for now, and say so. */
static void select_protocols(struct xm_config *cfg, const struct host_claim *claims, size_t n_claims,
			     struct xm_diags *diags)
{
	for (size_t i = 0; i < cfg->n_services; i++) {
		struct xm_service *svc = &cfg->services[i];
		bool routed = claimed(claims, n_claims, svc);

		for (size_t p = 0; p < svc->n_ports; p++) {
			struct xm_service_port *sp = &svc->ports[p];
			enum xm_port_protocol proto = config_port_protocol(sp);

			sp->http = sp->proto == XM_PROTO_TCP &&
				   (proto == XM_PORT_PROTO_HTTP || (proto == XM_PORT_PROTO_UNKNOWN && routed));
			if (proto == XM_PORT_PROTO_HTTP2 && sp->proto == XM_PROTO_TCP)
				diags_warn(diags, &sp->app_protocol_loc,
					   "service %s/%s: port %u: HTTP/2 is not supported yet: served at L4", svc->ns,
					   svc->name, sp->port);
		}
	}
}

/* A mesh VirtualService host whose Service has no HTTP port: its http routes apply nowhere, say so. */
static void warn_hosts_without_http(const struct host_claim *claims, size_t n, struct xm_diags *diags)
{
	char q[QUOTE_BUF];

	for (size_t i = 0; i < n; i++) {
		const struct xm_service *svc = claims[i].svc;
		bool http = false;

		if (!svc)
			continue;
		for (size_t p = 0; p < svc->n_ports && !http; p++)
			http = svc->ports[p].http;
		if (!http)
			diags_warn(diags, claims[i].loc,
				   "virtualservice %s/%s: host %s: service %s/%s has no HTTP port (its ports' "
				   "appProtocol or name say another protocol): the http routes do not apply to it",
				   claims[i].vs->ns, claims[i].vs->name, quoted(q, claims[i].host), svc->ns, svc->name);
	}
}

void validate_virtual_services(struct xm_config *cfg, struct xm_diags *diags, int *n_errors)
{
	struct host_claim *claims;
	size_t n_claims;

	for (size_t i = 0; i < cfg->n_virtual_services; i++) {
		const struct xm_virtual_service *vs = &cfg->virtual_services[i];

		for (size_t r = 0; r < vs->n_http; r++) {
			const struct xm_http_route *route = &vs->http[r];
			char what[96];

			for (size_t d = 0; d < route->n_route; d++) {
				snprintf(what, sizeof(what), "spec.http[%zu].route[%zu].destination", r, d);
				check_destination(cfg, vs, &route->route[d].dest, what, diags, n_errors);
			}
			if (route->has_mirror) {
				snprintf(what, sizeof(what), "spec.http[%zu].mirror", r);
				check_destination(cfg, vs, &route->mirror, what, diags, n_errors);
			}
		}
	}
	claims = collect_claims(cfg, &n_claims);
	warn_duplicate_claims(claims, n_claims, diags);
	select_protocols(cfg, claims, n_claims, diags);
	warn_hosts_without_http(claims, n_claims, diags);
	free(claims);
}
