// SPDX-License-Identifier: Apache-2.0
/* The single-producer single-consumer byte ring (core/spsc_ring.h): two counters, no lock, no system call. */
#include "core/spsc_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int xm_spsc_ring_init(struct xm_spsc_ring *r, size_t bytes)
{
	size_t size = 4096;

	while (size < bytes)
		size <<= 1;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->size = size;
	r->buf = malloc(size);
	return r->buf ? 0 : -ENOMEM;
}

void xm_spsc_ring_free(struct xm_spsc_ring *r)
{
	free(r->buf);
	r->buf = NULL;
}

bool xm_spsc_ring_push(struct xm_spsc_ring *r, const void *p, size_t n, size_t *queued)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	size_t off, first;

	if (n > r->size || head - tail + n > r->size) {
		*queued = (size_t)(head - tail);
		return false;
	}
	off = head & (r->size - 1);
	first = n < r->size - off ? n : r->size - off;
	memcpy(r->buf + off, p, first);
	memcpy(r->buf, (const char *)p + first, n - first);
	atomic_store_explicit(&r->head, head + n, memory_order_release);
	*queued = (size_t)(head - tail + n);
	return true;
}

size_t xm_spsc_ring_peek(struct xm_spsc_ring *r, struct iovec iov[2])
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	size_t len = (size_t)(head - tail), off = tail & (r->size - 1);
	size_t first = len < r->size - off ? len : r->size - off;

	iov[0] = (struct iovec){ r->buf + off, first };
	iov[1] = (struct iovec){ r->buf, len - first };
	return len;
}

void xm_spsc_ring_consume(struct xm_spsc_ring *r, size_t n)
{
	atomic_store_explicit(&r->tail, atomic_load_explicit(&r->tail, memory_order_relaxed) + n, memory_order_release);
}

bool xm_spsc_ring_empty(struct xm_spsc_ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire) ==
	       atomic_load_explicit(&r->tail, memory_order_acquire);
}
