/* SPDX-License-Identifier: Apache-2.0 */
/* networking.istio.io DestinationRule: host, trafficPolicy, subsets (name, labels, their own policy). */
#include <stdio.h>
#include <string.h>

#include "config/fields.h"
#include "config/objects.h"

static void parse_subset(struct obj_ctx *c, const struct ynode *item, size_t i, struct xm_subset *s)
{
	char q[QUOTE_BUF];
	int r;

	s->loc = obj_loc_of(c, item);
	snprintf(c->sub, sizeof(c->sub), "spec.subsets[%zu]", i);
	config_outlier_defaults(&s->policy.outlier);
	if (!item || item->kind != YNODE_MAP) {
		char got[QUOTE_BUF + 16];

		obj_error(c, item, "expected a mapping, got %s", ynode_describe(item, got, sizeof(got)));
		return;
	}
	r = get_str(c, item, "name", NULL, s->name, sizeof(s->name));
	if (r == FIELD_ABSENT || (r == FIELD_SET && !s->name[0]))
		obj_error(c, item, "name is required");
	if (s->name[0])
		snprintf(c->sub, sizeof(c->sub), "subset %s", quoted(q, s->name));
	if (r == FIELD_SET && s->name[0] && !is_dns1123_label(s->name))
		obj_error(c, ymap_get(item, "name", NULL), "name %s is not a valid subset name (RFC 1123 label)",
			  quoted(q, s->name));
	get_labels(c, item, "labels", NULL, &s->labels, &s->n_labels);
	parse_traffic_policy(c, get_map(c, item, "trafficPolicy", NULL), "trafficPolicy", &s->policy);
}

static void parse_subsets(struct obj_ctx *c, const struct ynode *spec, struct xm_destination_rule *dr)
{
	const struct ynode *subsets = get_seq(c, spec, "subsets", "spec.subsets");
	char q[QUOTE_BUF];

	for (size_t i = 0; subsets && i < subsets->n; i++) {
		struct xm_subset *s = array_push(&dr->subsets, &dr->n_subsets, sizeof(*dr->subsets));

		if (!s) {
			obj_error(c, subsets, "out of memory");
			break;
		}
		parse_subset(c, subsets->kids[i], i, s);
		for (size_t j = 0; s->name[0] && j + 1 < dr->n_subsets; j++) {
			if (strcmp(dr->subsets[j].name, s->name) == 0) {
				obj_error(c, subsets->kids[i], "duplicate subset name %s (also spec.subsets[%zu])",
					  quoted(q, s->name), j);
				break;
			}
		}
	}
	c->sub[0] = '\0';
}

void parse_destination_rule(struct obj_ctx *c, const struct ynode *obj)
{
	const struct ynode *spec = get_map(c, obj, "spec", NULL);
	const struct ynode *host = map_value(c, spec, "host");
	struct xm_destination_rule dr = { .loc = c->loc };
	struct xm_destination_rule *slot;
	char q[QUOTE_BUF];
	int r;

	snprintf(dr.ns, sizeof(dr.ns), "%s", c->ns);
	snprintf(dr.name, sizeof(dr.name), "%s", c->name);
	dr.host_loc = obj_loc_of(c, host ? host : spec);
	r = node_str(c, host, "spec.host", dr.host, sizeof(dr.host));
	if (r == FIELD_ABSENT || (r == FIELD_SET && !dr.host[0]))
		obj_error(c, spec, "spec.host is required");
	else if (r == FIELD_SET && (strchr(dr.host, '/') || strchr(dr.host, ' ')))
		obj_error(c, host, "spec.host %s is not a host name", quoted(q, dr.host));
	parse_traffic_policy(c, get_map(c, spec, "trafficPolicy", "spec.trafficPolicy"), "spec.trafficPolicy",
			     &dr.policy);
	parse_subsets(c, spec, &dr);

	slot = array_push(&c->cfg->rules, &c->cfg->n_rules, sizeof(*c->cfg->rules));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		rule_free(&dr);
		return;
	}
	*slot = dr;
}
