/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bounded byte ring with one producer thread and one consumer thread and no lock: the access log's and the
 * span exporter's per-worker queues. A message that does not fit is refused whole (the caller counts a drop).
 */
#ifndef XMESH_CORE_SPSC_RING_H
#define XMESH_CORE_SPSC_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * Bytes [tail, head) are queued; head and tail count bytes since the start (the position is their value modulo
 * size). The producer alone moves head (release, after copying), the consumer alone moves tail (release, after
 * it used the bytes); each reads the other's with acquire.
 */
struct xm_spsc_ring {
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) char *buf;
	size_t size; /* a power of two */
};

/* Allocates at least bytes (rounded up to a power of two, 4 KiB at least). -ENOMEM. */
int xm_spsc_ring_init(struct xm_spsc_ring *r, size_t bytes);
void xm_spsc_ring_free(struct xm_spsc_ring *r);

/* Producer: queues n bytes, or nothing and false when they do not fit. *queued: the bytes queued after. */
bool xm_spsc_ring_push(struct xm_spsc_ring *r, const void *p, size_t n, size_t *queued);

/* Consumer: the queued bytes as one or two pieces (iov[1] empty when they do not wrap); returns their total. */
size_t xm_spsc_ring_peek(struct xm_spsc_ring *r, struct iovec iov[2]);
/* Consumer: the first n queued bytes are done with (their room goes back to the producer). */
void xm_spsc_ring_consume(struct xm_spsc_ring *r, size_t n);
/* Either side: nothing queued. */
bool xm_spsc_ring_empty(struct xm_spsc_ring *r);

#endif
