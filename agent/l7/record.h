/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a worker knows about one finished request: the single input of Istio's request metrics and of the
 * access log. Filled on the request path from the worker's own memory; the strings point into the
 * snapshot the request ran on (held by the worker) or into the record itself.
 */
#ifndef XMESH_L7_RECORD_H
#define XMESH_L7_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

#include "compile/identity.h"
#include "l7/routes.h"

/* Envoy's response flags the proxy sets (a named reason for every response it made itself). */
#define L7_RF_NR  0x01	/* no route */
#define L7_RF_UH  0x02	/* no healthy upstream */
#define L7_RF_UF  0x04	/* upstream connection failure */
#define L7_RF_UC  0x08	/* upstream connection terminated */
#define L7_RF_DC  0x10	/* downstream connection terminated */
#define L7_RF_UT  0x20	/* upstream request timeout (#14) */
#define L7_RF_URX 0x40	/* retries exhausted (#14) */
#define L7_RF_UO  0x80	/* overflow: circuit breaker (#14) */
#define L7_RF_DI  0x100 /* delayed by fault injection (#14) */
#define L7_RF_FI  0x200 /* aborted by fault injection (#14) */
#define L7_RF_RL  0x400 /* rate limited (#14) */
/* Refused by the parser: 400 and close. Envoy flags its codec errors DownstreamProtocolError, printed "DPE". */
#define L7_RF_BAD_REQUEST 0x800

struct l7_record {
	uint64_t start_unix_ns;	 /* when the request head was complete */
	uint64_t duration_ns;	 /* until the last response byte was sent */
	uint16_t status;	 /* 0 when no response was sent */
	uint32_t flags;		 /* L7_RF_* */
	uint64_t request_bytes;	 /* body bytes received from downstream */
	uint64_t response_bytes; /* body bytes sent downstream */
	/* NUL-terminated copies owned by the caller; path is the original one, before any rewrite. */
	const char *method, *path, *authority, *user_agent;
	char request_id[40];
	char trace_id[33];		      /* the request's trace (l7/trace.h), "" when none */
	char span_id[17], parent_span_id[17]; /* the proxy's span and its parent, "" when none */
	bool sampled;			      /* the span is to be exported */
	const char *protocol;		      /* "HTTP/1.1" */
	const struct xm_workload *source;     /* the client pod, NULL when unknown */
	const struct l7_cluster *cluster;     /* NULL when no route */
	const struct xm_lb_backend *upstream; /* the endpoint picked, NULL when none */
	const struct xm_workload *upstream_wl;
	union xm_addr downstream_addr; /* the client (%DOWNSTREAM_REMOTE_ADDRESS%) */
	uint16_t downstream_port;      /* host order */
	uint8_t downstream_family;     /* XM_FAMILY_V4/V6, 0: unknown */
	/* Istio's istio_request_bytes/istio_response_bytes are wire sizes: head plus body. */
	uint64_t request_head_bytes;  /* request line and header section as received */
	uint64_t response_head_bytes; /* status line and header section as sent downstream */
	uint64_t upstream_service_ns; /* request sent upstream → response head received; 0: no upstream response */
	const char *forwarded_for;    /* x-forwarded-for as sent upstream, NULL: none */
	const char *details;	      /* Envoy's %RESPONSE_CODE_DETAILS% ("http1.invalid_header"), NULL: derived */
	const struct l7_route *route; /* the route taken (%ROUTE_NAME%), NULL: none */
	uint32_t attempts;	      /* upstream tries (%UPSTREAM_REQUEST_ATTEMPT_COUNT%), 0: none */
	union xm_addr downstream_local_addr; /* what the client dialed: the VIP (%DOWNSTREAM_LOCAL_ADDRESS%) */
	uint16_t downstream_local_port;	     /* host order */
	uint8_t downstream_local_family;     /* 0: unknown */
	union xm_addr upstream_local_addr;   /* the proxy's end of the upstream connection */
	uint16_t upstream_local_port;	     /* host order */
	uint8_t upstream_local_family;	     /* 0: no upstream connection (or a tunnelled one) */
	bool tunnelled; /* the upstream went through the node's mTLS tunnel: connection_security_policy mutual_tls */
	/* xm_snapshot.generation of the snapshot source/cluster/upstream_wl point into; 0: unknown. Equal
	 * pointers within one generation are equal labels: l7_stats_record skips hashing them. */
	uint64_t snapshot_generation;
};

/* Longest l7_flags_format output with every flag set, NUL included. */
#define L7_FLAGS_MAX 48

/* "NR", "UH,UF", or "-" when none: Envoy's short codes in Envoy's order, comma-joined. Truncated to len. */
void l7_flags_format(uint32_t flags, char *buf, size_t len);

#endif
