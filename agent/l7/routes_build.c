// SPDX-License-Identifier: Apache-2.0
/*
 * l7_routes_build: the HTTP service ports of the compiled lb state, their vhosts (one per VirtualService and
 * port, or a Service's default), the routes compiled (strings copied, regexes compiled once) and the
 * clusters they name, with the ready endpoints of each DestinationRule subset.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/grow.h"
#include "l7/ratelimit.h"
#include "l7/regex.h"
#include "l7/routes.h"

#define CLUSTER_DOMAIN "svc.cluster.local"

/* Where a cluster pointer goes once the clusters array stops moving. */
struct cluster_fixup {
	const struct l7_cluster **slot;
	size_t idx;
};

/* The vhost serving a Service's port. */
struct vhost_owner {
	const struct xm_service *svc;
	uint16_t port;
	size_t vhost;
};

struct builder {
	const struct xm_config *cfg;
	const struct xm_lb_state *lb;
	const struct xm_identities *ids;
	struct l7_route_table *t;
	size_t cap_clusters, cap_vhosts, cap_files;
	struct cluster_fixup *fixups;
	size_t n_fixups, cap_fixups;
	struct vhost_owner *owners; /* sorted by (svc, port) from the first find_owner on */
	size_t n_owners, cap_owners;
	size_t *cluster_slots; /* open addressing over cluster names: index + 1, 0 when free */
	size_t n_slots;
	const struct xm_lb_service **by_name; /* ClusterIP entries by ns, name, port, family */
	size_t n_by_name;
	const struct xm_workload **wl_by_pod; /* by ns, pod */
	size_t n_wl;
	/* Hosts already claimed by an earlier VirtualService (the first by namespace/name keeps a host). */
	const struct xm_service **claimed_svcs; /* open addressing, NULL when free */
	size_t n_claimed_svcs, cap_claimed_svcs;
	const char **claimed_hosts;
	size_t n_claimed_hosts, cap_claimed_hosts;
};

/* "name.ns.svc.cluster.local" (cut at size: names that long are not DNS names anyway). */
static void service_fqdn(const struct xm_service *svc, char *out, size_t size)
{
	int n = snprintf(out, size, "%s.%s." CLUSTER_DOMAIN, svc->name, svc->ns);

	if (n < 0)
		out[0] = '\0';
}

static char *dup_or_null(const char *s, int *err)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*err = -ENOMEM;
	return d;
}

static const char *intern_file(struct builder *b, const char *file, int *err)
{
	struct l7_route_table *t = b->t;

	if (!file)
		return NULL;
	for (size_t i = 0; i < t->n_files; i++)
		if (!strcmp(t->files[i], file))
			return t->files[i];
	if (XM_GROW(t->files, b->cap_files, t->n_files + 1) || !(t->files[t->n_files] = strdup(file))) {
		*err = -ENOMEM;
		return NULL;
	}
	return t->files[t->n_files++];
}

static int lb_name_cmp(const void *a, const void *b)
{
	const struct xm_lb_service *x = *(const struct xm_lb_service *const *)a;
	const struct xm_lb_service *y = *(const struct xm_lb_service *const *)b;
	int r = strcmp(x->ns, y->ns);

	if (!r)
		r = strcmp(x->name, y->name);
	if (!r && x->key.port != y->key.port)
		r = ntohs(x->key.port) < ntohs(y->key.port) ? -1 : 1;
	if (!r && x->key.family != y->key.family)
		r = x->key.family < y->key.family ? -1 : 1; /* IPv4 first: a dual-stack cluster uses its endpoints */
	return r;
}

static int wl_cmp(const void *a, const void *b)
{
	const struct xm_workload *x = *(const struct xm_workload *const *)a;
	const struct xm_workload *y = *(const struct xm_workload *const *)b;
	int r = strcmp(x->ns, y->ns);

	return r ? r : strcmp(x->pod, y->pod);
}

static int build_indexes(struct builder *b)
{
	b->by_name = calloc(b->lb->n_services + 1, sizeof(*b->by_name));
	b->wl_by_pod = calloc(b->ids ? b->ids->n_workloads + 1 : 1, sizeof(*b->wl_by_pod));
	if (!b->by_name || !b->wl_by_pod)
		return -ENOMEM;
	for (size_t i = 0; i < b->lb->n_services; i++)
		if (!(b->lb->services[i].flags & XM_SVC_F_EXTERNAL) && b->lb->services[i].key.proto == XM_PROTO_TCP)
			b->by_name[b->n_by_name++] = &b->lb->services[i];
	qsort(b->by_name, b->n_by_name, sizeof(*b->by_name), lb_name_cmp);
	for (size_t i = 0; b->ids && i < b->ids->n_workloads; i++)
		b->wl_by_pod[b->n_wl++] = &b->ids->workloads[i];
	qsort(b->wl_by_pod, b->n_wl, sizeof(*b->wl_by_pod), wl_cmp);
	return 0;
}

/* The ClusterIP entry of ns/name:port (IPv4 first), or NULL. */
static const struct xm_lb_service *lb_entry(const struct builder *b, const char *ns, const char *name, uint16_t port)
{
	size_t lo = 0, hi = b->n_by_name;

	while (lo < hi) { /* the first entry not below ns/name:port */
		size_t mid = lo + (hi - lo) / 2;
		const struct xm_lb_service *s = b->by_name[mid];
		int r = strcmp(s->ns, ns);

		if (!r)
			r = strcmp(s->name, name);
		if (!r)
			r = ntohs(s->key.port) < port ? -1 : ntohs(s->key.port) > port;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < b->n_by_name && !strcmp(b->by_name[lo]->ns, ns) && !strcmp(b->by_name[lo]->name, name) &&
	    ntohs(b->by_name[lo]->key.port) == port)
		return b->by_name[lo];
	return NULL;
}

/* The pod of a backend: by its targetRef, else by its address. */
static const struct xm_workload *backend_workload(const struct builder *b, const struct xm_lb_backend *be)
{
	const char *slash = strchr(be->pod, '/');

	if (slash) {
		struct xm_workload key;
		const struct xm_workload *kp = &key;
		const struct xm_workload **hit;

		snprintf(key.ns, sizeof(key.ns), "%.*s", (int)(slash - be->pod), be->pod);
		snprintf(key.pod, sizeof(key.pod), "%s", slash + 1);
		hit = b->n_wl ? bsearch(&kp, b->wl_by_pod, b->n_wl, sizeof(*b->wl_by_pod), wl_cmp) : NULL;
		if (hit)
			return *hit;
	}
	if (b->ids) {
		const struct xm_identity *id = identities_find(b->ids, &be->addr, be->family);

		if (id)
			return id->wl;
	}
	return NULL;
}

static bool labels_match(const struct xm_workload *wl, const struct xm_label *labels, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = wl ? workload_label(wl, labels[i].key) : NULL;

		if (!v || strcmp(v, labels[i].value))
			return false;
	}
	return true;
}

static int fill_cluster(struct builder *b, struct l7_cluster *c, const struct xm_service *svc)
{
	const struct xm_destination_rule *dr = svc ? config_rule_of(b->cfg, svc) : NULL;
	const struct xm_subset *ss = NULL;
	const struct xm_lb_service *lbs;

	for (size_t i = 0; dr && c->subset[0] && i < dr->n_subsets; i++)
		if (!strcmp(dr->subsets[i].name, c->subset))
			ss = &dr->subsets[i];
	/* Istio's order: the rule, its portLevelSettings for the port, the subset, the subset's for the port. */
	config_policy_merge(&c->policy, dr ? &dr->policy : NULL, ss ? &ss->policy : NULL, c->port);
	lbs = svc ? lb_entry(b, svc->ns, svc->name, c->port) : NULL;
	c->svc = lbs;
	if (!lbs || (c->subset[0] && !ss))
		return 0; /* unknown Service, port or subset: no endpoint (503 UH) */
	c->endpoints = calloc(lbs->n_backends + 1, sizeof(*c->endpoints));
	c->endpoint_wl = calloc(lbs->n_backends + 1, sizeof(*c->endpoint_wl));
	if (!c->endpoints || !c->endpoint_wl)
		return -ENOMEM;
	for (size_t i = 0; i < lbs->n_backends; i++) {
		const struct xm_lb_backend *be = &lbs->backends[i];
		const struct xm_workload *wl;

		if (!be->ready)
			continue;
		wl = backend_workload(b, be);
		if (ss && !labels_match(wl, ss->labels, ss->n_labels))
			continue;
		c->endpoints[c->n_endpoints] = be;
		c->endpoint_wl[c->n_endpoints++] = wl;
	}
	return 0;
}

static size_t name_hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* The slot of name: where it is, or the free slot where it goes. */
static size_t *cluster_slot(struct builder *b, const char *name)
{
	size_t i = name_hash(name) & (b->n_slots - 1);

	while (b->cluster_slots[i] && strcmp(b->t->clusters[b->cluster_slots[i] - 1].name, name))
		i = (i + 1) & (b->n_slots - 1);
	return &b->cluster_slots[i];
}

/* Keeps the table at most half full. */
static int cluster_slots_grow(struct builder *b)
{
	size_t n = b->n_slots ? b->n_slots * 2 : 64;

	if (2 * (b->t->n_clusters + 1) <= b->n_slots)
		return 0;
	free(b->cluster_slots);
	b->cluster_slots = calloc(n, sizeof(*b->cluster_slots));
	if (!b->cluster_slots)
		return -ENOMEM;
	b->n_slots = n;
	for (size_t i = 0; i < b->t->n_clusters; i++)
		*cluster_slot(b, b->t->clusters[i].name) = i + 1;
	return 0;
}

/* The cluster of (svc or host, port, subset), made on first use; its index, or -ENOMEM. */
static long cluster_index(struct builder *b, const struct xm_service *svc, const char *host, uint16_t port,
			  const char *subset)
{
	struct l7_route_table *t = b->t;
	char fqdn[sizeof(t->clusters[0].host_fqdn)];
	char name[sizeof(t->clusters[0].name)];
	char key[sizeof(t->clusters[0].name) + 8];
	struct l7_cluster *c;
	size_t *slot;
	int err;

	if (svc)
		service_fqdn(svc, fqdn, sizeof(fqdn));
	else
		snprintf(fqdn, sizeof(fqdn), "%s", host);
	if (snprintf(name, sizeof(name), "outbound|%u|%s|%s", port, subset, fqdn) < 0)
		name[0] = '\0';
	if (cluster_slots_grow(b) || XM_GROW(t->clusters, b->cap_clusters, t->n_clusters + 1))
		return -ENOMEM;
	slot = cluster_slot(b, name);
	if (*slot)
		return (long)(*slot - 1);
	*slot = t->n_clusters + 1;
	c = &t->clusters[t->n_clusters++];
	memset(c, 0, sizeof(*c));
	snprintf(c->host_fqdn, sizeof(c->host_fqdn), "%s", fqdn);
	snprintf(c->subset, sizeof(c->subset), "%s", subset);
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (svc) {
		snprintf(c->svc_name, sizeof(c->svc_name), "%s", svc->name);
		snprintf(c->svc_ns, sizeof(c->svc_ns), "%s", svc->ns);
	} else {
		snprintf(c->svc_name, sizeof(c->svc_name), "%s", host);
	}
	c->port = port;
	snprintf(key, sizeof(key), "cluster|%s", name);
	c->load = l7_shared_new(key);
	if (!c->load)
		return -ENOMEM;
	err = fill_cluster(b, c, svc);
	return err ? err : (long)(t->n_clusters - 1);
}

static int add_fixup(struct builder *b, const struct l7_cluster **slot, long idx)
{
	if (idx < 0)
		return (int)idx;
	if (XM_GROW(b->fixups, b->cap_fixups, b->n_fixups + 1))
		return -ENOMEM;
	b->fixups[b->n_fixups++] = (struct cluster_fixup){ slot, (size_t)idx };
	return 0;
}

/* A destination's port: given, else the Service's only one, else the port the client dialed. */
static uint16_t dest_port(const struct xm_service *svc, uint16_t given, uint16_t vhost_port)
{
	if (given || !svc)
		return given ? given : vhost_port;
	if (svc->n_ports == 1)
		return svc->ports[0].port;
	for (size_t p = 0; p < svc->n_ports; p++)
		if (svc->ports[p].port == vhost_port)
			return vhost_port;
	return svc->n_ports ? svc->ports[0].port : vhost_port;
}

static int bind_destination(struct builder *b, const struct xm_virtual_service *vs, const struct xm_http_destination *d,
			    uint16_t vhost_port, const struct l7_cluster **slot)
{
	const struct xm_service *svc = config_host_service(b->cfg, d->host, vs->ns);

	return add_fixup(b, slot, cluster_index(b, svc, d->host, dest_port(svc, d->port, vhost_port), d->subset));
}

static int copy_str_match(const struct xm_string_match *in, bool caseless, struct l7_str_match *out)
{
	char why[256];
	int err = 0;

	out->kind = (enum l7_str_match_kind)in->kind;
	out->value = dup_or_null(in->value, &err);
	if (err || out->kind != L7_MATCH_REGEX || !out->value)
		return err;
	/* Validation refused every pattern that does not compile: a NULL here matches nothing. */
	out->regex = l7_regex_compile(out->value, caseless, why, sizeof(why));
	return 0;
}

static int copy_kv(const struct xm_kv_match *in, size_t n, struct l7_kv_match **out, size_t *n_out)
{
	int err = 0;

	*out = n ? calloc(n, sizeof(**out)) : NULL;
	if (n && !*out)
		return -ENOMEM;
	*n_out = n;
	for (size_t i = 0; i < n && !err; i++) {
		(*out)[i].name = dup_or_null(in[i].name, &err);
		if (!err)
			err = copy_str_match(&in[i].m, false, &(*out)[i].m);
	}
	return err;
}

static int copy_match(const struct xm_http_match *in, struct l7_match *out)
{
	int err = 0;

	out->name = dup_or_null(in->name ? in->name : "", &err);
	out->ignore_uri_case = in->ignore_uri_case;
	out->port = in->port;
	out->source_namespace = dup_or_null(in->source_namespace, &err);
	if (!err)
		err = copy_str_match(&in->uri, in->ignore_uri_case, &out->uri);
	if (!err)
		err = copy_str_match(&in->scheme, false, &out->scheme);
	if (!err)
		err = copy_str_match(&in->method, false, &out->method);
	if (!err)
		err = copy_str_match(&in->authority, false, &out->authority);
	if (!err)
		err = copy_kv(in->headers, in->n_headers, &out->headers, &out->n_headers);
	if (!err)
		err =
		    copy_kv(in->without_headers, in->n_without_headers, &out->without_headers, &out->n_without_headers);
	if (!err)
		err = copy_kv(in->query_params, in->n_query_params, &out->query_params, &out->n_query_params);
	if (!err && in->n_source_labels) {
		out->source_labels = malloc(in->n_source_labels * sizeof(*out->source_labels));
		if (!out->source_labels)
			return -ENOMEM;
		memcpy(out->source_labels, in->source_labels, in->n_source_labels * sizeof(*out->source_labels));
		out->n_source_labels = in->n_source_labels;
	}
	return err;
}

static int copy_ops(const struct xm_header_op *in, size_t n, struct l7_header_op **out, size_t *n_out)
{
	int err = 0;

	*out = n ? calloc(n, sizeof(**out)) : NULL;
	if (n && !*out)
		return -ENOMEM;
	*n_out = n;
	for (size_t i = 0; i < n && !err; i++) {
		(*out)[i].name = dup_or_null(in[i].name, &err);
		(*out)[i].value = dup_or_null(in[i].value, &err);
	}
	return err;
}

static int copy_names(char *const *in, size_t n, char ***out, size_t *n_out)
{
	int err = 0;

	*out = n ? calloc(n, sizeof(**out)) : NULL;
	if (n && !*out)
		return -ENOMEM;
	*n_out = n;
	for (size_t i = 0; i < n && !err; i++)
		(*out)[i] = dup_or_null(in[i], &err);
	return err;
}

static int copy_headers(const struct xm_http_headers *in, struct l7_headers *out)
{
	int err = copy_ops(in->req_set, in->n_req_set, &out->req_set, &out->n_req_set);

	if (!err)
		err = copy_ops(in->req_add, in->n_req_add, &out->req_add, &out->n_req_add);
	if (!err)
		err = copy_ops(in->resp_set, in->n_resp_set, &out->resp_set, &out->n_resp_set);
	if (!err)
		err = copy_ops(in->resp_add, in->n_resp_add, &out->resp_add, &out->n_resp_add);
	if (!err)
		err = copy_names(in->req_remove, in->n_req_remove, &out->req_remove, &out->n_req_remove);
	if (!err)
		err = copy_names(in->resp_remove, in->n_resp_remove, &out->resp_remove, &out->n_resp_remove);
	return err;
}

static int compile_route(struct builder *b, const struct xm_virtual_service *vs, const struct xm_http_route *in,
			 uint16_t port, struct l7_route *out)
{
	int err = 0;

	out->name = dup_or_null(in->name ? in->name : "", &err);
	snprintf(out->vs_ns, sizeof(out->vs_ns), "%s", vs->ns);
	snprintf(out->vs_name, sizeof(out->vs_name), "%s", vs->name);
	out->loc = in->loc;
	out->loc.file = intern_file(b, in->loc.file, &err);
	out->matches = in->n_matches ? calloc(in->n_matches, sizeof(*out->matches)) : NULL;
	if (err || (in->n_matches && !out->matches))
		return -ENOMEM;
	out->n_matches = in->n_matches;
	for (size_t i = 0; i < in->n_matches && !err; i++)
		err = copy_match(&in->matches[i], &out->matches[i]);
	out->action = in->has_redirect		? L7_ACTION_REDIRECT
		      : in->has_direct_response ? L7_ACTION_DIRECT_RESPONSE
						: L7_ACTION_ROUTE;
	if (!err && out->action == L7_ACTION_ROUTE && in->n_route) {
		out->dests = calloc(in->n_route, sizeof(*out->dests));
		if (!out->dests)
			return -ENOMEM;
		out->n_dests = in->n_route;
		for (size_t i = 0; i < in->n_route && !err; i++) {
			struct l7_destination *d = &out->dests[i];

			/* A single destination without a weight takes all the traffic. */
			d->weight = in->n_route == 1 && !in->route[i].weight_set ? 100 : (uint32_t)in->route[i].weight;
			err = bind_destination(b, vs, &in->route[i].dest, port, &d->cluster);
			if (!err)
				err = copy_headers(&in->route[i].headers, &d->headers);
		}
	}
	if (!err)
		err = copy_headers(&in->headers, &out->headers);
	out->rewrite_uri = dup_or_null(in->rewrite_uri, &err);
	out->rewrite_authority = dup_or_null(in->rewrite_authority, &err);
	out->redirect_uri = dup_or_null(in->redirect_uri, &err);
	out->redirect_authority = dup_or_null(in->redirect_authority, &err);
	out->redirect_scheme = dup_or_null(in->redirect_scheme, &err);
	out->redirect_port = in->redirect_port;
	out->redirect_code = in->redirect_code ? in->redirect_code : 301;
	out->direct_status = in->direct_status;
	out->direct_body = dup_or_null(in->direct_body, &err);
	out->direct_body_len = in->direct_body ? strlen(in->direct_body) : 0;
	out->timeout_ms = in->timeout_ms;
	if (in->fault.has_delay) {
		out->fault_delay_ms = in->fault.delay_ms;
		out->fault_delay_percent = in->fault.delay_percent;
	}
	if (in->fault.has_abort) {
		out->fault_abort_status = in->fault.abort_status;
		out->fault_abort_percent = in->fault.abort_percent;
	}
	l7_retry_policy_from(&in->retries, &out->retry);
	if (!err && in->has_mirror) {
		out->mirror_percent = in->mirror_percent;
		err = bind_destination(b, vs, &in->mirror, port, &out->mirror);
	}
	return err;
}

/*
 * Istio's retry.ConvertPolicy (pilot/pkg/networking/core/route/retry/retry.go): no retries block → the default
 * policy (2 retries on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes, no status
 * codes: EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY is on by default); attempts 0 → none; otherwise the default with
 * attempts, retryOn (bare codes turn on retriable-status-codes), perTryTimeout and the rest laid over it.
 */
void l7_retry_policy_from(const struct xm_http_retry *in, struct l7_retry_policy *out)
{
	memset(out, 0, sizeof(*out));
	out->backoff_base_ms = L7_RETRY_BACKOFF_BASE_MS;
	out->previous_hosts = true;
	if (in->set && !in->attempts)
		return;
	out->attempts = in->set ? in->attempts : L7_RETRY_DEFAULT_ATTEMPTS;
	out->retry_on = L7_RETRY_DEFAULT_ON;
	if (!in->set)
		return;
	if (in->retry_on_set) {
		out->retry_on = in->retry_on;
		memcpy(out->statuses, in->statuses, sizeof(out->statuses));
		out->n_statuses = in->n_statuses;
		if (in->n_statuses)
			out->retry_on |= L7_RETRY_RETRIABLE_STATUS;
	}
	out->per_try_timeout_ms = in->per_try_timeout_ms;
	out->retry_remote_localities = in->retry_remote_localities;
	if (in->ignore_previous_hosts_set) {
		out->previous_hosts = in->ignore_previous_hosts;
		out->previous_hosts_set = true;
	}
	if (in->backoff_ms)
		out->backoff_base_ms = in->backoff_ms > UINT32_MAX / 10 ? UINT32_MAX / 10 : (uint32_t)in->backoff_ms;
}

static struct l7_vhost *new_vhost(struct builder *b, const char *name, uint16_t port, size_t *idx)
{
	struct l7_route_table *t = b->t;
	struct l7_vhost *v;

	if (XM_GROW(t->vhosts, b->cap_vhosts, t->n_vhosts + 1))
		return NULL;
	*idx = t->n_vhosts;
	v = &t->vhosts[t->n_vhosts++];
	memset(v, 0, sizeof(*v));
	if (snprintf(v->name, sizeof(v->name), "%s:%u", name, port) < 0)
		v->name[0] = '\0';
	v->port = port;
	return v;
}

static int add_domain(struct l7_vhost *v, const char *d)
{
	char **p = realloc(v->domains, (v->n_domains + 1) * sizeof(*v->domains));

	if (!p)
		return -ENOMEM;
	v->domains = p;
	if (!(p[v->n_domains] = strdup(d)))
		return -ENOMEM;
	for (char *c = p[v->n_domains]; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	v->n_domains++;
	return 0;
}

/* A Service's domains: its FQDN (short forms are expanded at lookup) and its ClusterIPs. */
static int add_service_domains(struct l7_vhost *v, const struct xm_service *svc)
{
	char buf[XM_NAME_MAX + 96];
	int err;

	service_fqdn(svc, buf, sizeof(buf));
	err = add_domain(v, buf);
	for (size_t i = 0; !err && i < svc->n_cluster_ips; i++) {
		inet_ntop(svc->cluster_ips[i].family == 4 ? AF_INET : AF_INET6, svc->cluster_ips[i].bytes, buf,
			  sizeof(buf));
		err = add_domain(v, buf);
	}
	return err;
}

static int add_owner(struct builder *b, const struct xm_service *svc, uint16_t port, size_t vhost)
{
	if (XM_GROW(b->owners, b->cap_owners, b->n_owners + 1))
		return -ENOMEM;
	b->owners[b->n_owners++] = (struct vhost_owner){ svc, port, vhost };
	return 0;
}

static int owner_cmp(const void *a, const void *b)
{
	const struct vhost_owner *x = a, *y = b;

	if (x->svc != y->svc)
		return (uintptr_t)x->svc < (uintptr_t)y->svc ? -1 : 1;
	return x->port < y->port ? -1 : x->port > y->port;
}

static const struct vhost_owner *find_owner(const struct builder *b, const struct xm_service *svc, uint16_t port)
{
	struct vhost_owner key = { svc, port, 0 };

	return b->n_owners ? bsearch(&key, b->owners, b->n_owners, sizeof(key), owner_cmp) : NULL;
}

static const struct xm_service **claimed_slot(const struct xm_service **slots, size_t cap, const struct xm_service *svc)
{
	size_t i = ((uintptr_t)svc >> 4) * 11400714819323198485ull & (cap - 1);

	while (slots[i] && slots[i] != svc)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

/* Adds svc to the claimed set (kept at most half full); *taken when it was there already. */
static int claim_service(struct builder *b, const struct xm_service *svc, bool *taken)
{
	const struct xm_service **slot;

	if (2 * (b->n_claimed_svcs + 1) > b->cap_claimed_svcs) {
		size_t cap = b->cap_claimed_svcs ? b->cap_claimed_svcs * 2 : 64;
		const struct xm_service **slots = calloc(cap, sizeof(*slots));

		if (!slots)
			return -ENOMEM;
		for (size_t i = 0; i < b->cap_claimed_svcs; i++)
			if (b->claimed_svcs[i])
				*claimed_slot(slots, cap, b->claimed_svcs[i]) = b->claimed_svcs[i];
		free(b->claimed_svcs);
		b->claimed_svcs = slots;
		b->cap_claimed_svcs = cap;
	}
	slot = claimed_slot(b->claimed_svcs, b->cap_claimed_svcs, svc);
	*taken = *slot != NULL;
	if (!*taken) {
		*slot = svc;
		b->n_claimed_svcs++;
	}
	return 0;
}

/* Claims host for vs unless an earlier VirtualService has it; false when it is taken. */
static int claim(struct builder *b, const struct xm_service *svc, const char *host, bool *taken)
{
	*taken = false;
	if (svc)
		return claim_service(b, svc, taken);
	for (size_t i = 0; i < b->n_claimed_hosts && !*taken; i++)
		*taken = !strcasecmp(b->claimed_hosts[i], host);
	if (*taken)
		return 0;
	if (XM_GROW(b->claimed_hosts, b->cap_claimed_hosts, b->n_claimed_hosts + 1))
		return -ENOMEM;
	b->claimed_hosts[b->n_claimed_hosts++] = host;
	return 0;
}

static bool has_port(const uint16_t *ports, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (ports[i] == port)
			return true;
	return false;
}

/* The HTTP service ports of the lb state, each port number once. */
static int http_ports(const struct builder *b, uint16_t **ports, size_t *n)
{
	*ports = calloc(b->n_by_name + 1, sizeof(**ports));
	*n = 0;
	if (!*ports)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_by_name; i++) {
		uint16_t p = ntohs(b->by_name[i]->key.port);

		if ((b->by_name[i]->flags & XM_SVC_F_L7) && !has_port(*ports, *n, p))
			(*ports)[(*n)++] = p;
	}
	return 0;
}

static bool http_port(const struct xm_service *svc, uint16_t port)
{
	for (size_t p = 0; p < svc->n_ports; p++)
		if (svc->ports[p].port == port && svc->ports[p].http)
			return true;
	return false;
}

/* One vhost per HTTP port that the VirtualService's hosts reach. */
static int build_vs(struct builder *b, const struct xm_virtual_service *vs, const uint16_t *all_ports,
		    size_t n_all_ports)
{
	const struct xm_service **svcs = calloc(vs->n_hosts + 1, sizeof(*svcs));
	const char **others = calloc(vs->n_hosts + 1, sizeof(*others));
	uint16_t *ports = NULL;
	size_t n_svcs = 0, n_others = 0, n_ports = 0, cap_ports = 0;
	int err = svcs && others ? 0 : -ENOMEM;

	for (size_t h = 0; !err && h < vs->n_hosts; h++) {
		const struct xm_service *svc = config_host_service(b->cfg, vs->hosts[h], vs->ns);
		bool taken;

		err = claim(b, svc, vs->hosts[h], &taken);
		if (err || taken)
			continue;
		if (svc)
			svcs[n_svcs++] = svc;
		else
			others[n_others++] = vs->hosts[h];
	}
	for (size_t s = 0; !err && s < n_svcs; s++) {
		for (size_t p = 0; p < svcs[s]->n_ports && !err; p++) {
			const struct xm_service_port *sp = &svcs[s]->ports[p];

			if (!sp->http || has_port(ports, n_ports, sp->port))
				continue;
			err = XM_GROW(ports, cap_ports, n_ports + 1);
			if (!err)
				ports[n_ports++] = sp->port;
		}
	}
	/* Hosts that are not Services (wildcards, external names) are reachable on every HTTP port. */
	for (size_t p = 0; !err && n_others && p < n_all_ports; p++) {
		if (has_port(ports, n_ports, all_ports[p]))
			continue;
		err = XM_GROW(ports, cap_ports, n_ports + 1);
		if (!err)
			ports[n_ports++] = all_ports[p];
	}
	for (size_t p = 0; !err && p < n_ports && (n_svcs || n_others); p++) {
		const struct xm_service *first = NULL;
		char name[XM_NAME_MAX];
		size_t idx;
		struct l7_vhost *v;

		/* A Service's names reach this vhost only on its own HTTP ports. */
		for (size_t s = 0; !first && s < n_svcs; s++)
			first = http_port(svcs[s], ports[p]) ? svcs[s] : NULL;
		if (first)
			service_fqdn(first, name, sizeof(name));
		else
			snprintf(name, sizeof(name), "%s", others[0]);
		v = new_vhost(b, name, ports[p], &idx);
		if (!v) {
			err = -ENOMEM;
			break;
		}
		for (size_t s = 0; !err && s < n_svcs; s++) {
			if (!http_port(svcs[s], ports[p]))
				continue;
			err = add_service_domains(v, svcs[s]);
			if (!err)
				err = add_owner(b, svcs[s], ports[p], idx);
		}
		for (size_t o = 0; !err && o < n_others; o++)
			err = add_domain(v, others[o]);
		v->routes = err ? NULL : calloc(vs->n_http, sizeof(*v->routes));
		if (!err && !v->routes)
			err = -ENOMEM;
		for (size_t r = 0; !err && r < vs->n_http; r++) {
			v->n_routes = r + 1;
			err = compile_route(b, vs, &vs->http[r], ports[p], &v->routes[r]);
		}
	}
	free(svcs);
	free(others);
	free(ports);
	return err;
}

/* A Service port no VirtualService routes: one route to the whole Service. */
static int build_default(struct builder *b, const struct xm_service *svc, uint16_t port)
{
	char name[XM_NAME_MAX];
	struct l7_vhost *v;
	struct l7_route *r;
	size_t idx;
	int err = 0;

	service_fqdn(svc, name, sizeof(name));
	v = new_vhost(b, name, port, &idx);
	if (!v)
		return -ENOMEM;
	err = add_service_domains(v, svc);
	if (!err)
		err = add_owner(b, svc, port, idx);
	v->routes = err ? NULL : calloc(1, sizeof(*v->routes));
	if (err || !v->routes)
		return -ENOMEM;
	v->n_routes = 1;
	r = &v->routes[0];
	r->name = strdup("default");
	r->dests = calloc(1, sizeof(*r->dests));
	if (!r->name || !r->dests)
		return -ENOMEM;
	r->n_dests = 1;
	r->dests[0].weight = 100;
	r->action = L7_ACTION_ROUTE;
	l7_retry_policy_from(&(struct xm_http_retry){ 0 }, &r->retry); /* Istio's default route: its default policy */
	return add_fixup(b, &r->dests[0].cluster, cluster_index(b, svc, NULL, port, ""));
}

/* Default vhosts for the HTTP Service ports no VirtualService took; then every owner is sorted. */
static int build_defaults(struct builder *b)
{
	size_t n_vs_owners;

	if (b->n_owners > 1)
		qsort(b->owners, b->n_owners, sizeof(*b->owners), owner_cmp);
	n_vs_owners = b->n_owners;
	/* by_name holds each (Service, port) adjacently: one default for its IPv4 and IPv6 entries. */
	for (size_t i = 0; i < b->n_by_name; i++) {
		const struct xm_lb_service *lbs = b->by_name[i];
		const struct xm_service *svc;
		struct vhost_owner key;
		int err;

		if (!(lbs->flags & XM_SVC_F_L7))
			continue;
		if (i && !strcmp(b->by_name[i - 1]->ns, lbs->ns) && !strcmp(b->by_name[i - 1]->name, lbs->name) &&
		    b->by_name[i - 1]->key.port == lbs->key.port && (b->by_name[i - 1]->flags & XM_SVC_F_L7))
			continue;
		svc = config_find_service(b->cfg, lbs->ns, lbs->name);
		key = (struct vhost_owner){ svc, ntohs(lbs->key.port), 0 };
		if (!svc || (n_vs_owners && bsearch(&key, b->owners, n_vs_owners, sizeof(key), owner_cmp)))
			continue;
		err = build_default(b, svc, key.port);
		if (err)
			return err;
	}
	if (b->n_owners > 1)
		qsort(b->owners, b->n_owners, sizeof(*b->owners), owner_cmp);
	return 0;
}

static int build_services(struct builder *b)
{
	struct l7_route_table *t = b->t;
	size_t n = 0;
	int err = build_defaults(b);

	if (err)
		return err;
	for (size_t i = 0; i < b->lb->n_services; i++)
		n += (b->lb->services[i].flags & XM_SVC_F_L7) != 0;
	t->services = calloc(n + 1, sizeof(*t->services));
	if (!t->services)
		return -ENOMEM;
	/* In the lb state's (key) order, so l7_service_find can bisect. */
	for (size_t i = 0; i < b->lb->n_services; i++) {
		const struct xm_lb_service *lbs = &b->lb->services[i];
		const struct xm_service *svc;
		const struct vhost_owner *o;
		uint16_t port = ntohs(lbs->key.port);

		if (!(lbs->flags & XM_SVC_F_L7))
			continue;
		svc = config_find_service(b->cfg, lbs->ns, lbs->name);
		o = svc ? find_owner(b, svc, port) : NULL;
		if (!o)
			continue;
		t->services[t->n_services++] = (struct l7_service){ lbs->key, lbs, NULL };
		t->services[t->n_services - 1].vhost = (const struct l7_vhost *)(uintptr_t)(o->vhost + 1);
	}
	return 0;
}

static int domain_cmp(const void *a, const void *b)
{
	const struct l7_domain *x = a, *y = b;
	int r;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	r = strcmp(x->name, y->name);
	if (r)
		return r;
	return x->vhost < y->vhost ? -1 : x->vhost > y->vhost; /* the first vhost keeps a domain */
}

/* Longest suffix first, so the first wildcard that matches is the best. */
static int wildcard_cmp(const void *a, const void *b)
{
	const struct l7_domain *x = a, *y = b;
	size_t lx = strlen(x->name), ly = strlen(y->name);

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return domain_cmp(a, b);
}

/* The Host lookup's index over the final vhosts array. */
static int build_domain_index(struct l7_route_table *t)
{
	size_t n = 0, kept = 0;

	for (size_t i = 0; i < t->n_vhosts; i++)
		n += t->vhosts[i].n_domains;
	t->exact = calloc(n + 1, sizeof(*t->exact));
	t->wildcards = calloc(n + 1, sizeof(*t->wildcards));
	if (!t->exact || !t->wildcards)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_vhosts; i++) {
		const struct l7_vhost *v = &t->vhosts[i];

		for (size_t d = 0; d < v->n_domains; d++) {
			const char *name = v->domains[d];

			if (name[0] == '*')
				t->wildcards[t->n_wildcards++] = (struct l7_domain){ v->port, name + 1, v };
			else
				t->exact[t->n_exact++] = (struct l7_domain){ v->port, name, v };
		}
	}
	if (t->n_exact > 1)
		qsort(t->exact, t->n_exact, sizeof(*t->exact), domain_cmp);
	if (t->n_wildcards > 1)
		qsort(t->wildcards, t->n_wildcards, sizeof(*t->wildcards), wildcard_cmp);
	for (size_t i = 0; i < t->n_exact; i++)
		if (!kept || t->exact[kept - 1].port != t->exact[i].port ||
		    strcmp(t->exact[kept - 1].name, t->exact[i].name))
			t->exact[kept++] = t->exact[i];
	t->n_exact = kept;
	return 0;
}

int l7_routes_build(const struct xm_config *cfg, const struct xm_lb_state *lb, const struct xm_identities *ids,
		    struct l7_route_table *out)
{
	struct builder b = { .cfg = cfg, .lb = lb, .ids = ids, .t = out };
	uint16_t *ports = NULL;
	size_t n_ports = 0;
	int err;

	memset(out, 0, sizeof(*out));
	err = build_indexes(&b);
	if (!err)
		err = http_ports(&b, &ports, &n_ports);
	for (size_t i = 0; !err && i < cfg->n_virtual_services; i++) {
		const struct xm_virtual_service *vs = &cfg->virtual_services[i];

		if (vs->mesh && vs->n_http)
			err = build_vs(&b, vs, ports, n_ports);
	}
	if (!err)
		err = build_services(&b);
	if (!err) {
		/* The vhosts and clusters arrays are final: pointers into them now. */
		for (size_t i = 0; i < out->n_services; i++)
			out->services[i].vhost = &out->vhosts[(uintptr_t)out->services[i].vhost - 1];
		for (size_t i = 0; i < b.n_fixups; i++)
			*b.fixups[i].slot = &out->clusters[b.fixups[i].idx];
		err = build_domain_index(out);
	}
	if (!err)
		err = l7_ratelimit_build(cfg, ids, out, l7_ratelimit_clock_ns());
	if (err) {
		out->n_services = 0; /* their vhost fields hold indexes */
		for (size_t i = 0; i < b.n_fixups; i++)
			*b.fixups[i].slot = NULL;
		l7_routes_free(out);
	}
	free(ports);
	free(b.fixups);
	free(b.owners);
	free(b.by_name);
	free(b.wl_by_pod);
	free(b.claimed_svcs);
	free(b.claimed_hosts);
	free(b.cluster_slots);
	return err;
}
