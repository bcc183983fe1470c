/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internet checksums without helper calls: incremental updates (RFC 1624, eqn. 3) over raw 16/32-bit words
 * as they sit in the packet, and a full IPv4 header checksum for headers this program writes. Byte order
 * does not matter as long as fields and checksum are loaded the same way (RFC 1071, section 2).
 */
#ifndef XMESH_BPF_CSUM_H
#define XMESH_BPF_CSUM_H

#include <xmesh/lb.h>

/* A running one's-complement sum, folded once at the end. */
static __always_inline __u16 xm_csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Starts an update of checksum field value `check`: ~HC. */
static __always_inline __u64 xm_csum_start(__u16 check)
{
	return (__u16)~check;
}

/* One 32-bit word changed from `from` to `to`: + ~m + m'. */
static __always_inline __u64 xm_csum_add32(__u64 s, __u32 from, __u32 to)
{
	return s + (__u32)~from + to;
}

static __always_inline __u64 xm_csum_add16(__u64 s, __u16 from, __u16 to)
{
	return s + (__u16)~from + to;
}

/* The new checksum field value: ~(~HC + ~m + m'). */
static __always_inline __u16 xm_csum_finish(__u64 s)
{
	return (__u16)~xm_csum_fold(s);
}

/* UDP: a computed 0 is sent as 0xffff, because 0 means "no checksum" (RFC 768). */
static __always_inline __u16 xm_csum_finish_udp(__u64 s)
{
	__u16 c = xm_csum_finish(s);

	return c ? c : 0xffff;
}

/* Checksum of a 20-byte IPv4 header whose check field is zero. */
static __always_inline __u16 xm_ipv4_hdr_csum(const void *iph)
{
	const __u16 *w = iph;
	__u64 s = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	return (__u16)~xm_csum_fold(s);
}

#endif
