/* SPDX-License-Identifier: Apache-2.0 */
/* Diagnostics: append, quote untrusted values, sort by position, print, free. */
#include "config/diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct xm_diag *diag_push(struct xm_diags *diags, const struct xm_loc *loc)
{
	struct xm_diag *items;
	struct xm_diag *d;

	/* The capacity is implicit: 8, then doubled each time n reaches a power of two from 8 on. */
	if (diags->n == 0 || (diags->n >= 8 && (diags->n & (diags->n - 1)) == 0)) {
		size_t cap = diags->n ? diags->n * 2 : 8;

		items = realloc(diags->items, cap * sizeof(*items));
		if (!items)
			return NULL;
		diags->items = items;
	}
	d = &diags->items[diags->n++];
	memset(d, 0, sizeof(*d));
	if (loc)
		d->loc = *loc;
	return d;
}

int diags_add(struct xm_diags *diags, const struct xm_loc *loc, const char *fmt, ...)
{
	struct xm_diag *d = diag_push(diags, loc);
	va_list ap;

	if (!d)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
	va_end(ap);
	return 0;
}

int diags_warn(struct xm_diags *diags, const struct xm_loc *loc, const char *fmt, ...)
{
	struct xm_diag *d = diag_push(diags, loc);
	va_list ap;

	if (!d)
		return -ENOMEM;
	d->warning = true;
	va_start(ap, fmt);
	vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
	va_end(ap);
	return 0;
}

const char *diag_quote(char *out, size_t size, const char *s, size_t max_chars)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	size_t i;

	if (size < 8) {
		if (size)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (i = 0; i < max_chars && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		/* Worst case per byte is 4 output bytes; keep room for `..."` and the NUL. */
		if (o + 4 + 5 > size)
			break;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		} else {
			out[o++] = (char)c;
		}
	}
	if (s[i]) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

struct diag_order {
	size_t file_idx;
	size_t seq;
	const struct xm_diag *d;
};

static int diag_order_cmp(const void *a, const void *b)
{
	const struct diag_order *x = a;
	const struct diag_order *y = b;

	if (x->file_idx != y->file_idx)
		return x->file_idx < y->file_idx ? -1 : 1;
	if (x->d->loc.line != y->d->loc.line)
		return x->d->loc.line < y->d->loc.line ? -1 : 1;
	if (x->d->loc.col != y->d->loc.col)
		return x->d->loc.col < y->d->loc.col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void diags_sort(struct xm_diags *diags, char *const *files, size_t n_files)
{
	struct diag_order *order;
	struct xm_diag *sorted;
	size_t i, f;

	if (diags->n < 2)
		return;
	order = calloc(diags->n, sizeof(*order));
	sorted = calloc(diags->n, sizeof(*sorted));
	if (!order || !sorted)
		goto out; /* unsorted output is still correct output */
	for (i = 0; i < diags->n; i++) {
		order[i].seq = i;
		order[i].d = &diags->items[i];
		order[i].file_idx = n_files;
		for (f = 0; f < n_files && diags->items[i].loc.file; f++) {
			if (files[f] == diags->items[i].loc.file) {
				order[i].file_idx = f;
				break;
			}
		}
	}
	qsort(order, diags->n, sizeof(*order), diag_order_cmp);
	for (i = 0; i < diags->n; i++)
		sorted[i] = *order[i].d;
	memcpy(diags->items, sorted, diags->n * sizeof(*sorted));
out:
	free(order);
	free(sorted);
}

void diags_print(const struct xm_diags *diags, void *stdio_file)
{
	FILE *out = stdio_file;
	size_t i;

	if (!diags || !out)
		return;
	for (i = 0; i < diags->n; i++) {
		const struct xm_diag *d = &diags->items[i];
		const char *file = d->loc.file ? d->loc.file : "<config>";
		const char *kind = d->warning ? "warning: " : "";

		if (d->loc.line > 0)
			fprintf(out, "%s:%d:%d: %s%s\n", file, d->loc.line, d->loc.col, kind, d->msg);
		else
			fprintf(out, "%s: %s%s\n", file, kind, d->msg);
	}
	fflush(out);
}

void diags_free(struct xm_diags *diags)
{
	if (!diags)
		return;
	free(diags->items);
	diags->items = NULL;
	diags->n = 0;
}
