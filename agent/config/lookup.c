/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lookups by namespace/name. config_load leaves each array sorted by namespace/name, so this is a binary
 * search; a miss falls back to a scan, so configs built by hand (tests, compile/) need not be sorted.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config/model.h"

static int key_cmp(const char *ns, const char *name, const char *obj_ns, const char *obj_name)
{
	int r = strcmp(ns, obj_ns);

	return r ? r : strcmp(name, obj_name);
}

/* Index of ns/name in base[0..n) (element size `size`, fields at the offsets), or n. */
static size_t find(const void *base, size_t n, size_t size, size_t ns_off, size_t name_off, const char *ns,
		   const char *name)
{
	const char *arr = base;
	size_t lo = 0, hi = n;

	if (!ns || !name)
		return n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *obj = arr + mid * size;
		int r = key_cmp(ns, name, obj + ns_off, obj + name_off);

		if (r == 0)
			return mid;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *obj = arr + i * size;

		if (key_cmp(ns, name, obj + ns_off, obj + name_off) == 0)
			return i;
	}
	return n;
}

const struct xm_service *config_find_service(const struct xm_config *cfg, const char *ns, const char *name)
{
	size_t i = find(cfg->services, cfg->n_services, sizeof(*cfg->services), offsetof(struct xm_service, ns),
			offsetof(struct xm_service, name), ns, name);

	return i < cfg->n_services ? &cfg->services[i] : NULL;
}

const struct xm_destination_rule *config_find_rule(const struct xm_config *cfg, const char *ns, const char *name)
{
	size_t i = find(cfg->rules, cfg->n_rules, sizeof(*cfg->rules), offsetof(struct xm_destination_rule, ns),
			offsetof(struct xm_destination_rule, name), ns, name);

	return i < cfg->n_rules ? &cfg->rules[i] : NULL;
}

const struct xm_pod *config_find_pod(const struct xm_config *cfg, const char *ns, const char *name)
{
	size_t i = find(cfg->pods, cfg->n_pods, sizeof(*cfg->pods), offsetof(struct xm_pod, ns),
			offsetof(struct xm_pod, name), ns, name);

	return i < cfg->n_pods ? &cfg->pods[i] : NULL;
}

const struct xm_node *config_find_node(const struct xm_config *cfg, const char *name)
{
	/* Nodes have no namespace: compare name against name, with an empty namespace on both sides. */
	size_t lo = 0, hi = cfg->n_nodes;

	if (!name)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(name, cfg->nodes[mid].name);

		if (r == 0)
			return &cfg->nodes[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		if (strcmp(name, cfg->nodes[i].name) == 0)
			return &cfg->nodes[i];
	}
	return NULL;
}

static int slice_service_cmp(const char *ns, const char *service, const struct xm_endpoint_slice *sl)
{
	int r = strcmp(ns, sl->ns);

	return r ? r : strcmp(service, sl->service_name);
}

size_t config_slices_of(const struct xm_config *cfg, const struct xm_service *svc, size_t *first)
{
	if (!cfg->indexed) {
		*first = 0;
		return cfg->n_slices;
	}
	*first = svc->slices_first;
	return svc->n_slices;
}

size_t config_slices_search(const struct xm_config *cfg, const char *ns, const char *service, size_t *first)
{
	size_t lo = 0, hi = cfg->n_slices, end;

	while (lo < hi) { /* the first slice not below ns/service */
		size_t mid = lo + (hi - lo) / 2;

		if (slice_service_cmp(ns, service, &cfg->slices[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < cfg->n_slices && !slice_service_cmp(ns, service, &cfg->slices[end]); end++)
		;
	*first = lo;
	return end - lo;
}

const struct xm_destination_rule *config_rule_of(const struct xm_config *cfg, const struct xm_service *svc)
{
	if (cfg->indexed)
		return svc->rule;
	for (size_t i = 0; i < cfg->n_rules; i++) {
		const struct xm_destination_rule *r = &cfg->rules[i];

		if (!strcmp(r->host_ns, svc->ns) && !strcmp(r->host_name, svc->name))
			return r;
	}
	return NULL;
}

const struct xm_service *config_host_service(const struct xm_config *cfg, const char *host, const char *ns)
{
	char name[XM_NAME_MAX], host_ns[64];
	const char *dot, *rest;
	size_t len = strlen(host);

	if (!len || strchr(host, '*') || len >= XM_NAME_MAX)
		return NULL;
	dot = strchr(host, '.');
	if (!dot)
		return config_find_service(cfg, ns, host);
	rest = strchr(dot + 1, '.');
	/* "name.ns", "name.ns.svc", "name.ns.svc.cluster.local" */
	if (rest && strcmp(rest, ".svc") != 0 && strcmp(rest, ".svc.cluster.local") != 0)
		return NULL;
	if ((size_t)(dot - host) >= sizeof(name))
		return NULL;
	snprintf(name, sizeof(name), "%.*s", (int)(dot - host), host);
	snprintf(host_ns, sizeof(host_ns), "%.*s", (int)(rest ? rest - dot - 1 : (long)strlen(dot + 1)), dot + 1);
	return config_find_service(cfg, host_ns, name);
}
