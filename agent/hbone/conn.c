// SPDX-License-Identifier: Apache-2.0
/*
 * One HBONE TLS connection, either side: the TCP connect and TLS handshake, then the pump between the
 * socket and nghttp2 (TLS records in, HTTP/2 frames out through a 64 KiB buffer), the keep-alive PINGs,
 * the client's idle timeout, and the delivery of stream events to their users outside nghttp2's callbacks
 * (so that a user may write, open or close streams from any callback).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/loop.h"
#include "hbone/internal.h"

#define HB_CONN_EVENTS	   (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
#define HB_DISPATCH_ROUNDS 8

static void maybe_destroy(struct hb_conn *c)
{
	if (c->state == HB_DEAD && c->refs == 0 && !c->in_progress)
		hb_conn_destroy(c);
}

/* ---- nghttp2 callbacks: they change state and queue events, never call users ---- */

static ssize_t send_cb(nghttp2_session *h2, const uint8_t *data, size_t len, int flags, void *ud)
{
	struct hb_conn *c = ud;
	size_t room;

	(void)h2, (void)flags;
	if (c->mem) {
		c->mem_out += len;
		if (c->mem_sink)
			c->mem_sink(c->mem_arg, data, len);
		return (ssize_t)len;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	room = HB_OUT_CAP - c->out_len;
	if (room < len && c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
		room = HB_OUT_CAP - c->out_len;
	}
	if (!room)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (len > room)
		len = room;
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return (ssize_t)len;
}

static struct hbone_stream *stream_of(nghttp2_session *h2, int32_t id)
{
	return nghttp2_session_get_stream_user_data(h2, id);
}

size_t hb_conn_out_room(struct hb_conn *c)
{
	if (c->mem)
		return SIZE_MAX;
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	} else if (c->out_off && c->out_len - c->out_off <= HB_OUT_CAP / 4 &&
		   HB_OUT_CAP - c->out_len < HB_DATA_NO_COPY_MIN + 9) {
		/* a short tail: moved to the front, so that the next frame is whole */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	return HB_OUT_CAP - c->out_len;
}

static void out_put(struct hb_conn *c, const uint8_t *data, size_t len)
{
	if (c->mem) {
		c->mem_out += len;
		if (c->mem_sink)
			c->mem_sink(c->mem_arg, data, len);
		return;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

/* A DATA frame whose payload stream.c left in the stream's buffer (NGHTTP2_DATA_FLAG_NO_COPY): the header and
 * the payload go straight into c->out, which provider_read made sure has room for both. */
static int send_data_cb(nghttp2_session *h2, nghttp2_frame *f, const uint8_t *framehd, size_t length,
			nghttp2_data_source *source, void *ud)
{
	struct hb_conn *c = ud;
	struct hbone_stream *s = stream_of(h2, f->hd.stream_id);
	size_t pad = f->data.padlen;

	(void)source; /* s, unless the stream closed in between (it did not: the frame goes as it is made) */
	if (!s || s->tx.len < length)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (hb_conn_out_room(c) < 9 + pad + length)
		return NGHTTP2_ERR_WOULDBLOCK;
	out_put(c, framehd, 9);
	if (pad) {
		uint8_t b = (uint8_t)(pad - 1);

		out_put(c, &b, 1);
	}
	while (length) {
		const uint8_t *p;
		size_t n = hb_bufq_peek(&s->tx, &p);

		if (n > length)
			n = length;
		out_put(c, p, n);
		hb_bufq_consume(&s->tx, n);
		length -= n;
	}
	for (; pad > 1; pad--)
		out_put(c, (const uint8_t *)"", 1);
	hb_stream_tx_taken(s);
	return 0;
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	struct hb_conn *c = ud;

	(void)h2;
	if (c->ops->on_begin_headers && f->hd.type == NGHTTP2_HEADERS)
		return c->ops->on_begin_headers(c, f);
	return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct hb_conn *c = ud;
	struct hbone_stream *s = stream_of(h2, f->hd.stream_id);

	(void)flags;
	if (!s || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (c->ops->on_header)
		return c->ops->on_header(c, s, name, namelen, value, valuelen);
	/* client: the response's status; the rest of a response is not needed */
	s->header_bytes += (uint32_t)(namelen + valuelen + 32);
	if (s->header_bytes > c->max_header_list)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (namelen == 7 && !memcmp(name, ":status", 7) && valuelen == 3) {
		s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
	}
	return 0;
}

static void client_response(struct hb_conn *c, struct hbone_stream *s)
{
	if (s->opened || s->ev_open)
		return;
	if (s->status == 200) {
		s->opened = true;
		hb_count(&c->ctr->streams_opened[HBONE_SIDE_CLIENT], 1);
		hb_stream_tx_ready(s); /* data written before the 200 may go now */
	} else {
		if (s->status <= 0)
			s->status = 502;
		hb_count(&c->ctr->streams_refused[HBONE_REFUSED_STATUS], 1);
		/* ztunnel drops the stream on a non-200: so do we */
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
	}
	s->ev_open = true;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	struct hb_conn *c = ud;
	struct hbone_stream *s = f->hd.stream_id ? stream_of(h2, f->hd.stream_id) : NULL;

	switch (f->hd.type) {
	case NGHTTP2_HEADERS:
		if (!s)
			break;
		if (c->side == HBONE_SIDE_SERVER && f->headers.cat == NGHTTP2_HCAT_REQUEST && c->ops->on_request) {
			int rv = c->ops->on_request(c, s);

			if (rv)
				return rv;
		} else if (c->side == HBONE_SIDE_CLIENT && f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			client_response(c, s);
		}
		if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
			s->rx_eof = true;
			s->ev_readable = true;
		}
		break;
	case NGHTTP2_DATA:
		if (s && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
			s->rx_eof = true;
			s->ev_readable = true;
		}
		break;
	case NGHTTP2_PING:
		if (f->hd.flags & NGHTTP2_FLAG_ACK)
			c->ping_outstanding = false;
		break;
	case NGHTTP2_GOAWAY:
		c->goaway = true;
		break;
	default:
		break;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
	struct hb_conn *c = ud;
	struct hbone_stream *s = stream_of(h2, id);

	(void)flags;
	if (!s || s->detached) {
		nghttp2_session_consume(h2, id, len);
		return 0;
	}
	if (hb_bufq_append(&s->rx, data, len))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	hb_count(&c->ctr->bytes_received[c->side], len);
	s->ev_readable = true;
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *ud)
{
	struct hbone_stream *s = stream_of(h2, id);

	struct hb_conn *c = ud;

	if (!s)
		return 0;
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	if (c->side == HBONE_SIDE_CLIENT && !s->opened && !s->ev_open && s->status <= 0 && !s->detached) {
		/* Closed before any answer: refused (beyond the server's stream limit, or after its GOAWAY:
		 * nothing was done, the caller may retry) or reset. */
		bool refused = error_code == NGHTTP2_REFUSED_STREAM;

		s->status = refused ? -EAGAIN : -ECONNRESET;
		s->ev_open = true;
		hb_count(&c->ctr->streams_refused[refused ? HBONE_REFUSED_STREAM_LIMIT : HBONE_REFUSED_CONNECT_FAILED],
			 1);
	}
	hb_stream_mark_closed(s, error_code == NGHTTP2_NO_ERROR ? 0 : -ECONNRESET);
	return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	struct hb_conn *c = ud;
	struct hbone_stream *s;
	nghttp2_stream *st;

	/* A refusal went out with END_STREAM: the client has no reason to send more (RFC 9113 §8.1). */
	if (c->side != HBONE_SIDE_SERVER || f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	s = stream_of(h2, f->hd.stream_id);
	st = nghttp2_session_find_stream(h2, f->hd.stream_id);
	if (s && !s->opened && st && nghttp2_stream_get_state(st) == NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL)
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
	return 0;
}

static int on_invalid_frame(nghttp2_session *h2, const nghttp2_frame *f, int lib_error, void *ud)
{
	struct hb_conn *c = ud;

	(void)h2, (void)lib_error;
	if (c->ops->on_invalid_headers && f->hd.type == NGHTTP2_HEADERS)
		c->ops->on_invalid_headers(c, f);
	return 0;
}

int hb_conn_start_h2(struct hb_conn *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[5];
	size_t n = 0;
	int rv;

	if (nghttp2_session_callbacks_new(&cb))
		return -ENOMEM;
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cb);
		return -ENOMEM;
	}
	nghttp2_session_callbacks_set_send_callback(cb, send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
	/* Windows open as bytes leave the stream's buffer, not as they arrive: that is the backpressure. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_send_header_block_length(opt, 65536);
	if (c->side == HBONE_SIDE_SERVER)
		rv = nghttp2_session_server_new2(&c->h2, cb, c, opt);
	else
		rv = nghttp2_session_client_new2(&c->h2, cb, c, opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rv)
		return -ENOMEM;
	iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->max_streams };
	iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, HBONE_STREAM_WINDOW };
	iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, HBONE_FRAME_SIZE };
	iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->max_header_list };
	iv[n++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, n) ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, (int32_t)HBONE_CONN_WINDOW))
		return -ENOMEM;
	return 0;
}

/* ---- I/O ---- */

int hb_conn_input(struct hb_conn *c, const uint8_t *data, size_t len)
{
	ssize_t rv = nghttp2_session_mem_recv(c->h2, data, len);

	return rv < 0 ? -EPROTO : 0;
}

static int read_tls(struct hb_conn *c)
{
	uint8_t buf[16384];

	while (c->readable && c->state == HB_READY) {
		int n, e;

		ERR_clear_error();
		n = SSL_read(c->ssl, buf, sizeof(buf));
		if (n > 0) {
			if (hb_conn_input(c, buf, (size_t)n))
				return -EPROTO;
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ) {
			c->readable = false;
			break;
		}
		if (e == SSL_ERROR_WANT_WRITE)
			break;
		return e == SSL_ERROR_ZERO_RETURN ? -ECONNRESET : -EIO;
	}
	return 0;
}

/* Frames from nghttp2 through c->out into TLS records (into the TLS write buffer, or the memory sink). */
static int write_frames(struct hb_conn *c)
{
	for (;;) {
		int n, e;

		if (c->out_off == c->out_len)
			c->out_off = c->out_len = 0;
		if (c->h2 && c->out_len < HB_OUT_CAP && nghttp2_session_send(c->h2))
			return -EPROTO;
		if (c->out_off == c->out_len || c->mem)
			return 0;
		if (!c->writable)
			return 0;
		ERR_clear_error();
		n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_WRITE) {
			c->writable = false;
			return 0;
		}
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		return -EIO;
	}
}

/* Writes what nghttp2 has, then sends the records buffered (tls.c hb_tls_flush) with one send. */
static int flush(struct hb_conn *c)
{
	int err = write_frames(c);

	if (err || c->mem || !c->ssl || !c->writable)
		return err;
	err = hb_tls_flush(c->ssl);
	if (err == -EAGAIN) {
		c->writable = false; /* EPOLLOUT sends the rest */
		return 0;
	}
	return err;
}

/* Delivers queued stream events, then frees the streams that are over. */
static void dispatch(struct hb_conn *c)
{
	int round;

	for (round = 0; round < HB_DISPATCH_ROUNDS; round++) {
		struct hbone_stream *s;
		bool any = false;

		for (s = c->streams; s; s = s->next) {
			const struct hbone_stream_ops *ops = s->ops;

			if (s->detached) {
				s->ev_open = s->ev_readable = s->ev_writable = s->ev_close = false;
				continue;
			}
			if (s->ev_open) {
				s->ev_open = false;
				any = true;
				if (ops->on_open)
					ops->on_open(s, s->ctx, s->status);
			}
			if (s->ev_readable && !s->detached) {
				s->ev_readable = false;
				any = true;
				if (ops->on_readable)
					ops->on_readable(s, s->ctx);
			}
			if (s->ev_writable && !s->detached) {
				s->ev_writable = false;
				any = true;
				if (ops->on_writable)
					ops->on_writable(s, s->ctx);
			}
			/* A clean end waits until what arrived before it was read. */
			if (s->ev_close && !s->detached && !s->ev_open && (s->rx.len == 0 || s->close_err)) {
				s->ev_close = false;
				s->notified_close = true;
				any = true;
				if (ops->on_close)
					ops->on_close(s, s->ctx, s->close_err);
			}
		}
		if (!any)
			break;
	}
	if (round == HB_DISPATCH_ROUNDS)
		c->again = true;
	{
		struct hbone_stream *s = c->streams, *next;

		for (; s; s = next) {
			next = s->next;
			if (s->h2_closed && (s->detached || s->notified_close)) {
				if (s->prev)
					s->prev->next = s->next;
				else
					c->streams = s->next;
				if (s->next)
					s->next->prev = s->prev;
				hb_stream_free(s);
			}
		}
	}
	hb_conn_idle_check(c);
}

static void close_socket(struct hb_conn *c)
{
	if (c->fd >= 0) {
		uint8_t junk[4096];
		size_t drained = 0;
		ssize_t n;

		loop_del_fd(c->loop, c->fd);
		/* Unread input would turn the close into a reset, which can destroy the TLS alert or GOAWAY just
		 * written before the peer reads it. */
		while (drained < (64u << 10) && (n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
			drained += (size_t)n;
		close(c->fd);
		c->fd = -1;
	}
	loop_timer_cancel(c->loop, c->hs_timer);
	loop_timer_cancel(c->loop, c->ping_timer);
	loop_timer_cancel(c->loop, c->idle_timer);
	c->hs_timer = c->ping_timer = c->idle_timer = NULL;
}

void hb_conn_fail(struct hb_conn *c, int err)
{
	struct hbone_stream *s;

	if (c->state == HB_DEAD)
		return;
	if (c->h2 && c->state == HB_READY) {
		/* a best-effort GOAWAY: the socket goes away right after */
		nghttp2_session_terminate_session(c->h2, err ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_NO_ERROR);
		(void)flush(c);
	}
	c->state = HB_DEAD;
	c->fail_err = err;
	if (c->ops->on_free)
		c->ops->on_free(c);
	for (s = c->streams; s; s = s->next) {
		if (!s->opened && !s->ev_open && s->status <= 0 && c->side == HBONE_SIDE_CLIENT && !s->detached) {
			/* no answer came: the connection (TCP, TLS, the peer's verdict on our certificate) failed */
			s->status = err ? err : -ECONNABORTED;
			s->ev_open = true;
			hb_count(&c->ctr->streams_refused[HBONE_REFUSED_CONNECT_FAILED], 1);
		}
		if (!s->h2_closed)
			hb_stream_mark_closed(s, err ? err : -ECONNABORTED);
		else if (!s->close_err && s->rx.len)
			s->close_err = err ? err : -ECONNABORTED;
	}
	close_socket(c);
	c->in_progress = true;
	dispatch(c);
	c->in_progress = false;
	if (c->counted_open) {
		atomic_fetch_sub_explicit(&c->ctr->connections_open[c->side], 1, memory_order_relaxed);
		c->counted_open = false;
	}
	maybe_destroy(c);
}

static void handshake(struct hb_conn *c)
{
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ) {
			c->readable = false;
			return;
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			c->writable = false;
			return;
		}
		hb_count(&c->ctr->handshakes[c->side][HBONE_HS_FAILURE], 1);
		if (c->ops->on_ready)
			c->ops->on_ready(c, false, -EACCES);
		hb_conn_fail(c, -EACCES);
		return;
	}
	if (SSL_session_reused(c->ssl)) {
		/* No certificate came: the peer is the one of the session, checked again before it resumed
		 * (tls.c). A resumption without that check (resumed_id empty) is refused. */
		memcpy(c->peer_id, c->resumed_id, sizeof(c->peer_id));
	}
	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2) || !c->peer_id[0]) {
		hb_count(&c->ctr->handshakes[c->side][HBONE_HS_FAILURE], 1);
		if (c->ops->on_ready)
			c->ops->on_ready(c, false, -EPROTO);
		hb_conn_fail(c, -EPROTO);
		return;
	}
	hb_count(&c->ctr->handshakes[c->side][HBONE_HS_SUCCESS], 1);
	if (SSL_session_reused(c->ssl))
		hb_count(&c->ctr->resumed[c->side], 1);
	loop_timer_cancel(c->loop, c->hs_timer);
	c->hs_timer = NULL;
	c->state = HB_READY;
	c->readable = true; /* application data may have come with the last handshake record */
	if (hb_conn_start_h2(c)) {
		hb_conn_fail(c, -ENOMEM);
		return;
	}
	if (c->ops->on_ready)
		c->ops->on_ready(c, true, 0);
}

/* Whether dispatch would call back a stream now. */
static bool events_pending(const struct hb_conn *c)
{
	for (const struct hbone_stream *s = c->streams; s; s = s->next) {
		if (s->detached)
			continue;
		if (s->ev_open || s->ev_readable || s->ev_writable || (s->ev_close && (s->rx.len == 0 || s->close_err)))
			return true;
	}
	return false;
}

void hb_conn_progress(struct hb_conn *c)
{
	int err = 0;

	if (c->state == HB_DEAD)
		return;
	if (c->in_progress) {
		c->again = true;
		return;
	}
	c->in_progress = true;
	do {
		c->again = false;
		if (c->state == HB_TCP_CONNECTING) {
			int soerr = 0;
			socklen_t len = sizeof(soerr);

			if (!c->writable)
				break;
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) || soerr) {
				err = soerr ? -soerr : -errno;
				break;
			}
			c->state = HB_HANDSHAKING;
			if (c->tls_wait_ms && c->hs_timer)
				loop_timer_arm(c->loop, c->hs_timer, c->tls_wait_ms);
		}
		if (c->state == HB_HANDSHAKING) {
			c->in_progress = false; /* handshake failures end in hb_conn_fail */
			c->refs++;
			handshake(c);
			c->refs--;
			c->in_progress = true;
			if (c->state != HB_READY)
				break;
		}
		if (!c->mem && (err = read_tls(c)))
			break;
		if ((err = flush(c)))
			break;
		dispatch(c);
		if ((err = flush(c)))
			break;
		/*
		 * Sending can raise events (nghttp2 took bytes out of a full stream buffer: on_writable; a stream
		 * closed as its last frame went): dispatch them now, or they wait for the next socket event, which
		 * may be the next PING 10 s later (seen in test_hbone_tunnel: a 10 MiB echo stalled there).
		 */
		if (events_pending(c))
			c->again = true;
		if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
		    c->out_off == c->out_len && !hb_tls_wpending(c->ssl)) {
			err = c->goaway ? 0 : -ECONNRESET;
			c->in_progress = false;
			hb_conn_fail(c, err);
			return;
		}
	} while (c->again && c->state != HB_DEAD);
	c->in_progress = false;
	if (err && c->state != HB_DEAD) {
		if (c->state == HB_TCP_CONNECTING && c->ops->on_ready)
			c->ops->on_ready(c, false, err);
		hb_conn_fail(c, err);
		return;
	}
	maybe_destroy(c);
}

static void kick_work(struct xm_loop *loop, void *arg)
{
	struct hb_conn *c = arg;

	(void)loop;
	c->kick_posted = false;
	c->refs--;
	if (c->state == HB_DEAD) {
		maybe_destroy(c);
		return;
	}
	hb_conn_progress(c);
}

void hb_conn_kick(struct hb_conn *c)
{
	if (c->in_progress) {
		c->again = true;
		return;
	}
	if (c->kick_posted || c->state == HB_DEAD)
		return;
	/* After the current batch: data several streams queued in it goes out in one flush. */
	if (loop_defer(c->loop, kick_work, c) == 0) {
		c->kick_posted = true;
		c->refs++;
	}
}

/* ---- timers and socket events ---- */

static void on_event(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct hb_conn *c = ctx;

	(void)loop, (void)fd;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)) {
		c->readable = true;
		c->edge.drained = false;
	}
	if (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))
		c->edge.closing = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->writable = true;
	hb_conn_progress(c);
}

static void on_hs_timeout(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct hb_conn *c = ctx;

	(void)loop, (void)t;
	if (c->state == HB_READY)
		return;
	if (c->state == HB_HANDSHAKING)
		hb_count(&c->ctr->handshakes[c->side][HBONE_HS_FAILURE], 1);
	if (c->ops->on_ready)
		c->ops->on_ready(c, false, -ETIMEDOUT);
	hb_conn_fail(c, -ETIMEDOUT);
}

static void on_ping(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct hb_conn *c = ctx;
	uint64_t now = loop_now_ms();

	(void)loop, (void)t;
	if (c->state != HB_READY)
		return;
	if (c->ping_outstanding) {
		if (now - c->ping_sent_ms >= c->ping_timeout_ms)
			hb_conn_fail(c, -ETIMEDOUT);
		return;
	}
	if (nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL))
		return;
	c->ping_outstanding = true;
	c->ping_sent_ms = now;
	hb_conn_progress(c);
}

static void on_idle(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct hb_conn *c = ctx;

	(void)loop, (void)t;
	if (c->state == HB_READY && c->n_streams == 0)
		hb_conn_fail(c, 0);
}

void hb_conn_idle_check(struct hb_conn *c)
{
	if (c->side != HBONE_SIDE_CLIENT || !c->idle_timer || c->state != HB_READY)
		return;
	if (c->n_streams == 0) {
		if (!loop_timer_armed(c->idle_timer))
			loop_timer_arm(c->loop, c->idle_timer, c->idle_timeout_ms);
	} else if (loop_timer_armed(c->idle_timer)) {
		loop_timer_disarm(c->loop, c->idle_timer);
	}
}

int hb_conn_attach(struct hb_conn *c)
{
	uint64_t ping_check = c->ping_interval_ms < c->ping_timeout_ms ? c->ping_interval_ms : c->ping_timeout_ms;

	c->hs_timer = loop_timer_add(c->loop, c->hs_timeout_ms, 0, on_hs_timeout, c);
	c->ping_timer = loop_timer_add(c->loop, c->ping_interval_ms, ping_check, on_ping, c);
	if (c->side == HBONE_SIDE_CLIENT) {
		c->idle_timer = loop_timer_add(c->loop, c->idle_timeout_ms, 0, on_idle, c);
		if (c->idle_timer)
			loop_timer_disarm(c->loop, c->idle_timer);
	}
	if (!c->hs_timer || !c->ping_timer || (c->side == HBONE_SIDE_CLIENT && !c->idle_timer))
		return -ENOMEM;
	if (c->fd >= 0 && loop_add_fd(c->loop, c->fd, HB_CONN_EVENTS, on_event, c))
		return -ENOMEM;
	hb_count(&c->ctr->connections_open[c->side], 1);
	c->counted_open = true;
	return 0;
}

struct hb_conn *hb_conn_new(struct xm_loop *loop, enum hbone_side side, const struct hb_conn_ops *ops, void *owner,
			    struct hbone_counters *ctr)
{
	struct hb_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->side = side;
	c->ops = ops;
	c->owner = owner;
	c->loop = loop;
	c->ctr = ctr;
	c->fd = -1;
	c->max_streams = HBONE_MAX_STREAMS;
	c->max_header_list = side == HBONE_SIDE_SERVER ? HBONE_SERVER_HEADER_LIST : HBONE_CLIENT_HEADER_LIST;
	c->ping_interval_ms = HBONE_PING_INTERVAL_MS;
	c->ping_timeout_ms = HBONE_PING_TIMEOUT_MS;
	c->hs_timeout_ms = HBONE_HANDSHAKE_TIMEOUT_MS;
	c->idle_timeout_ms = HBONE_POOL_IDLE_MS;
	return c;
}

void hb_conn_destroy(struct hb_conn *c)
{
	while (c->streams) {
		struct hbone_stream *s = c->streams;

		c->streams = s->next;
		hb_stream_free(s);
	}
	close_socket(c);
	if (c->counted_open)
		atomic_fetch_sub_explicit(&c->ctr->connections_open[c->side], 1, memory_order_relaxed);
	nghttp2_session_del(c->h2);
	SSL_free(c->ssl);
	hb_conn_set_peer(c, NULL, NULL);
	free(c);
}
