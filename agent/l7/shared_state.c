// SPDX-License-Identifier: Apache-2.0
/*
 * The registry of worker-shared state (shared_state.h): a hash of keys → objects. Small (one object per
 * destination and rate limit), touched once per apply.
 */
#include <stdlib.h>
#include <string.h>

#include "l7/shared_state.h"

#define BUCKETS 1024

struct l7_shared_registry {
	struct l7_shared *buckets[BUCKETS];
	size_t n;
};

static size_t key_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h % BUCKETS;
}

struct l7_shared *l7_shared_new(const char *key)
{
	size_t len = strlen(key);
	struct l7_shared *s = calloc(1, sizeof(*s) + len + 1);

	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	for (size_t i = 0; i < L7_SHARED_SLOTS; i++)
		atomic_init(&s->v[i], 0);
	memcpy(s->key, key, len + 1);
	return s;
}

void l7_shared_put(struct l7_shared *s)
{
	if (!s)
		return;
	/* registered is written only on the control thread before the table is published, or after the workers
	 * stopped (registry free): never concurrently with this read. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1 && !s->registered)
		free(s);
}

struct l7_shared_registry *l7_shared_registry_new(void)
{
	return calloc(1, sizeof(struct l7_shared_registry));
}

void l7_shared_adopt(struct l7_shared_registry *r, struct l7_shared **slot)
{
	struct l7_shared *fresh = *slot, *s;
	size_t b;

	if (!fresh || fresh->registered)
		return;
	b = key_hash(fresh->key);
	for (s = r->buckets[b]; s; s = s->next)
		if (!strcmp(s->key, fresh->key)) {
			atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
			*slot = s;
			l7_shared_put(fresh);
			return;
		}
	fresh->registered = true;
	fresh->next = r->buckets[b];
	r->buckets[b] = fresh;
	r->n++;
}

void l7_shared_sweep(struct l7_shared_registry *r)
{
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct l7_shared **pp = &r->buckets[b]; *pp;) {
			struct l7_shared *s = *pp;

			/* 0 stays 0: this thread takes references to a registered object, and a worker only through a
			 * table that holds one (an upstream connection's, l7/upstream.c). */
			if (atomic_load_explicit(&s->refs, memory_order_acquire)) {
				pp = &s->next;
				continue;
			}
			*pp = s->next;
			r->n--;
			free(s);
		}
}

void l7_shared_registry_free(struct l7_shared_registry *r)
{
	if (!r)
		return;
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct l7_shared *s = r->buckets[b], *next; s; s = next) {
			next = s->next;
			s->registered = false;
			if (!atomic_load_explicit(&s->refs, memory_order_acquire))
				free(s);
		}
	free(r);
}

size_t l7_shared_registered(const struct l7_shared_registry *r)
{
	return r->n;
}
