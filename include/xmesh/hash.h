/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The 64-bit mixer of xmesh, one definition for BPF (flow hashes, selection) and the agent (Maglev keys,
 * the tests that recompute a flow's hash): murmur3's fmix64, a bijection with full avalanche, so distinct
 * words stay distinct after mixing. Its output is behaviour (tunnel flow labels, Maglev tables on every
 * node): the constants never change (tests/unit/test_hash.c pins golden values).
 */
#ifndef XMESH_HASH_H
#define XMESH_HASH_H

#include "types.h"

static inline __attribute__((always_inline)) __u64 xm_mix64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

#endif
