/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typed access to the fields of one object's YAML tree, reporting every problem with the node's position and
 * the object's name ("service default/reviews: port \"http\": targetPort 70000 out of range 1-65535").
 */
#ifndef XMESH_CONFIG_FIELDS_H
#define XMESH_CONFIG_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/model.h"
#include "config/yaml_tree.h"

/* What a getter found: the field is set, absent (missing or null), or wrong (reported). */
enum {
	FIELD_ERR = -1,
	FIELD_ABSENT = 0,
	FIELD_SET = 1,
};

/* The object being parsed; messages start with "<what>: <sub>: ". */
struct obj_ctx {
	struct xm_config *cfg;
	struct xm_diags *diags;
	int *n_errors;	  /* errors of the whole load */
	const char *file; /* interned in cfg->files */
	char ns[64];
	char name[XM_NAME_MAX];
	struct xm_loc loc; /* the object's metadata.name (or the object itself when it has none) */
	char what[384];	   /* "service default/reviews" */
	char sub[160];	   /* the element being parsed, "port \"http\"", or "" */
};

struct xm_loc obj_loc_of(const struct obj_ctx *c, const struct ynode *n);

/* Report an error at node `at` (the object's location when NULL). */
void obj_error(struct obj_ctx *c, const struct ynode *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Report a warning at node `at`: the config still applies. */
void obj_warn(struct obj_ctx *c, const struct ynode *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Quote an untrusted value for a message (escaped, at most 64 characters shown). */
#define QUOTE_BUF 300
const char *quoted(char buf[QUOTE_BUF], const char *s);

/* Display name "prefix.key" (or "key") of a field, for messages. */
const char *field_name(char *buf, size_t size, const char *prefix, const char *key);

/* Scalars. field is the name used in messages. */
int node_str(struct obj_ctx *c, const struct ynode *n, const char *field, char *buf, size_t size);
int node_int(struct obj_ctx *c, const struct ynode *n, const char *field, long long min, long long max, long long *out);
int node_ip(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_ip *ip);

/* The value of key in map (reports a duplicate key), NULL when absent or null. */
const struct ynode *map_value(struct obj_ctx *c, const struct ynode *map, const char *key);

int get_str(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, char *buf, size_t size);
int get_int(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, long long min,
	    long long max, long long *out);
int get_bool(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, bool *out);
/* A duration of at least min_ms milliseconds. */
int get_duration(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, uint64_t min_ms,
		 uint64_t *ms);
/* One of names[0..n-1]; *idx is its index. */
int get_enum(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, const char *const *names,
	     size_t n, size_t *idx);
/* TCP (the default when absent), UDP or SCTP → 6, 17, 132. */
int get_protocol(struct obj_ctx *c, const struct ynode *map, const char *field, uint8_t *proto);

/* A mapping or a sequence; NULL when absent, null, or of another type (reported). */
const struct ynode *get_map(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field);
const struct ynode *get_seq(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field);

/* A map of string labels (metadata.labels, subsets[].labels). */
int get_labels(struct obj_ctx *c, const struct ynode *map, const char *key, const char *field, struct xm_label **labels,
	       size_t *n);

/* Name rules of Kubernetes: RFC 1123 label (namespaces, port names), RFC 1035 label (Service names),
 * RFC 1123 subdomain (most object names), IANA service name (named targetPorts). */
bool is_dns1123_label(const char *s);
bool is_dns1035_label(const char *s);
bool is_dns1123_subdomain(const char *s);
bool is_iana_svc_name(const char *s);

/* Append a zeroed element to *arr (n elements); NULL on allocation failure. Capacity is implicit in n. */
void *array_push(void *arr_ptr, size_t *n, size_t elem_size);

#endif
