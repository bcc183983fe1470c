/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's metrics listener (--metrics, default 127.0.0.1:15090) on the control loop: GET /metrics
 * renders every registered source into Prometheus text on each scrape; GET /healthz/ready says if the agent is.
 */
#ifndef XMESH_METRICS_H
#define XMESH_METRICS_H

#include <stdbool.h>

#include "core/loop.h"
#include "core/strbuf.h"

#define XM_METRICS_DEFAULT_ADDR "127.0.0.1:15090"
#define XM_METRICS_MAX_SOURCES	16

/*
 * Appends whole families (metrics/prom.h) to out. Runs on the loop thread during a scrape: read per-CPU
 * maps and the module's own state here, and keep the datapath free of anything shared for this.
 */
typedef void (*xm_metrics_render_cb)(struct strbuf *out, void *ctx);

struct xm_metrics;

/*
 * Listens on addr ("IPv4:PORT" or "[IPv6]:PORT"; NULL: the default) with render as the first source
 * (may be NULL). Every scrape starts with xmesh_build_info. Returns NULL, having logged why, on failure.
 * Not ready until metrics_set_ready(m, true).
 */
struct xm_metrics *metrics_listen(struct xm_loop *loop, const char *addr, xm_metrics_render_cb render, void *ctx);
/* One more source, rendered after the earlier ones; each source owns distinct families. -ENOSPC past the max. */
int metrics_add_source(struct xm_metrics *m, xm_metrics_render_cb render, void *ctx);
void metrics_set_ready(struct xm_metrics *m, bool ready);
/* The port bound (after PORT 0, in tests). */
int metrics_port(const struct xm_metrics *m);
/* Closes the listener and its connections. Not from inside one of the loop's callbacks. */
void metrics_close(struct xm_metrics *m);

/* A whole scrape as GET /metrics serves it (build info, then each source), for tests and `xmesh` commands. */
void metrics_render(const struct xm_metrics *m, struct strbuf *out);

/* xmesh_build_info{version="…"} 1: which agent build serves the scrape. */
void metrics_render_build_info(struct strbuf *out);

#endif
