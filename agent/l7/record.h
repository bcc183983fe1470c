/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a worker knows about one finished request: the single input of Istio's request metrics and of the
 * access log. Filled on the request path from the worker's own memory; the strings point into the
 * snapshot the request ran on (held by the worker) or into the record itself.
 */
#ifndef XMESH_L7_RECORD_H
#define XMESH_L7_RECORD_H

#include <stdint.h>

#include <xmesh/lb.h>

#include "compile/identity.h"
#include "l7/routes.h"

/* Envoy's response flags the proxy sets (a named reason for every response it made itself). */
#define L7_RF_NR	  0x01	/* no route */
#define L7_RF_UH	  0x02	/* no healthy upstream */
#define L7_RF_UF	  0x04	/* upstream connection failure */
#define L7_RF_UC	  0x08	/* upstream connection terminated */
#define L7_RF_DC	  0x10	/* downstream connection terminated */
#define L7_RF_UT	  0x20	/* upstream request timeout (#14) */
#define L7_RF_URX	  0x40	/* retries exhausted (#14) */
#define L7_RF_UO	  0x80	/* overflow: circuit breaker (#14) */
#define L7_RF_DI	  0x100 /* delayed by fault injection (#14) */
#define L7_RF_FI	  0x200 /* aborted by fault injection (#14) */
#define L7_RF_RL	  0x400 /* rate limited (#14) */
#define L7_RF_BAD_REQUEST 0x800 /* refused by the parser: 400 (Envoy logs "-" plus a detail; counted apart) */

struct l7_record {
	uint64_t start_unix_ns;				    /* when the request head was complete */
	uint64_t duration_ns;				    /* until the last response byte was sent */
	uint16_t status;				    /* 0 when no response was sent */
	uint32_t flags;					    /* L7_RF_* */
	uint64_t request_bytes;				    /* body bytes received from downstream */
	uint64_t response_bytes;			    /* body bytes sent downstream */
	const char *method, *path, *authority, *user_agent; /* NUL-terminated copies owned by the caller */
	char request_id[40];
	char trace_id[33];		      /* "" until tracing (#14) */
	const char *protocol;		      /* "HTTP/1.1" */
	const struct xm_workload *source;     /* the client pod, NULL when unknown */
	const struct l7_cluster *cluster;     /* NULL when no route */
	const struct xm_lb_backend *upstream; /* the endpoint picked, NULL when none */
	const struct xm_workload *upstream_wl;
	union xm_addr downstream_addr;
	uint16_t downstream_port;
	uint8_t downstream_family;
};

/* "NR", "UH,UF", or "-" when none: Envoy's short form. */
void l7_flags_format(uint32_t flags, char *buf, size_t len);

#endif
