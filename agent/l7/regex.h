/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio's regexes (RE2 syntax, full match) on PCRE2: patterns are checked against the RE2 grammar first, so
 * what PCRE2 would read differently or RE2 refuses (backreferences, lookaround, ...) is a config error.
 */
#ifndef XMESH_L7_REGEX_H
#define XMESH_L7_REGEX_H

#include <stdbool.h>
#include <stddef.h>

struct l7_regex;

/*
 * 0 when pattern is RE2 syntax that PCRE2 compiles with the same meaning; else -EINVAL with why in err
 * ("lookahead (?= is not RE2 syntax", "missing )", ...).
 */
int l7_regex_check(const char *pattern, char *err, size_t err_size);

/* The pattern compiled to match whole strings (anchored at both ends); NULL with err set on failure. */
struct l7_regex *l7_regex_compile(const char *pattern, bool caseless, char *err, size_t err_size);

/* True when all of s[0..len) matches. Safe from any thread. */
bool l7_regex_match(const struct l7_regex *re, const char *s, size_t len);

void l7_regex_free(struct l7_regex *re);

#endif
