// SPDX-License-Identifier: Apache-2.0
/* A plaintext connection judged as the kernel judges its SYN (compile/plain_judge.h). */
#include "compile/plain_judge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/fnv.h"

static int ip_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_local_ip_key));
}

static struct xm_local_ip_key ip_key(uint8_t family, const union xm_addr *a)
{
	struct xm_local_ip_key k;

	memset(&k, 0, sizeof(k));
	memcpy(k.addr.bytes, a->bytes, family == XM_FAMILY_V4 ? 4 : 16);
	k.family = family;
	return k;
}

/* The XM_LOCAL_IP_* flags of the address in s (0: not local). */
static uint32_t local_flags(const struct xm_local_addrs *s, const struct xm_local_ip_key *k)
{
	const struct xm_local_ip_key *at = s && s->n ? bsearch(k, s->keys, s->n, sizeof(*k), ip_key_cmp) : NULL;

	return at ? s->flags[at - s->keys] : 0;
}

static bool is_node(const struct plain_rules *r, const struct xm_local_ip_key *k)
{
	return (local_flags(r->local, k) & XM_LOCAL_IP_NODE) ||
	       (r->n_node_ips && bsearch(k, r->node_ips, r->n_node_ips, sizeof(*k), ip_key_cmp));
}

enum plain_verdict plain_judge(const struct plain_rules *r, uint8_t family, const union xm_addr *pod, uint16_t port,
			       const union xm_addr *client, uint32_t *policy)
{
	struct xm_local_ip_key ck = ip_key(family, client);
	const struct xm_mtls_entry *m;
	bool local;

	*policy = 0;
	if (is_node(r, &ck))
		return PLAIN_NODE;
	local = local_flags(r->local, &ck) & XM_LOCAL_IP_POD;
	m = r->mtls ? mtls_table_effective(r->mtls, pod, family, port) : NULL;
	if (m && m->val.mode == XM_MTLS_MODE_STRICT && !local)
		return PLAIN_STRICT;
	if (r->authz && authz_plain_judge(r->authz, family, pod, port, client, local, policy))
		return PLAIN_DENIED;
	return PLAIN_ALLOWED;
}

long plain_rules_pods(const struct plain_rules *r, struct xm_local_ip_key **out)
{
	size_t cap = (r->mtls ? r->mtls->n : 0) + (r->authz ? r->authz->n : 0), n = 0, u = 0;
	struct xm_local_ip_key *v = malloc((cap ? cap : 1) * sizeof(*v));

	*out = NULL;
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; r->mtls && i < r->mtls->n; i++)
		if (r->mtls->items[i].val.mode == XM_MTLS_MODE_STRICT)
			v[n++] = ip_key(r->mtls->items[i].key.family, &r->mtls->items[i].key.addr);
	for (size_t i = 0; r->authz && i < r->authz->n; i++)
		v[n++] = ip_key(r->authz->items[i].key.family, &r->authz->items[i].key.dst);
	if (n)
		qsort(v, n, sizeof(*v), ip_key_cmp);
	for (size_t i = 0; i < n; i++)
		if (!u || ip_key_cmp(&v[u - 1], &v[i]))
			v[u++] = v[i];
	*out = v;
	return (long)u;
}

bool plain_pods_has(const struct xm_local_ip_key *set, size_t n, const struct xm_local_ip_key *k)
{
	return n && bsearch(k, set, n, sizeof(*k), ip_key_cmp);
}

/*
 * A digest per pod of pods (sorted, n) of its entries in r, in table order (the tables are sorted: the order of
 * one pod's entries is canonical). A pod without entries keeps the offset basis.
 */
static void digests(const struct plain_rules *r, const struct xm_local_ip_key *pods, size_t n, uint64_t *h)
{
	for (size_t i = 0; i < n; i++)
		h[i] = XM_FNV1A64_BASIS;
	for (size_t i = 0; r->mtls && i < r->mtls->n; i++) {
		const struct xm_mtls_entry *e = &r->mtls->items[i];
		struct xm_local_ip_key k = ip_key(e->key.family, &e->key.addr);
		const struct xm_local_ip_key *at = n ? bsearch(&k, pods, n, sizeof(k), ip_key_cmp) : NULL;

		if (at)
			h[at - pods] = xm_fnv1a64(h[at - pods], e, sizeof(*e));
	}
	for (size_t i = 0; r->authz && i < r->authz->n; i++) {
		const struct xm_authz_plain_entry *e = &r->authz->items[i];
		struct xm_local_ip_key k = ip_key(e->key.family, &e->key.dst);
		const struct xm_local_ip_key *at = n ? bsearch(&k, pods, n, sizeof(k), ip_key_cmp) : NULL;

		if (at)
			h[at - pods] = xm_fnv1a64(xm_fnv1a64(h[at - pods], "a", 1), e, sizeof(*e));
	}
}

long plain_rules_changed_pods(const struct plain_rules *old, const struct plain_rules *next,
			      struct xm_local_ip_key **out)
{
	long n = plain_rules_pods(next, out);
	uint64_t *a, *b;
	size_t u = 0;

	if (n <= 0 || !old)
		return n;
	a = calloc((size_t)n, sizeof(*a));
	b = calloc((size_t)n, sizeof(*b));
	if (!a || !b) {
		free(a);
		free(b);
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	digests(old, *out, (size_t)n, a);
	digests(next, *out, (size_t)n, b);
	for (size_t i = 0; i < (size_t)n; i++)
		if (a[i] != b[i])
			(*out)[u++] = (*out)[i];
	free(a);
	free(b);
	return (long)u;
}
