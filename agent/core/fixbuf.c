// SPDX-License-Identifier: Apache-2.0
#include "core/fixbuf.h"

void fb_init(struct fixbuf *o, char *buf, size_t size)
{
	o->buf = size ? buf : NULL; /* NULL: not one byte may be written, not even the NUL */
	o->cap = size ? size - 1 : 0;
	o->len = 0;
	if (o->buf)
		buf[0] = '\0';
}

void fb_put_u64(struct fixbuf *o, uint64_t v)
{
	char tmp[20]; /* UINT64_MAX has 20 digits */
	size_t n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	fb_put(o, tmp + sizeof(tmp) - n, n);
}

size_t fb_finish(struct fixbuf *o)
{
	if (o->buf)
		o->buf[o->len < o->cap ? o->len : o->cap] = '\0';
	return o->len;
}
