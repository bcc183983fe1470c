/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text built into a caller's fixed buffer, snprintf-like: every byte put is counted, those past the end are not
 * stored, and the result is NUL-terminated. For the proxy's per-request lines (access log, spans), which must
 * not allocate; a growable string is core/strbuf.h.
 *
 *	struct fixbuf o;
 *
 *	fb_init(&o, buf, sizeof(buf));
 *	fb_puts(&o, "status=");
 *	fb_put_u64(&o, 200);
 *	return fb_finish(&o); // what the whole text needs, NUL excluded: >= sizeof(buf) means it was cut
 */
#ifndef XMESH_FIXBUF_H
#define XMESH_FIXBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fixbuf {
	char *buf;
	size_t cap; /* bytes it may store: the buffer's size less the NUL */
	size_t len; /* bytes put, stored or not */
};

/* buf holds size bytes (size 0: nothing is stored, buf may be NULL); it reads "" at once. */
void fb_init(struct fixbuf *o, char *buf, size_t size);

/* Inline: the access log puts a hundred pieces a request. */
static inline void fb_put(struct fixbuf *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;

		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static inline void fb_puts(struct fixbuf *o, const char *s)
{
	fb_put(o, s, strlen(s));
}

/* v in decimal. */
void fb_put_u64(struct fixbuf *o, uint64_t v);
/* NUL-terminates what was stored; returns len, the length the whole text needs. */
size_t fb_finish(struct fixbuf *o);

#endif
