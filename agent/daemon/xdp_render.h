/* SPDX-License-Identifier: Apache-2.0 */
/* The north-south datapath's figures (datapath/xdp_stats.h) as status lines, status JSON and metrics. */
#ifndef XMESH_DAEMON_XDP_RENDER_H
#define XMESH_DAEMON_XDP_RENDER_H

#include <stdbool.h>

#include "datapath/xdp_stats.h"

struct strbuf;
struct xm_scrape;

/*
 * "xdp: ..." status lines (or a JSON object when json): uplinks, connection-table fill, Istio TCP counter
 * placement, reverse-NAT pairs draining, verdict counters, and per external VIP port its packets by
 * verdict, new flows and bytes. s NULL (no --iface): nothing, or {"uplinks":[]} in JSON.
 */
void xdp_render_status(const struct xm_xdp_stats *s, bool json, struct strbuf *out);

/* Prometheus families of the XDP path: verdicts, connection-table fill, TCP counter pairs, per-VIP packets. */
void xdp_render_metrics(const struct xm_xdp_stats *s, struct xm_scrape *sc);

#endif
