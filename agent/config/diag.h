/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diagnostics: collecting "file:line:col: message" errors while reading the config, and printing them.
 * A diagnostic's loc.file points into the config's interned file names: print before config_free().
 */
#ifndef XMESH_CONFIG_DIAG_H
#define XMESH_CONFIG_DIAG_H

#include <stddef.h>

#include "config/model.h"

/* Append one diagnostic. Returns 0, or -ENOMEM when it could not be stored (the caller still counts it). */
int diags_add(struct xm_diags *diags, const struct xm_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same, as a warning (not an error: the config still applies). */
int diags_warn(struct xm_diags *diags, const struct xm_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copy s into out as a double-quoted string for a message, escaping control bytes, quotes and backslashes,
 * and shortening it with "..." past max_chars: values come from untrusted YAML and end up on terminals.
 */
const char *diag_quote(char *out, size_t size, const char *s, size_t max_chars);

/* Sort diagnostics by file (in the order of files[]), line, column; stable for equal positions. */
void diags_sort(struct xm_diags *diags, char *const *files, size_t n_files);

#endif
