/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Maglev consistent hashing (Eisenbud et al., NSDI'16): builds the lookup table the cgroup programs index
 * with a flow hash, so a flow keeps its backend while the set of backends changes little.
 */
#ifndef XMESH_LB_MAGLEV_H
#define XMESH_LB_MAGLEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Fills table[0..m-1] with indices into backend_keys[0..n-1]. m must be prime and > n. Shares differ by
 * at most one slot, so m >= 100 * n keeps each within 1% of 1/n. Removing one backend moves its 1/n of
 * the slots plus an excess that shrinks as m/n grows: within 1% for n <= 1000 at m = 131071, and for
 * n <= 100 at XM_MAGLEV_DEFAULT_SIZE (include/xmesh/lb.h says why that size; tests/unit/test_maglev.c).
 *
 * Each backend is identified by its stable key (maglev_key_of() over a canonical address:port), never by
 * its position: its preference list depends on the key only, and the population runs in key order, so
 * the same set of keys yields the same slot → key mapping in whatever order the caller lists them. The
 * table holds positions in the caller's array, which do depend on that order: compare tables across
 * builds as backend_keys[table[i]]. A key listed twice acts as one backend of double weight.
 *
 * Expected cost O(m log m) time, O(n) memory besides the table. Same output on every host and run.
 * Returns 0; -EINVAL if m is not prime, n == 0 or n >= m; -ENOMEM. On error the table is unspecified.
 */
int maglev_build_table(const uint64_t *backend_keys, size_t n, uint32_t *table, uint32_t m);

/* Deterministic primality test for the whole uint32_t range (trial division, at most ~22k steps). */
bool maglev_is_prime(uint32_t m);

/*
 * Stable 64-bit identity of a backend: xm_hash64 (lb/hash.h) of the bytes. Callers must hash a canonical
 * serialization (no struct padding, fixed byte order, e.g. family + 16 address bytes + port in network
 * order) so that every node derives the same key for the same backend.
 */
uint64_t maglev_key_of(const void *bytes, size_t len);

#endif
