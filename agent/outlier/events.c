// SPDX-License-Identifier: Apache-2.0
#include "outlier/events.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "core/log.h"

struct xm_outlier_events {
	struct xm_loop *loop;
	struct ring_buffer *rb;
	int epfd;
	xm_outlier_event_cb cb;
	void *ctx;
};

static int on_record(void *ctx, void *data, size_t size)
{
	struct xm_outlier_events *e = ctx;

	if (size < sizeof(struct xm_event))
		return 0;
	e->cb(data, e->ctx);
	return 0;
}

static void on_readable(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct xm_outlier_events *e = ctx;

	(void)loop, (void)fd, (void)events;
	if (ring_buffer__consume(e->rb) < 0)
		log_warn("outlier events: %s", strerror(errno));
}

struct xm_outlier_events *outlier_events_open(struct xm_loop *loop, int ringbuf_fd, xm_outlier_event_cb cb, void *ctx)
{
	struct xm_outlier_events *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->loop = loop;
	e->cb = cb;
	e->ctx = ctx;
	e->rb = ring_buffer__new(ringbuf_fd, on_record, e, NULL);
	if (!e->rb) {
		log_error("outlier events: ring buffer: %s", strerror(errno));
		free(e);
		return NULL;
	}
	/* libbpf's own epoll fd becomes readable when any record is there: one fd for our loop. */
	e->epfd = ring_buffer__epoll_fd(e->rb);
	if (loop_add_fd(loop, e->epfd, EPOLLIN, on_readable, e) < 0) {
		log_error("outlier events: %s", strerror(errno));
		ring_buffer__free(e->rb);
		free(e);
		return NULL;
	}
	return e;
}

void outlier_events_close(struct xm_outlier_events *e)
{
	if (!e)
		return;
	loop_del_fd(e->loop, e->epfd);
	ring_buffer__free(e->rb);
	free(e);
}
