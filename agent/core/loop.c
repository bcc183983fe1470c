// SPDX-License-Identifier: Apache-2.0
#include "core/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct xm_loop_handler {
	int fd;
	bool owned;
	xm_loop_cb cb;
	void *ctx;
	struct xm_loop_handler *next;
};

struct xm_loop {
	int epfd;
	bool stop;
	struct xm_loop_handler *handlers;
};

struct xm_loop *loop_new(void)
{
	struct xm_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	return loop;
}

void loop_free(struct xm_loop *loop)
{
	struct xm_loop_handler *h, *next;

	if (!loop)
		return;
	for (h = loop->handlers; h; h = next) {
		next = h->next;
		if (h->owned)
			close(h->fd);
		free(h);
	}
	close(loop->epfd);
	free(loop);
}

static int loop_add(struct xm_loop *loop, int fd, uint32_t events, xm_loop_cb cb, void *ctx, bool owned)
{
	struct xm_loop_handler *h = calloc(1, sizeof(*h));
	struct epoll_event ev = { .events = events };

	if (!h)
		return -ENOMEM;
	h->fd = fd;
	h->cb = cb;
	h->ctx = ctx;
	h->owned = owned;
	ev.data.ptr = h;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(h);
		return err;
	}
	h->next = loop->handlers;
	loop->handlers = h;
	return 0;
}

int loop_add_fd(struct xm_loop *loop, int fd, uint32_t events, xm_loop_cb cb, void *ctx)
{
	return loop_add(loop, fd, events, cb, ctx, false);
}

int loop_del_fd(struct xm_loop *loop, int fd)
{
	struct xm_loop_handler **pp, *h;

	for (pp = &loop->handlers; (h = *pp); pp = &h->next) {
		if (h->fd != fd)
			continue;
		*pp = h->next;
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
		if (h->owned)
			close(h->fd);
		/* Freed now: callers never delete a handler from inside another handler's batch. */
		free(h);
		return 0;
	}
	return -ENOENT;
}

static void ms_to_timespec(uint64_t ms, struct timespec *ts)
{
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (ms % 1000) * 1000000;
}

int loop_arm_timer(int timer_fd, uint64_t ms)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	ms_to_timespec(ms ? ms : 1, &its.it_value);
	return timerfd_settime(timer_fd, 0, &its, NULL) < 0 ? -errno : 0;
}

int loop_add_timer(struct xm_loop *loop, uint64_t first_ms, uint64_t interval_ms, xm_loop_cb cb, void *ctx)
{
	struct itimerspec its;
	int fd, err;

	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(&its, 0, sizeof(its));
	ms_to_timespec(first_ms ? first_ms : 1, &its.it_value);
	ms_to_timespec(interval_ms, &its.it_interval);
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	err = loop_add(loop, fd, EPOLLIN, cb, ctx, true);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int loop_run(struct xm_loop *loop)
{
	struct epoll_event events[32];
	int n, i;

	loop->stop = false;
	while (!loop->stop) {
		n = epoll_wait(loop->epfd, events, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < n && !loop->stop; i++) {
			struct xm_loop_handler *h = events[i].data.ptr;
			uint64_t expirations;

			if (h->owned) /* timers: drain so the fd stops being readable */
				(void)!read(h->fd, &expirations, sizeof(expirations));
			h->cb(loop, h->fd, events[i].events, h->ctx);
		}
	}
	return 0;
}

void loop_stop(struct xm_loop *loop)
{
	loop->stop = true;
}
