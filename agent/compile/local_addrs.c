// SPDX-License-Identifier: Apache-2.0
#include "compile/local_addrs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_local_ip_key));
}

static int local_addrs_add(struct xm_local_addrs *s, const struct xm_ip *ip, __u32 flags)
{
	struct xm_local_ip_key k;

	if (ip->family != XM_FAMILY_V4 && ip->family != XM_FAMILY_V6)
		return 0;
	if (XM_GROW(s->keys, s->cap_keys, s->n + 1) || XM_GROW(s->flags, s->cap_flags, s->n + 1))
		return -ENOMEM;
	memset(&k, 0, sizeof(k));
	memcpy(k.addr.bytes, ip->bytes, ip->family == XM_FAMILY_V4 ? 4 : 16);
	k.family = ip->family;
	s->keys[s->n] = k;
	s->flags[s->n] = flags;
	s->n++;
	return 0;
}

static int collect(const struct xm_config *cfg, const char *node, struct xm_local_addrs *s)
{
	size_t i, j, k;
	int err = 0;

	for (i = 0; !err && i < cfg->n_pods; i++) {
		if (strcmp(cfg->pods[i].node_name, node))
			continue;
		for (j = 0; !err && j < cfg->pods[i].n_ips; j++)
			err = local_addrs_add(s, &cfg->pods[i].ips[j], XM_LOCAL_IP_POD);
	}
	for (i = 0; !err && i < cfg->n_slices; i++) {
		const struct xm_endpoint_slice *sl = &cfg->slices[i];

		for (j = 0; !err && j < sl->n_endpoints; j++) {
			if (strcmp(sl->endpoints[j].node_name, node))
				continue;
			for (k = 0; !err && k < sl->endpoints[j].n_addrs; k++)
				err = local_addrs_add(s, &sl->endpoints[j].addrs[k], XM_LOCAL_IP_ENDPOINT);
		}
	}
	for (i = 0; !err && i < cfg->n_nodes; i++) {
		if (strcmp(cfg->nodes[i].name, node))
			continue;
		for (j = 0; !err && j < cfg->nodes[i].n_internal_ips; j++)
			err = local_addrs_add(s, &cfg->nodes[i].internal_ips[j], XM_LOCAL_IP_NODE);
	}
	return err;
}

/* Sorts and merges duplicates (an address that is both a pod IP and an endpoint keeps both flags). */
static int normalize(struct xm_local_addrs *s)
{
	struct pair {
		struct xm_local_ip_key k;
		__u32 f;
	} *p = malloc(s->n * sizeof(*p) + 1);
	size_t i, out = 0;

	if (!p)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		p[i].k = s->keys[i];
		p[i].f = s->flags[i];
	}
	qsort(p, s->n, sizeof(*p), key_cmp);
	for (i = 0; i < s->n; i++) {
		if (out && !key_cmp(&p[i].k, &s->keys[out - 1])) {
			s->flags[out - 1] |= p[i].f;
			continue;
		}
		s->keys[out] = p[i].k;
		s->flags[out] = p[i].f;
		out++;
	}
	s->n = out;
	free(p);
	return 0;
}

int local_addrs_build(const struct xm_config *cfg, const char *node, struct xm_local_addrs *out)
{
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (node && *node)
		err = collect(cfg, node, out);
	if (!err)
		err = normalize(out);
	if (err)
		local_addrs_free(out);
	return err;
}

bool local_addrs_has(const struct xm_local_addrs *s, const struct xm_local_ip_key *k)
{
	return s->n && bsearch(k, s->keys, s->n, sizeof(*k), key_cmp) != NULL;
}

void local_addrs_free(struct xm_local_addrs *s)
{
	free(s->keys);
	free(s->flags);
	memset(s, 0, sizeof(*s));
}

bool local_addrs_node_ip(const struct xm_local_addrs *s, uint8_t family, union xm_addr *out)
{
	for (size_t i = 0; i < s->n; i++)
		if ((s->flags[i] & XM_LOCAL_IP_NODE) && s->keys[i].family == family) {
			*out = s->keys[i].addr;
			return true;
		}
	return false;
}
