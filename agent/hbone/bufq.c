// SPDX-License-Identifier: Apache-2.0
/* A byte queue in 16 KiB blocks: a stream's buffers grow with what they hold and shrink as it drains. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hbone/internal.h"

size_t hb_bufq_reserve(struct hb_bufq *q, uint8_t **p)
{
	struct hb_block *b = q->tail;

	if (!b || b->end == HB_BLOCK) {
		b = malloc(sizeof(*b));
		if (!b)
			return 0;
		b->next = NULL;
		b->start = b->end = 0;
		if (q->tail)
			q->tail->next = b;
		else
			q->head = b;
		q->tail = b;
	}
	*p = b->data + b->end;
	return HB_BLOCK - b->end;
}

void hb_bufq_commit(struct hb_bufq *q, size_t n)
{
	q->tail->end += (uint32_t)n;
	q->len += n;
}

int hb_bufq_append(struct hb_bufq *q, const void *data, size_t len)
{
	const uint8_t *src = data;

	while (len) {
		uint8_t *p;
		size_t room = hb_bufq_reserve(q, &p);

		if (!room)
			return -ENOMEM;
		if (room > len)
			room = len;
		memcpy(p, src, room);
		hb_bufq_commit(q, room);
		src += room;
		len -= room;
	}
	return 0;
}

size_t hb_bufq_peek(const struct hb_bufq *q, const uint8_t **p)
{
	if (!q->head)
		return 0;
	*p = q->head->data + q->head->start;
	return q->head->end - q->head->start;
}

size_t hb_bufq_iov(const struct hb_bufq *q, struct iovec *iov, size_t max)
{
	size_t n = 0;

	for (const struct hb_block *b = q->head; b && n < max; b = b->next) {
		if (b->end == b->start)
			continue;
		iov[n].iov_base = (void *)(b->data + b->start);
		iov[n].iov_len = b->end - b->start;
		n++;
	}
	return n;
}

void hb_bufq_consume(struct hb_bufq *q, size_t n)
{
	while (n && q->head) {
		struct hb_block *b = q->head;
		size_t have = b->end - b->start;
		size_t take = n < have ? n : have;

		b->start += (uint32_t)take;
		q->len -= take;
		n -= take;
		if (b->start == b->end) {
			q->head = b->next;
			if (!q->head)
				q->tail = NULL;
			free(b);
		}
	}
}

size_t hb_bufq_copy_out(struct hb_bufq *q, void *buf, size_t len)
{
	uint8_t *dst = buf;
	size_t done = 0;

	while (done < len) {
		const uint8_t *p;
		size_t n = hb_bufq_peek(q, &p);

		if (!n)
			break;
		if (n > len - done)
			n = len - done;
		memcpy(dst + done, p, n);
		hb_bufq_consume(q, n);
		done += n;
	}
	return done;
}

void hb_bufq_free(struct hb_bufq *q)
{
	while (q->head) {
		struct hb_block *b = q->head;

		q->head = b->next;
		free(b);
	}
	q->tail = NULL;
	q->len = 0;
}
