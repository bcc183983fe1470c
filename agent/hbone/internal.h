/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE internals shared by the connection pump (conn.c), streams (stream.c), the server (server.c) and the
 * client pool (client.c). Not for other modules: they use hbone.h.
 */
#ifndef XMESH_HBONE_INTERNAL_H
#define XMESH_HBONE_INTERNAL_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <sys/uio.h>

#include "hbone/hbone.h"

struct xm_timer;

/* ---- byte queue: a list of blocks, so that a stream holds what it holds and no more ---- */

#define HB_BLOCK 16384

struct hb_block {
	struct hb_block *next;
	uint32_t start, end;
	uint8_t data[HB_BLOCK];
};

struct hb_bufq {
	struct hb_block *head, *tail;
	size_t len;
};

int hb_bufq_append(struct hb_bufq *q, const void *data, size_t len);
/* Contiguous bytes at the front (0 when empty). */
size_t hb_bufq_peek(const struct hb_bufq *q, const uint8_t **p);
void hb_bufq_consume(struct hb_bufq *q, size_t n);
/* The blocks at the front, at most max of them, as iovecs (for one sendmsg): how many. */
size_t hb_bufq_iov(const struct hb_bufq *q, struct iovec *iov, size_t max);
/* Room at the back to write into directly (allocating a block when needed): its length, or 0 (ENOMEM). */
size_t hb_bufq_reserve(struct hb_bufq *q, uint8_t **p);
void hb_bufq_commit(struct hb_bufq *q, size_t n);
size_t hb_bufq_copy_out(struct hb_bufq *q, void *buf, size_t len);
void hb_bufq_free(struct hb_bufq *q);

/* ---- streams ---- */

struct hb_conn;

struct hbone_stream {
	struct hb_conn *conn;
	struct hbone_stream *prev, *next; /* conn->streams */
	int32_t id;			  /* 0 until submitted */
	struct hb_bufq rx;		  /* received, not yet read */
	struct hb_bufq tx;		  /* written, not yet taken by nghttp2 */
	bool rx_eof;			  /* END_STREAM received */
	bool tx_eof;			  /* shutdown asked */
	bool tx_deferred;		  /* the data provider said DEFERRED: resume when tx grows */
	bool want_writable;		  /* write said -EAGAIN */
	bool opened;			  /* the 200 went out or came in */
	bool h2_closed;			  /* nghttp2 closed it */
	bool detached;			  /* the user closed it: no more callbacks */
	bool notified_close;
	int status; /* response status, or negative errno */
	int close_err;
	/* pending user events, delivered by hb_conn_dispatch */
	bool ev_open, ev_readable, ev_writable, ev_close;
	const struct hbone_stream_ops *ops;
	void *ctx;

	/* server: the request and the target connection */
	uint32_t header_bytes;
	bool is_connect, bad_header, too_large, requested;
	bool revoked; /* hbone_server_recheck refused it: being reset */
	char authority[64];
	char forwarded[256], baggage[512], traceparent[64];
	struct sockaddr_storage target;	    /* the :authority, parsed */
	struct hbone_stream_counts *counts; /* the caller's accounting (hbone_account_fn), set at the 200 */
	int target_fd;
	bool target_connecting, target_readable, target_writable, target_eof, target_wr_shut;
	bool target_closing; /* a FIN, hang-up or error was reported: no read is skipped after a short one */
	struct xm_timer *target_timer;
	/* client: the request to submit once the connection is ready */
	nghttp2_nv *req_nv;
	size_t req_nvlen;
	char *req_buf;
};

/* Submits the response/request data provider reading s->tx. */
extern const nghttp2_data_provider hb_stream_provider;
/* Links s to c (counted in c->n_streams until it closes). */
void hb_stream_link(struct hb_conn *c, struct hbone_stream *s);
/* The stream is over for HTTP/2 (err 0: both sides ended it); its user hears it after reading what is left. */
void hb_stream_mark_closed(struct hbone_stream *s, int err);
/* Gives back the connection window of n bytes taken out of s->rx. */
void hb_stream_consumed(struct hbone_stream *s, size_t n);
/* Tells nghttp2 that s->tx has bytes (or its end) again. */
void hb_stream_tx_ready(struct hbone_stream *s);
/* Bytes left s->tx for nghttp2: the writer hears on_writable once half the buffer is free. */
void hb_stream_tx_taken(struct hbone_stream *s);
/* Frees a stream (unlinked). */
void hb_stream_free(struct hbone_stream *s);

/* ---- connections ---- */

enum hb_state {
	HB_TCP_CONNECTING,
	HB_HANDSHAKING,
	HB_READY,
	HB_CLOSING,
	HB_DEAD
};

struct hb_conn_ops {
	/* The handshake succeeded (ok) or failed; the session exists when ok. */
	void (*on_ready)(struct hb_conn *c, bool ok, int err);
	/* The connection failed or closed: it is about to be freed. */
	void (*on_free)(struct hb_conn *c);
	/* nghttp2 server callbacks that only the server needs. */
	int (*on_begin_headers)(struct hb_conn *c, const nghttp2_frame *f);
	int (*on_header)(struct hb_conn *c, struct hbone_stream *s, const uint8_t *name, size_t namelen,
			 const uint8_t *value, size_t valuelen);
	int (*on_request)(struct hb_conn *c, struct hbone_stream *s);
	void (*on_invalid_headers)(struct hb_conn *c, const nghttp2_frame *f);
};

#define HB_OUT_CAP (64u << 10)
/* A DATA frame's payload goes from the stream's buffer into c->out (no copy by nghttp2) when c->out has room
 * for at least this much of it. */
#define HB_DATA_NO_COPY_MIN 4096u
/* Contiguous room at the end of c->out (a short unsent tail moved to the front first). */
size_t hb_conn_out_room(struct hb_conn *c);

/*
 * What the read side's edge filter (tls_edge.c) knows of the socket: the last read emptied it (cleared by the
 * next EPOLLIN), and whether a FIN, hang-up or error was reported (sticky: reads then always happen).
 */
struct hb_edge {
	bool drained, closing;
};

struct hb_conn {
	enum hbone_side side;
	enum hb_state state;
	const struct hb_conn_ops *ops;
	void *owner; /* struct hbone_server or hbone_client */
	struct xm_loop *loop;
	struct hbone_counters *ctr;
	int fd; /* -1 with a memory transport */
	SSL *ssl;
	nghttp2_session *h2;
	bool readable, writable, in_progress, again, kick_posted, counted_open;
	struct hb_edge edge; /* the TLS read side's, set by on_event */
	int refs;	     /* posted work that still points here */
	uint8_t out[HB_OUT_CAP];
	size_t out_off, out_len;
	/* a memory transport (tests and the fuzzer): output goes to mem_sink (or is only counted) */
	bool mem;
	size_t mem_out;
	void (*mem_sink)(void *arg, const uint8_t *data, size_t len);
	void *mem_arg;
	struct hbone_stream *streams;
	uint32_t n_streams; /* streams with an id or waiting for one */
	uint32_t max_streams;
	uint32_t max_header_list;
	struct xm_timer *hs_timer, *ping_timer, *idle_timer;
	uint64_t ping_interval_ms, ping_timeout_ms, idle_timeout_ms, hs_timeout_ms;
	uint64_t tls_wait_ms; /* client: from TCP connected, how long TLS may take (0: hs_timeout_ms from the start) */
	uint64_t ping_sent_ms;
	bool ping_outstanding;
	char peer_id[HBONE_ID_MAX];
	struct sockaddr_storage local, peer;
	/* resumption (tls.c): the peer's certificate and what it sent with it, from the full handshake's verify
	 * or from a re-checked ticket (carried into the next ticket); the identity a re-checked ticket gave */
	X509 *peer_leaf;
	STACK_OF(X509) * peer_chain;
	char resumed_id[HBONE_ID_MAX];
	bool ticket_offered; /* client: SSL_set_session was called */
	/* client pool */
	struct hb_conn *pool_next, *pool_prev;
	char src_id[HBONE_ID_MAX], dst_id[HBONE_ID_MAX];
	struct sockaddr_storage dst;
	bool goaway;
	bool retired; /* client: hbone_client_recheck or a newer certificate retired it (a GOAWAY once ready) */
	int fail_err;
	/* draining (hbone_server_drain, hbone_client_drain): the GOAWAY notice went out, then the final one */
	bool drain_noticed, drain_final;
};

/* Creates the nghttp2 session, sends our SETTINGS, starts keep-alive. 0 or negative errno. */
int hb_conn_start_h2(struct hb_conn *c);
/* Drives I/O: handshake, reads into nghttp2, writes what it has, delivers user events. */
void hb_conn_progress(struct hb_conn *c);
/* Runs hb_conn_progress soon (at once when already inside it). For calls from user code. */
void hb_conn_kick(struct hb_conn *c);
/* Starts closing: GOAWAY when there is a session, then the socket. err goes to the streams. */
void hb_conn_fail(struct hb_conn *c, int err);
/* Registers the socket with the loop and the timers. */
int hb_conn_attach(struct hb_conn *c);
/* Feeds received plaintext bytes to nghttp2 (the TLS read path and the memory transport). */
int hb_conn_input(struct hb_conn *c, const uint8_t *data, size_t len);
void hb_conn_idle_check(struct hb_conn *c);
struct hb_conn *hb_conn_new(struct xm_loop *loop, enum hbone_side side, const struct hb_conn_ops *ops, void *owner,
			    struct hbone_counters *ctr);

/* ---- TLS ---- */

struct hb_verify {
	hbone_verify_fn fn;
	void *ctx;
};

/*
 * A TLS 1.3-only context with ALPN h2, verifying peers against trust with v (which must outlive it). A server
 * context issues one stateless session ticket per handshake, under keys of its own that rotate every
 * HBONE_TICKET_KEY_ROTATE_S; a client context hands each ticket it receives to hb_client_ticket_new.
 */
SSL_CTX *hb_tls_ctx_new(bool server, X509_STORE *trust, const struct hb_verify *v);
/*
 * The check of a full handshake, again, for a peer certificate kept with a session: the chain (leaf through
 * untrusted) against the context's trust store at the current time with the purpose of the peer's role, then
 * v->fn (with c->dst_id expected on a client). 0 with the identity in peer_id, or -EACCES.
 */
int hb_tls_recheck(SSL *ssl, const struct hb_verify *v, struct hb_conn *c, X509 *leaf, STACK_OF(X509) * untrusted,
		   char *peer_id, size_t peer_id_len);
/* How often a re-check found the chain verified before by ctx's store (tls.c memo_get). For tests. */
unsigned long long hb_tls_memo_hits(SSL_CTX *ctx);
/* Keeps (references) the peer's certificate and chain on c for the tickets of its session. */
void hb_conn_set_peer(struct hb_conn *c, X509 *leaf, STACK_OF(X509) * chain);
/* Server: starts a new ticket key now (the current one only decrypts from now on). For tests. */
void hb_tls_rotate_ticket_key(SSL_CTX *ctx);
/* Client (client.c): a session ticket arrived on c. 1 when kept (the reference is taken), else 0. */
int hb_client_ticket_new(struct hb_conn *c, SSL_SESSION *sess);
/* The client's TLS context, for tests. */
SSL_CTX *hb_client_tls(struct hbone_client *cl);
/* The session stored for a pool key (borrowed), or NULL. For tests. */
SSL_SESSION *hb_client_ticket_session(struct hbone_client *cl, const char *src_id, const char *dst_id,
				      const struct sockaddr_storage *dst);

/*
 * What a server ticket carries besides OpenSSL's session (its appdata, encrypted and authenticated with the
 * ticket key): a version, the SHA-256 of the certificate the server presented, and the certificates the client
 * sent after its leaf (the leaf is the session's peer). Encode: the length, or -ENOSPC. Parse: 0 with *chain
 * (a new stack, maybe empty) or -EINVAL.
 */
#define HB_TICKET_APPDATA_MAX	8192
#define HB_TICKET_APPDATA_CERTS 8
int hb_ticket_appdata_encode(uint8_t *buf, size_t cap, const uint8_t own_sha256[32], X509 *leaf,
			     STACK_OF(X509) * chain);
int hb_ticket_appdata_parse(const uint8_t *data, size_t len, uint8_t own_sha256[32], STACK_OF(X509) * *chain);
/* A new SSL on c->fd for c (the verify glue finds c through it; a client expects c->dst_id). Its records are
 * written into a buffer of HB_TLS_WBUF bytes that hb_tls_flush sends, and read through one of HB_TLS_RBUF. */
#define HB_TLS_WBUF (128u << 10)
#define HB_TLS_RBUF (128u << 10)
SSL *hb_tls_new(SSL_CTX *ctx, struct hb_conn *c);
/* A filter BIO passing reads and writes to the next one, skipping the read that would return EAGAIN (e). */
BIO *hb_edge_bio(struct hb_edge *e);
/* Sends what the write buffer holds: 0 when it is empty, -EAGAIN when the socket is full, -EIO. */
int hb_tls_flush(SSL *ssl);
/* Whether the write buffer holds bytes not yet sent. */
bool hb_tls_wpending(SSL *ssl);
int hb_tls_use_cert(SSL *ssl, X509 *cert, EVP_PKEY *key, STACK_OF(X509) * chain);

/* ---- server internals with a fuzz target ---- */

/* A server connection over a memory transport (no TLS, no socket): the peer is peer_id. */
struct hb_conn *hb_server_conn_mem(struct hbone_server *srv, const char *peer_id);
/* The server's connections (a list through pool_next), for tests. */
struct hb_conn *hb_server_conns(struct hbone_server *srv);
/* The server's TLS context, for tests. */
SSL_CTX *hb_server_tls(struct hbone_server *srv);
void hb_conn_destroy(struct hb_conn *c);

static inline void hb_count(atomic_ullong *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#endif
