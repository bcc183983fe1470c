/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE tunnel's client-side capture as the agent sees it (ABI: include/xmesh/hbone.h): tells the
 * connect hook where the outbound tunnel listener is and which remote pod addresses are tunnelled, and
 * takes the real destination of an accepted captured connection from the kernel. Map fds come from
 * datapath_map_fds() (hbone_proxy, hbone_dsts, hbone_origdst).
 */
#ifndef XMESH_DATAPATH_HBONE_CAPTURE_H
#define XMESH_DATAPATH_HBONE_CAPTURE_H

#include <stdint.h>
#include <sys/socket.h>

#include <xmesh/hbone.h>

#include "compile/peer_auth.h"
#include "datapath/l7_capture.h"

/* Writes xm_hbone_proxy: where captured connects go. NULL (or no family on) turns capture off. */
int hbone_capture_set_proxy(int proxy_map_fd, const struct l7_capture_proxy *listener);

/*
 * Brings xm_hbone_dsts from old (what the map holds; NULL when unknown, e.g. at start or after a failed sync)
 * to next (mtls_remote_build's table, snapshot->mtls_remote): upserts new and changed entries, then deletes
 * gone ones, so a destination never disappears in between. With old NULL every entry of next is written and
 * every other key in the map deleted (the map is never emptied first). Returns 0 or -EIO (logged; the map may
 * be half way: pass NULL as old next time).
 */
int hbone_capture_sync(int dsts_map_fd, const struct xm_mtls_table *old, const struct xm_mtls_table *next);

/* What a captured connection was for. */
struct hbone_captured {
	struct sockaddr_storage target; /* the destination pod IP and port (AF_INET or AF_INET6) */
	struct sockaddr_storage dialed; /* what the application dialed: a Service VIP and port, or the target */
	struct sockaddr_storage client; /* the client pod's address and port (the accepted socket's peer) */
	uint32_t svc_id;		/* 0: the pod was dialed directly */
	uint64_t netns;			/* the client socket's network-namespace cookie */
};

/*
 * The real destination of a connection the outbound listener accepted: reads its 4-tuple, takes its
 * xm_hbone_origdst entry out and fills out. -ENOENT when there is none (not a captured connection, or the
 * entry was evicted): the caller must close it rather than guess. Other errors negative errno.
 */
int hbone_capture_lookup(int origdst_fd, int accepted_fd, struct hbone_captured *out);

#endif
