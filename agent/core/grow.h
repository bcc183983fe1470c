/* SPDX-License-Identifier: Apache-2.0 */
/* Growing a heap array in place: one realloc policy instead of a hand-written one per array. */
#ifndef XMESH_GROW_H
#define XMESH_GROW_H

#include <stddef.h>

/*
 * Makes room for need elements of elem bytes in *arr, whose capacity is *cap elements: at least doubles
 * (from 8), at least to need. Returns 0, or -ENOMEM with *arr and *cap unchanged, so the caller's elements
 * stay valid and counted.
 */
int xm_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* xm_grow for a typed array: XM_GROW(s->items, s->cap, s->n + 1). */
#define XM_GROW(arr, cap, need) xm_grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

#endif
