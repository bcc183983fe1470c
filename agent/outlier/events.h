/* SPDX-License-Identifier: Apache-2.0 */
/* Consumes the kernel's outlier events (ring buffer xm_events) from the agent's event loop. */
#ifndef XMESH_OUTLIER_EVENTS_H
#define XMESH_OUTLIER_EVENTS_H

#include <xmesh/outlier.h>

#include "core/loop.h"

typedef void (*xm_outlier_event_cb)(const struct xm_event *ev, void *ctx);

struct xm_outlier_events;

struct xm_outlier_events *outlier_events_open(struct xm_loop *loop, int ringbuf_fd, xm_outlier_event_cb cb, void *ctx);
void outlier_events_close(struct xm_outlier_events *e);

#endif
