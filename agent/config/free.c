/* SPDX-License-Identifier: Apache-2.0 */
/* Freeing a config: each object's arrays, the object arrays, the interned file names. */
#include <stdlib.h>
#include <string.h>

#include "config/authz_policy.h"
#include "config/objects.h"

void service_free(struct xm_service *s)
{
	free(s->cluster_ips);
	free(s->external_ips);
	free(s->ports);
	memset(s, 0, sizeof(*s));
}

void slice_free(struct xm_endpoint_slice *s)
{
	for (size_t i = 0; i < s->n_endpoints; i++)
		free(s->endpoints[i].addrs);
	free(s->endpoints);
	free(s->ports);
	memset(s, 0, sizeof(*s));
}

void pod_free(struct xm_pod *p)
{
	free(p->labels);
	free(p->ips);
	memset(p, 0, sizeof(*p));
}

void node_free(struct xm_node *n)
{
	free(n->internal_ips);
	memset(n, 0, sizeof(*n));
}

void rule_free(struct xm_destination_rule *r)
{
	free(r->policy.ports);
	for (size_t i = 0; i < r->n_subsets; i++) {
		free(r->subsets[i].labels);
		free(r->subsets[i].policy.ports);
	}
	free(r->subsets);
	memset(r, 0, sizeof(*r));
}

static void string_match_free(struct xm_string_match *m)
{
	free(m->value);
}

static void kv_matches_free(struct xm_kv_match *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].name);
		string_match_free(&kv[i].m);
	}
	free(kv);
}

static void header_ops_free(struct xm_header_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ops[i].name);
		free(ops[i].value);
	}
	free(ops);
}

static void names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void http_headers_free(struct xm_http_headers *h)
{
	header_ops_free(h->req_set, h->n_req_set);
	header_ops_free(h->req_add, h->n_req_add);
	header_ops_free(h->resp_set, h->n_resp_set);
	header_ops_free(h->resp_add, h->n_resp_add);
	names_free(h->req_remove, h->n_req_remove);
	names_free(h->resp_remove, h->n_resp_remove);
}

static void http_match_free(struct xm_http_match *m)
{
	free(m->name);
	string_match_free(&m->uri);
	string_match_free(&m->scheme);
	string_match_free(&m->method);
	string_match_free(&m->authority);
	kv_matches_free(m->headers, m->n_headers);
	kv_matches_free(m->without_headers, m->n_without_headers);
	kv_matches_free(m->query_params, m->n_query_params);
	free(m->source_labels);
	free(m->source_namespace);
}

static void http_route_free(struct xm_http_route *r)
{
	free(r->name);
	for (size_t i = 0; i < r->n_matches; i++)
		http_match_free(&r->matches[i]);
	free(r->matches);
	for (size_t i = 0; i < r->n_route; i++)
		http_headers_free(&r->route[i].headers);
	free(r->route);
	free(r->redirect_uri);
	free(r->redirect_authority);
	free(r->redirect_scheme);
	free(r->direct_body);
	free(r->rewrite_uri);
	free(r->rewrite_authority);
	http_headers_free(&r->headers);
}

void virtual_service_free(struct xm_virtual_service *vs)
{
	names_free(vs->hosts, vs->n_hosts);
	free(vs->host_locs);
	for (size_t i = 0; i < vs->n_http; i++)
		http_route_free(&vs->http[i]);
	free(vs->http);
	memset(vs, 0, sizeof(*vs));
}

void peer_authentication_free(struct xm_peer_authentication *pa)
{
	free(pa->selector);
	free(pa->ports);
	memset(pa, 0, sizeof(*pa));
}

void config_free(struct xm_config *cfg)
{
	if (!cfg)
		return;
	if (cfg->borrowed)
		goto arrays;
	for (size_t i = 0; i < cfg->n_services; i++)
		service_free(&cfg->services[i]);
	for (size_t i = 0; i < cfg->n_slices; i++)
		slice_free(&cfg->slices[i]);
	for (size_t i = 0; i < cfg->n_pods; i++)
		pod_free(&cfg->pods[i]);
	for (size_t i = 0; i < cfg->n_nodes; i++)
		node_free(&cfg->nodes[i]);
	for (size_t i = 0; i < cfg->n_rules; i++)
		rule_free(&cfg->rules[i]);
	for (size_t i = 0; i < cfg->n_virtual_services; i++)
		virtual_service_free(&cfg->virtual_services[i]);
	for (size_t i = 0; i < cfg->n_envoy_filters; i++)
		envoy_filter_free(&cfg->envoy_filters[i]);
	for (size_t i = 0; i < cfg->n_peer_auths; i++)
		peer_authentication_free(&cfg->peer_auths[i]);
	for (size_t i = 0; i < cfg->n_authz_policies; i++)
		authz_policy_free(&cfg->authz_policies[i]);
	for (size_t i = 0; i < cfg->n_files; i++)
		free(cfg->files[i]);
arrays:
	free(cfg->services);
	free(cfg->slices);
	free(cfg->pods);
	free(cfg->nodes);
	free(cfg->rules);
	free(cfg->virtual_services);
	free(cfg->envoy_filters);
	free(cfg->peer_auths);
	free(cfg->authz_policies);
	free(cfg->files);
	memset(cfg, 0, sizeof(*cfg));
}
