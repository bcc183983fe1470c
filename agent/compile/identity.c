// SPDX-License-Identifier: Apache-2.0
#include "compile/identity.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *label_of(const struct xm_pod *pod, const char *key)
{
	size_t i;

	for (i = 0; i < pod->n_labels; i++)
		if (!strcmp(pod->labels[i].key, key))
			return pod->labels[i].value;
	return NULL;
}

void identity_workload_name(const struct xm_pod *pod, char *buf, size_t len)
{
	static const char *const keys[] = { "service.istio.io/canonical-name", "app.kubernetes.io/name", "app" };
	const char *hash = label_of(pod, "pod-template-hash");
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = label_of(pod, keys[i]);

		if (v && *v) {
			snprintf(buf, len, "%s", v);
			return;
		}
	}
	/* reviews-v1-5c8b9d6f4-x7k2p → reviews-v1: drop "-<pod-template-hash>-<suffix>". */
	snprintf(buf, len, "%s", pod->name);
	if (hash && *hash) {
		char *p = strstr(buf, hash);

		if (p && p > buf && p[-1] == '-')
			p[-1] = '\0';
	}
}

static int id_cmp(const void *a, const void *b)
{
	const struct xm_identity *x = a, *y = b;

	if (x->family != y->family)
		return (int)x->family - (int)y->family;
	return memcmp(x->addr.bytes, y->addr.bytes, 16);
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct xm_label *)a)->key, ((const struct xm_label *)b)->key);
}

/* The first of keys that pod has with a non-empty value, else dflt. */
static const char *first_label(const struct xm_pod *pod, const char *const *keys, size_t n, const char *dflt)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *v = label_of(pod, keys[i]);

		if (v && *v)
			return v;
	}
	return dflt;
}

static int node_name_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct xm_node *const *)a)->name, (*(const struct xm_node *const *)b)->name);
}

/*
 * istiod's locality of a pod: the label istio-locality ("region.zone.subzone", dots because a label value
 * cannot hold '/'), else its Node's topology labels. nodes is sorted by name.
 */
static void workload_locality(struct xm_workload *w, const struct xm_pod *pod, const struct xm_node *const *nodes,
			      size_t n_nodes)
{
	const char *loc = label_of(pod, "istio-locality");
	struct xm_node key, *kp = &key;
	const struct xm_node *const *hit;

	if (loc && *loc) {
		size_t r = strcspn(loc, ".");

		snprintf(w->region, sizeof(w->region), "%.*s", (int)r, loc);
		if (loc[r])
			snprintf(w->zone, sizeof(w->zone), "%.*s", (int)strcspn(loc + r + 1, "."), loc + r + 1);
		return;
	}
	snprintf(key.name, sizeof(key.name), "%s", pod->node_name);
	hit = n_nodes ? bsearch(&kp, nodes, n_nodes, sizeof(*nodes), node_name_cmp) : NULL;
	if (hit) {
		snprintf(w->region, sizeof(w->region), "%s", (*hit)->region);
		snprintf(w->zone, sizeof(w->zone), "%s", (*hit)->zone);
	}
}

static int workload_fill(struct xm_workload *w, const struct xm_pod *pod, const char *trust_domain)
{
	static const char *const service_keys[] = { "service.istio.io/canonical-name", "app.kubernetes.io/name",
						    "app" };
	static const char *const revision_keys[] = { "service.istio.io/canonical-revision", "app.kubernetes.io/version",
						     "version" };
	static const char *const app_key[] = { "app" }, *const version_key[] = { "version" };

	snprintf(w->ns, sizeof(w->ns), "%s", pod->ns);
	snprintf(w->pod, sizeof(w->pod), "%s", pod->name);
	identity_workload_name(pod, w->name, sizeof(w->name));
	snprintf(w->app, sizeof(w->app), "%s", first_label(pod, app_key, 1, "unknown"));
	snprintf(w->version, sizeof(w->version), "%s", first_label(pod, version_key, 1, "unknown"));
	snprintf(w->canonical_service, sizeof(w->canonical_service), "%s", first_label(pod, service_keys, 3, w->name));
	snprintf(w->canonical_revision, sizeof(w->canonical_revision), "%s",
		 first_label(pod, revision_keys, 3, "latest"));
	snprintf(w->service_account, sizeof(w->service_account), "%s",
		 pod->service_account[0] ? pod->service_account : "default");
	snprintf(w->node, sizeof(w->node), "%s", pod->node_name);
	snprintf(w->principal, sizeof(w->principal), "spiffe://%s/ns/%s/sa/%s", trust_domain, pod->ns,
		 w->service_account);
	if (!pod->n_labels)
		return 0;
	w->labels = malloc(pod->n_labels * sizeof(*w->labels));
	if (!w->labels)
		return -ENOMEM;
	memcpy(w->labels, pod->labels, pod->n_labels * sizeof(*w->labels));
	w->n_labels = pod->n_labels;
	qsort(w->labels, w->n_labels, sizeof(*w->labels), label_cmp);
	return 0;
}

const char *workload_label(const struct xm_workload *w, const char *key)
{
	struct xm_label k;
	const struct xm_label *hit;

	if (!w->n_labels || strlen(key) >= sizeof(k.key))
		return NULL;
	snprintf(k.key, sizeof(k.key), "%s", key);
	hit = bsearch(&k, w->labels, w->n_labels, sizeof(k), label_cmp);
	return hit ? hit->value : NULL;
}

static void workloads_free(struct xm_workload *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(w[i].labels);
	free(w);
}

int identities_build(const struct xm_config *cfg, const char *trust_domain, struct xm_identities *ids)
{
	struct xm_identity *items;
	struct xm_workload *wls;
	const struct xm_node **nodes;
	size_t n = 0, cap = 0, i, j;

	for (i = 0; i < cfg->n_pods; i++)
		cap += cfg->pods[i].n_ips;
	items = calloc(cap ? cap : 1, sizeof(*items));
	wls = calloc(cfg->n_pods ? cfg->n_pods : 1, sizeof(*wls));
	nodes = calloc(cfg->n_nodes ? cfg->n_nodes : 1, sizeof(*nodes));
	if (!items || !wls || !nodes)
		goto nomem;
	for (i = 0; i < cfg->n_nodes; i++)
		nodes[i] = &cfg->nodes[i];
	qsort(nodes, cfg->n_nodes, sizeof(*nodes), node_name_cmp);
	for (i = 0; i < cfg->n_pods; i++) {
		const struct xm_pod *pod = &cfg->pods[i];
		struct xm_workload *w = &wls[i];

		if (workload_fill(w, pod, trust_domain ? trust_domain : "cluster.local"))
			goto nomem;
		workload_locality(w, pod, nodes, cfg->n_nodes);
		for (j = 0; j < pod->n_ips; j++) {
			struct xm_identity *id = &items[n++];

			id->family = pod->ips[j].family;
			memcpy(id->addr.bytes, pod->ips[j].bytes, id->family == 4 ? 4 : 16);
			snprintf(id->ns, sizeof(id->ns), "%s", w->ns);
			snprintf(id->workload, sizeof(id->workload), "%s", w->name);
			snprintf(id->principal, sizeof(id->principal), "%s", w->principal);
			id->wl = w;
		}
	}
	free(nodes);
	qsort(items, n, sizeof(*items), id_cmp);
	identities_free(ids);
	ids->items = items;
	ids->n = n;
	ids->workloads = wls;
	ids->n_workloads = cfg->n_pods;
	return 0;
nomem:
	free(items);
	free(nodes);
	if (wls)
		workloads_free(wls, cfg->n_pods);
	return -ENOMEM;
}

void identities_free(struct xm_identities *ids)
{
	free(ids->items);
	if (ids->workloads)
		workloads_free(ids->workloads, ids->n_workloads);
	ids->items = NULL;
	ids->n = 0;
	ids->workloads = NULL;
	ids->n_workloads = 0;
}

const struct xm_identity *identities_find(const struct xm_identities *ids, const union xm_addr *addr, uint8_t family)
{
	struct xm_identity key;

	memset(&key, 0, sizeof(key));
	key.addr = *addr;
	key.family = family;
	return ids->n ? bsearch(&key, ids->items, ids->n, sizeof(key), id_cmp) : NULL;
}
