/* SPDX-License-Identifier: Apache-2.0 */
/* Growing arrays without losing them: the one realloc pattern of the agent. */
#ifndef XMESH_CORE_GROW_H
#define XMESH_CORE_GROW_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Makes *arr (of *cap elements of elem bytes) hold at least need elements, doubling from 16. On failure
 * returns -ENOMEM and leaves *arr and *cap as they were, so the caller still owns (and frees) the array.
 */
static inline int xm_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 16;
	void *p;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	if (elem && ncap > SIZE_MAX / elem)
		return -ENOMEM;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

#endif
