// SPDX-License-Identifier: Apache-2.0
/*
 * Istio's composition of PeerAuthentication (pilot's ComposePeerAuthentication and the ordering of
 * sortConfigByCreationTime): see docs/mtls.md, "PeerAuthentication and STRICT in the kernel".
 */
#include "compile/peer_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

const char *peer_auth_mode_name(enum xm_mtls_mode m)
{
	switch (m) {
	case XM_MTLS_DISABLE:
		return "DISABLE";
	case XM_MTLS_PERMISSIVE:
		return "PERMISSIVE";
	case XM_MTLS_STRICT:
		return "STRICT";
	default:
		return "UNSET";
	}
}

/* Istio's order: older first; equal times by "name.namespace", so the choice never depends on load order. */
static bool older(const struct xm_peer_authentication *a, const struct xm_peer_authentication *b)
{
	char na[XM_NAME_MAX + 66], nb[XM_NAME_MAX + 66];

	if (a->created != b->created)
		return a->created < b->created;
	snprintf(na, sizeof(na), "%s.%s", a->name, a->ns);
	snprintf(nb, sizeof(nb), "%s.%s", b->name, b->ns);
	return strcmp(na, nb) < 0;
}

static bool selects(const struct xm_peer_authentication *pa, const struct xm_label *labels, size_t n_labels)
{
	for (size_t i = 0; i < pa->n_selector; i++) {
		bool found = false;

		for (size_t j = 0; j < n_labels && !found; j++)
			found = !strcmp(pa->selector[i].key, labels[j].key) &&
				!strcmp(pa->selector[i].value, labels[j].value);
		if (!found)
			return false;
	}
	return true;
}

void peer_auth_resolve(const struct xm_config *cfg, const char *root_ns, const char *ns, const struct xm_label *labels,
		       size_t n_labels, struct xm_pa_effective *out)
{
	enum xm_mtls_mode mode = XM_MTLS_PERMISSIVE;

	memset(out, 0, sizeof(*out));
	if (!root_ns || !root_ns[0])
		root_ns = XM_DEFAULT_ROOT_NAMESPACE;
	for (size_t i = 0; i < cfg->n_peer_auths; i++) {
		const struct xm_peer_authentication *pa = &cfg->peer_auths[i];
		const struct xm_peer_authentication **slot = NULL;

		if (!pa->n_selector && !strcmp(pa->ns, root_ns))
			slot = &out->mesh;
		else if (!pa->n_selector && !strcmp(pa->ns, ns))
			slot = &out->ns;
		/* A selector in the root namespace selects nothing (Istio's note on the API). */
		else if (pa->n_selector && !strcmp(pa->ns, ns) && strcmp(ns, root_ns) && selects(pa, labels, n_labels))
			slot = &out->workload;
		if (slot && (!*slot || older(pa, *slot)))
			*slot = pa;
	}
	/* From the widest scope in: each level's UNSET keeps what the level above gave. */
	if (out->mesh && out->mesh->mode != XM_MTLS_UNSET)
		mode = out->mesh->mode;
	if (out->ns && out->ns->mode != XM_MTLS_UNSET)
		mode = out->ns->mode;
	if (out->workload && out->workload->mode != XM_MTLS_UNSET)
		mode = out->workload->mode;
	out->mode = mode;
	if (out->workload) {
		out->ports = out->workload->ports;
		out->n_ports = out->workload->n_ports;
	}
}

enum xm_mtls_mode peer_auth_port_mode(const struct xm_pa_effective *e, uint16_t port)
{
	size_t lo = 0, hi = e->n_ports;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e->ports[mid].port == port)
			return e->ports[mid].mode == XM_MTLS_UNSET ? e->mode : e->ports[mid].mode;
		if (e->ports[mid].port < port)
			lo = mid + 1;
		else
			hi = mid;
	}
	return e->mode;
}

static uint8_t kernel_mode(enum xm_mtls_mode m)
{
	return m == XM_MTLS_STRICT    ? XM_MTLS_MODE_STRICT
	       : m == XM_MTLS_DISABLE ? XM_MTLS_MODE_DISABLE
				      : XM_MTLS_MODE_PERMISSIVE;
}

static int entry_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct xm_mtls_entry *)a)->key, &((const struct xm_mtls_entry *)b)->key,
		      sizeof(struct xm_mtls_key));
}

static int push(struct xm_mtls_table *t, size_t *cap, const struct xm_ip *ip, uint16_t port, uint8_t mode,
		uint8_t flags)
{
	struct xm_mtls_entry *e;

	if (t->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct xm_mtls_entry *n = realloc(t->items, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->items = n;
		*cap = ncap;
	}
	e = &t->items[t->n++];
	memset(e, 0, sizeof(*e));
	e->key.family = ip->family == 6 ? XM_FAMILY_V6 : XM_FAMILY_V4;
	memcpy(e->key.addr.bytes, ip->bytes, ip->family == 6 ? 16 : 4);
	e->key.port = port;
	e->val.mode = mode;
	e->val.flags = flags;
	return 0;
}

/* Sorted, one entry per key (the first pod claiming an address keeps it), at most the kernel's size. */
static void finish_table(struct xm_mtls_table *out)
{
	if (out->n > 1)
		qsort(out->items, out->n, sizeof(*out->items), entry_cmp);
	/* Two pods claiming one IP (a stale Pod object): the first keeps it. */
	if (out->n > 1) {
		size_t j = 1;

		for (size_t i = 1; i < out->n; i++) {
			if (!entry_cmp(&out->items[i], &out->items[j - 1]))
				continue;
			out->items[j++] = out->items[i];
		}
		if (j != out->n)
			log_warn("peerauthentication: %zu duplicate pod address entries ignored", out->n - j);
		out->n = j;
	}
	if (out->n > XM_MAX_MTLS_POLICIES) {
		log_warn("peerauthentication: %zu pod port entries, the kernel holds %d: the rest are PERMISSIVE",
			 out->n, XM_MAX_MTLS_POLICIES);
		out->n = XM_MAX_MTLS_POLICIES;
	}
}

/*
 * Each address of pod: its mode for any port (port 0, with flags) and one entry per port of portLevelMtls.
 * -ENOMEM, or 0.
 */
static int push_pod(struct xm_mtls_table *out, size_t *cap, const struct xm_pod *pod, const struct xm_pa_effective *e,
		    uint8_t flags)
{
	for (size_t a = 0; a < pod->n_ips; a++) {
		if (push(out, cap, &pod->ips[a], 0, kernel_mode(e->mode), flags))
			return -ENOMEM;
		for (size_t p = 0; p < e->n_ports; p++)
			if (push(out, cap, &pod->ips[a], e->ports[p].port,
				 kernel_mode(peer_auth_port_mode(e, e->ports[p].port)), 0))
				return -ENOMEM;
	}
	return 0;
}

int mtls_table_build(const struct xm_config *cfg, const char *node, const char *root_ns, struct xm_mtls_table *out)
{
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	if (!node || !node[0] || !cfg->n_peer_auths)
		return 0;
	for (size_t i = 0; i < cfg->n_pods; i++) {
		const struct xm_pod *pod = &cfg->pods[i];
		struct xm_pa_effective e;
		bool any_strict;

		if (strcmp(pod->node_name, node))
			continue;
		peer_auth_resolve(cfg, root_ns, pod->ns, pod->labels, pod->n_labels, &e);
		any_strict = e.mode == XM_MTLS_STRICT;
		for (size_t p = 0; p < e.n_ports && !any_strict; p++)
			any_strict = peer_auth_port_mode(&e, e.ports[p].port) == XM_MTLS_STRICT;
		/* Pods without a STRICT port need no entry: absent means PERMISSIVE to the kernel. */
		if (!any_strict)
			continue;
		if (push_pod(out, &cap, pod, &e, XM_MTLS_F_ANY_STRICT))
			goto nomem;
	}
	finish_table(out);
	return 0;
nomem:
	mtls_table_free(out);
	return -ENOMEM;
}

int mtls_remote_build(const struct xm_config *cfg, const char *node, const char *root_ns, struct xm_mtls_table *out)
{
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < cfg->n_pods; i++) {
		const struct xm_pod *pod = &cfg->pods[i];
		struct xm_pa_effective e;

		/* A pod of this node, or of no known node, is no tunnel destination. */
		if (!pod->node_name[0] || (node && !strcmp(pod->node_name, node)))
			continue;
		peer_auth_resolve(cfg, root_ns, pod->ns, pod->labels, pod->n_labels, &e);
		if (push_pod(out, &cap, pod, &e, 0))
			goto nomem;
	}
	finish_table(out);
	return 0;
nomem:
	mtls_table_free(out);
	return -ENOMEM;
}

void mtls_table_free(struct xm_mtls_table *t)
{
	free(t->items);
	memset(t, 0, sizeof(*t));
}

const struct xm_mtls_entry *mtls_table_find(const struct xm_mtls_table *t, const struct xm_mtls_key *k)
{
	struct xm_mtls_entry key = { .key = *k };

	return t->n ? bsearch(&key, t->items, t->n, sizeof(*t->items), entry_cmp) : NULL;
}

const struct xm_mtls_entry *mtls_table_effective(const struct xm_mtls_table *t, const union xm_addr *addr,
						 uint8_t family, uint16_t port)
{
	struct xm_mtls_key k = { .addr = *addr, .port = port, .family = family };
	const struct xm_mtls_entry *e = mtls_table_find(t, &k);

	if (e || !port)
		return e;
	k.port = 0;
	return mtls_table_find(t, &k);
}

bool mtls_remote_tunnelled(const struct xm_mtls_table *remote, const union xm_addr *addr, uint8_t family, uint16_t port)
{
	const struct xm_mtls_entry *e;

	if (port == 15008)
		return false;
	e = mtls_table_effective(remote, addr, family, port);
	return e && e->val.mode != XM_MTLS_MODE_DISABLE;
}
