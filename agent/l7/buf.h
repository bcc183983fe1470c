/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bounded byte buffer for one direction of one proxied connection: allocated when the first byte needs it,
 * released when it empties while the connection idles, never larger than its capacity (backpressure).
 */
#ifndef XMESH_L7_BUF_H
#define XMESH_L7_BUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A head (60 KiB at most, h1.h) always fits; the rewritten head gets the margin. */
#define L7_BUF_CAP (64 * 1024 + 8 * 1024)

struct l7_buf {
	char *data;	     /* NULL until needed */
	uint32_t head, tail; /* bytes [head, tail) are queued */
};

/*
 * Buffers a worker gave back, for its next connection: a keep-alive connection releases its buffers between
 * requests, and malloc would otherwise hand the arena's top back to the kernel and fault it in again each
 * time. Per thread, bounded (L7_BUF_CACHE); buf.c.
 */
#define L7_BUF_CACHE 64
char *l7_buf_alloc(void);
void l7_buf_release(char *data);
/* Frees the calling thread's cached buffers (a worker that stops). */
void l7_buf_cache_drain(void);

static inline uint32_t l7_buf_len(const struct l7_buf *b)
{
	return b->tail - b->head;
}

static inline const char *l7_buf_peek(const struct l7_buf *b)
{
	return b->data + b->head;
}

/* Space that can be appended now (after moving queued bytes to the front); 0 when out of memory. */
static inline uint32_t l7_buf_room(struct l7_buf *b)
{
	if (!b->data) {
		b->data = l7_buf_alloc();
		if (!b->data)
			return 0;
	}
	if (b->head && b->tail == L7_BUF_CAP) {
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->tail -= b->head;
		b->head = 0;
	}
	return L7_BUF_CAP - b->tail;
}

/* Room without allocating or moving anything: whether a read could take bytes. */
static inline bool l7_buf_full(const struct l7_buf *b)
{
	return b->data && b->head == 0 && b->tail == L7_BUF_CAP;
}

static inline char *l7_buf_end(struct l7_buf *b)
{
	return b->data + b->tail;
}

static inline void l7_buf_commit(struct l7_buf *b, uint32_t n)
{
	b->tail += n;
}

static inline void l7_buf_consume(struct l7_buf *b, uint32_t n)
{
	b->head += n;
	if (b->head == b->tail)
		b->head = b->tail = 0;
}

/* Appends all of p[0..n) or nothing; false when it does not fit now. */
static inline bool l7_buf_append(struct l7_buf *b, const void *p, uint32_t n)
{
	if (l7_buf_room(b) < n)
		return false;
	memcpy(b->data + b->tail, p, n);
	b->tail += n;
	return true;
}

/* Gives the memory back when nothing is queued (idle keep-alive connections cost no buffer). */
static inline void l7_buf_trim(struct l7_buf *b)
{
	if (b->data && b->head == b->tail) {
		l7_buf_release(b->data);
		b->data = NULL;
		b->head = b->tail = 0;
	}
}

static inline void l7_buf_free(struct l7_buf *b)
{
	if (b->data)
		l7_buf_release(b->data);
	b->data = NULL;
	b->head = b->tail = 0;
}

#endif
