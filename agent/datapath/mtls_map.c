// SPDX-License-Identifier: Apache-2.0
#include "datapath/mtls_map.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>

#include "core/log.h"

static int entry_cmp(const struct xm_mtls_entry *a, const struct xm_mtls_entry *b)
{
	return memcmp(&a->key, &b->key, sizeof(a->key));
}

int mtls_map_sync(int fd, const char *what, const struct xm_mtls_table *old, const struct xm_mtls_table *next)
{
	int err = 0;
	struct xm_mtls_key k, *prev = NULL, nk;
	size_t i, j;

	/* New and changed entries. */
	for (i = 0; i < next->n; i++) {
		const struct xm_mtls_entry *e = &next->items[i];
		const struct xm_mtls_entry *was = old ? mtls_table_find(old, &e->key) : NULL;

		if (was && !memcmp(&was->val, &e->val, sizeof(e->val)))
			continue;
		if (bpf_map_update_elem(fd, &e->key, &e->val, BPF_ANY)) {
			log_warn("%s update: %s", what, strerror(errno));
			err = -EIO;
		}
	}
	/* Then removals: a port that loses its own entry falls back to the pod's, already new. */
	if (old) {
		for (i = 0, j = 0; i < old->n; i++) {
			while (j < next->n && entry_cmp(&next->items[j], &old->items[i]) < 0)
				j++;
			if (j < next->n && !entry_cmp(&next->items[j], &old->items[i]))
				continue;
			if (bpf_map_delete_elem(fd, &old->items[i].key) && errno != ENOENT) {
				log_warn("%s delete: %s", what, strerror(errno));
				err = -EIO;
			}
		}
	} else {
		while (bpf_map_get_next_key(fd, prev, &nk) == 0) {
			k = nk;
			prev = &k;
			if (mtls_table_find(next, &k))
				continue;
			/* Deleting the current key restarts the walk from the first: prev must not name it. */
			if (bpf_map_delete_elem(fd, &k) && errno != ENOENT)
				err = -EIO;
			prev = NULL;
		}
	}
	return err;
}
