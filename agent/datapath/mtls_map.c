// SPDX-License-Identifier: Apache-2.0
#include "datapath/mtls_map.h"

#include <stddef.h>

#include "datapath/map_sync.h"

static struct map_sync_table view(const struct xm_mtls_table *t)
{
	return (struct map_sync_table){ .items = t->items,
					.n = t->n,
					.stride = sizeof(struct xm_mtls_entry),
					.key_len = sizeof(struct xm_mtls_key),
					.val_off = offsetof(struct xm_mtls_entry, val),
					.val_len = sizeof(struct xm_mtls_policy) };
}

int mtls_map_sync(int fd, const char *what, const struct xm_mtls_table *old, const struct xm_mtls_table *next)
{
	struct map_sync_table o = old ? view(old) : (struct map_sync_table){ 0 }, n = view(next);

	return map_sync(fd, what, old ? &o : NULL, &n);
}
