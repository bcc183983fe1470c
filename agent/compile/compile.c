// SPDX-License-Identifier: Apache-2.0
#include "compile/compile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/log.h"

const char *lb_algo_name(uint8_t algo)
{
	switch (algo) {
	case XM_LB_ROUND_ROBIN:
		return "ROUND_ROBIN";
	case XM_LB_RANDOM:
		return "RANDOM";
	case XM_LB_MAGLEV:
		return "MAGLEV";
	default:
		return "LEAST_REQUEST";
	}
}

void lb_format_key(const struct xm_svc_key *key, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	const char *proto = key->proto == XM_PROTO_UDP ? "UDP" : "TCP";

	if (key->family == XM_FAMILY_V4) {
		inet_ntop(AF_INET, &key->vip.v4, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u/%s", ip, ntohs(key->port), proto);
	} else {
		inet_ntop(AF_INET6, key->vip.bytes, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u/%s", ip, ntohs(key->port), proto);
	}
}

void lb_format_backend(const struct xm_lb_backend *b, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	inet_ntop(b->family == XM_FAMILY_V4 ? AF_INET : AF_INET6, b->addr.bytes, ip, sizeof(ip));
	snprintf(buf, len, b->family == XM_FAMILY_V4 ? "%s:%u" : "[%s]:%u", ip, b->port);
}

/* NUL-terminated src into dst[size], cut if longer: snprintf's result without its cost (run 10,000s of times). */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void addr_from_ip(union xm_addr *a, const struct xm_ip *ip)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->bytes, ip->bytes, ip->family == 4 ? 4 : 16);
}

/* l7: this service port goes to the L7 proxy, which balances HTTP attributes itself. */
static void pick_algo(const struct xm_config *cfg, const struct xm_service *svc, uint16_t port,
		      const struct xm_compile_opts *opts, bool l7, struct xm_lb_service *out)
{
	const struct xm_destination_rule *rule = config_rule_of(cfg, svc);
	struct xm_traffic_policy policy;
	const struct xm_load_balancer *lb = NULL;

	/* The rule's policy with its portLevelSettings for this port (subsets are the L7 proxy's). */
	if (rule) {
		config_policy_merge(&policy, &rule->policy, NULL, port);
		lb = &policy.lb;
	}

	out->algo = XM_LB_LEAST_REQUEST;
	out->maglev_size = opts->maglev_size;
	/* Like Istio, outlier detection runs only where a DestinationRule asks for it. */
	if (rule && policy.outlier.set) {
		out->outlier_on = true;
		out->outlier = policy.outlier;
	}
	/* Client affinity is a correctness property for the application, so it wins over a DR's choice. */
	if (svc->session_affinity_client_ip) {
		out->algo = XM_LB_MAGLEV;
	} else if (lb && lb->set) {
		switch (lb->simple) {
		case XM_DR_LB_ROUND_ROBIN:
			out->algo = XM_LB_ROUND_ROBIN;
			break;
		case XM_DR_LB_RANDOM:
			out->algo = XM_LB_RANDOM;
			break;
		case XM_DR_LB_CONSISTENT_HASH:
			if (lb->hash_key == XM_DR_HASH_SOURCE_IP)
				out->algo = XM_LB_MAGLEV;
			else if (!l7)
				log_warn("destinationrule %s/%s: consistentHash on an HTTP attribute needs the L7 "
					 "proxy; service %s/%s balances by LEAST_REQUEST at L4",
					 rule->ns, rule->name, svc->ns, svc->name);
			break;
		default:
			break;
		}
	}
	if (out->algo == XM_LB_MAGLEV && lb && lb->maglev_table_size)
		out->maglev_size = lb->maglev_table_size;
}

/* The EndpointSlice port serving a Service port: same name (both may be ""), same protocol. */
static const struct xm_endpoint_port *slice_port_for(const struct xm_endpoint_slice *sl,
						     const struct xm_service_port *sp)
{
	size_t i;

	for (i = 0; i < sl->n_ports; i++)
		if (!strcmp(sl->ports[i].name, sp->name) && sl->ports[i].proto == sp->proto)
			return &sl->ports[i];
	return NULL;
}

static void node_addr_of(const struct xm_config *cfg, const char *node_name, uint8_t family, union xm_addr *out)
{
	const struct xm_node *node = *node_name ? config_find_node(cfg, node_name) : NULL;
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; node && i < node->n_internal_ips; i++) {
		if (node->internal_ips[i].family == family) {
			addr_from_ip(out, &node->internal_ips[i]);
			return;
		}
	}
}

static int backend_cmp(const void *a, const void *b)
{
	const struct xm_lb_backend *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	int c = memcmp(x->addr.bytes, y->addr.bytes, 16);

	return c ? c : (int)x->port - (int)y->port;
}

static int add_backend(struct xm_lb_service *out, size_t *cap, const struct xm_lb_backend *b)
{
	size_t i;

	for (i = 0; i < out->n_backends; i++) {
		if (!backend_cmp(&out->backends[i], b)) {
			/* The same address in two slices: ready if either says so. */
			if (b->ready && !out->backends[i].ready) {
				out->backends[i].ready = true;
				out->n_ready++;
			}
			return 0;
		}
	}
	if (XM_GROW(out->backends, *cap, out->n_backends + 1))
		return -ENOMEM;
	out->backends[out->n_backends++] = *b;
	if (b->ready)
		out->n_ready++;
	return 0;
}

static int collect_backends(const struct xm_config *cfg, const struct xm_service *svc, const struct xm_service_port *sp,
			    uint8_t family, const struct xm_compile_opts *opts, struct xm_lb_service *out)
{
	size_t cap = 0, i, j, first, n_slices = config_slices_of(cfg, svc, &first);
	int err;

	for (i = first; i < first + n_slices; i++) {
		const struct xm_endpoint_slice *sl = &cfg->slices[i];
		const struct xm_endpoint_port *ep;
		uint16_t port;

		if (strcmp(sl->ns, svc->ns) || strcmp(sl->service_name, svc->name) || sl->address_family != family)
			continue;
		ep = slice_port_for(sl, sp);
		if (ep)
			port = ep->port;
		else if (sl->n_ports == 0 && sp->target_port)
			port = sp->target_port;
		else
			continue;
		for (j = 0; j < sl->n_endpoints; j++) {
			const struct xm_endpoint *e = &sl->endpoints[j];
			struct xm_lb_backend b;

			/* Kubernetes: consumers use the first address of an endpoint. */
			if (!e->n_addrs || e->addrs[0].family != family)
				continue;
			memset(&b, 0, sizeof(b));
			addr_from_ip(&b.addr, &e->addrs[0]);
			b.family = family;
			b.port = port;
			b.ready = e->ready;
			b.local = opts->node_name && *e->node_name && !strcmp(opts->node_name, e->node_name);
			copy_str(b.node, sizeof(b.node), e->node_name);
			node_addr_of(cfg, e->node_name, family, &b.node_addr);
			if (*e->target_name) {
				size_t ns_len = strnlen(e->target_ns, sizeof(e->target_ns) - 1);

				/* "ns/name": both bounded by their fields, and pod has room for both and '/'. */
				memcpy(b.pod, e->target_ns, ns_len);
				b.pod[ns_len] = '/';
				copy_str(b.pod + ns_len + 1, sizeof(b.pod) - ns_len - 1, e->target_name);
			}
			err = add_backend(out, &cap, &b);
			if (err)
				return err;
		}
	}
	if (out->n_backends > 1)
		qsort(out->backends, out->n_backends, sizeof(*out->backends), backend_cmp);
	/* The state lives until the next apply: keep what it needs, not the growth's slack. */
	if (out->n_backends && out->n_backends < cap) {
		void *p = realloc(out->backends, out->n_backends * sizeof(*out->backends));

		if (p)
			out->backends = p;
	}
	return 0;
}

static int svc_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct xm_lb_service *)a)->key, &((const struct xm_lb_service *)b)->key,
		      sizeof(struct xm_svc_key));
}

int compile_lb(const struct xm_config *cfg, const struct xm_compile_opts *opts, struct xm_lb_state *out)
{
	size_t cap = 0, i, p, c;
	int err;

	memset(out, 0, sizeof(*out));
	/* Sized once: at 10,000 Services a doubling array would copy and strand megabytes on every apply. */
	for (i = 0; i < cfg->n_services; i++)
		cap += cfg->services[i].n_ports * (cfg->services[i].n_cluster_ips + cfg->services[i].n_external_ips);
	if (cap) {
		out->services = malloc(cap * sizeof(*out->services));
		if (!out->services)
			return -ENOMEM;
	}
	for (i = 0; i < cfg->n_services; i++) {
		const struct xm_service *svc = &cfg->services[i];

		for (p = 0; p < svc->n_ports; p++) {
			const struct xm_service_port *sp = &svc->ports[p];

			if (sp->proto != XM_PROTO_TCP && sp->proto != XM_PROTO_UDP)
				continue; /* SCTP is not balanced at the socket layer */
			/* ClusterIPs first, then external VIPs (XDP's, always Maglev). */
			for (c = 0; c < svc->n_cluster_ips + svc->n_external_ips; c++) {
				bool external = c >= svc->n_cluster_ips;
				const struct xm_ip *ip =
				    external ? &svc->external_ips[c - svc->n_cluster_ips] : &svc->cluster_ips[c];
				struct xm_lb_service *s;

				s = &out->services[out->n_services++];
				memset(s, 0, sizeof(*s));
				copy_str(s->ns, sizeof(s->ns), svc->ns);
				copy_str(s->name, sizeof(s->name), svc->name);
				copy_str(s->port_name, sizeof(s->port_name), sp->name);
				addr_from_ip(&s->key.vip, ip);
				s->key.family = ip->family;
				s->key.port = htons(sp->port);
				s->key.proto = sp->proto;
				pick_algo(cfg, svc, sp->port, opts, !external && sp->http, s);
				if (external) {
					/* Every node must pick the same backend for a flow: Maglev. */
					s->algo = XM_LB_MAGLEV;
					s->flags = XM_SVC_F_EXTERNAL;
				} else if (sp->http) {
					/* Only ClusterIPs go to the L7 proxy: external VIPs stay XDP's. */
					s->flags = XM_SVC_F_L7;
				}
				err = collect_backends(cfg, svc, sp, ip->family, opts, s);
				if (err) {
					lb_state_free(out);
					return err;
				}
			}
		}
	}
	if (out->n_services > 1)
		qsort(out->services, out->n_services, sizeof(*out->services), svc_cmp);
	return 0;
}

void lb_state_free(struct xm_lb_state *st)
{
	size_t i;

	for (i = 0; i < st->n_services; i++)
		free(st->services[i].backends);
	free(st->services);
	memset(st, 0, sizeof(*st));
}
