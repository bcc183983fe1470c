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

int identities_build(const struct xm_config *cfg, struct xm_identities *ids)
{
	struct xm_identity *items;
	size_t n = 0, cap = 0, i, j;

	for (i = 0; i < cfg->n_pods; i++)
		cap += cfg->pods[i].n_ips;
	items = calloc(cap ? cap : 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	for (i = 0; i < cfg->n_pods; i++) {
		const struct xm_pod *pod = &cfg->pods[i];

		for (j = 0; j < pod->n_ips; j++) {
			struct xm_identity *id = &items[n++];

			id->family = pod->ips[j].family;
			memcpy(id->addr.bytes, pod->ips[j].bytes, id->family == 4 ? 4 : 16);
			snprintf(id->ns, sizeof(id->ns), "%s", pod->ns);
			identity_workload_name(pod, id->workload, sizeof(id->workload));
			snprintf(id->principal, sizeof(id->principal), "spiffe://cluster.local/ns/%s/sa/%s", pod->ns,
				 pod->service_account[0] ? pod->service_account : "default");
		}
	}
	qsort(items, n, sizeof(*items), id_cmp);
	identities_free(ids);
	ids->items = items;
	ids->n = n;
	return 0;
}

void identities_free(struct xm_identities *ids)
{
	free(ids->items);
	ids->items = NULL;
	ids->n = 0;
}

const struct xm_identity *identities_find(const struct xm_identities *ids, const union xm_addr *addr, uint8_t family)
{
	struct xm_identity key;

	memset(&key, 0, sizeof(key));
	key.addr = *addr;
	key.family = family;
	return ids->n ? bsearch(&key, ids->items, ids->n, sizeof(key), id_cmp) : NULL;
}
