/* SPDX-License-Identifier: Apache-2.0 */
/* v1 Service: cluster IPs (dual-stack, headless), ports, session affinity, external and load-balancer IPs. */
#include <stdio.h>
#include <string.h>

#include "config/fields.h"
#include "config/objects.h"

static bool push_ip(struct obj_ctx *c, const struct ynode *at, struct xm_ip **ips, size_t *n, const struct xm_ip *ip)
{
	struct xm_ip *slot = array_push(ips, n, sizeof(**ips));

	if (!slot) {
		obj_error(c, at, "out of memory");
		return false;
	}
	*slot = *ip;
	return true;
}

/* One "None", "" (not allocated yet) or an IP; *none tells "None" apart. */
static int cluster_ip(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_ip *ip, bool *none)
{
	*none = n && n->kind == YNODE_SCALAR && strcmp(n->str, "None") == 0;
	if (*none || (n && n->kind == YNODE_SCALAR && n->len == 0))
		return FIELD_ABSENT;
	return node_ip(c, n, field, ip);
}

static void parse_cluster_ips(struct obj_ctx *c, const struct ynode *spec, struct xm_service *svc)
{
	const struct ynode *single = map_value(c, spec, "clusterIP");
	const struct ynode *list = get_seq(c, spec, "clusterIPs", "spec.clusterIPs");
	char field[64], q[QUOTE_BUF], q2[QUOTE_BUF];
	struct xm_ip ip;
	bool none;

	if (!list) {
		if (cluster_ip(c, single, "spec.clusterIP", &ip, &none) == FIELD_SET)
			push_ip(c, single, &svc->cluster_ips, &svc->n_cluster_ips, &ip);
		svc->headless = none;
		return;
	}
	for (size_t i = 0; i < list->n; i++) {
		const struct ynode *item = list->kids[i];

		snprintf(field, sizeof(field), "spec.clusterIPs[%zu]", i);
		if (cluster_ip(c, item, field, &ip, &none) == FIELD_SET) {
			for (size_t j = 0; j < svc->n_cluster_ips; j++) {
				if (svc->cluster_ips[j].family == ip.family) {
					obj_error(c, item, "%s %s: a Service has at most one cluster IP per family",
						  field, quoted(q, item->str));
					goto next;
				}
			}
			push_ip(c, item, &svc->cluster_ips, &svc->n_cluster_ips, &ip);
		} else if (none) {
			if (list->n > 1)
				obj_error(c, item, "%s \"None\" must be the only entry of spec.clusterIPs", field);
			svc->headless = true;
		} else if (ynode_is_null(item) || (item->kind == YNODE_SCALAR && item->len == 0)) {
			obj_error(c, item, "%s is empty", field);
		}
	next:;
	}
	if (single && single->kind == YNODE_SCALAR && single->len && list->n && list->kids[0]->kind == YNODE_SCALAR &&
	    strcmp(single->str, list->kids[0]->str) != 0)
		obj_error(c, single, "spec.clusterIP %s must equal spec.clusterIPs[0] %s", quoted(q, single->str),
			  quoted(q2, list->kids[0]->str));
}

static void parse_target_port(struct obj_ctx *c, const struct ynode *port_map, struct xm_service_port *p)
{
	const struct ynode *n = map_value(c, port_map, "targetPort");
	char q[QUOTE_BUF];
	long long v;

	p->target_port = p->port; /* Kubernetes' default, also for targetPort: 0 */
	if (!n)
		return;
	if (n->kind == YNODE_SCALAR && n->plain && (n->str[0] == '-' || (n->str[0] >= '0' && n->str[0] <= '9'))) {
		if (strcmp(n->str, "0") != 0 && node_int(c, n, "targetPort", 1, 65535, &v) == FIELD_SET)
			p->target_port = (uint16_t)v;
		return;
	}
	if (node_str(c, n, "targetPort", p->target_port_name, sizeof(p->target_port_name)) != FIELD_SET)
		return;
	p->target_port = 0;
	if (!is_iana_svc_name(p->target_port_name))
		obj_error(
		    c, n,
		    "targetPort %s is neither a port number nor a port name (1-15 lowercase letters, digits, '-', "
		    "at least one letter)",
		    quoted(q, p->target_port_name));
}

static void parse_port(struct obj_ctx *c, const struct ynode *item, size_t i, struct xm_service_port *p)
{
	char q[QUOTE_BUF];
	long long v = 0;
	int r;

	snprintf(c->sub, sizeof(c->sub), "spec.ports[%zu]", i);
	p->loc = obj_loc_of(c, item);
	if (!item || item->kind != YNODE_MAP) {
		char got[QUOTE_BUF + 16];

		obj_error(c, item, "expected a mapping, got %s", ynode_describe(item, got, sizeof(got)));
		return;
	}
	r = get_str(c, item, "name", NULL, p->name, sizeof(p->name));
	if (r == FIELD_SET && !is_dns1123_label(p->name))
		obj_error(c, map_value(c, item, "name"), "name %s is not a valid port name (RFC 1123 label)",
			  quoted(q, p->name));
	if (p->name[0])
		snprintf(c->sub, sizeof(c->sub), "port %s", quoted(q, p->name));
	r = get_int(c, item, "port", NULL, 1, 65535, &v);
	if (r == FIELD_ABSENT)
		obj_error(c, item, "port is required");
	if (r == FIELD_SET) {
		p->port = (uint16_t)v;
		if (!p->name[0])
			snprintf(c->sub, sizeof(c->sub), "port %u", p->port);
	}
	parse_target_port(c, item, p);
	get_protocol(c, item, NULL, &p->proto);
	p->app_protocol_loc = p->loc;
	if (get_str(c, item, "appProtocol", NULL, p->app_protocol, sizeof(p->app_protocol)) == FIELD_SET)
		p->app_protocol_loc = obj_loc_of(c, map_value(c, item, "appProtocol"));
}

/* Names are required and unique with several ports; port/protocol pairs are unique. */
static void check_ports(struct obj_ctx *c, const struct ynode *ports, const struct xm_service *svc)
{
	char q[QUOTE_BUF];

	for (size_t i = 0; i < svc->n_ports; i++) {
		const struct xm_service_port *p = &svc->ports[i];
		const struct ynode *at = ports->kids[i];

		if (svc->n_ports > 1 && p->port && !p->name[0]) {
			snprintf(c->sub, sizeof(c->sub), "port %u", p->port);
			obj_error(c, at, "name is required when a Service has more than one port");
		}
		for (size_t j = 0; j < i; j++) {
			const struct xm_service_port *o = &svc->ports[j];

			if (p->name[0] && strcmp(p->name, o->name) == 0) {
				snprintf(c->sub, sizeof(c->sub), "port %s", quoted(q, p->name));
				obj_error(c, at, "duplicate port name (also spec.ports[%zu])", j);
				break;
			}
			if (p->port && p->port == o->port && p->proto == o->proto) {
				snprintf(c->sub, sizeof(c->sub), "port %u", p->port);
				obj_error(c, at, "duplicate port %u/%s (also spec.ports[%zu])", p->port,
					  p->proto == 17    ? "UDP"
					  : p->proto == 132 ? "SCTP"
							    : "TCP",
					  j);
				break;
			}
		}
	}
	c->sub[0] = '\0';
}

static void parse_ports(struct obj_ctx *c, const struct ynode *spec, struct xm_service *svc, bool ports_optional)
{
	const struct ynode *ports = get_seq(c, spec, "ports", "spec.ports");

	if (!ports) {
		if (!ports_optional && !map_value(c, spec, "ports"))
			obj_error(c, spec,
				  "spec.ports is required (only headless and ExternalName Services may omit it)");
		return;
	}
	for (size_t i = 0; i < ports->n; i++) {
		struct xm_service_port *p = array_push(&svc->ports, &svc->n_ports, sizeof(*svc->ports));

		if (!p) {
			obj_error(c, ports, "out of memory");
			return;
		}
		parse_port(c, ports->kids[i], i, p);
	}
	c->sub[0] = '\0';
	check_ports(c, ports, svc);
}

static void parse_external_ips(struct obj_ctx *c, const struct ynode *spec, const struct ynode *status,
			       struct xm_service *svc)
{
	const struct ynode *ext = get_seq(c, spec, "externalIPs", "spec.externalIPs");
	const struct ynode *lb = get_map(c, status, "loadBalancer", "status.loadBalancer");
	const struct ynode *ingress = get_seq(c, lb, "ingress", "status.loadBalancer.ingress");
	char field[64];
	struct xm_ip ip;

	for (size_t i = 0; ext && i < ext->n; i++) {
		snprintf(field, sizeof(field), "spec.externalIPs[%zu]", i);
		if (node_ip(c, ext->kids[i], field, &ip) == FIELD_SET)
			push_ip(c, ext->kids[i], &svc->external_ips, &svc->n_external_ips, &ip);
	}
	for (size_t i = 0; ingress && i < ingress->n; i++) {
		const struct ynode *entry = ingress->kids[i];

		snprintf(field, sizeof(field), "status.loadBalancer.ingress[%zu]", i);
		if (entry->kind != YNODE_MAP) {
			char got[QUOTE_BUF + 16];

			obj_error(c, entry, "%s: expected a mapping, got %s", field,
				  ynode_describe(entry, got, sizeof(got)));
			continue;
		}
		/* Entries with only a hostname (cloud load balancers) carry no VIP for us. */
		snprintf(field, sizeof(field), "status.loadBalancer.ingress[%zu].ip", i);
		if (node_ip(c, map_value(c, entry, "ip"), field, &ip) == FIELD_SET)
			push_ip(c, map_value(c, entry, "ip"), &svc->external_ips, &svc->n_external_ips, &ip);
	}
}

void parse_service(struct obj_ctx *c, const struct ynode *obj)
{
	static const char *const affinities[] = { "None", "ClientIP" };
	const struct ynode *spec = get_map(c, obj, "spec", NULL);
	const struct ynode *status = get_map(c, obj, "status", NULL);
	struct xm_service svc = { .loc = c->loc };
	struct xm_service *slot;
	char type[32] = "";
	size_t affinity = 0;
	bool external_name;

	snprintf(svc.ns, sizeof(svc.ns), "%s", c->ns);
	snprintf(svc.name, sizeof(svc.name), "%s", c->name);
	get_str(c, spec, "type", "spec.type", type, sizeof(type));
	external_name = strcmp(type, "ExternalName") == 0;
	if (!external_name)
		parse_cluster_ips(c, spec, &svc);
	parse_ports(c, spec, &svc, svc.headless || external_name);
	if (get_enum(c, spec, "sessionAffinity", "spec.sessionAffinity", affinities, 2, &affinity) == FIELD_SET)
		svc.session_affinity_client_ip = affinity == 1;
	parse_external_ips(c, spec, status, &svc);

	slot = array_push(&c->cfg->services, &c->cfg->n_services, sizeof(*c->cfg->services));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		service_free(&svc);
		return;
	}
	*slot = svc;
}
