/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listening sockets that outlive the agent across a restart: the stopping agent forks a small holder that keeps
 * them (connections queue in their backlog meanwhile) and hands them over a unix socket (SCM_RIGHTS) to the
 * next agent, then exits. Nothing is reset, and the capture can keep pointing at the same addresses.
 */
#ifndef XMESH_L7_HANDOVER_H
#define XMESH_L7_HANDOVER_H

#include <stddef.h>
#include <sys/types.h>

#define L7_HANDOVER_MAX_FDS 250 /* one SCM_RIGHTS message (the kernel's SCM_MAX_FD is 253) */

/*
 * Forks the holder: it keeps fds[0..n), listens on path (mode 0600), gives them to the first process that
 * connects, and exits. After timeout_s seconds without a taker no agent is coming back: it turns the capture
 * off (capture_map_fd, the pinned xm_l7_proxy; -1: none) so new connects are balanced at L4, and exits (the
 * sockets close). The caller keeps its own copies. Returns the holder's pid or -errno.
 */
pid_t l7_handover_spawn(const char *path, const int *fds, size_t n, int capture_map_fd, unsigned int timeout_s);

/*
 * Takes the sockets a holder at path keeps: fills fds (at most max) and *n. Returns 0, -ENOENT when no holder
 * is there, or another -errno.
 */
int l7_handover_receive(const char *path, int *fds, size_t max, size_t *n);

#endif
