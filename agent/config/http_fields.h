/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The parts of a VirtualService http[] entry shared by its parsers: StringMatch, HTTPMatchRequest, Headers,
 * Destination, and heap strings of any length.
 */
#ifndef XMESH_CONFIG_HTTP_FIELDS_H
#define XMESH_CONFIG_HTTP_FIELDS_H

#include "config/fields.h"

#define HTTP_STR_MAX  4096	/* uris, header values, patterns */
#define HTTP_BODY_MAX (1 << 20) /* directResponse body.string (Envoy's default limit is 4 KiB..1 MiB) */

/* A string scalar of at most max bytes, copied to the heap (*out NULL when absent or wrong). */
int node_strdup(struct obj_ctx *c, const struct ynode *n, const char *field, size_t max, char **out);
int get_strdup(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, size_t max, char **out);

/* A StringMatch mapping (exact | prefix | regex, or {}); a regex must be RE2 syntax (l7/regex.h). */
void parse_string_match(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_string_match *out);

/* match[i] of an http route; field is "http[0].match[1]". */
void parse_http_match(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_match *out);

/* headers: {request: {set, add, remove}, response: {...}}. */
void parse_http_headers(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_headers *out);

/* destination (or mirror): host (required), subset, port.number. */
void parse_http_destination(struct obj_ctx *c, const struct ynode *n, const char *field,
			    struct xm_http_destination *out);

#endif
