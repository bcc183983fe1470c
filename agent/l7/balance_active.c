/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Active requests per backend id, shared by every proxy worker: the load LEAST_REQUEST compares. Relaxed
 * atomics: a count is a hint for the next pick, never a lock or a limit, so no ordering is needed.
 */
#include <stdatomic.h>

#include "l7/balance.h"

static _Atomic int32_t active_requests[XM_MAX_BACKENDS];

void l7_active_add(uint32_t backend_id, int delta)
{
	if (backend_id >= XM_MAX_BACKENDS)
		return;
	atomic_fetch_add_explicit(&active_requests[backend_id], delta, memory_order_relaxed);
}

uint32_t l7_active_get(uint32_t backend_id)
{
	int32_t v;

	if (backend_id >= XM_MAX_BACKENDS)
		return 0;
	v = atomic_load_explicit(&active_requests[backend_id], memory_order_relaxed);
	/* A decrement that overtakes its increment (another worker's) is transient: read it as idle. */
	return v < 0 ? 0 : (uint32_t)v;
}
