/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio's TCP metrics (istio_tcp_connections_opened/closed_total, istio_tcp_sent/received_bytes_total) with
 * Istio's labels, from the kernel's counters: reporter="source" from sockops on the client's node,
 * reporter="destination" from XDP/TC on the node that receives external clients, and from the HBONE server for
 * tunnelled connections (metrics/tunnel_tcp.h, with mutual_tls and the peer's principal). Every path adds to the same
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
 * The labels of one series, as Istio names them. NULL or "" is "unknown". Without a service name the three
 * destination_service* labels are "unknown" (ztunnel's DefaultedUnknown, src/proxy/metrics.rs).
 */
struct istio_tcp_series {
	enum istio_tcp_reporter reporter;
	const char *source_workload, *source_workload_namespace, *source_principal, *source_app;
	const char *service_name, *service_namespace; /* destination_service is name.namespace.svc.cluster.local */
	const char *destination_workload, *destination_workload_namespace, *destination_principal;
	const char *security_policy; /* connection_security_policy: "mutual_tls", "none", NULL ("unknown") */
};

/* Adds one series (request_protocol "tcp", response_flags "-") to the four families. */
void istio_tcp_render(struct xm_scrape *sc, const struct istio_tcp_series *s, const struct istio_tcp_counts *c);
/* Declares the four families (a scrape has them even when no series exists). */
void istio_tcp_declare(struct xm_scrape *sc);

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
