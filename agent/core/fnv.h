/* SPDX-License-Identifier: Apache-2.0 */
/* FNV-1a, 64 bits: a digest of bytes for change detection (never for anything an attacker picks to collide). */
#ifndef XMESH_CORE_FNV_H
#define XMESH_CORE_FNV_H

#include <stddef.h>
#include <stdint.h>

#define XM_FNV1A64_BASIS 0xcbf29ce484222325ULL

/* h folded with the n bytes at p (start with XM_FNV1A64_BASIS). */
static inline uint64_t xm_fnv1a64(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

#endif
