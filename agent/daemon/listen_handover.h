/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listening sockets that outlive the agent across a restart: the stopping agent forks a small holder that keeps
 * them (connections queue in their backlog meanwhile) and hands them over a unix socket (SCM_RIGHTS) to the
 * next agent, then exits. Nothing is reset, and the capture can keep pointing at the same addresses. Used by
 * the L7 proxy (<admin>.l7) and the HBONE tunnel (<admin>.hbone), each with a holder of its own.
 */
#ifndef XMESH_DAEMON_LISTEN_HANDOVER_H
#define XMESH_DAEMON_LISTEN_HANDOVER_H

#include <stddef.h>
#include <sys/types.h>

#define LISTEN_HANDOVER_MAX_FDS 250 /* one SCM_RIGHTS message (the kernel's SCM_MAX_FD is 253) */

/*
 * What the holder undoes when no agent comes back: the capture (an array whose entry 0 all zeroes means "off":
 * xm_l7_proxy, HTTP is balanced at L4; xm_hbone_proxy, pods' connections go direct), and rtnetlink requests
 * sent as they are (the tunnel's steering rule removed). Read before fork: the holder has its own copy.
 */
#define LISTEN_HANDOVER_NETLINK_MAX 4096
struct listen_handover_undo {
	int capture_map_fd;  /* -1: none */
	const void *netlink; /* NULL: none; requests without NLM_F_ACK, back to back */
	size_t netlink_len;  /* at most LISTEN_HANDOVER_NETLINK_MAX */
};

/*
 * Forks the holder (process name: name, at most 15 characters shown): it keeps fds[0..n), listens on path
 * (mode 0600), gives them to the first process that connects, and exits. timeout_s seconds after the calling
 * process exited (its drain may take a while first) without a taker, no agent is coming back: it does undo
 * (NULL: nothing) and exits (the sockets close). The caller keeps its own copies. Returns the holder's pid or
 * -errno.
 */
pid_t listen_handover_spawn(const char *path, const int *fds, size_t n, const struct listen_handover_undo *undo,
			    unsigned int timeout_s, const char *name);

/*
 * Takes the sockets a holder at path keeps: fills fds (at most max) and *n. Returns 0, -ENOENT when no holder
 * is there, or another -errno.
 */
int listen_handover_receive(const char *path, int *fds, size_t max, size_t *n);

#endif
