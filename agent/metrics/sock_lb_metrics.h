/* SPDX-License-Identifier: Apache-2.0 */
/* The socket LB's per-CPU counters (pinned map xm_sock_stats) as xmesh_sock_lb_* Prometheus families. */
#ifndef XMESH_SOCK_LB_METRICS_H
#define XMESH_SOCK_LB_METRICS_H

struct xm_scrape;

/*
 * Adds xmesh_sock_lb_connects_total{protocol}, xmesh_sock_lb_refused_total{reason},
 * xmesh_sock_lb_revnat_total, xmesh_sock_lb_l7_connects_total{path} and xmesh_sock_lb_hbone_connects_total, summed
 * over CPUs from stats_fd (xm_sock_stats). When the map cannot be read
 * it adds nothing, warns once per process, and returns the negative errno.
 */
int sock_lb_metrics_collect(int stats_fd, struct xm_scrape *sc);

#endif
