/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Config watcher: inotify on each config path (a directory, or a file's parent directory so that atomic
 * renames and ConfigMap symlink swaps are seen). Bursts of events are debounced into one callback.
 */
#ifndef XMESH_WATCH_H
#define XMESH_WATCH_H

#include <stddef.h>

#include "core/loop.h"

#define XM_WATCH_DEBOUNCE_MS 100

typedef void (*xm_watch_cb)(void *ctx);

struct xm_watch;

struct xm_watch *watch_new(struct xm_loop *loop, const char *const *paths, size_t n, xm_watch_cb cb, void *ctx);
void watch_free(struct xm_watch *w);

#endif
