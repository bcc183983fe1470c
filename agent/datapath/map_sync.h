/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeps a BPF map equal to a compiled table whose entries are sorted by key (memcmp): the per-pod policy maps
 * (xm_mtls_policy, xm_hbone_dsts, xm_authz_plain). One order of operations for all of them: new and changed
 * entries first, removed ones last, so a key turns from its old value to its new one in one map update and
 * a lookup never finds less than one of the two tables.
 */
#ifndef XMESH_DATAPATH_MAP_SYNC_H
#define XMESH_DATAPATH_MAP_SYNC_H

#include <stddef.h>

/* n entries of stride bytes, each a key of key_len bytes at offset 0 and a value of val_len at val_off. */
struct map_sync_table {
	const void *items;
	size_t n, stride, key_len, val_off, val_len;
};

/*
 * Makes the map fd hold next. old NULL: the map's content is unknown (a restart, a failed sync): every entry
 * of next is written, then every other key deleted. what names the map in warnings. Returns 0 or -EIO
 * (logged; the next sync must pass old NULL).
 */
int map_sync(int fd, const char *what, const struct map_sync_table *old, const struct map_sync_table *next);

#endif
