/* SPDX-License-Identifier: Apache-2.0 */
/* bpffs housekeeping: mount check, the pin directory layout, and removing what xmesh pinned. */
#ifndef XMESH_PINS_H
#define XMESH_PINS_H

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

/* Opens a pinned object; -ENOENT when it is not there. */
int pins_open(const char *dir, const char *name);

#endif
