/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One agent per pin directory: an exclusive flock on the directory itself (bpffs holds no regular files,
 * so there is no lock file to create). The kernel drops the lock when the holder exits, however it exits;
 * /proc/locks names the holder's PID.
 */
#ifndef XMESH_INSTANCE_LOCK_H
#define XMESH_INSTANCE_LOCK_H

#include <sys/types.h>

/*
 * Locks dir (which must exist) for this process. Returns the descriptor that holds the lock (keep it open
 * for the agent's life; close-on-exec), -EWOULDBLOCK when another process holds it (*holder: its PID, or 0
 * when /proc/locks does not say), or another negative errno.
 */
int instance_lock_take(const char *dir, pid_t *holder);

#endif
