/* SPDX-License-Identifier: Apache-2.0 */
/* libyaml events → one node tree per document, with marks, bounded depth and alias expansion. */
#include "config/yaml_tree.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/diag.h"
#include "core/fnv.h"
#include "core/grow.h"

#define MERGE_MAX_DEPTH 16 /* "<<" chains: plenty for hand-written YAML, bounded for hostile YAML */

struct anchor {
	char *name;
	struct ynode *node;
};

/* Open addressing, linear probing; a redefined anchor replaces the old one, as YAML says. */
struct anchor_table {
	struct anchor *slots;
	size_t cap; /* power of two, or 0 */
	size_t used;
};

struct builder {
	const char *file;
	struct xm_diags *diags;
	int *n_errors;
	ydoc_fn fn;
	void *arg;

	struct ydoc doc;
	struct anchor_table anchors;
	struct ynode *stack[YTREE_MAX_DEPTH];
	char *stack_anchor[YTREE_MAX_DEPTH]; /* a collection's anchor, defined once the collection is complete */
	size_t depth;
	size_t alias_nodes;
	bool in_doc;
	bool failed; /* this document had an error: skip its remaining events */
};

static uint64_t hash_str(const char *s)
{
	return xm_fnv1a64(XM_FNV1A64_BASIS, s, strlen(s));
}

static void anchors_clear(struct anchor_table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->slots[i].name);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

static struct anchor *anchors_slot(const struct anchor_table *t, const char *name)
{
	size_t i = (size_t)hash_str(name) & (t->cap - 1);

	while (t->slots[i].name && strcmp(t->slots[i].name, name) != 0)
		i = (i + 1) & (t->cap - 1);
	return &t->slots[i];
}

static int anchors_put(struct anchor_table *t, const char *name, struct ynode *node)
{
	struct anchor *slot;

	if ((t->used + 1) * 2 > t->cap) {
		struct anchor_table bigger = { .cap = t->cap ? t->cap * 2 : 16 };

		bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
		if (!bigger.slots)
			return -ENOMEM;
		for (size_t i = 0; i < t->cap; i++) {
			if (t->slots[i].name) {
				*anchors_slot(&bigger, t->slots[i].name) = t->slots[i];
				bigger.used++;
			}
		}
		free(t->slots);
		*t = bigger;
	}
	slot = anchors_slot(t, name);
	if (!slot->name) {
		slot->name = strdup(name);
		if (!slot->name)
			return -ENOMEM;
		t->used++;
	}
	slot->node = node;
	return 0;
}

static struct ynode *anchors_get(const struct anchor_table *t, const char *name)
{
	if (!t->cap)
		return NULL;
	return anchors_slot(t, name)->node;
}

static void doc_free(struct ydoc *doc)
{
	for (size_t i = 0; i < doc->n_all; i++) {
		free(doc->all[i]->str);
		free(doc->all[i]->kids);
		free(doc->all[i]);
	}
	free(doc->all);
	memset(doc, 0, sizeof(*doc));
}

static void report(struct builder *b, const yaml_mark_t *mark, const char *fmt, const char *arg)
{
	struct xm_loc loc = { .file = b->file, .line = (int)mark->line + 1, .col = (int)mark->column + 1 };

	diags_add(b->diags, &loc, fmt, arg ? arg : "");
	(*b->n_errors)++;
}

/* Drop the document being built; its remaining events are skipped up to DOCUMENT-END. */
static void fail_doc(struct builder *b)
{
	for (size_t i = 0; i < b->depth; i++) {
		free(b->stack_anchor[i]);
		b->stack_anchor[i] = NULL;
	}
	b->depth = 0;
	b->failed = true;
}

static struct ynode *node_new(struct builder *b, enum ynode_kind kind, const yaml_mark_t *mark)
{
	struct ynode *n;

	if (XM_GROW(b->doc.all, b->doc.cap_all, b->doc.n_all + 1))
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->kind = kind;
	n->line = (int)mark->line + 1;
	n->col = (int)mark->column + 1;
	n->weight = 1;
	b->doc.all[b->doc.n_all++] = n;
	return n;
}

static int attach(struct builder *b, struct ynode *child)
{
	struct ynode *parent;

	if (b->depth == 0) {
		b->doc.root = child;
		return 0;
	}
	parent = b->stack[b->depth - 1];
	if (XM_GROW(parent->kids, parent->cap, parent->n + 1))
		return -ENOMEM;
	parent->kids[parent->n++] = child;
	return 0;
}

static bool tag_is_typed(const yaml_char_t *tag)
{
	static const char *const typed[] = {
		YAML_INT_TAG,
		YAML_BOOL_TAG,
		YAML_NULL_TAG,
		YAML_FLOAT_TAG,
	};

	for (size_t i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
		if (strcmp((const char *)tag, typed[i]) == 0)
			return true;
	}
	return false;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
	struct ynode *n = node_new(b, YNODE_SCALAR, &ev->start_mark);
	size_t len = ev->data.scalar.length;

	if (!n)
		return -ENOMEM;
	n->str = malloc(len + 1);
	if (!n->str)
		return -ENOMEM;
	memcpy(n->str, ev->data.scalar.value, len);
	n->str[len] = '\0';
	n->len = len;
	if (ev->data.scalar.tag)
		n->plain = tag_is_typed(ev->data.scalar.tag);
	else
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	if (ev->data.scalar.anchor && anchors_put(&b->anchors, (const char *)ev->data.scalar.anchor, n))
		return -ENOMEM;
	return attach(b, n);
}

static int on_collection_start(struct builder *b, const yaml_event_t *ev, enum ynode_kind kind)
{
	const yaml_char_t *anchor = kind == YNODE_SEQ ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
	struct ynode *n;

	if (b->depth == YTREE_MAX_DEPTH) {
		/* Stop the whole stream: libyaml's own cost grows with the square of the flow nesting depth. */
		report(b, &ev->start_mark, "YAML nesting deeper than %s levels; the rest of the file is not read",
		       "128");
		fail_doc(b);
		return -E2BIG;
	}
	n = node_new(b, kind, &ev->start_mark);
	if (!n || attach(b, n))
		return -ENOMEM;
	b->stack_anchor[b->depth] = NULL;
	if (anchor) {
		b->stack_anchor[b->depth] = strdup((const char *)anchor);
		if (!b->stack_anchor[b->depth])
			return -ENOMEM;
	}
	b->stack[b->depth++] = n;
	return 0;
}

static int on_collection_end(struct builder *b)
{
	struct ynode *n = b->stack[--b->depth];
	char *anchor = b->stack_anchor[b->depth];
	int err = 0;

	for (size_t i = 0; i < n->n; i++) {
		n->weight += n->kids[i]->weight;
		if (n->weight > SIZE_MAX / 2)
			n->weight = SIZE_MAX / 2;
	}
	/* Defined only now, so that an alias inside the collection cannot refer to it: no cycles. */
	if (anchor)
		err = anchors_put(&b->anchors, anchor, n);
	free(anchor);
	b->stack_anchor[b->depth] = NULL;
	return err;
}

static int on_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	struct ynode *target = anchors_get(&b->anchors, name);

	if (!target) {
		report(b, &ev->start_mark, "YAML alias *%s refers to no anchor defined before it", name);
		fail_doc(b);
		return 0;
	}
	b->alias_nodes += target->weight;
	if (b->alias_nodes > YTREE_MAX_ALIAS_NODES) {
		report(b, &ev->start_mark, "YAML aliases expand to more than %s nodes in this document", "1048576");
		fail_doc(b);
		return 0;
	}
	return attach(b, target);
}

static void doc_begin(struct builder *b)
{
	memset(&b->doc, 0, sizeof(b->doc));
	anchors_clear(&b->anchors);
	b->depth = 0;
	b->alias_nodes = 0;
	b->failed = false;
	b->in_doc = true;
}

static void doc_end(struct builder *b)
{
	if (!b->failed && b->fn)
		b->fn(b->arg, &b->doc);
	fail_doc(b); /* releases pending anchors of unfinished collections, if any */
	doc_free(&b->doc);
	anchors_clear(&b->anchors);
	b->in_doc = false;
}

static int on_event(struct builder *b, const yaml_event_t *ev)
{
	/* After an error in a document, its remaining events are dropped up to DOCUMENT-END. */
	if (b->failed && ev->type != YAML_DOCUMENT_START_EVENT && ev->type != YAML_DOCUMENT_END_EVENT)
		return 0;
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		doc_begin(b);
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		doc_end(b);
		return 0;
	case YAML_SCALAR_EVENT:
		return on_scalar(b, ev);
	case YAML_SEQUENCE_START_EVENT:
		return on_collection_start(b, ev, YNODE_SEQ);
	case YAML_MAPPING_START_EVENT:
		return on_collection_start(b, ev, YNODE_MAP);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return b->depth ? on_collection_end(b) : 0;
	case YAML_ALIAS_EVENT:
		return on_alias(b, ev);
	default:
		return 0;
	}
}

static void report_parser_error(struct builder *b, const yaml_parser_t *p)
{
	char msg[sizeof(((struct xm_diag *)0)->msg)];
	yaml_mark_t mark = p->problem_mark;
	const char *problem = p->problem ? p->problem : "unknown error";

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		snprintf(msg, sizeof(msg), "out of memory while parsing YAML");
		break;
	case YAML_READER_ERROR:
		/* Reader errors have a byte offset, not a mark; the parser's position is the best line we have. */
		mark = p->mark;
		if (p->problem_value != -1)
			snprintf(msg, sizeof(msg), "invalid input: %s (byte 0x%02x at offset %zu)", problem,
				 (unsigned)p->problem_value & 0xff, p->problem_offset);
		else
			snprintf(msg, sizeof(msg), "invalid input: %s at offset %zu", problem, p->problem_offset);
		break;
	default:
		if (p->context)
			snprintf(msg, sizeof(msg), "YAML syntax error: %s (%s at line %zu)", problem, p->context,
				 p->context_mark.line + 1);
		else
			snprintf(msg, sizeof(msg), "YAML syntax error: %s", problem);
		break;
	}
	report(b, &mark, "%s", msg);
}

static void read_events(yaml_parser_t *parser, struct builder *b)
{
	yaml_event_t ev;
	bool done = false;

	while (!done) {
		int err;

		if (!yaml_parser_parse(parser, &ev)) {
			report_parser_error(b, parser);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		err = on_event(b, &ev);
		if (err) {
			if (err == -ENOMEM)
				report(b, &ev.start_mark, "%s", "out of memory while reading YAML");
			yaml_event_delete(&ev);
			break;
		}
		yaml_event_delete(&ev);
	}
	if (b->in_doc) {
		fail_doc(b);
		doc_free(&b->doc);
	}
	anchors_clear(&b->anchors);
}

void ytree_read_stream(FILE *in, const char *file, struct xm_diags *diags, int *n_errors, ydoc_fn fn, void *arg)
{
	struct builder b = { .file = file, .diags = diags, .n_errors = n_errors, .fn = fn, .arg = arg };
	yaml_parser_t parser;

	if (!yaml_parser_initialize(&parser)) {
		yaml_mark_t none = { 0 };

		report(&b, &none, "%s", "out of memory while reading YAML");
		return;
	}
	yaml_parser_set_input_file(&parser, in);
	read_events(&parser, &b);
	yaml_parser_delete(&parser);
}

void ytree_read_string(const char *text, size_t len, const char *file, struct xm_diags *diags, int *n_errors,
		       ydoc_fn fn, void *arg)
{
	struct builder b = { .file = file, .diags = diags, .n_errors = n_errors, .fn = fn, .arg = arg };
	yaml_parser_t parser;

	if (!yaml_parser_initialize(&parser)) {
		yaml_mark_t none = { 0 };

		report(&b, &none, "%s", "out of memory while reading YAML");
		return;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	read_events(&parser, &b);
	yaml_parser_delete(&parser);
}

static const struct ynode *map_get_depth(const struct ynode *map, const char *key, const struct ynode **dup, int depth)
{
	const struct ynode *found = NULL;
	const struct ynode *merge = NULL;
	size_t klen = strlen(key);

	if (!map || map->kind != YNODE_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct ynode *k = map->kids[i];

		if (k->kind != YNODE_SCALAR)
			continue;
		if (k->len == klen && memcmp(k->str, key, klen) == 0) {
			if (!found) {
				found = map->kids[i + 1];
			} else if (dup && !*dup) {
				*dup = k;
			}
		} else if (k->plain && k->len == 2 && memcmp(k->str, "<<", 2) == 0) {
			merge = map->kids[i + 1];
		}
	}
	if (found || !merge || depth >= MERGE_MAX_DEPTH)
		return found;
	/* YAML 1.1 merge keys: a mapping, or a sequence of mappings where earlier ones win. */
	if (merge->kind == YNODE_MAP)
		return map_get_depth(merge, key, NULL, depth + 1);
	if (merge->kind == YNODE_SEQ) {
		for (size_t i = 0; i < merge->n; i++) {
			found = map_get_depth(merge->kids[i], key, NULL, depth + 1);
			if (found)
				return found;
		}
	}
	return NULL;
}

const struct ynode *ymap_get(const struct ynode *map, const char *key, const struct ynode **dup)
{
	if (dup)
		*dup = NULL;
	return map_get_depth(map, key, dup, 0);
}

bool ynode_is_null(const struct ynode *n)
{
	if (!n)
		return true;
	if (n->kind != YNODE_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0 ||
	       strcmp(n->str, "NULL") == 0;
}

const char *ynode_describe(const struct ynode *n, char *buf, size_t size)
{
	char q[96];

	if (!n || ynode_is_null(n))
		snprintf(buf, size, "null");
	else if (n->kind == YNODE_MAP)
		snprintf(buf, size, "a mapping");
	else if (n->kind == YNODE_SEQ)
		snprintf(buf, size, "a sequence");
	else
		snprintf(buf, size, "%s%s", n->plain ? "" : "string ", diag_quote(q, sizeof(q), n->str, 64));
	return buf;
}
