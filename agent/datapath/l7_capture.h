/* SPDX-License-Identifier: Apache-2.0 */
/*
 * L7 capture as the agent's proxy sees it: tells the connect hook where the proxy listens, takes the original
 * destination of an accepted connection from the kernel (keyed by its 4-tuple), and puts the accepted socket
 * on the same-node sockmap. The map fds come from datapath_map_fds() and sockmap_fds().
 */
#ifndef XMESH_DATAPATH_L7_CAPTURE_H
#define XMESH_DATAPATH_L7_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <xmesh/l7.h>

/* The proxy's listener, one port for both families; a family whose flag is false is balanced at L4. */
struct l7_capture_proxy {
	union xm_addr addr4; /* .v4, network order */
	union xm_addr addr6;
	bool v4, v6;
	uint16_t port; /* host order */
};

/*
 * Writes xm_l7_proxy (fd). proxy NULL, or neither family on, turns capture off: from the next connect on,
 * HTTP service ports are balanced at L4. -EINVAL on port 0 with a family on.
 */
int l7_capture_set_proxy(int proxy_map_fd, const struct l7_capture_proxy *proxy);

/*
 * The service port a connection accepted by the proxy was dialed at: reads the socket's 4-tuple (a v4-mapped
 * address of a dual-stack listener counts as IPv4), takes its xm_l7_origdst entry out (fd) and fills vip as
 * xm_services keys it (network order, TCP) and svc_id. -ENOENT when there is none: not a captured connection
 * (or its entry was evicted), and the proxy must refuse it rather than guess. Other errors negative errno.
 */
int l7_capture_lookup(int origdst_fd, int accepted_fd, struct xm_svc_key *vip, uint32_t *svc_id);

/*
 * Puts an accepted proxy socket into the sockhash (sockmap_fds()) under the key sockops would have given it,
 * with the per-socket storage sk_msg needs, so bytes between it and a pod socket that sockops inserted skip
 * TCP/IP in both directions. Call it right after accept(), before writing to the socket: -EBUSY when the
 * socket has already queued or sent payload (redirecting then could reorder); -EEXIST when it is already in.
 */
int l7_capture_sockmap_add(int sockhash_fd, int sk_storage_fd, int accepted_fd);

/*
 * A new socket (socket(domain, type, 0)) that belongs to the cgroup cgroup_fd, made by a short-lived child
 * started in that cgroup (clone3 CLONE_INTO_CGROUP, kernel 5.7+) and handed back over a unix socket; the
 * agent itself never moves. A listener made this way in a cgroup where sockmap's sockops runs has its
 * accepted sockets put in the sockhash at establishment, before a client can send (no race with accept, and
 * no l7_capture_sockmap_add needed). Returns the fd or a negative errno.
 */
int l7_capture_socket_in_cgroup(int cgroup_fd, int domain, int type);

#endif
