/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One parser per kind, called with an object's tree once its metadata is read (obj_ctx), each appending the
 * object to the config; cross-reference validation of the loaded config; freeing one object.
 */
#ifndef XMESH_CONFIG_OBJECTS_H
#define XMESH_CONFIG_OBJECTS_H

#include "config/envoy_filter.h"
#include "config/fields.h"
#include "config/model.h"
#include "config/yaml_tree.h"

void parse_service(struct obj_ctx *c, const struct ynode *obj);
void parse_endpoint_slice(struct obj_ctx *c, const struct ynode *obj, const struct ynode *metadata);
void parse_pod(struct obj_ctx *c, const struct ynode *obj, const struct ynode *metadata);
void parse_node(struct obj_ctx *c, const struct ynode *obj);
void parse_destination_rule(struct obj_ctx *c, const struct ynode *obj);
void parse_virtual_service(struct obj_ctx *c, const struct ynode *obj);
void parse_envoy_filter(struct obj_ctx *c, const struct ynode *obj);
void parse_peer_authentication(struct obj_ctx *c, const struct ynode *obj, const struct ynode *metadata);
void parse_authorization_policy(struct obj_ctx *c, const struct ynode *obj);

/* trafficPolicy (of a DestinationRule or of one of its subsets); prefix names it in messages. */
void parse_traffic_policy(struct obj_ctx *c, const struct ynode *tp, const char *prefix, struct xm_traffic_policy *out);

/*
 * After every file is read: sort each kind by namespace/name (lookups are binary searches), report and drop
 * duplicates, resolve DestinationRule hosts, check Service ports against their EndpointSlices.
 */
void config_validate(struct xm_config *cfg, struct xm_diags *diags, int *n_errors);

/*
 * VirtualServices against the rest (destination hosts and subsets, weights, regexes, host claims) and
 * Istio's protocol selection of every Service port (xm_service_port.http). Part of config_validate.
 */
void validate_virtual_services(struct xm_config *cfg, struct xm_diags *diags, int *n_errors);

/* The slices of Service ns/name in slices sorted by namespace, service name, name (validation's order). */
size_t config_slices_search(const struct xm_config *cfg, const char *ns, const char *service, size_t *first);

void service_free(struct xm_service *s);
void slice_free(struct xm_endpoint_slice *s);
void pod_free(struct xm_pod *p);
void node_free(struct xm_node *n);
void rule_free(struct xm_destination_rule *r);
void virtual_service_free(struct xm_virtual_service *vs);
void peer_authentication_free(struct xm_peer_authentication *pa);

#endif
