/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio's TCP metrics (istio_tcp_connections_opened/closed_total, istio_tcp_sent/received_bytes_total) with
 * Istio's labels, from the kernel's counters: reporter="source" from sockops on the client's node,
 * reporter="destination" from XDP/TC on the node that receives external clients. Both paths add to the same
 * four families of a scrape; series with equal labels (several addresses of one workload) are summed.
 */
#ifndef XMESH_METRICS_ISTIO_TCP_H
#define XMESH_METRICS_ISTIO_TCP_H

#include <stdint.h>

#include "compile/snapshot.h"

struct xm_scrape;

enum istio_tcp_reporter {
	ISTIO_TCP_SOURCE,
	ISTIO_TCP_DESTINATION,
};

/* Counts of one (client, service port, backend): Istio's meaning, sent = response bytes. */
struct istio_tcp_counts {
	uint64_t opened, closed, sent, received;
};

/*
 * Adds one series, labelled from snap. client may be NULL (an external client: "unknown"). A service port
 * that snap no longer serves adds nothing: its counters go with it.
 */
void istio_tcp_add(struct xm_scrape *sc, const struct xm_snapshot *snap, enum istio_tcp_reporter reporter,
		   uint32_t svc_id, uint32_t backend_id, const struct xm_identity *client,
		   const struct istio_tcp_counts *c);

/* The socket path's xm_conn_metrics (an LRU hash keyed by client, service port and backend). */
void istio_tcp_collect_sockets(struct xm_scrape *sc, const struct xm_snapshot *snap, int conn_metrics_fd);

#endif
