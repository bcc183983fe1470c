/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics listener on a thread and loop of its own: a scrape that walks 262,144 map keys takes its time
 * there, while the control loop keeps applying configs and answering the admin socket.
 */
#ifndef XMESH_METRICS_THREAD_H
#define XMESH_METRICS_THREAD_H

#include <stdbool.h>

#include "metrics/metrics.h"

struct xm_metrics_thread;

/* Binds addr (errors logged, NULL returned) and starts serving with collect as the only collector. */
struct xm_metrics_thread *metrics_thread_start(const char *addr, xm_metrics_collect_cb collect, void *ctx);
void metrics_thread_set_ready(struct xm_metrics_thread *t, bool ready);
/* Stops the thread (an answer being written is cut), closes the listener. NULL is fine. */
void metrics_thread_stop(struct xm_metrics_thread *t);

#endif
