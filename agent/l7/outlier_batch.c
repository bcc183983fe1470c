// SPDX-License-Identifier: Apache-2.0
/*
 * Batching of upstream HTTP statuses into the kernel's outlier state: per endpoint, the runs seen since the last
 * flush, reduced to the report sequence that leaves the kernel's consecutive counts (and ejections) the same.
 */
#include "l7/outlier_batch.h"

#include <string.h>

void l7_ob_init(struct l7_outlier_batch *b, l7_ob_emit_fn emit, void *ctx)
{
	memset(b, 0, sizeof(*b));
	b->emit = emit;
	b->ctx = ctx;
}

enum l7_ob_kind l7_ob_classify(uint16_t status)
{
	if (status >= 502 && status <= 504)
		return L7_OB_GATEWAY;
	if (status >= 500 && status <= 599)
		return L7_OB_5XX;
	return L7_OB_OK;
}

static const uint16_t kind_status[] = { [L7_OB_OK] = 200, [L7_OB_5XX] = 500, [L7_OB_GATEWAY] = 503 };

static void flush_entry(struct l7_outlier_batch *b, struct l7_ob_entry *e)
{
	uint32_t svc_id = (uint32_t)(e->key >> 32), backend_id = (uint32_t)e->key;

	if (!e->n_seg)
		return;
	for (uint32_t i = 0; i < e->n_seg; i++) {
		uint32_t n = e->seg[i].kind == L7_OB_OK ? 1 : e->seg[i].count;

		for (uint32_t k = 0; k < n; k++)
			b->emit(b->ctx, svc_id, backend_id, kind_status[e->seg[i].kind]);
	}
	e->dirty = e->seg[e->n_seg - 1].kind != L7_OB_OK;
	e->n_seg = 0;
	b->pending--;
}

static void remove_entry(struct l7_outlier_batch *b, uint32_t i)
{
	b->e[i] = b->e[--b->n];
}

static struct l7_ob_entry *find(struct l7_outlier_batch *b, uint64_t key)
{
	for (uint32_t i = 0; i < b->n; i++)
		if (b->e[i].key == key)
			return &b->e[i];
	return NULL;
}

static struct l7_ob_entry *find_or_add(struct l7_outlier_batch *b, uint64_t key)
{
	struct l7_ob_entry *e = find(b, key);

	if (e)
		return e;
	if (b->n == L7_OB_ENTRIES) {
		l7_ob_flush(b); /* drops the clean entries */
		if (b->n == L7_OB_ENTRIES)
			remove_entry(b, 0); /* forgets that it reported errors: its next OK goes unreported */
	}
	e = &b->e[b->n++];
	memset(e, 0, sizeof(*e));
	e->key = key;
	return e;
}

/* Index of the last OK segment, or -1: the runs after an OK start from a known zero. */
static int last_ok(const struct l7_ob_entry *e)
{
	for (int i = (int)e->n_seg - 1; i >= 0; i--)
		if (e->seg[i].kind == L7_OB_OK)
			return i;
	return -1;
}

static void push(struct l7_outlier_batch *b, struct l7_ob_entry *e, enum l7_ob_kind kind)
{
	if (e->n_seg && e->seg[e->n_seg - 1].kind == kind) {
		e->seg[e->n_seg - 1].count++;
		return;
	}
	if (e->n_seg == L7_OB_SEGS)
		flush_entry(b, e);
	if (!e->n_seg)
		b->pending++;
	e->seg[e->n_seg++] = (struct l7_ob_seg){ .kind = (uint8_t)kind, .count = 1 };
}

/* Whether the error runs at the end of the entry reach a threshold by themselves. */
static bool run_reaches_threshold(const struct l7_ob_entry *e)
{
	uint32_t c5 = 0, gw = 0;
	bool gw_run = true;

	for (int i = (int)e->n_seg - 1; i >= 0 && e->seg[i].kind != L7_OB_OK; i--) {
		c5 += e->seg[i].count;
		if (e->seg[i].kind == L7_OB_GATEWAY && gw_run)
			gw += e->seg[i].count;
		else
			gw_run = false;
	}
	return (e->policy.consecutive_gateway && gw >= e->policy.consecutive_gateway) ||
	       (e->policy.consecutive_5xx && c5 >= e->policy.consecutive_5xx);
}

bool l7_ob_note(struct l7_outlier_batch *b, uint32_t svc_id, uint32_t backend_id, const struct l7_ob_policy *p,
		uint16_t status)
{
	uint64_t key = (uint64_t)svc_id << 32 | backend_id;
	enum l7_ob_kind kind = l7_ob_classify(status);
	struct l7_ob_entry *e;
	int ok;

	if (kind == L7_OB_OK) {
		/* The healthy path: nothing to end, nothing to report. */
		e = b->n ? find(b, key) : NULL;
		if (!e || (!e->n_seg && !e->dirty))
			return b->pending;
		if (e->n_seg && e->seg[e->n_seg - 1].kind == L7_OB_OK)
			return b->pending;
		ok = last_ok(e);
		if (ok >= 0) {
			/* Errors since a known zero that reached no threshold (or they would be reported): they end
			 * without effect, like the OK that ends them. */
			e->n_seg = (uint32_t)ok + 1;
			return b->pending;
		}
		push(b, e, L7_OB_OK);
		return b->pending;
	}
	e = find_or_add(b, key);
	e->policy = *p;
	push(b, e, kind);
	if (run_reaches_threshold(e))
		flush_entry(b, e);
	return b->pending;
}

void l7_ob_flush(struct l7_outlier_batch *b)
{
	for (uint32_t i = 0; i < b->n;) {
		flush_entry(b, &b->e[i]);
		if (!b->e[i].dirty)
			remove_entry(b, i);
		else
			i++;
	}
}

void l7_ob_connect_outcome(struct l7_outlier_batch *b, uint32_t svc_id, uint32_t backend_id, bool split, bool failed)
{
	uint64_t key = (uint64_t)svc_id << 32 | backend_id;
	struct l7_ob_entry *e = b->n ? find(b, key) : NULL;

	if (e)
		flush_entry(b, e);
	if (split)
		return;
	/* Unsplit, a local-origin failure extends the kernel's HTTP runs and a success ends them. */
	if (failed) {
		if (!e)
			e = find_or_add(b, key);
		e->dirty = true;
	} else if (e) {
		e->dirty = false;
	}
}
