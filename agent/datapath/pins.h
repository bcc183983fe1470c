/* SPDX-License-Identifier: Apache-2.0 */
/* bpffs housekeeping: mount check, the pin directory layout, and removing what xmesh pinned. */
#ifndef XMESH_PINS_H
#define XMESH_PINS_H

#include <stdbool.h>
#include <stddef.h>

#define XM_DEFAULT_BPFFS "/sys/fs/bpf/xmesh"
#define XM_LINKS_SUBDIR	 "links"

/* Mounts bpffs on /sys/fs/bpf if dir lies there and it is not mounted yet; creates dir and dir/links. */
int pins_prepare(const char *dir);

/* dir/links/name into buf. */
int pins_link_path(char *buf, size_t len, const char *dir, const char *name);

/* Unpins links first (that detaches them), then maps, then removes the directories. */
int pins_remove_all(const char *dir);

struct bpf_link;

/*
 * Pins a new link at path and lets go of it: the pin keeps the attachment alive after the agent exits.
 * The link object is destroyed either way; returns 0 or the pin error (logged, the link detached).
 */
int pins_keep_link(struct bpf_link *link, const char *path);

struct bpf_object;

/*
 * For every map of obj (opened, not loaded) pinned by an earlier version with another type, size, flags or
 * key/value layout (BTF: members by name, offset and size): unpins it, so that loading creates this
 * version's map instead of failing. Its entries are lost (the connection table, counters; the agent
 * rewrites what it publishes). Returns how many it replaced.
 */
int pins_replace_incompatible(struct bpf_object *obj);

struct btf;

/* Type ida of a and idb of b: same kind and size, and (struct/union) the same members by name, offset, size. */
bool pins_btf_layout_equal(const struct btf *a, unsigned int ida, const struct btf *b, unsigned int idb);

/* Opens a pinned object; -ENOENT when it is not there. */
int pins_open(const char *dir, const char *name);

/*
 * For each key of the pinned map dir/map (a __u32 ifindex) naming an interface of this network namespace:
 * fn(ifindex, its name). 0 when the map is not pinned; -EIO when fn failed for any.
 */
int pins_each_iface(const char *dir, const char *map, int (*fn)(int ifindex, const char *name));

#endif
