/* SPDX-License-Identifier: Apache-2.0 */
/* v1 Pod: labels (subsets), service account (identity), node, pod IPs. */
#include <stdio.h>
#include <string.h>

#include "config/fields.h"
#include "config/objects.h"

static void push_pod_ip(struct obj_ctx *c, const struct ynode *at, const char *field, struct xm_pod *pod)
{
	char q[QUOTE_BUF];
	struct xm_ip ip, *slot;

	if (node_ip(c, at, field, &ip) != FIELD_SET)
		return;
	for (size_t i = 0; i < pod->n_ips; i++) {
		if (pod->ips[i].family == ip.family) {
			obj_error(c, at, "%s %s: a Pod has at most one IP per family", field, quoted(q, at->str));
			return;
		}
	}
	slot = array_push(&pod->ips, &pod->n_ips, sizeof(*pod->ips));
	if (!slot) {
		obj_error(c, at, "out of memory");
		return;
	}
	*slot = ip;
}

static void parse_pod_ips(struct obj_ctx *c, const struct ynode *status, struct xm_pod *pod)
{
	const struct ynode *list = get_seq(c, status, "podIPs", "status.podIPs");
	const struct ynode *single = map_value(c, status, "podIP");
	char field[64];

	if (!list || list->n == 0) {
		push_pod_ip(c, single, "status.podIP", pod);
		return;
	}
	for (size_t i = 0; i < list->n; i++) {
		const struct ynode *entry = list->kids[i];

		snprintf(field, sizeof(field), "status.podIPs[%zu]", i);
		if (entry->kind != YNODE_MAP) {
			char got[QUOTE_BUF + 16];

			obj_error(c, entry, "%s: expected a mapping, got %s", field,
				  ynode_describe(entry, got, sizeof(got)));
			continue;
		}
		snprintf(field, sizeof(field), "status.podIPs[%zu].ip", i);
		push_pod_ip(c, map_value(c, entry, "ip"), field, pod);
	}
}

void parse_pod(struct obj_ctx *c, const struct ynode *obj, const struct ynode *metadata)
{
	const struct ynode *spec = get_map(c, obj, "spec", NULL);
	const struct ynode *status = get_map(c, obj, "status", NULL);
	struct xm_pod pod = { .loc = c->loc };
	struct xm_pod *slot;

	snprintf(pod.ns, sizeof(pod.ns), "%s", c->ns);
	snprintf(pod.name, sizeof(pod.name), "%s", c->name);
	get_labels(c, metadata, "labels", "metadata.labels", &pod.labels, &pod.n_labels);
	/* serviceAccount is the deprecated spelling; the API server still fills both. */
	if (get_str(c, spec, "serviceAccountName", "spec.serviceAccountName", pod.service_account,
		    sizeof(pod.service_account)) == FIELD_ABSENT)
		get_str(c, spec, "serviceAccount", "spec.serviceAccount", pod.service_account,
			sizeof(pod.service_account));
	/* The service account names the pod's SPIFFE identity: a Kubernetes name (RFC 1123 subdomain) or none. */
	if (pod.service_account[0] && !is_dns1123_subdomain(pod.service_account)) {
		const struct ynode *at = spec ? ymap_get(spec, "serviceAccountName", NULL) : NULL;

		obj_error(c, at ? at : (spec ? ymap_get(spec, "serviceAccount", NULL) : NULL),
			  "service account %s is not a valid name (RFC 1123 subdomain)",
			  quoted((char[QUOTE_BUF]){ 0 }, pod.service_account));
		pod.service_account[0] = '\0';
	}
	if (!pod.service_account[0])
		snprintf(pod.service_account, sizeof(pod.service_account), "default");
	get_str(c, spec, "nodeName", "spec.nodeName", pod.node_name, sizeof(pod.node_name));
	parse_pod_ips(c, status, &pod);

	slot = array_push(&c->cfg->pods, &c->cfg->n_pods, sizeof(*c->cfg->pods));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		pod_free(&pod);
		return;
	}
	*slot = pod;
}
