/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio's TCP metrics of tunnelled connections on the destination node (reporter="destination",
 * connection_security_policy="mutual_tls"), as ztunnel reports its inbound HBONE connections: the HBONE server
 * (agent/daemon/mod_hbone.c) maps each stream it opens to a series of this table and the library counts the
 * stream there (struct hbone_stream_counts: opened at the 200, closed when the stream ends, bytes each way).
 *
 * Threads: one writer (the hbone loop's thread) adds series; any thread (the metrics scrape) reads them, with no
 * lock. A series' labels are written once, before the entry is published (a release store of the count of
 * series), and never change; its counters are relaxed atomics. Series are never removed: the table holds at
 * most TUNNEL_TCP_MAX_SERIES of them, streams beyond are counted in `overflow` only.
 */
#ifndef XMESH_METRICS_TUNNEL_TCP_H
#define XMESH_METRICS_TUNNEL_TCP_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>

#include "compile/snapshot.h"
#include "hbone/hbone.h"

struct xm_scrape;

#define TUNNEL_TCP_MAX_SERIES 2048
#define TUNNEL_TCP_CHUNK      64 /* series allocated together */

/*
 * What defines a series: the labels, resolved when the stream opens (so that a pod leaving the config later does
 * not relabel counts already made). "" is "unknown" (for the service: no service). Zero-filled beyond each
 * string, so that two equal label sets are equal bytes.
 */
struct tunnel_tcp_labels {
	char source_principal[HBONE_ID_MAX]; /* the verified peer's SPIFFE ID */
	char source_workload[XM_NAME_MAX];
	char source_ns[64];
	char source_app[XM_LABEL_MAX];
	char service_name[XM_NAME_MAX];
	char service_ns[64];
	char destination_workload[XM_NAME_MAX];
	char destination_ns[64];
	char destination_principal[sizeof(((struct xm_identity *)0)->principal)];
};

/*
 * The labels of a stream the server admitted, from snap:
 * - source_principal: peer_id, the identity the client's certificate proved;
 * - source workload, namespace and app: the pod of snap at the first Forwarded element's for= address, when there
 *   is one and its principal is peer_id (a peer names only workloads of its own identity); else unknown;
 * - destination workload, namespace, principal: the pod of snap at target (the :authority);
 * - service: among the TCP service ports of snap that list target (address and port) as a backend, the one whose
 *   hostname (name.ns.svc.cluster.local) the Forwarded host= names, else the Service when every such port belongs
 *   to one Service; else none.
 * forwarded may be NULL or "".
 */
void tunnel_tcp_resolve(const struct xm_snapshot *snap, const char *peer_id, const struct sockaddr_storage *target,
			const char *forwarded, struct tunnel_tcp_labels *out);

struct tunnel_tcp_table;

/* An empty table for at most max series (0: TUNNEL_TCP_MAX_SERIES). NULL when out of memory. */
struct tunnel_tcp_table *tunnel_tcp_new(size_t max);
/* After the writer and every reader are done with it. */
void tunnel_tcp_free(struct tunnel_tcp_table *t);

/*
 * Writer thread only: the counters of the series with these labels, added when new. NULL when the table is full
 * or out of memory (the stream is counted in the overflow).
 */
struct hbone_stream_counts *tunnel_tcp_series(struct tunnel_tcp_table *t, const struct tunnel_tcp_labels *l);

/* Any thread: how many series, and streams not counted for want of room. */
size_t tunnel_tcp_count(const struct tunnel_tcp_table *t);
uint64_t tunnel_tcp_overflow(const struct tunnel_tcp_table *t);

/*
 * Any thread: every series into the istio_tcp_* families (reporter destination, mutual_tls), and
 * xmesh_hbone_metrics_overflow_total.
 */
void tunnel_tcp_collect(const struct tunnel_tcp_table *t, struct xm_scrape *sc);

#endif
