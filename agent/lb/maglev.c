/* SPDX-License-Identifier: Apache-2.0 */
/* Maglev lookup-table population (NSDI'16 §3.4, "Pseudocode 1"), independent of the caller's order. */
#include "lb/maglev.h"

#include <errno.h>
#include <stdlib.h>

#include "lb/hash.h"

/* Seeds of the two independent hashes of a key (paper: h1 → offset, h2 → skip). Part of the output. */
#define MAGLEV_SEED_OFFSET 0x6d61676c65762d6fULL /* "maglev-o" */
#define MAGLEV_SEED_SKIP   0x6d61676c65762d73ULL /* "maglev-s" */
#define MAGLEV_SEED_KEY	   0x786d6573682d6b65ULL /* "xmesh-ke" */

#define MAGLEV_EMPTY UINT32_MAX /* never an index: n < m <= UINT32_MAX */

/* One backend's walk through its permutation: slot_j = (offset + j * skip) mod m, j = 0..m-1. */
struct maglev_walk {
	uint64_t key;
	uint32_t idx;  /* position in the caller's array */
	uint32_t pos;  /* next slot of the permutation to try */
	uint32_t skip; /* 1..m-1: coprime with a prime m, so the walk visits every slot once in m steps */
	uint32_t left; /* slots of the permutation not yet visited; bounds the walk */
};

bool maglev_is_prime(uint32_t m)
{
	if (m < 2)
		return false;
	if (m < 4)
		return true;
	if (m % 2 == 0 || m % 3 == 0)
		return false;
	/* i * i in 64 bits: near UINT32_MAX, 32-bit i * i would wrap before the loop ends. */
	for (uint64_t i = 5; i * i <= m; i += 6) {
		if (m % i == 0 || m % (i + 2) == 0)
			return false;
	}
	return true;
}

uint64_t maglev_key_of(const void *bytes, size_t len)
{
	return xm_hash64(bytes, len, MAGLEV_SEED_KEY);
}

/* Orders by key, then caller position so that duplicate keys still sort deterministically. */
static int maglev_walk_cmp(const void *a, const void *b)
{
	const struct maglev_walk *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Hashes the key's bytes in a fixed (little-endian) order so that the permutation is host-independent. */
static uint64_t maglev_hash_key(uint64_t key, uint64_t seed)
{
	uint8_t b[8];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(key >> (8 * i));
	return xm_hash64(b, sizeof(b), seed);
}

/* Advances to the next slot of the permutation; pos + skip could exceed 32 bits near UINT32_MAX. */
static inline uint32_t maglev_step(uint32_t pos, uint32_t skip, uint32_t m)
{
	return pos >= m - skip ? pos - (m - skip) : pos + skip;
}

int maglev_build_table(const uint64_t *backend_keys, size_t n, uint32_t *table, uint32_t m)
{
	struct maglev_walk *walks;
	uint32_t filled = 0;
	int err = 0;

	if (!backend_keys || !table || n == 0 || n >= m || !maglev_is_prime(m))
		return -EINVAL;

	walks = calloc(n, sizeof(*walks));
	if (!walks)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		walks[i].key = backend_keys[i];
		walks[i].idx = (uint32_t)i;
	}
	/* Turn order decides who wins a contested slot: tie it to the keys, not to the caller's order. */
	qsort(walks, n, sizeof(*walks), maglev_walk_cmp);
	for (size_t i = 0; i < n; i++) {
		walks[i].pos = (uint32_t)(maglev_hash_key(walks[i].key, MAGLEV_SEED_OFFSET) % m);
		walks[i].skip = (uint32_t)(maglev_hash_key(walks[i].key, MAGLEV_SEED_SKIP) % (m - 1) + 1);
		walks[i].left = m;
	}
	for (uint32_t s = 0; s < m; s++)
		table[s] = MAGLEV_EMPTY;

	/*
	 * Round-robin: each backend in turn takes the next empty slot of its permutation. Every backend thus
	 * holds floor(m/n) or ceil(m/n) slots. A walk skips slots taken before it; at fill fraction f a probe
	 * hits an empty slot with probability ~(1 - f), so all walks together make ~m ln m probes, and no
	 * walk ever makes more than m (the `left` bound, which only a broken invariant could reach).
	 */
	while (filled < m) {
		for (size_t i = 0; i < n && filled < m; i++) {
			struct maglev_walk *w = &walks[i];

			while (w->left && table[w->pos] != MAGLEV_EMPTY) {
				w->pos = maglev_step(w->pos, w->skip, m);
				w->left--;
			}
			if (!w->left) {
				/* Unreachable for a prime m: a full-cycle walk meets every empty slot. */
				err = -EINVAL;
				goto out;
			}
			table[w->pos] = w->idx;
			w->pos = maglev_step(w->pos, w->skip, m);
			w->left--;
			filled++;
		}
	}
out:
	free(walks);
	return err;
}
