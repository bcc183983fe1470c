/* SPDX-License-Identifier: Apache-2.0 */
/* A growable string for building replies (status, maps, metrics) and a minimal JSON writer on top. */
#ifndef XMESH_STRBUF_H
#define XMESH_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len, cap;
	bool oom; /* an allocation failed: the content is truncated */
};

void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_puts(struct strbuf *sb, const char *s);
/* s as a JSON string literal, quotes included. */
void sb_json_str(struct strbuf *sb, const char *s);
void sb_free(struct strbuf *sb);

#endif
