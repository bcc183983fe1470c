// SPDX-License-Identifier: Apache-2.0
#include "kube/stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/model.h"

void kube_stream_init(struct kube_stream *s, kube_event_fn fn, void *arg)
{
	memset(s, 0, sizeof(*s));
	s->fn = fn;
	s->arg = arg;
}

void kube_stream_free(struct kube_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
}

bool kube_stream_partial(const struct kube_stream *s)
{
	for (size_t i = 0; i < s->len; i++)
		if (s->buf[i] != ' ' && s->buf[i] != '\t' && s->buf[i] != '\r')
			return true;
	return s->overlong;
}

const char *ynode_str(const struct ynode *map, const char *key)
{
	const struct ynode *v = ymap_get(map, key, NULL);

	if (!v || v->kind != YNODE_SCALAR || ynode_is_null(v) || strlen(v->str) != v->len)
		return NULL;
	return v->str;
}

bool ynode_int(const struct ynode *map, const char *key, long long *out)
{
	const struct ynode *v = ymap_get(map, key, NULL);
	char *end;

	if (!v || v->kind != YNODE_SCALAR || !v->plain || !v->len)
		return false;
	errno = 0;
	*out = strtoll(v->str, &end, 10);
	return !errno && *end == '\0';
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

struct line_ctx {
	struct kube_stream *s;
	int docs;
	bool stop;
};

static void bad(struct kube_stream *s, const char *why)
{
	s->bad_lines++;
	copy_str(s->last_error, sizeof(s->last_error), why);
}

static void on_doc(void *arg, const struct ydoc *doc)
{
	static const char *const names[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR" };
	struct line_ctx *c = arg;
	struct kube_event ev = { 0 };
	const struct ynode *md;
	const char *type;
	size_t i;
	long long code;

	if (c->docs++ || c->stop) {
		bad(c->s, "more than one JSON value on a line");
		return;
	}
	if (!doc->root || doc->root->kind != YNODE_MAP) {
		bad(c->s, "an event is a JSON object");
		return;
	}
	type = ynode_str(doc->root, "type");
	ev.object = ymap_get(doc->root, "object", NULL);
	if (!type) {
		bad(c->s, "event without a type");
		return;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(type, names[i]))
			break;
	if (i == sizeof(names) / sizeof(names[0])) {
		bad(c->s, "unknown event type");
		return;
	}
	ev.type = (enum kube_event_type)i;
	if (!ev.object || ev.object->kind != YNODE_MAP) {
		bad(c->s, "event without an object");
		return;
	}
	md = ymap_get(ev.object, "metadata", NULL);
	copy_str(ev.resource_version, sizeof(ev.resource_version), ynode_str(md, "resourceVersion"));
	copy_str(ev.ns, sizeof(ev.ns), ynode_str(md, "namespace"));
	copy_str(ev.name, sizeof(ev.name), ynode_str(md, "name"));
	if (ev.type == KUBE_EV_ERROR) {
		ev.code = ynode_int(ev.object, "code", &code) && code > 0 && code < 1000 ? (int)code : 0;
		copy_str(ev.message, sizeof(ev.message), ynode_str(ev.object, "message"));
	} else if (ev.type != KUBE_EV_BOOKMARK && !ev.name[0]) {
		bad(c->s, "object without metadata.name");
		return;
	}
	c->s->events++;
	if (!c->s->fn(c->s->arg, &ev))
		c->stop = true;
}

/* One line: an event, or a bad line counted and skipped. Returns -ECANCELED when the callback stopped. */
static int decode_line(struct kube_stream *s, const char *line, size_t len)
{
	struct line_ctx c = { .s = s };
	struct xm_diags diags = { 0 };
	int n_errors = 0;
	size_t i;

	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
		;
	if (i == len)
		return 0; /* blank lines (keep-alives) */
	if (line[i] != '{') {
		/* Flow JSON only: a block-YAML "event" is no API server's answer, and its parse costs more. */
		bad(s, "an event is a JSON object");
		return 0;
	}
	ytree_read_string(line, len, "<watch>", &diags, &n_errors, on_doc, &c);
	if (n_errors && !c.docs) {
		char why[256];

		snprintf(why, sizeof(why), "not JSON: %.200s", diags.n ? diags.items[0].msg : "parse error");
		bad(s, why);
	}
	diags_free(&diags);
	return c.stop ? -ECANCELED : 0;
}

int kube_stream_feed(struct kube_stream *s, const char *data, size_t len)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		int err = 0;

		if (s->overlong) {
			if (nl)
				s->overlong = false;
		} else if (s->len + take > KUBE_STREAM_MAX_LINE) {
			bad(s, "event larger than the line limit");
			s->len = 0;
			s->overlong = !nl;
		} else if (nl && !s->len) {
			err = decode_line(s, data, take); /* the whole line in this chunk: no copy */
		} else {
			if (s->len + take + 1 > s->cap) {
				size_t cap = s->cap ? s->cap : 4096;
				char *b;

				while (cap < s->len + take + 1)
					cap *= 2;
				b = realloc(s->buf, cap);
				if (!b)
					return -ENOMEM;
				s->buf = b;
				s->cap = cap;
			}
			memcpy(s->buf + s->len, data, take);
			s->len += take;
			if (nl) {
				err = decode_line(s, s->buf, s->len);
				s->len = 0;
			}
		}
		if (err)
			return err;
		if (!nl)
			break;
		data = nl + 1;
		len -= take + 1;
	}
	return 0;
}
