// SPDX-License-Identifier: Apache-2.0
/*
 * A stream as its user sees it: a duplex byte pipe. Received bytes wait in rx until read, and only then
 * does the window open again (the peer never has more in flight than the stream's window); written bytes
 * wait in tx (at most HBONE_STREAM_BUFFER) until nghttp2 may send them.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/loop.h"
#include "hbone/internal.h"

void hb_stream_link(struct hb_conn *c, struct hbone_stream *s)
{
	s->conn = c;
	s->prev = NULL;
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	c->n_streams++;
}

void hb_stream_mark_closed(struct hbone_stream *s, int err)
{
	if (s->h2_closed)
		return;
	s->h2_closed = true;
	s->close_err = err;
	s->ev_close = true;
	if (s->conn->n_streams)
		s->conn->n_streams--;
}

void hb_stream_consumed(struct hbone_stream *s, size_t n)
{
	struct hb_conn *c = s->conn;

	if (!c->h2 || !n)
		return;
	if (s->h2_closed || s->id <= 0)
		nghttp2_session_consume_connection(c->h2, n);
	else
		nghttp2_session_consume(c->h2, s->id, n);
}

void hb_stream_tx_ready(struct hbone_stream *s)
{
	struct hb_conn *c = s->conn;

	if (s->tx_deferred && s->id > 0 && c->h2 && !s->h2_closed) {
		s->tx_deferred = false;
		nghttp2_session_resume_data(c->h2, s->id);
	}
}

void hb_stream_tx_taken(struct hbone_stream *s)
{
	if (s->want_writable && s->tx.len <= HBONE_STREAM_BUFFER / 2) {
		s->want_writable = false;
		s->ev_writable = true;
	}
}

/*
 * The bytes of the next DATA frame. They stay in s->tx and conn.c's send_data_cb copies them once, into the
 * connection's output buffer (NGHTTP2_DATA_FLAG_NO_COPY), when that buffer has room for the whole frame, which is
 * nearly always; else nghttp2 takes a copy and sends it as the buffer drains.
 */
static ssize_t provider_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length, uint32_t *data_flags,
			     nghttp2_data_source *source, void *ud)
{
	struct hbone_stream *s = source->ptr;
	struct hb_conn *c = ud;
	size_t n, room, left;

	(void)h2, (void)id;
	/* A CONNECT's bytes go once the 200 came back, as ztunnel's do. */
	if (c->side == HBONE_SIDE_CLIENT && !s->opened) {
		s->tx_deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	n = s->tx.len < length ? s->tx.len : length;
	room = hb_conn_out_room(c);
	if (n && room >= 9 + HB_DATA_NO_COPY_MIN) {
		if (n > room - 9)
			n = room - 9;
		*data_flags |= NGHTTP2_DATA_FLAG_NO_COPY; /* send_data_cb takes them out of s->tx */
		left = s->tx.len - n;
	} else {
		if (n) {
			n = hb_bufq_copy_out(&s->tx, buf, n);
			hb_stream_tx_taken(s);
		}
		left = s->tx.len;
	}
	if (n)
		hb_count(&c->ctr->bytes_sent[c->side], n);
	if (left == 0 && s->tx_eof) {
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (!n) {
		s->tx_deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

const nghttp2_data_provider hb_stream_provider = { .read_callback = provider_read };

void hb_stream_free(struct hbone_stream *s)
{
	struct hb_conn *c = s->conn;

	if (s->counts)
		hb_count(&s->counts->closed, 1);
	if (s->rx.len && c && c->state != HB_DEAD)
		hb_stream_consumed(s, s->rx.len);
	hb_bufq_free(&s->rx);
	hb_bufq_free(&s->tx);
	if (s->target_fd >= 0 && c) {
		loop_del_fd(c->loop, s->target_fd);
		close(s->target_fd);
	}
	if (c)
		loop_timer_cancel(c->loop, s->target_timer);
	free(s->req_nv);
	free(s->req_buf);
	free(s);
}

ssize_t hbone_stream_read(struct hbone_stream *s, void *buf, size_t len)
{
	size_t n;

	if (s->detached)
		return -EPIPE;
	n = hb_bufq_copy_out(&s->rx, buf, len);
	if (n) {
		hb_stream_consumed(s, n);
		if (s->rx.len == 0 && s->h2_closed && !s->notified_close)
			s->ev_close = true;
		hb_conn_kick(s->conn);
		return (ssize_t)n;
	}
	if (s->rx_eof)
		return 0;
	if (s->h2_closed)
		return s->close_err ? s->close_err : 0;
	return -EAGAIN;
}

ssize_t hbone_stream_write(struct hbone_stream *s, const void *buf, size_t len)
{
	size_t room;

	if (s->detached || s->h2_closed || s->tx_eof)
		return -EPIPE;
	room = HBONE_STREAM_BUFFER > s->tx.len ? HBONE_STREAM_BUFFER - s->tx.len : 0;
	if (!room) {
		s->want_writable = true;
		return -EAGAIN;
	}
	if (len > room)
		len = room;
	if (hb_bufq_append(&s->tx, buf, len))
		return -ENOMEM;
	hb_stream_tx_ready(s);
	hb_conn_kick(s->conn);
	return (ssize_t)len;
}

int hbone_stream_shutdown(struct hbone_stream *s)
{
	if (s->detached || s->h2_closed)
		return -EPIPE;
	s->tx_eof = true;
	hb_stream_tx_ready(s);
	hb_conn_kick(s->conn);
	return 0;
}

void hbone_stream_close(struct hbone_stream *s)
{
	struct hb_conn *c = s->conn;

	if (s->detached)
		return;
	s->detached = true;
	if (s->rx.len) {
		hb_stream_consumed(s, s->rx.len);
		hb_bufq_free(&s->rx);
	}
	if (!s->h2_closed) {
		if (s->id > 0 && c->h2 && c->state == HB_READY)
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
		if (s->id <= 0)
			hb_stream_mark_closed(s, -ECANCELED);
	}
	hb_conn_kick(c);
}

const char *hbone_stream_peer_id(const struct hbone_stream *s)
{
	return s->conn ? s->conn->peer_id : "";
}
