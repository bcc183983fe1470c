// SPDX-License-Identifier: Apache-2.0
/*
 * A TCP connection carried by one HBONE stream (hbone.h, hbone_splice_open): bytes both ways with the
 * stream's backpressure, half-closes passed on, a failure on either side resets the other.
 *
 * Upstream (TCP → stream): read while the stream takes bytes; on -EAGAIN stop until on_writable (the socket
 * is edge-triggered, so reading resumes from there). Downstream (stream → TCP): read the stream while the
 * socket takes bytes; on EAGAIN leave the stream's bytes unread, so its window stays closed, until EPOLLOUT.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop.h"
#include "hbone/hbone.h"

#define SPLICE_BUF (64u << 10)

struct hbone_splice {
	struct xm_loop *loop;
	int fd;
	struct hbone_stream *s; /* NULL once its on_close ran (or we closed it) */
	hbone_splice_done_fn done;
	hbone_splice_opened_fn opened_fn;
	void *ctx;
	hbone_splice_refused_fn refused; /* hbone_splice_on_refused: the fd goes back instead of a reset */
	bool opened, tcp_eof, stream_eof, down_shut, up_blocked, finishing;
	/* The last read emptied the socket (cleared by the next EPOLLIN), and a FIN, hang-up or error was reported
	 * (sticky): as the TLS side's edge filter (tls_edge.c), the read that would return EAGAIN is skipped. */
	bool up_drained, up_closing;
	size_t up_len, up_off, down_len, down_off;
	uint8_t up[SPLICE_BUF], down[SPLICE_BUF];
};

static void finish(struct hbone_splice *sp, int err)
{
	if (sp->finishing)
		return;
	sp->finishing = true;
	if (sp->s) {
		hbone_stream_close(sp->s); /* no callback comes for it any more */
		sp->s = NULL;
	}
	loop_del_fd(sp->loop, sp->fd);
	if (err) {
		/* The application hears a reset, as from ztunnel when the tunnel fails. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(sp->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(sp->fd);
	if (sp->done)
		sp->done(sp->ctx, err);
	free(sp);
}

/* Both directions ended and nothing is left to write: done (true: sp is gone). */
static bool maybe_done(struct hbone_splice *sp)
{
	if (sp->tcp_eof && sp->stream_eof && sp->down_off == sp->down_len && !sp->s) {
		finish(sp, 0);
		return true;
	}
	return false;
}

static void pump_up(struct hbone_splice *sp)
{
	while (sp->s && sp->opened && !sp->tcp_eof) {
		if (sp->up_off < sp->up_len) {
			ssize_t w = hbone_stream_write(sp->s, sp->up + sp->up_off, sp->up_len - sp->up_off);

			if (w == -EAGAIN) {
				sp->up_blocked = true;
				return;
			}
			if (w < 0) {
				finish(sp, (int)w);
				return;
			}
			sp->up_off += (size_t)w;
			continue;
		}
		if (sp->up_drained && !sp->up_closing)
			return; /* the next EPOLLIN resumes */
		ssize_t n = read(sp->fd, sp->up, sizeof(sp->up));

		if (n > 0) {
			sp->up_len = (size_t)n;
			sp->up_off = 0;
			sp->up_drained = (size_t)n < sizeof(sp->up);
		} else if (n == 0) {
			sp->tcp_eof = true;
			hbone_stream_shutdown(sp->s);
		} else if (errno == EAGAIN) {
			return;
		} else if (errno != EINTR) {
			finish(sp, -errno);
			return;
		}
	}
}

/* Returns false when sp is gone. */
static bool pump_down(struct hbone_splice *sp)
{
	for (;;) {
		if (sp->down_off < sp->down_len) {
			ssize_t w = write(sp->fd, sp->down + sp->down_off, sp->down_len - sp->down_off);

			if (w < 0 && errno == EAGAIN)
				return true; /* EPOLLOUT resumes */
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				finish(sp, -errno);
				return false;
			}
			sp->down_off += (size_t)w;
			continue;
		}
		if (!sp->s || sp->stream_eof)
			break;
		ssize_t n = hbone_stream_read(sp->s, sp->down, sizeof(sp->down));

		if (n > 0) {
			sp->down_len = (size_t)n;
			sp->down_off = 0;
		} else if (n == 0) {
			sp->stream_eof = true;
		} else if (n == -EAGAIN) {
			return true;
		} else {
			finish(sp, (int)n);
			return false;
		}
	}
	if (sp->stream_eof && !sp->down_shut) {
		sp->down_shut = true;
		shutdown(sp->fd, SHUT_WR);
	}
	if (!sp->s && !sp->stream_eof) { /* the stream is gone without its end of data */
		finish(sp, -ECONNRESET);
		return false;
	}
	return !maybe_done(sp);
}

static void on_fd(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct hbone_splice *sp = ctx;

	(void)loop, (void)fd;
	if (events & EPOLLIN)
		sp->up_drained = false;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		sp->up_closing = true;
	if ((events & EPOLLOUT) && !pump_down(sp))
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		if (!sp->opened) {
			if (events & EPOLLERR) /* the application reset before the stream opened */
				finish(sp, -ECONNRESET);
			return; /* read once the stream is open */
		}
		pump_up(sp);
	}
}

static void on_open(struct hbone_stream *s, void *ctx, int status)
{
	struct hbone_splice *sp = ctx;

	(void)s;
	if (status == -EAGAIN && sp->refused) {
		/* Refused before the server processed it (its GOAWAY, its stream limit): no byte was read from fd
		 * (reading starts at the 200), so the caller may carry it again, on another connection. */
		hbone_splice_refused_fn fn = sp->refused;
		int fd = sp->fd;
		void *c = sp->ctx;

		hbone_stream_close(sp->s);
		loop_del_fd(sp->loop, fd);
		free(sp);
		fn(c, fd);
		return;
	}
	if (sp->opened_fn)
		sp->opened_fn(sp->ctx, status);
	if (status != 200) {
		finish(sp, status < 0 ? status : -ECONNREFUSED);
		return;
	}
	sp->opened = true;
	pump_up(sp);
}

static void on_readable(struct hbone_stream *s, void *ctx)
{
	(void)s;
	pump_down(ctx);
}

static void on_writable(struct hbone_stream *s, void *ctx)
{
	struct hbone_splice *sp = ctx;

	(void)s;
	if (!sp->up_blocked)
		return;
	sp->up_blocked = false;
	pump_up(sp);
}

static void on_close(struct hbone_stream *s, void *ctx, int err)
{
	struct hbone_splice *sp = ctx;

	(void)s;
	sp->s = NULL;
	if (err || !sp->opened) {
		finish(sp, err ? err : -ECONNREFUSED);
		return;
	}
	/* A clean end: both sides sent END_STREAM and every byte received was read (hbone.h). */
	sp->stream_eof = true;
	pump_down(sp); /* writes what is left, half-closes, then ends */
}

static const struct hbone_stream_ops splice_ops = {
	.on_open = on_open,
	.on_readable = on_readable,
	.on_writable = on_writable,
	.on_close = on_close,
};

struct hbone_splice *hbone_splice_open(struct hbone_client *cl, struct xm_loop *loop, int fd,
				       const struct hbone_open *req, hbone_splice_done_fn done, void *ctx)
{
	struct hbone_splice *sp = calloc(1, sizeof(*sp));

	if (!sp) {
		close(fd);
		return NULL;
	}
	sp->loop = loop;
	sp->fd = fd;
	sp->done = done;
	sp->ctx = ctx;
	if (loop_add_fd(loop, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_fd, sp)) {
		close(fd);
		free(sp);
		return NULL;
	}
	sp->s = hbone_client_open(cl, req, &splice_ops, sp);
	if (!sp->s) {
		loop_del_fd(loop, fd);
		close(fd);
		free(sp);
		return NULL;
	}
	return sp;
}

void hbone_splice_on_open(struct hbone_splice *sp, hbone_splice_opened_fn opened)
{
	sp->opened_fn = opened;
}

void hbone_splice_on_refused(struct hbone_splice *sp, hbone_splice_refused_fn fn)
{
	sp->refused = fn;
}
