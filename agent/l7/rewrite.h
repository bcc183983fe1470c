/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The heads the proxy writes: the request head forwarded upstream (hop-by-hop headers removed, Envoy's
 * x-forwarded-for/-proto and x-request-id, the route's header operations and rewrites), the response head
 * relayed downstream, and the replies the proxy makes itself. Pure functions over parsed heads.
 */
#ifndef XMESH_L7_REWRITE_H
#define XMESH_L7_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/h1.h"
#include "l7/routes.h"

struct l7_req_rewrite {
	const struct l7_route *route;	   /* header ops, rewrite.uri/authority; NULL: none */
	const struct l7_destination *dest; /* the destination's header ops; NULL: none */
	const char *client_addr;	   /* appended to x-forwarded-for */
	const char *request_id;		   /* added as x-request-id when the request has none; NULL: nothing */
	const char *trace_headers;	   /* l7_trace_write_headers lines replacing the request's own; NULL: kept */
	const char *host_suffix;	   /* appended to the authority ("-shadow" for a mirror); NULL: none */
	const char *default_authority;	   /* Host when the request has none (HTTP/1.0): the service's name */
	bool close;			   /* Connection: close (a mirror's copy: the server ends it) */
	/* x-envoy-attempt-count: 1 as the last header line, the request's own dropped (Istio sets Envoy's
	 * include_request_attempt_count on its virtual hosts); a retry rewrites the number (l7/retry.c). */
	bool attempt_count;
};

/* Writes the head to forward into buf; returns its length, or -ENOSPC when it does not fit in cap or would pass
 * the parser's limits (H1_MAX_HEADERS, H1_MAX_HEAD_BYTES) with the fields the proxy adds: 431. */
int l7_rewrite_request(const struct h1_request *req, const struct l7_req_rewrite *rw, char *buf, size_t cap);

struct l7_resp_rewrite {
	const struct l7_route *route;
	const struct l7_destination *dest;
	const char *set_cookie; /* the balancer's Set-Cookie value; NULL or "": none */
	bool close;		/* the proxy closes the downstream connection after this response */
	bool keep_alive_10;	/* an HTTP/1.0 client asked for keep-alive and keeps it */
	bool dechunk;		/* the chunked body is relayed de-chunked (to HTTP/1.0): no Transfer-Encoding */
};

/* Writes the response head to relay (1xx included); returns its length or -ENOSPC (as above: 502). */
int l7_rewrite_response(const struct h1_response *resp, const struct l7_resp_rewrite *rw, char *buf, size_t cap);

/* A reply made by the proxy: status line, content-length, content-type text/plain when there is a body,
 * extra (complete header lines with CRLF, or NULL), Connection: close when close. -ENOSPC if too long. */
int l7_local_reply(uint16_t status, const char *extra, const char *body, size_t body_len, bool close, char *buf,
		   size_t cap);

/* The request path as rewrite.uri makes it: a matched prefix replaced, else the whole path; query kept. */
int l7_rewrite_path(const struct h1_request *req, const struct l7_route *route, char *buf, size_t cap);

#endif
