/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading per-CPU counter maps: the datapath bumps its own CPU's copy without atomics; metrics, status and
 * `xmesh maps` sum the copies of every possible CPU when asked. The one place that knows the slot layout.
 */
#ifndef XMESH_CORE_PERCPU_H
#define XMESH_CORE_PERCPU_H

#include <stddef.h>
#include <stdint.h>

/*
 * For a per-CPU map whose value (value_size bytes) leads with sum_len bytes of __u64 counters and may end
 * with fields every CPU holds alike (an owner's ids): value = CPU 0's copy with the counters summed over
 * every possible CPU. Returns 0, -ENOENT when the key is absent, or another negative errno (value untouched).
 */
int percpu_lookup_value(int map_fd, const void *key, size_t value_size, size_t sum_len, void *value);

/*
 * For a per-CPU map (PERCPU_ARRAY, PERCPU_HASH, LRU_PERCPU_HASH) whose value is n_fields __u64 counters
 * (struct xm_counter, struct xm_xdp_vip_counters …): sums[f] = Σ over possible CPUs of field f at key.
 * Returns 0, -ENOENT when the key is absent, or another negative errno; sums is untouched on error.
 */
int percpu_lookup_sum(int map_fd, const void *key, size_t n_fields, uint64_t *sums);

/* For a PERCPU_ARRAY of one __u64 per entry: sums[k] for every key k in [0, n_keys). */
int percpu_sum_u64(int map_fd, uint32_t n_keys, uint64_t *sums);

#endif
