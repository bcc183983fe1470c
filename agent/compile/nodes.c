// SPDX-License-Identifier: Apache-2.0
#include "compile/nodes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int node_addr_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_node_addr_key));
}

int compile_node_addrs(const struct xm_config *cfg, struct xm_node_addrs *out)
{
	size_t i, j, n = 0, total = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < cfg->n_nodes; i++)
		total += cfg->nodes[i].n_internal_ips;
	if (!total)
		return 0;
	out->addrs = calloc(total, sizeof(*out->addrs));
	if (!out->addrs)
		return -ENOMEM;
	for (i = 0; i < cfg->n_nodes; i++) {
		for (j = 0; j < cfg->nodes[i].n_internal_ips; j++) {
			const struct xm_ip *ip = &cfg->nodes[i].internal_ips[j];
			struct xm_node_addr_key *k = &out->addrs[n++];

			k->family = ip->family == 4 ? XM_FAMILY_V4 : XM_FAMILY_V6;
			memcpy(k->addr.bytes, ip->bytes, ip->family == 4 ? 4 : 16);
		}
	}
	qsort(out->addrs, n, sizeof(*out->addrs), node_addr_cmp);
	for (i = j = 0; i < n; i++) /* two nodes may claim one address */
		if (!j || node_addr_cmp(&out->addrs[j - 1], &out->addrs[i]))
			out->addrs[j++] = out->addrs[i];
	out->n = j;
	return 0;
}

void node_addrs_free(struct xm_node_addrs *na)
{
	free(na->addrs);
	memset(na, 0, sizeof(*na));
}
