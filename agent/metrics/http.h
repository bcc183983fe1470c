/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal HTTP/1.1 server for the agent's own endpoints (metrics, health) on an xm_loop: non-blocking,
 * bounded (request size, connections, per-connection deadline), GET/HEAD only, one request per connection.
 * Prefixed mhttp_ so it never clashes with the L7 proxy's HTTP code (agent/http).
 */
#ifndef XMESH_METRICS_HTTP_H
#define XMESH_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/loop.h"
#include "core/strbuf.h"

#define MHTTP_MAX_REQUEST_DEFAULT 8192	/* request line + headers; a scrape request is ~300 bytes */
#define MHTTP_MAX_CONNS_DEFAULT	  64	/* concurrent connections; more are answered 503 and closed */
#define MHTTP_TIMEOUT_MS_DEFAULT  10000 /* accept → last byte sent; Prometheus' default scrape timeout */
#define MHTTP_LINGER_MS		  1000	/* after the answer, how long we read what the client still sends */
#define MHTTP_ACCEPT_PAUSE_MS	  500	/* after accept() fails for want of resources */

/* A parsed request head; the pointers point into the caller's buffer. */
struct mhttp_request {
	const char *method, *path; /* path: the request target without its query */
	size_t method_len, path_len;
	int minor_version; /* HTTP/1.minor_version */
};

/*
 * The request head in buf[0..len), parsed by the project's HTTP/1 parser (http/h1.h): returns its length
 * (through the blank line) when complete, 0 when more bytes are needed, or a negative HTTP status for a
 * request that can never become valid: -400 (syntax, bare CR or LF, header folding, missing or repeated Host
 * in HTTP/1.1, ...), -505 (not HTTP/1.0 or 1.1), -431 (over the parser's limits). The caller answers 431 when
 * its buffer fills first.
 */
int mhttp_parse_request(const char *buf, size_t len, struct mhttp_request *req);

struct mhttp_response {
	int status;
	const char *content_type; /* default: text/plain; charset=utf-8 */
	struct strbuf body;	  /* the handler appends; the server frees */
};

/* Called for a well-formed GET or HEAD (the server drops the body of a HEAD answer). */
typedef void (*mhttp_handler)(const struct mhttp_request *req, struct mhttp_response *resp, void *ctx);

struct mhttp_limits {
	size_t max_request;
	unsigned int max_conns;
	unsigned int timeout_ms;
};

struct mhttp_server;

/*
 * Listens on addr, "IPv4:PORT" or "[IPv6]:PORT" (numeric; PORT 0 picks a free port). limits may be NULL
 * for the defaults. Returns NULL, having logged why, on failure.
 */
struct mhttp_server *mhttp_listen(struct xm_loop *loop, const char *addr, const struct mhttp_limits *limits,
				  mhttp_handler handler, void *ctx);
/* The port bound (useful after PORT 0). */
int mhttp_port(const struct mhttp_server *s);
/* Open connections right now (tests and status). */
unsigned int mhttp_n_conns(const struct mhttp_server *s);
/* Closes the listener and every connection. Not from inside its own handler (the connection it answers). */
void mhttp_close(struct mhttp_server *s);

/* "IPv4:PORT" or "[IPv6]:PORT" → sockaddr; -EINVAL when malformed. */
int mhttp_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len);

#endif
