/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's HBONE client as other modules use it (the L7 proxy's upstream connections to pods of other
 * nodes): carries a connected stream socket to a remote pod through mutual TLS, on the hbone thread.
 * Whether a destination is tunnelled at all is mtls_remote_tunnelled(&snapshot->mtls_remote, ...)
 * (compile/peer_auth.h), the same decision the kernel's connect hook makes for pods' own connections.
 */
#ifndef XMESH_DAEMON_TUNNEL_H
#define XMESH_DAEMON_TUNNEL_H

#include <stdbool.h>
#include <sys/socket.h>

#include "core/tunnel_done.h"
#include "hbone/hbone.h"

struct xm_agent;

struct xm_tunnel_req {
	struct sockaddr_storage target; /* the remote pod's IP and the application port (AF_INET, AF_INET6) */
	struct sockaddr_storage client; /* Forwarded: for= (the downstream client); ss_family 0: no header */
	char src_id[HBONE_ID_MAX]; /* the local workload the connection is made for: its certificate is presented */
	char traceparent[64];	   /* "" : a new one */
};

/* Whether the tunnel's client runs (--hbone, with a trust bundle): otherwise tunnel_submit refuses. */
bool tunnel_available(struct xm_agent *a);

/*
 * From any thread: hands fd (a connected stream socket, e.g. one end of a socketpair; owned from now on, also
 * on failure) to the hbone thread, which opens a CONNECT stream to target on a pooled TLS connection,
 * presenting src_id's certificate and requiring the target pod's identity, and pipes fd through it
 * (hbone_splice_open): nothing is read from fd before the stream opened. Failures after the hand-off reset fd.
 * Returns 0, -ENOTCONN when the tunnel is not available, -ENOENT when src_id has no certificate on this node,
 * or another negative errno (fd closed).
 *
 * done (NULL, or its gate NULL: no answer wanted): when this returns 0, done->fn runs once on done's loop with
 * how the opening ended (core/tunnel_done.h): opened (200), refused (the peer's :status), failed (no route,
 * TLS, peer identity, unknown target, reset) or timed out; it is posted before fd is reset. A reference to
 * done->gate is taken here and dropped with that post; no answer comes when this returns an error.
 */
int tunnel_submit(struct xm_agent *a, int fd, const struct xm_tunnel_req *req, const struct xm_tunnel_done *done);

#endif
