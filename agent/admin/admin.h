/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin socket: a unix stream socket (mode 0600) in the agent's event loop. A client writes one command
 * line ("status", "status json"), the agent answers and closes. Used by `xmesh status`.
 */
#ifndef XMESH_ADMIN_H
#define XMESH_ADMIN_H

#include "core/loop.h"
#include "core/strbuf.h"

#define XM_DEFAULT_ADMIN_SOCK "/run/xmesh/admin.sock"

/* Renders the answer to one command into out. */
typedef void (*xm_admin_handler)(const char *command, struct strbuf *out, void *ctx);

struct xm_admin;

struct xm_admin *admin_listen(struct xm_loop *loop, const char *path, xm_admin_handler handler, void *ctx);
void admin_close(struct xm_admin *a);

/* Client side: sends command, writes the answer to out. Returns 0 or a negative errno. */
int admin_request(const char *path, const char *command, struct strbuf *out);

#endif
