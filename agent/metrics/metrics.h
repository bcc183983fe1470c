/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's metrics listener (--metrics, default 127.0.0.1:15090) on a loop of its own (the daemon runs it on
 * the metrics thread): GET /metrics asks every registered collector for its families (metrics/registry.h) and
 * renders them once; GET /healthz/ready says if the agent is.
 */
#ifndef XMESH_METRICS_H
#define XMESH_METRICS_H

#include <stdbool.h>

#include "core/loop.h"
#include "core/strbuf.h"

#define XM_METRICS_DEFAULT_ADDR "127.0.0.1:15090"
#define XM_METRICS_MAX_SOURCES	16

struct xm_scrape;

/*
 * Adds a module's families to a scrape (metrics/registry.h). Runs on the metrics loop's thread: read maps,
 * an immutable config snapshot and the module's own thread-safe counters, never state the control loop
 * changes in place.
 */
typedef void (*xm_metrics_collect_cb)(struct xm_scrape *sc, void *ctx);

struct xm_metrics;

/*
 * Listens on addr ("IPv4:PORT" or "[IPv6]:PORT"; NULL: the default) with collect as the first source
 * (may be NULL). Every scrape starts with xmesh_build_info. Returns NULL, having logged why, on failure.
 * Not ready until metrics_set_ready(m, true).
 */
struct xm_metrics *metrics_listen(struct xm_loop *loop, const char *addr, xm_metrics_collect_cb collect, void *ctx);
/* One more collector, asked after the earlier ones; each source owns distinct families. -ENOSPC past the max. */
int metrics_add_source(struct xm_metrics *m, xm_metrics_collect_cb collect, void *ctx);
/* Any thread. */
void metrics_set_ready(struct xm_metrics *m, bool ready);
/* The port bound (after PORT 0, in tests). */
int metrics_port(const struct xm_metrics *m);
/* Closes the listener and its connections. Not from inside one of the loop's callbacks. */
void metrics_close(struct xm_metrics *m);

/*
 * A whole scrape as GET /metrics serves it (build info, each collector, then xmesh_metrics_samples_rejected_total),
 * for tests and `xmesh` commands.
 */
void metrics_render(const struct xm_metrics *m, struct strbuf *out);

/* xmesh_build_info{version="…"} 1: which agent build serves the scrape. */
void metrics_collect_build_info(struct xm_scrape *sc);

#endif
