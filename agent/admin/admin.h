/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin socket: a unix stream socket (mode 0600) in the agent's event loop. A client writes one command
 * line ("status", "status json"), the agent answers and closes. Used by `xmesh status`. Clients are
 * non-blocking state in the loop, each with a deadline, and their number is capped: a stalled client
 * never holds up the loop.
 */
#ifndef XMESH_ADMIN_H
#define XMESH_ADMIN_H

#include "core/loop.h"
#include "core/strbuf.h"

#define XM_DEFAULT_ADMIN_SOCK "/run/xmesh/admin.sock"

/* Renders the answer to one command into out. */
typedef void (*xm_admin_handler)(const char *command, struct strbuf *out, void *ctx);

#define ADMIN_DEADLINE_MS_DEFAULT 5000 /* to send the command line, then again to take the answer */
#define ADMIN_MAX_CLIENTS_DEFAULT 16   /* concurrent clients; more are refused with a one-line error */
#define ADMIN_ACCEPT_PAUSE_MS	  500  /* after accept() fails for want of resources */

struct admin_limits {
	unsigned int deadline_ms; /* 0: keep the current one */
	unsigned int max_clients;
};

struct xm_admin;

struct xm_admin *admin_listen(struct xm_loop *loop, const char *path, xm_admin_handler handler, void *ctx);
void admin_set_limits(struct xm_admin *a, const struct admin_limits *limits);
/* Clients connected right now (tests). */
unsigned int admin_n_clients(const struct xm_admin *a);
/* Closes the listener and every client. */
void admin_close(struct xm_admin *a);

/* Client side: sends command, writes the answer to out. Returns 0 or a negative errno. */
int admin_request(const char *path, const char *command, struct strbuf *out);

#endif
