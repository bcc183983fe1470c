/* SPDX-License-Identifier: Apache-2.0 */
/* Flow hashing shared by the selection paths, over the mixer the agent uses too (xmesh/hash.h). */
#ifndef XMESH_BPF_HASH_H
#define XMESH_BPF_HASH_H

#include <xmesh/hash.h>
#include <xmesh/lb.h>

/* Hash of a client address, the same for IPv4 and IPv6 layouts of union xm_addr. */
static __always_inline __u32 xm_hash_addr(const union xm_addr *a)
{
	__u64 h = ((__u64)a->v6[0] << 32 | a->v6[1]) ^ xm_mix64((__u64)a->v6[2] << 32 | a->v6[3]);

	return (__u32)xm_mix64(h);
}

#endif
