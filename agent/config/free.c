/* SPDX-License-Identifier: Apache-2.0 */
/* Freeing a config: each object's arrays, the object arrays, the interned file names. */
#include <stdlib.h>
#include <string.h>

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
	for (size_t i = 0; i < r->n_subsets; i++)
		free(r->subsets[i].labels);
	free(r->subsets);
	memset(r, 0, sizeof(*r));
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
	for (size_t i = 0; i < cfg->n_files; i++)
		free(cfg->files[i]);
arrays:
	free(cfg->services);
	free(cfg->slices);
	free(cfg->pods);
	free(cfg->nodes);
	free(cfg->rules);
	free(cfg->files);
	memset(cfg, 0, sizeof(*cfg));
}
