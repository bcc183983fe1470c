/* SPDX-License-Identifier: Apache-2.0 */
/* Flow hashing shared by the selection paths (murmur3's 64-bit finalizer: cheap, well mixed). */
#ifndef XMESH_BPF_HASH_H
#define XMESH_BPF_HASH_H

#include <xmesh/lb.h>

static __always_inline __u64 xm_mix64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* Hash of a client address, the same for IPv4 and IPv6 layouts of union xm_addr. */
static __always_inline __u32 xm_hash_addr(const union xm_addr *a)
{
	__u64 h = ((__u64)a->v6[0] << 32 | a->v6[1]) ^ xm_mix64((__u64)a->v6[2] << 32 | a->v6[3]);

	return (__u32)xm_mix64(h);
}

#endif
