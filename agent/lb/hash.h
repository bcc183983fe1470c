/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm_hash64: a small, seeded, non-cryptographic 64-bit hash for identities that must agree across nodes
 * and restarts (Maglev backend keys). Our own construction, compatible with no published hash.
 *
 * The output is part of xmesh's behaviour: every node must compute the same Maglev table for the same
 * backends, so input bytes are read as little-endian on every host and the constants must never change
 * (tests/unit/test_maglev.c pins golden values). Not for untrusted-input hash tables: it is not keyed
 * against flooding.
 */
#ifndef XMESH_LB_HASH_H
#define XMESH_LB_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <xmesh/hash.h>

#define XM_HASH_PRIME1 0x9e3779b185ebca87ULL /* the odd 64-bit primes of xxHash64 */
#define XM_HASH_PRIME2 0xc2b2ae3d27d4eb4fULL
#define XM_HASH_PRIME3 0x165667b19e3779f9ULL

static inline uint64_t xm_hash_rotl64(uint64_t x, unsigned int r)
{
	return (x << r) | (x >> (64 - r));
}

/* Little-endian load, whatever the host's byte order, so the hash is the same on every architecture. */
static inline uint64_t xm_hash_load_le(const uint8_t *p, size_t len)
{
	uint64_t w = 0;

	for (size_t i = 0; i < len; i++)
		w |= (uint64_t)p[i] << (8 * i);
	return w;
}

/*
 * Each 8-byte word (the tail zero-padded) is mixed by fmix64 (xm_mix64) and folded into the state with an
 * xxHash-style rotate-multiply; the length is folded in first so that "ab" and "ab\0" differ.
 */
static inline uint64_t xm_hash64(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data;
	uint64_t h = seed + XM_HASH_PRIME3 + (uint64_t)len * XM_HASH_PRIME1;

	while (len >= 8) {
		h ^= xm_mix64(xm_hash_load_le(p, 8) + XM_HASH_PRIME2);
		h = xm_hash_rotl64(h, 27) * XM_HASH_PRIME1 + XM_HASH_PRIME3;
		p += 8;
		len -= 8;
	}
	if (len) {
		h ^= xm_mix64(xm_hash_load_le(p, len) + XM_HASH_PRIME2);
		h = xm_hash_rotl64(h, 27) * XM_HASH_PRIME1 + XM_HASH_PRIME3;
	}
	return xm_mix64(h);
}

#endif
