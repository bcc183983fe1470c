/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Validation across objects, once every file is read: order and duplicates (same kind, namespace, name),
 * DestinationRule hosts → Services, Service port names → their EndpointSlices' port names, VIP:port
 * claimed by two Service ports.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/authz_policy.h"
#include "config/diag.h"
#include "config/fields.h"
#include "config/objects.h"

#include <xmesh/lb.h>

#define NO_NS SIZE_MAX

struct kind_layout {
	const char *display;
	size_t size;
	size_t ns_off; /* NO_NS for cluster-scoped kinds */
	size_t name_off;
	size_t loc_off;
	void (*free_one)(void *obj);
};

struct sort_entry {
	const char *ns;
	const char *name;
	size_t idx;
};

static void free_service(void *o)
{
	service_free(o);
}

static void free_slice(void *o)
{
	slice_free(o);
}

static void free_pod(void *o)
{
	pod_free(o);
}

static void free_node(void *o)
{
	node_free(o);
}

static void free_rule(void *o)
{
	rule_free(o);
}

static void free_virtual_service(void *o)
{
	virtual_service_free(o);
}

static void free_envoy_filter(void *o)
{
	envoy_filter_free(o);
}

static void free_peer_authentication(void *o)
{
	peer_authentication_free(o);
}

static const struct kind_layout service_layout = {
	"service",
	sizeof(struct xm_service),
	offsetof(struct xm_service, ns),
	offsetof(struct xm_service, name),
	offsetof(struct xm_service, loc),
	free_service,
};
static const struct kind_layout slice_layout = {
	"endpointslice",
	sizeof(struct xm_endpoint_slice),
	offsetof(struct xm_endpoint_slice, ns),
	offsetof(struct xm_endpoint_slice, name),
	offsetof(struct xm_endpoint_slice, loc),
	free_slice,
};
static const struct kind_layout pod_layout = {
	"pod",
	sizeof(struct xm_pod),
	offsetof(struct xm_pod, ns),
	offsetof(struct xm_pod, name),
	offsetof(struct xm_pod, loc),
	free_pod,
};
static const struct kind_layout node_layout = {
	"node", sizeof(struct xm_node), NO_NS, offsetof(struct xm_node, name), offsetof(struct xm_node, loc), free_node,
};
static const struct kind_layout rule_layout = {
	"destinationrule",
	sizeof(struct xm_destination_rule),
	offsetof(struct xm_destination_rule, ns),
	offsetof(struct xm_destination_rule, name),
	offsetof(struct xm_destination_rule, loc),
	free_rule,
};

static const struct kind_layout virtual_service_layout = {
	"virtualservice",
	sizeof(struct xm_virtual_service),
	offsetof(struct xm_virtual_service, ns),
	offsetof(struct xm_virtual_service, name),
	offsetof(struct xm_virtual_service, loc),
	free_virtual_service,
};

static const struct kind_layout envoy_filter_layout = {
	"envoyfilter",
	sizeof(struct xm_envoy_filter),
	offsetof(struct xm_envoy_filter, ns),
	offsetof(struct xm_envoy_filter, name),
	offsetof(struct xm_envoy_filter, loc),
	free_envoy_filter,
};

static void free_authz_policy(void *o)
{
	authz_policy_free(o);
}

static const struct kind_layout authz_policy_layout = {
	"authorizationpolicy",
	sizeof(struct xm_authz_policy),
	offsetof(struct xm_authz_policy, ns),
	offsetof(struct xm_authz_policy, name),
	offsetof(struct xm_authz_policy, loc),
	free_authz_policy,
};

static const struct kind_layout peer_authentication_layout = {
	"peerauthentication",
	sizeof(struct xm_peer_authentication),
	offsetof(struct xm_peer_authentication, ns),
	offsetof(struct xm_peer_authentication, name),
	offsetof(struct xm_peer_authentication, loc),
	free_peer_authentication,
};

static int sort_entry_cmp(const void *a, const void *b)
{
	const struct sort_entry *x = a;
	const struct sort_entry *y = b;
	int r = strcmp(x->ns, y->ns);

	if (!r)
		r = strcmp(x->name, y->name);
	if (!r)
		r = x->idx < y->idx ? -1 : x->idx > y->idx;
	return r;
}

static int slice_by_service_cmp(const void *a, const void *b)
{
	const struct xm_endpoint_slice *x = a;
	const struct xm_endpoint_slice *y = b;
	int r = strcmp(x->ns, y->ns);

	if (!r)
		r = strcmp(x->service_name, y->service_name);
	return r ? r : strcmp(x->name, y->name);
}

static bool slices_by_service(const struct xm_config *cfg)
{
	for (size_t i = 1; i < cfg->n_slices; i++) {
		if (slice_by_service_cmp(&cfg->slices[i - 1], &cfg->slices[i]) > 0)
			return false;
	}
	return true;
}

static void report(struct xm_diags *diags, int *n_errors, const struct xm_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct xm_diags *diags, int *n_errors, const struct xm_loc *loc, const char *fmt, ...)
{
	char msg[sizeof(((struct xm_diag *)0)->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diags_add(diags, loc, "%s", msg);
	(*n_errors)++;
}

/* Already in namespace/name order without duplicates (kubectl dumps, files of one namespace each)? */
static bool strictly_sorted(const void *arr, size_t n, const struct kind_layout *k)
{
	const char *base = arr;

	for (size_t i = 1; i < n; i++) {
		const char *a = base + (i - 1) * k->size, *b = base + i * k->size;
		int r = k->ns_off == NO_NS ? 0 : strcmp(a + k->ns_off, b + k->ns_off);

		if (!r)
			r = strcmp(a + k->name_off, b + k->name_off);
		if (r >= 0)
			return false;
	}
	return true;
}

/*
 * Sort by namespace/name, keeping load order among equals; every object after the first of its name is
 * reported and dropped. Sorting happens in place so the array keeps its (implicit) capacity.
 */
static void sort_and_dedup(void *arr, size_t *n, const struct kind_layout *k, bool borrowed, struct xm_diags *diags,
			   int *n_errors)
{
	struct sort_entry *order;
	char *base = arr;
	char *copy;
	size_t out = 0;

	if (*n == 0 || strictly_sorted(arr, *n, k))
		return;
	order = calloc(*n, sizeof(*order));
	copy = malloc(*n * k->size);
	if (!order || !copy) {
		free(order);
		free(copy);
		return; /* unsorted: lookups fall back to a linear scan */
	}
	memcpy(copy, base, *n * k->size);
	for (size_t i = 0; i < *n; i++) {
		const char *obj = copy + i * k->size;

		order[i].ns = k->ns_off == NO_NS ? "" : obj + k->ns_off;
		order[i].name = obj + k->name_off;
		order[i].idx = i;
	}
	qsort(order, *n, sizeof(*order), sort_entry_cmp);
	for (size_t i = 0; i < *n; i++) {
		char *obj = copy + order[i].idx * k->size;

		/* Compared with the last object kept: a dropped one is freed (zeroed) and names nothing. */
		const char *kept = out ? base + (out - 1) * k->size : NULL;

		if (kept && strcmp(order[i].ns, k->ns_off == NO_NS ? "" : kept + k->ns_off) == 0 &&
		    strcmp(order[i].name, kept + k->name_off) == 0) {
			const struct xm_loc *first = (const struct xm_loc *)(kept + k->loc_off);
			const struct xm_loc *loc = (const struct xm_loc *)(obj + k->loc_off);

			if (k->ns_off == NO_NS)
				report(diags, n_errors, loc, "%s %s: defined twice (first at %s:%d:%d)", k->display,
				       order[i].name, first->file, first->line, first->col);
			else
				report(diags, n_errors, loc, "%s %s/%s: defined twice (first at %s:%d:%d)", k->display,
				       order[i].ns, order[i].name, first->file, first->line, first->col);
			if (!borrowed) /* a cached file's object stays the cache's */
				k->free_one(obj);
			continue;
		}
		memcpy(base + out * k->size, obj, k->size);
		out++;
	}
	/* Order entries point into copy, which is only freed here. */
	*n = out;
	free(order);
	free(copy);
}

/* The namespaces that objects of the config live in, sorted: a DestinationRule host "name.ns" is in-cluster
 * when ns is one of them. */
struct ns_set {
	const char **names;
	size_t n;
};

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void ns_set_add(struct ns_set *set, const void *base, size_t n, size_t size, size_t ns_off)
{
	for (size_t i = 0; i < n; i++)
		set->names[set->n++] = (const char *)base + i * size + ns_off;
}

/* NULL names (out of memory): namespace_in_use scans instead. */
static void ns_set_build(const struct xm_config *cfg, struct ns_set *set)
{
	size_t total = cfg->n_services + cfg->n_slices + cfg->n_pods + cfg->n_rules, out = 0;

	set->n = 0;
	set->names = total ? malloc(total * sizeof(*set->names)) : NULL;
	if (!set->names)
		return;
	ns_set_add(set, cfg->services, cfg->n_services, sizeof(*cfg->services), offsetof(struct xm_service, ns));
	ns_set_add(set, cfg->slices, cfg->n_slices, sizeof(*cfg->slices), offsetof(struct xm_endpoint_slice, ns));
	ns_set_add(set, cfg->pods, cfg->n_pods, sizeof(*cfg->pods), offsetof(struct xm_pod, ns));
	ns_set_add(set, cfg->rules, cfg->n_rules, sizeof(*cfg->rules), offsetof(struct xm_destination_rule, ns));
	qsort(set->names, set->n, sizeof(*set->names), str_ptr_cmp);
	for (size_t i = 0; i < set->n; i++) {
		if (!out || strcmp(set->names[out - 1], set->names[i]))
			set->names[out++] = set->names[i];
	}
	set->n = out;
}

static bool namespace_in_use(const struct xm_config *cfg, const struct ns_set *set, const char *ns)
{
	if (set->names)
		return bsearch(&ns, set->names, set->n, sizeof(*set->names), str_ptr_cmp) != NULL;
	for (size_t i = 0; i < cfg->n_services; i++) {
		if (strcmp(cfg->services[i].ns, ns) == 0)
			return true;
	}
	for (size_t i = 0; i < cfg->n_slices; i++) {
		if (strcmp(cfg->slices[i].ns, ns) == 0)
			return true;
	}
	for (size_t i = 0; i < cfg->n_pods; i++) {
		if (strcmp(cfg->pods[i].ns, ns) == 0)
			return true;
	}
	for (size_t i = 0; i < cfg->n_rules; i++) {
		if (strcmp(cfg->rules[i].ns, ns) == 0)
			return true;
	}
	return false;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * Split a host into Service name and namespace. Returns false for hosts outside the cluster: wildcards,
 * and names that are neither "name", "name.ns" (of a namespace in use), "name.ns.svc" nor
 * "name.ns.svc.cluster.local". Anything else under cluster.local is inside the cluster and must resolve.
 */
static bool split_host(const struct xm_config *cfg, const struct ns_set *set, const struct xm_destination_rule *dr,
		       char *name, size_t name_size, char *ns, size_t ns_size, bool *internal)
{
	char host[XM_NAME_MAX];
	const char *dot;
	size_t len, dots = 0;

	*internal = false;
	if (strchr(dr->host, '*') || !dr->host[0])
		return false;
	snprintf(host, sizeof(host), "%s", dr->host);
	len = strlen(host);
	if (ends_with(host, ".svc.cluster.local")) {
		host[len - strlen(".cluster.local")] = '\0';
		*internal = true;
	} else if (ends_with(host, ".cluster.local")) {
		*internal = true;
		return false;
	}
	len = strlen(host);
	if (ends_with(host, ".svc")) {
		host[len - 4] = '\0';
		*internal = true;
	}
	for (const char *p = host; *p; p++)
		dots += *p == '.';
	dot = strchr(host, '.');
	if (dots == 0 && !*internal) {
		snprintf(name, name_size, "%s", host);
		snprintf(ns, ns_size, "%s", dr->ns);
		*internal = true;
		return true;
	}
	if (dots != 1)
		return false;
	snprintf(name, name_size, "%.*s", (int)(dot - host), host);
	snprintf(ns, ns_size, "%s", dot + 1);
	if (!*internal)
		*internal = namespace_in_use(cfg, set, ns);
	return *internal;
}

/* Each rule's host → its Service; each Service → the first rule (namespace/name order) naming it. */
static void resolve_hosts(struct xm_config *cfg, struct xm_diags *diags, int *n_errors)
{
	struct ns_set set;

	ns_set_build(cfg, &set);
	for (size_t i = 0; i < cfg->n_services; i++)
		cfg->services[i].rule = NULL;
	for (size_t i = 0; i < cfg->n_rules; i++) {
		struct xm_destination_rule *dr = &cfg->rules[i];
		char name[XM_NAME_MAX], ns[64], q[QUOTE_BUF];
		const struct xm_service *svc;
		bool internal, cluster_form;

		if (!dr->host[0])
			continue;
		cluster_form = split_host(cfg, &set, dr, name, sizeof(name), ns, sizeof(ns), &internal);
		svc = cluster_form ? config_find_service(cfg, ns, name) : NULL;
		if (svc) {
			struct xm_service *named = &cfg->services[svc - cfg->services];

			snprintf(dr->host_ns, sizeof(dr->host_ns), "%s", ns);
			snprintf(dr->host_name, sizeof(dr->host_name), "%s", name);
			if (!named->rule)
				named->rule = dr;
			continue;
		}
		if (!internal)
			continue; /* an external host (ServiceEntry, mesh-external): not ours to check */
		if (cluster_form)
			report(diags, n_errors, &dr->host_loc,
			       "destinationrule %s/%s: host %s matches no Service (looked for %s/%.200s)", dr->ns,
			       dr->name, quoted(q, dr->host), ns, name);
		else
			report(diags, n_errors, &dr->host_loc,
			       "destinationrule %s/%s: host %s matches no Service (expected name, name.namespace, "
			       "name.namespace.svc or name.namespace.svc.cluster.local)",
			       dr->ns, dr->name, quoted(q, dr->host));
	}
	free(set.names);
}

/* Append ", \"name\"" for each distinct port name of the Service's slices, for the message. */
static void slice_port_names(const struct xm_config *cfg, const struct xm_service *svc, char *out, size_t size)
{
	size_t used = 0;

	size_t first, n = config_slices_of(cfg, svc, &first);

	out[0] = '\0';
	for (size_t i = first; i < first + n; i++) {
		const struct xm_endpoint_slice *sl = &cfg->slices[i];

		if (strcmp(sl->ns, svc->ns) != 0 || strcmp(sl->service_name, svc->name) != 0)
			continue;
		for (size_t j = 0; j < sl->n_ports && used < size; j++) {
			char q[QUOTE_BUF];

			if (strstr(out, quoted(q, sl->ports[j].name)))
				continue;
			used += (size_t)snprintf(out + used, size - used, "%s%s", used ? ", " : "", q);
		}
	}
}

static void check_service_ports(const struct xm_config *cfg, struct xm_diags *diags, int *n_errors)
{
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct xm_service *svc = &cfg->services[i];
		size_t first, n_slices = config_slices_of(cfg, svc, &first);
		bool has_ports = false;

		for (size_t s = first; s < first + n_slices && !has_ports; s++) {
			const struct xm_endpoint_slice *sl = &cfg->slices[s];

			has_ports =
			    sl->n_ports && strcmp(sl->ns, svc->ns) == 0 && strcmp(sl->service_name, svc->name) == 0;
		}
		if (!has_ports)
			continue;
		for (size_t p = 0; p < svc->n_ports; p++) {
			const struct xm_service_port *sp = &svc->ports[p];
			char have[200], q[QUOTE_BUF];
			bool found = false;

			for (size_t s = first; s < first + n_slices && !found; s++) {
				const struct xm_endpoint_slice *sl = &cfg->slices[s];

				if (strcmp(sl->ns, svc->ns) != 0 || strcmp(sl->service_name, svc->name) != 0)
					continue;
				for (size_t j = 0; j < sl->n_ports && !found; j++)
					found = strcmp(sl->ports[j].name, sp->name) == 0;
			}
			if (found)
				continue;
			slice_port_names(cfg, svc, have, sizeof(have));
			if (sp->name[0])
				report(
				    diags, n_errors, &sp->loc,
				    "service %s/%s: port %s: no EndpointSlice of the Service has a port of that name "
				    "(they have %s)",
				    svc->ns, svc->name, quoted(q, sp->name), have);
			else
				report(diags, n_errors, &sp->loc,
				       "service %s/%s: port %u: the port is unnamed, but the Service's EndpointSlices "
				       "name theirs (%s)",
				       svc->ns, svc->name, sp->port, have);
		}
	}
}

/*
 * External VIP ports (each external or load-balancer IP × each TCP/UDP port) take service ids below
 * XM_MAX_EXT_SVC_IDS, the index of the XDP per-VIP counters: a config with more cannot be served whole.
 * Reported at the Service that crosses the limit.
 */
static void check_external_vip_ports(const struct xm_config *cfg, struct xm_diags *diags, int *n_errors)
{
	size_t total = 0;

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct xm_service *svc = &cfg->services[i];
		size_t ports = 0;

		for (size_t p = 0; p < svc->n_ports; p++)
			ports += svc->ports[p].proto == XM_PROTO_TCP || svc->ports[p].proto == XM_PROTO_UDP;
		if (total < XM_MAX_EXT_SVC_IDS && total + svc->n_external_ips * ports >= XM_MAX_EXT_SVC_IDS)
			report(
			    diags, n_errors, &svc->loc,
			    "service %s/%s: its external IPs bring the external VIP ports (IP x port) of the config to "
			    "%zu, more than the %d that XDP can serve",
			    svc->ns, svc->name, total + svc->n_external_ips * ports, XM_MAX_EXT_SVC_IDS - 1);
		total += svc->n_external_ips * ports;
	}
}

/* One VIP:port/protocol that a Service port claims: a ClusterIP or an external IP, with the port. */
struct vip_claim {
	uint8_t family;
	uint8_t proto;
	uint16_t port;
	uint8_t addr[16];
	const struct xm_service *svc;
	const struct xm_service_port *sp;
};

static int vip_claim_cmp(const void *a, const void *b)
{
	const struct vip_claim *x = a;
	const struct vip_claim *y = b;
	int r = memcmp(x, y, offsetof(struct vip_claim, svc));

	/* Ties keep the Services' order (sorted by namespace/name), so messages do not depend on qsort. */
	if (!r)
		r = x->svc < y->svc ? -1 : x->svc > y->svc;
	if (!r)
		r = x->sp < y->sp ? -1 : x->sp > y->sp;
	return r;
}

static void format_vip(const struct vip_claim *c, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	const char *proto = c->proto == XM_PROTO_TCP ? "TCP" : c->proto == XM_PROTO_UDP ? "UDP" : "SCTP";

	inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr, ip, sizeof(ip));
	snprintf(buf, size, c->family == 4 ? "%s:%u/%s" : "[%s]:%u/%s", ip, c->port, proto);
}

static int add_claims(struct vip_claim **claims, size_t *n, const struct xm_service *svc, const struct xm_ip *ips,
		      size_t n_ips)
{
	for (size_t i = 0; i < n_ips; i++) {
		for (size_t p = 0; p < svc->n_ports; p++) {
			struct vip_claim *c = array_push(claims, n, sizeof(**claims));

			if (!c)
				return -1;
			memset(c, 0, sizeof(*c));
			c->family = ips[i].family;
			c->proto = svc->ports[p].proto;
			c->port = svc->ports[p].port;
			memcpy(c->addr, ips[i].bytes, sizeof(c->addr));
			c->svc = svc;
			c->sp = &svc->ports[p];
		}
	}
	return 0;
}

/*
 * The datapath keys a service port by VIP:port/protocol, so two Service ports claiming the same one (two
 * Services with one ClusterIP, an external IP shared on the same port) cannot both be served: each claim
 * is reported at its own port, naming the other. Sorting keeps this O(n log n) at 10,000 Services.
 */
static void check_vip_conflicts(const struct xm_config *cfg, struct xm_diags *diags, int *n_errors)
{
	struct vip_claim *claims = NULL;
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct xm_service *svc = &cfg->services[i];

		if (add_claims(&claims, &n, svc, svc->cluster_ips, svc->n_cluster_ips) ||
		    add_claims(&claims, &n, svc, svc->external_ips, svc->n_external_ips)) {
			struct xm_loc loc = { .file = "<config>" };

			report(diags, n_errors, &loc, "out of memory while checking VIP:port conflicts");
			free(claims);
			return;
		}
	}
	if (n > 1)
		qsort(claims, n, sizeof(*claims), vip_claim_cmp);
	for (size_t i = 0; i < n;) {
		size_t end = i + 1;

		while (end < n && !memcmp(&claims[i], &claims[end], offsetof(struct vip_claim, svc)))
			end++;
		for (size_t k = i; end - i > 1 && k < end; k++) {
			const struct vip_claim *other = &claims[k == i ? i + 1 : i];
			char vip[INET6_ADDRSTRLEN + 16];

			format_vip(&claims[k], vip, sizeof(vip));
			report(diags, n_errors, &claims[k].sp->loc,
			       "service %s/%s: %s is also claimed by service %s/%s (%s:%d:%d); only one can be served",
			       claims[k].svc->ns, claims[k].svc->name, vip, other->svc->ns, other->svc->name,
			       other->sp->loc.file, other->sp->loc.line, other->sp->loc.col);
		}
		i = end;
	}
	free(claims);
}

void config_validate(struct xm_config *cfg, struct xm_diags *diags, int *n_errors)
{
	sort_and_dedup(cfg->services, &cfg->n_services, &service_layout, cfg->borrowed, diags, n_errors);
	sort_and_dedup(cfg->slices, &cfg->n_slices, &slice_layout, cfg->borrowed, diags, n_errors);
	sort_and_dedup(cfg->pods, &cfg->n_pods, &pod_layout, cfg->borrowed, diags, n_errors);
	sort_and_dedup(cfg->nodes, &cfg->n_nodes, &node_layout, cfg->borrowed, diags, n_errors);
	sort_and_dedup(cfg->rules, &cfg->n_rules, &rule_layout, cfg->borrowed, diags, n_errors);
	sort_and_dedup(cfg->virtual_services, &cfg->n_virtual_services, &virtual_service_layout, cfg->borrowed, diags,
		       n_errors);
	sort_and_dedup(cfg->envoy_filters, &cfg->n_envoy_filters, &envoy_filter_layout, cfg->borrowed, diags, n_errors);
	sort_and_dedup(cfg->peer_auths, &cfg->n_peer_auths, &peer_authentication_layout, cfg->borrowed, diags,
		       n_errors);
	sort_and_dedup(cfg->authz_policies, &cfg->n_authz_policies, &authz_policy_layout, cfg->borrowed, diags,
		       n_errors);
	/* A Service's slices next to each other: what validation and compile look up per Service. */
	if (cfg->n_slices > 1 && !slices_by_service(cfg))
		qsort(cfg->slices, cfg->n_slices, sizeof(*cfg->slices), slice_by_service_cmp);
	for (size_t i = 0; i < cfg->n_services; i++) {
		struct xm_service *svc = &cfg->services[i];

		svc->n_slices = config_slices_search(cfg, svc->ns, svc->name, &svc->slices_first);
	}
	resolve_hosts(cfg, diags, n_errors);
	cfg->indexed = true;
	check_service_ports(cfg, diags, n_errors);
	check_external_vip_ports(cfg, diags, n_errors);
	check_vip_conflicts(cfg, diags, n_errors);
	validate_virtual_services(cfg, diags, n_errors);
}
