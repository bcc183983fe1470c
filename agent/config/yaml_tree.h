/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A YAML stream read with libyaml into one small node tree per document, each node with its 1-based
 * line:col. Bounded against hostile input: nesting depth, alias expansion, anchor lookups in O(1).
 */
#ifndef XMESH_CONFIG_YAML_TREE_H
#define XMESH_CONFIG_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/model.h"

#define YTREE_MAX_DEPTH	      128	 /* Kubernetes objects nest ~20 deep; managedFields a bit more */
#define YTREE_MAX_ALIAS_NODES (1u << 20) /* nodes that aliases may add to one document ("billion laughs") */

enum ynode_kind {
	YNODE_SCALAR,
	YNODE_SEQ,
	YNODE_MAP,
};

struct ynode {
	enum ynode_kind kind;
	int line; /* 1-based */
	int col;  /* 1-based */
	/* Scalars: the text (NUL-terminated, len excludes the NUL; the text may hold NULs of its own). */
	char *str;
	size_t len;
	bool plain; /* untagged plain scalar (or tagged !!int/!!bool/!!null/!!float): may be a number or null */
	/* Sequences: items; mappings: key, value, key, value, ... (n is twice the number of pairs). */
	struct ynode **kids;
	size_t n;
	size_t cap;
	size_t weight; /* nodes in the subtree, aliases expanded (saturating) */
};

struct ydoc {
	struct ynode *root; /* NULL for an empty document */
	struct ynode **all; /* every node, for freeing: aliases share nodes */
	size_t n_all;
	size_t cap_all;
};

/* Called once per complete, well-formed document; the tree is freed after it returns. */
typedef void (*ydoc_fn)(void *arg, const struct ydoc *doc);

/*
 * Parse every document of a stream. Errors (YAML syntax, too deep, alias problems) are added to diags with
 * `file` (interned, kept by the caller) and counted in *n_errors. A syntax error ends the stream: libyaml
 * cannot resume after one; the other errors only drop their document.
 */
void ytree_read_stream(FILE *in, const char *file, struct xm_diags *diags, int *n_errors, ydoc_fn fn, void *arg);

/* The same, from memory (tests, fuzzing). */
void ytree_read_string(const char *text, size_t len, const char *file, struct xm_diags *diags, int *n_errors,
		       ydoc_fn fn, void *arg);

/*
 * The value of `key` in a mapping, following "<<" merge keys; NULL when absent or when map is not a mapping.
 * When the key appears twice, *dup (if given) is set to the second key node (the first one wins).
 */
const struct ynode *ymap_get(const struct ynode *map, const char *key, const struct ynode **dup);

/* True for NULL, and for plain "", "~", "null", "Null", "NULL" scalars. */
bool ynode_is_null(const struct ynode *n);

/* "a mapping", "a sequence", "null", or the scalar as a quoted string ("string \"80\"" when quoted). */
const char *ynode_describe(const struct ynode *n, char *buf, size_t size);

#endif
