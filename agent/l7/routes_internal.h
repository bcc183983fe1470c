/* SPDX-License-Identifier: Apache-2.0 */
/* What the route table's files share: freeing compiled parts, text of a match for messages and rendering. */
#ifndef XMESH_L7_ROUTES_INTERNAL_H
#define XMESH_L7_ROUTES_INTERNAL_H

#include "l7/routes.h"

/* "exact", "prefix", "regex" or "any". */
const char *l7_match_kind_name(enum l7_str_match_kind kind);

/* Case-insensitive equality of s[0..len) and the NUL-terminated z. */
bool l7_ieq(const char *s, size_t len, const char *z);

#endif
