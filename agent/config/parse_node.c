/* SPDX-License-Identifier: Apache-2.0 */
/*
 * v1 Node: its InternalIP addresses, where IPIP-encapsulated traffic for its pods goes, and its locality (the
 * topology labels), which its pods carry in the HBONE baggage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/fields.h"
#include "config/objects.h"

static void copy_label(const struct xm_label *labels, size_t n, const char *key, char *out, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(labels[i].key, key)) {
			snprintf(out, len, "%s", labels[i].value);
			return;
		}
}

static void parse_locality(struct obj_ctx *c, const struct ynode *obj, struct xm_node *node)
{
	struct xm_label *labels = NULL;
	size_t n = 0;

	get_labels(c, get_map(c, obj, "metadata", NULL), "labels", "metadata.labels", &labels, &n);
	copy_label(labels, n, "topology.kubernetes.io/region", node->region, sizeof(node->region));
	copy_label(labels, n, "topology.kubernetes.io/zone", node->zone, sizeof(node->zone));
	free(labels);
}

void parse_node(struct obj_ctx *c, const struct ynode *obj)
{
	const struct ynode *status = get_map(c, obj, "status", NULL);
	const struct ynode *addrs = get_seq(c, status, "addresses", "status.addresses");
	struct xm_node node = { .loc = c->loc };
	struct xm_node *slot;
	char field[64];

	snprintf(node.name, sizeof(node.name), "%s", c->name);
	parse_locality(c, obj, &node);
	for (size_t i = 0; addrs && i < addrs->n; i++) {
		const struct ynode *entry = addrs->kids[i];
		struct xm_ip ip, *ip_slot;
		char type[64];

		snprintf(field, sizeof(field), "status.addresses[%zu]", i);
		if (entry->kind != YNODE_MAP) {
			char got[QUOTE_BUF + 16];

			obj_error(c, entry, "%s: expected a mapping, got %s", field,
				  ynode_describe(entry, got, sizeof(got)));
			continue;
		}
		snprintf(field, sizeof(field), "status.addresses[%zu].type", i);
		/* Hostname, ExternalIP, InternalDNS...: not where the tunnel goes. */
		if (get_str(c, entry, "type", field, type, sizeof(type)) != FIELD_SET ||
		    strcmp(type, "InternalIP") != 0)
			continue;
		snprintf(field, sizeof(field), "status.addresses[%zu].address", i);
		if (node_ip(c, map_value(c, entry, "address"), field, &ip) != FIELD_SET) {
			if (!map_value(c, entry, "address"))
				obj_error(c, entry, "%s is required", field);
			continue;
		}
		ip_slot = array_push(&node.internal_ips, &node.n_internal_ips, sizeof(*node.internal_ips));
		if (!ip_slot) {
			obj_error(c, entry, "out of memory");
			break;
		}
		*ip_slot = ip;
	}

	slot = array_push(&c->cfg->nodes, &c->cfg->n_nodes, sizeof(*c->cfg->nodes));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		node_free(&node);
		return;
	}
	*slot = node;
}
