// SPDX-License-Identifier: Apache-2.0
/* Denials of AuthorizationPolicy by pod and policy (metrics/authz_denied.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/model.h"
#include "metrics/authz_denied.h"
#include "metrics/registry.h"

struct denied_series {
	char ns[64];
	char pod[XM_NAME_MAX];
	char policy[64 + XM_NAME_MAX + 1];
	uint64_t count;
};

void authz_denied_fini(struct authz_denied *d)
{
	pthread_mutex_destroy(&d->lock);
	free(d->items);
	d->items = NULL;
	d->n = d->cap = 0;
}

static struct denied_series *find_or_add(struct authz_denied *d, const char *ns, const char *pod, const char *policy,
					 bool *added)
{
	struct denied_series *s;

	for (size_t i = 0; i < d->n; i++) {
		s = &d->items[i];
		if (!strcmp(s->ns, ns) && !strcmp(s->pod, pod) && !strcmp(s->policy, policy))
			return s;
	}
	if (d->n == AUTHZ_DENIED_MAX_SERIES)
		return NULL;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct denied_series *items = realloc(d->items, cap * sizeof(*items));

		if (!items)
			return NULL;
		d->items = items;
		d->cap = cap;
	}
	s = &d->items[d->n++];
	memset(s, 0, sizeof(*s));
	snprintf(s->ns, sizeof(s->ns), "%s", ns);
	snprintf(s->pod, sizeof(s->pod), "%s", pod);
	snprintf(s->policy, sizeof(s->policy), "%s", policy);
	*added = true;
	return s;
}

bool authz_denied_add(struct authz_denied *d, const char *ns, const char *pod, const char *policy)
{
	struct denied_series *s;
	bool added = false;

	pthread_mutex_lock(&d->lock);
	s = find_or_add(d, ns, pod, policy, &added);
	if (s)
		s->count++;
	else
		d->overflow++;
	d->total++;
	pthread_mutex_unlock(&d->lock);
	return added;
}

uint64_t authz_denied_total(struct authz_denied *d)
{
	uint64_t t;

	pthread_mutex_lock(&d->lock);
	t = d->total;
	pthread_mutex_unlock(&d->lock);
	return t;
}

static void collect_as(struct authz_denied *d, struct xm_scrape *sc, const char *name, const char *help)
{
	static const char *const names[3] = { "namespace", "pod", "policy" };
	struct xm_scrape_family *f = scrape_family(sc, name, "counter", help);

	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->n; i++) {
		const char *v[3] = { d->items[i].ns, d->items[i].pod, d->items[i].policy };

		scrape_u64(f, names, v, 3, d->items[i].count);
	}
	if (d->overflow) {
		const char *v[3] = { "", "", "overflow" };

		scrape_u64(f, names, v, 3, d->overflow);
	}
	pthread_mutex_unlock(&d->lock);
}

void authz_denied_collect(struct authz_denied *d, struct xm_scrape *sc)
{
	collect_as(
	    d, sc, "xmesh_authz_denied_total",
	    "HBONE CONNECTs answered 401 by AuthorizationPolicy, by destination pod and by the policy that denied "
	    "(NS/NAME of a DENY policy, or allow-not-matched).");
}

void authz_closed_collect(struct authz_denied *d, struct xm_scrape *sc)
{
	collect_as(d, sc, "xmesh_authz_closed_total",
		   "Admitted HBONE streams closed because an AuthorizationPolicy change denied them (reset, with their "
		   "connection to the pod), by destination pod and by the policy that denied.");
}
