/* SPDX-License-Identifier: Apache-2.0 */
/* discovery.k8s.io/v1 EndpointSlice: owning Service, address family, endpoints (readiness, node, pod), ports. */
#include <stdio.h>
#include <string.h>

#include "config/fields.h"
#include "config/objects.h"

#define SERVICE_NAME_LABEL "kubernetes.io/service-name"

static const char *family_name(uint8_t family)
{
	return family == 4 ? "IPv4" : "IPv6";
}

static void parse_addresses(struct obj_ctx *c, const struct ynode *ep_map, uint8_t family, struct xm_endpoint *ep)
{
	const struct ynode *addrs = get_seq(c, ep_map, "addresses", NULL);
	char field[64], q[QUOTE_BUF], name[XM_NAME_MAX];

	if (!addrs || addrs->n == 0) {
		if (!map_value(c, ep_map, "addresses") || addrs)
			obj_error(c, ep_map, "addresses is required (at least one address)");
		return;
	}
	for (size_t j = 0; j < addrs->n; j++) {
		const struct ynode *a = addrs->kids[j];
		struct xm_ip ip, *slot;

		snprintf(field, sizeof(field), "addresses[%zu]", j);
		if (family == 0) {
			/* FQDN slices are not ours to route; check only that the entry is a name. */
			if (node_str(c, a, field, name, sizeof(name)) == FIELD_ABSENT)
				obj_error(c, a, "%s is empty", field);
			continue;
		}
		if (node_ip(c, a, field, &ip) != FIELD_SET) {
			if (ynode_is_null(a))
				obj_error(c, a, "%s is empty", field);
			continue;
		}
		if (ip.family != family) {
			obj_error(c, a, "%s %s is an %s address, but addressType is %s", field, quoted(q, a->str),
				  family_name(ip.family), family_name(family));
			continue;
		}
		slot = array_push(&ep->addrs, &ep->n_addrs, sizeof(*ep->addrs));
		if (!slot) {
			obj_error(c, a, "out of memory");
			return;
		}
		*slot = ip;
	}
}

static void parse_target_ref(struct obj_ctx *c, const struct ynode *ep_map, struct xm_endpoint *ep)
{
	const struct ynode *ref = get_map(c, ep_map, "targetRef", NULL);
	char kind[64] = "";

	if (!ref)
		return;
	get_str(c, ref, "kind", "targetRef.kind", kind, sizeof(kind));
	if (strcmp(kind, "Pod") != 0)
		return;
	if (get_str(c, ref, "namespace", "targetRef.namespace", ep->target_ns, sizeof(ep->target_ns)) != FIELD_SET ||
	    !ep->target_ns[0])
		snprintf(ep->target_ns, sizeof(ep->target_ns), "%s", c->ns);
	if (get_str(c, ref, "name", "targetRef.name", ep->target_name, sizeof(ep->target_name)) != FIELD_SET)
		ep->target_ns[0] = '\0'; /* a Pod reference without a name refers to nothing */
}

static void parse_endpoint(struct obj_ctx *c, const struct ynode *item, uint8_t family, struct xm_endpoint *ep)
{
	const struct ynode *cond;

	ep->loc = obj_loc_of(c, item);
	ep->ready = true; /* an absent (unknown) readiness counts as ready: Kubernetes' rule */
	if (!item || item->kind != YNODE_MAP) {
		char got[QUOTE_BUF + 16];

		obj_error(c, item, "expected a mapping, got %s", ynode_describe(item, got, sizeof(got)));
		return;
	}
	parse_addresses(c, item, family, ep);
	cond = get_map(c, item, "conditions", NULL);
	get_bool(c, cond, "ready", "conditions.ready", &ep->ready);
	get_str(c, item, "nodeName", NULL, ep->node_name, sizeof(ep->node_name));
	parse_target_ref(c, item, ep);
}

static void parse_slice_port(struct obj_ctx *c, const struct ynode *item, struct xm_endpoint_port *p)
{
	char q[QUOTE_BUF];
	long long v;

	p->loc = obj_loc_of(c, item);
	p->proto = 6;
	if (!item || item->kind != YNODE_MAP) {
		char got[QUOTE_BUF + 16];

		obj_error(c, item, "expected a mapping, got %s", ynode_describe(item, got, sizeof(got)));
		return;
	}
	if (get_str(c, item, "name", NULL, p->name, sizeof(p->name)) == FIELD_SET)
		snprintf(c->sub, sizeof(c->sub), "port %s", quoted(q, p->name));
	/* An absent port number is allowed: "all ports" in Kubernetes; 0 here. */
	if (get_int(c, item, "port", NULL, 1, 65535, &v) == FIELD_SET)
		p->port = (uint16_t)v;
	get_protocol(c, item, NULL, &p->proto);
}

void parse_endpoint_slice(struct obj_ctx *c, const struct ynode *obj, const struct ynode *metadata)
{
	static const char *const types[] = { "IPv4", "IPv6", "FQDN" };
	static const uint8_t families[] = { 4, 6, 0 };
	const struct ynode *labels = get_map(c, metadata, "labels", "metadata.labels");
	struct xm_endpoint_slice slice = { .loc = c->loc };
	const struct ynode *endpoints, *ports;
	struct xm_endpoint_slice *slot;
	char field[XM_LABEL_MAX];
	size_t type = 0;
	int r;

	snprintf(slice.ns, sizeof(slice.ns), "%s", c->ns);
	snprintf(slice.name, sizeof(slice.name), "%s", c->name);
	snprintf(field, sizeof(field), "metadata.labels[\"%s\"]", SERVICE_NAME_LABEL);
	get_str(c, labels, SERVICE_NAME_LABEL, field, slice.service_name, sizeof(slice.service_name));
	r = get_enum(c, obj, "addressType", NULL, types, 3, &type);
	if (r == FIELD_ABSENT)
		obj_error(c, NULL, "addressType is required (IPv4, IPv6 or FQDN)");
	slice.address_family = families[type];

	endpoints = get_seq(c, obj, "endpoints", NULL);
	for (size_t i = 0; r == FIELD_SET && endpoints && i < endpoints->n; i++) {
		struct xm_endpoint *ep = array_push(&slice.endpoints, &slice.n_endpoints, sizeof(*slice.endpoints));

		if (!ep) {
			obj_error(c, endpoints, "out of memory");
			break;
		}
		snprintf(c->sub, sizeof(c->sub), "endpoints[%zu]", i);
		parse_endpoint(c, endpoints->kids[i], slice.address_family, ep);
	}
	ports = get_seq(c, obj, "ports", NULL);
	for (size_t i = 0; ports && i < ports->n; i++) {
		struct xm_endpoint_port *p = array_push(&slice.ports, &slice.n_ports, sizeof(*slice.ports));

		if (!p) {
			obj_error(c, ports, "out of memory");
			break;
		}
		snprintf(c->sub, sizeof(c->sub), "ports[%zu]", i);
		parse_slice_port(c, ports->kids[i], p);
	}
	c->sub[0] = '\0';

	slot = array_push(&c->cfg->slices, &c->cfg->n_slices, sizeof(*c->cfg->slices));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		slice_free(&slice);
		return;
	}
	*slot = slice;
}
