/* SPDX-License-Identifier: Apache-2.0 */
/* Threads that do background work (config builds, scrapes) yield the CPU to the control loop and workers. */
#ifndef XMESH_CORE_BACKGROUND_H
#define XMESH_CORE_BACKGROUND_H

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"

/* nice of background threads: on a busy node the control loop (and the L7 workers) get the CPU first. */
#define XM_BACKGROUND_NICE 10

/* Lowers the calling thread's priority (Linux: nice is per thread). who names it in the debug log. */
static inline void thread_set_background(const char *who)
{
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), XM_BACKGROUND_NICE))
		log_debug("%s: thread priority unchanged: %s", who, strerror(errno));
}

#endif
