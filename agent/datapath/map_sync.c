// SPDX-License-Identifier: Apache-2.0
#include "datapath/map_sync.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/log.h"

static const void *entry_at(const struct map_sync_table *t, size_t i)
{
	return (const uint8_t *)t->items + i * t->stride;
}

/* The entry of t whose key is key, or NULL. */
static const void *find(const struct map_sync_table *t, const void *key)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(entry_at(t, mid), key, t->key_len);

		if (!c)
			return entry_at(t, mid);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int map_sync(int fd, const char *what, const struct map_sync_table *old, const struct map_sync_table *next)
{
	uint8_t k[64], nk[64];
	void *prev = NULL;
	int err = 0;

	if (next->key_len > sizeof(k))
		return -EINVAL;
	/* New and changed entries. */
	for (size_t i = 0; i < next->n; i++) {
		const uint8_t *e = entry_at(next, i);
		const uint8_t *was = old ? find(old, e) : NULL;

		if (was && !memcmp(was + old->val_off, e + next->val_off, next->val_len))
			continue;
		if (bpf_map_update_elem(fd, e, e + next->val_off, BPF_ANY)) {
			log_warn("%s update: %s", what, strerror(errno));
			err = -EIO;
		}
	}
	/* Then removals: a key that loses its entry falls back (port 0, a shorter prefix) to one already new. */
	if (old) {
		for (size_t i = 0, j = 0; i < old->n; i++) {
			const void *o = entry_at(old, i);

			while (j < next->n && memcmp(entry_at(next, j), o, old->key_len) < 0)
				j++;
			if (j < next->n && !memcmp(entry_at(next, j), o, old->key_len))
				continue;
			if (bpf_map_delete_elem(fd, o) && errno != ENOENT) {
				log_warn("%s delete: %s", what, strerror(errno));
				err = -EIO;
			}
		}
		return err;
	}
	while (bpf_map_get_next_key(fd, prev, nk) == 0) {
		memcpy(k, nk, next->key_len);
		prev = k;
		if (find(next, k))
			continue;
		/* Deleting the current key restarts the walk from the first: prev must not name it. */
		if (bpf_map_delete_elem(fd, k) && errno != ENOENT)
			err = -EIO;
		prev = NULL;
	}
	return err;
}
