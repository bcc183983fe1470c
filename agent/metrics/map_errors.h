/* SPDX-License-Identifier: Apache-2.0 */
/* Failed map updates of the BPF programs (pinned per-CPU map xm_map_errors) as a Prometheus family. */
#ifndef XMESH_METRICS_MAP_ERRORS_H
#define XMESH_METRICS_MAP_ERRORS_H

struct xm_scrape;

/* The map's name in the map="" label of an enum xm_map_error index. */
const char *map_error_name(unsigned int idx);

/*
 * Adds xmesh_map_update_errors_total{map}, summed over CPUs from fd (xm_map_errors). When the map
 * cannot be read it adds nothing, warns once per process, and returns the negative errno.
 */
int map_errors_metrics_collect(int fd, struct xm_scrape *sc);

#endif
