/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE, the tunnel of Istio ambient's ztunnel: HTTP/2 CONNECT streams (nghttp2) inside mutual TLS 1.3
 * (OpenSSL, ALPN "h2"), one stream per proxied TCP connection, many streams per TLS connection.
 * docs/mtls.md "The tunnel (HBONE)" describes the wire protocol and where each figure comes from.
 *
 * Everything runs on one xm_loop's thread, never blocks and starts no thread. Certificates are the
 * caller's (borrowed OpenSSL objects); so is every decision (which certificate to present, who the peer
 * is, whether a target may be reached).
 */
#ifndef XMESH_HBONE_H
#define XMESH_HBONE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

struct xm_loop;

/* ztunnel's figures (src/config.rs, src/proxy/h2.rs); docs/mtls.md cites them. */
#define HBONE_PORT		   15008
#define HBONE_MAX_STREAMS	   100		   /* per TLS connection, both sides */
#define HBONE_STREAM_WINDOW	   (4u << 20)	   /* HTTP/2 initial window of each stream */
#define HBONE_CONN_WINDOW	   (16u << 20)	   /* HTTP/2 window of the whole connection */
#define HBONE_FRAME_SIZE	   (1u << 20)	   /* SETTINGS_MAX_FRAME_SIZE we accept */
#define HBONE_PING_INTERVAL_MS	   10000	   /* keep-alive PING every 10 s ... */
#define HBONE_PING_TIMEOUT_MS	   20000	   /* ... the connection dies when one is unanswered 20 s */
#define HBONE_POOL_IDLE_MS	   (5 * 60 * 1000) /* a pooled connection without streams closes after 5 min */
#define HBONE_SERVER_HEADER_LIST   65536	   /* SETTINGS_MAX_HEADER_LIST_SIZE, server side */
#define HBONE_CLIENT_HEADER_LIST   16384	   /* the same, client side */
#define HBONE_HANDSHAKE_TIMEOUT_MS 10000
#define HBONE_CONNECT_TIMEOUT_MS   10000
#define HBONE_ID_MAX		   256 /* an identity (SPIFFE URI) and its NUL */

/* TLS 1.3 session resumption (docs/mtls.md "Resumption"). */
#define HBONE_TICKET_LIFETIME_S	  3600 /* at most; never beyond either certificate's notAfter */
#define HBONE_TICKET_KEY_ROTATE_S 3600 /* the server's ticket key changes this often; the previous still decrypts */
#define HBONE_TICKET_CACHE_MAX	  4096 /* client: pool keys with a stored ticket (the oldest goes first) */

/* ---- counters ---- */

enum hbone_side {
	HBONE_SIDE_SERVER,
	HBONE_SIDE_CLIENT,
	HBONE_SIDES
};
enum hbone_hs_result {
	HBONE_HS_SUCCESS,
	HBONE_HS_FAILURE,
	HBONE_HS_RESULTS
};

/* Why a stream did not open (server: what it answered; client: what it was told or what failed). */
enum hbone_refusal {
	HBONE_REFUSED_BAD_REQUEST,    /* 400: not CONNECT, or an :authority that is not IP:port */
	HBONE_REFUSED_NOT_LOCAL,      /* 400: the caller said the target is not one of its pods */
	HBONE_REFUSED_DENIED,	      /* 401: the caller's policy denied it */
	HBONE_REFUSED_TARGET,	      /* 503: the target refused the connection (or did not answer in time) */
	HBONE_REFUSED_STREAM_LIMIT,   /* more concurrent streams than advertised: the connection is refused */
	HBONE_REFUSED_HEADERS,	      /* a header list beyond the limit: the stream is reset */
	HBONE_REFUSED_CONNECT_FAILED, /* client: no TLS connection to the peer (TCP, TLS or verification) */
	HBONE_REFUSED_STATUS,	      /* client: the peer answered something else than 200 */
	HBONE_REFUSALS
};

/*
 * Why the client retired a pooled connection: it takes no new stream from then on, its open streams go on, and it
 * closes once they ended (as after a GOAWAY). A request for the same pool key opens a new connection.
 */
enum hbone_retire_reason {
	HBONE_RETIRED_OWN_CERT,	      /* the certificate it presented was replaced (renewal, CA reload) */
	HBONE_RETIRED_PEER_UNTRUSTED, /* the server's certificate fails the check now (a reloaded trust bundle) */
	HBONE_RETIRE_REASONS
};

/*
 * Written by the loop's thread with relaxed atomics, readable by any thread (a metrics collector sums
 * them at scrape time). xmesh_tls_handshakes_total{side,result} is handshakes[side][result]; a resumed
 * handshake counts there as a success and also in resumed[side] (xmesh_tls_resumptions_total{side}).
 * tickets_rejected[side] (xmesh_tls_tickets_rejected_total{side}): a stored ticket that the client did not
 * offer, or that the server did not accept, because a check failed (the peer's certificate no longer valid or
 * trusted, our own certificate renewed, the ticket expired or its key rotated out): a full handshake followed.
 */
struct hbone_counters {
	atomic_ullong handshakes[HBONE_SIDES][HBONE_HS_RESULTS];
	atomic_ullong connections_open[HBONE_SIDES]; /* a gauge: TLS connections alive now */
	atomic_ullong streams_opened[HBONE_SIDES];
	atomic_ullong streams_refused[HBONE_REFUSALS];
	atomic_ullong bytes_sent[HBONE_SIDES];	   /* stream payload handed to HTTP/2 */
	atomic_ullong bytes_received[HBONE_SIDES]; /* stream payload received from HTTP/2 */
	atomic_ullong resumed[HBONE_SIDES];	   /* handshakes that resumed a session (also successes) */
	atomic_ullong tickets_rejected[HBONE_SIDES];
	atomic_ullong retired[HBONE_RETIRE_REASONS]; /* client: pooled connections retired (hbone_client_recheck) */
};

const char *hbone_side_name(enum hbone_side side);
const char *hbone_hs_result_name(enum hbone_hs_result r);
const char *hbone_refusal_name(enum hbone_refusal r);
const char *hbone_retire_reason_name(enum hbone_retire_reason r);

/*
 * Peer verification, called during the handshake once OpenSSL verified the chain against the trust store:
 * leaf and chain are the peer's (borrowed). expected is the identity the client wants (NULL on the
 * server). Writes the peer's identity (its SPIFFE URI) into peer_id and returns 0, or returns a negative
 * errno to refuse the handshake. Also called, after the same chain check at the current time, for the peer
 * certificate a session ticket carries, before a session is resumed (the client: before offering it; the
 * server: before accepting it): a refusal there means a full handshake instead. For that call the library's
 * chain check may be one it made before for the same certificates and store, still within their validity
 * periods (docs/mtls.md "Resumption"): the store must not change while the server or client lives.
 */
typedef int (*hbone_verify_fn)(void *ctx, const char *expected, X509 *leaf, STACK_OF(X509) * chain, char *peer_id,
			       size_t peer_id_len);

/* ---- streams: a duplex byte pipe ---- */

/*
 * Callbacks run from the loop, never from inside another hbone_* call; from any of them a user may read,
 * write, shut down or close any stream and open new ones (not free the client). on_close is the last call
 * for a stream: the handle is gone when it returns. A stream that does not open gets on_open with its
 * status (or a negative errno) and then on_close.
 */
struct hbone_stream;

struct hbone_stream_ops {
	/* The answer: 200 (the pipe is open), another HTTP status, or a negative errno (no connection). */
	void (*on_open)(struct hbone_stream *s, void *ctx, int status);
	/* Bytes (or the peer's end of data) are waiting for hbone_stream_read. */
	void (*on_readable)(struct hbone_stream *s, void *ctx);
	/* hbone_stream_write has room again after it returned -EAGAIN. */
	void (*on_writable)(struct hbone_stream *s, void *ctx);
	/* Last call: the stream is gone (0 when both sides ended it, else a negative errno). */
	void (*on_close)(struct hbone_stream *s, void *ctx, int err);
};

/*
 * Bytes read (consumed: the peer may send as much again), 0 at the peer's end of data, -EAGAIN when
 * none is waiting (on_readable follows), -EPIPE when the stream is gone.
 */
ssize_t hbone_stream_read(struct hbone_stream *s, void *buf, size_t len);
/* Bytes taken (at most what the stream buffers, HBONE_STREAM_BUFFER), or -EAGAIN (on_writable follows). */
ssize_t hbone_stream_write(struct hbone_stream *s, const void *buf, size_t len);
/* Ends our direction once the written bytes are sent (END_STREAM); reading goes on. */
int hbone_stream_shutdown(struct hbone_stream *s);
/* Aborts the stream (RST_STREAM CANCEL unless it ended); no callback is called for it any more. */
void hbone_stream_close(struct hbone_stream *s);
/* The peer identity of the stream's TLS connection ("" before the handshake). */
const char *hbone_stream_peer_id(const struct hbone_stream *s);

#define HBONE_STREAM_BUFFER (256u << 10) /* bytes a stream holds for sending before write says -EAGAIN */

/* ---- server ---- */

/* What hbone_admit_fn is asked about. */
struct hbone_admit {
	const char *peer_id;			       /* the client's verified identity */
	const struct sockaddr_storage *target;	       /* :authority, parsed */
	const struct sockaddr_storage *local;	       /* the TLS connection's local address (the pod IP:15008) */
	const struct sockaddr_storage *peer;	       /* the TLS connection's remote address */
	const char *forwarded, *baggage, *traceparent; /* the request's headers, "" when absent */
};

/* Returns 200 (connect to the target), 400 (not a local target) or 401 (denied). */
typedef int (*hbone_admit_fn)(void *ctx, const struct hbone_admit *req);

/*
 * Per-stream accounting for the server's caller (Istio's istio_tcp_* of reporter "destination"): relaxed atomics
 * that the loop's thread adds to, readable by any thread. One object counts every stream its caller maps to it.
 */
struct hbone_stream_counts {
	atomic_ullong opened;	/* streams answered 200 */
	atomic_ullong closed;	/* of those, streams that ended (and were freed) */
	atomic_ullong sent;	/* bytes read from the target, sent back to the client (the response's) */
	atomic_ullong received; /* bytes from the client written to the target (the request's) */
};

/*
 * Optional: called once per admitted stream whose target accepted the connection, just before the 200, with
 * the request admit saw (target: the :authority). Returns the counts the stream adds to (they must outlive the
 * server), or NULL for none.
 */
typedef struct hbone_stream_counts *(*hbone_account_fn)(void *ctx, const struct hbone_admit *req);

/*
 * The certificate to present on a connection that arrived at local (borrowed, must live until the
 * handshake is over): 0, or a negative errno to drop the connection.
 */
typedef int (*hbone_cert_fn)(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
			     STACK_OF(X509) * *chain);

struct hbone_server_config {
	X509_STORE *trust; /* the trust bundle (reference taken) */
	hbone_verify_fn verify;
	hbone_cert_fn cert;
	hbone_admit_fn admit;
	hbone_account_fn account;		    /* NULL: no per-stream accounting */
	void *ctx;				    /* for the callbacks */
	uint32_t max_streams;			    /* 0: HBONE_MAX_STREAMS */
	uint32_t max_header_list;		    /* 0: HBONE_SERVER_HEADER_LIST */
	uint64_t handshake_timeout_ms;		    /* 0: HBONE_HANDSHAKE_TIMEOUT_MS */
	uint64_t connect_timeout_ms;		    /* 0: HBONE_CONNECT_TIMEOUT_MS, then 503 */
	uint64_t ping_interval_ms, ping_timeout_ms; /* 0: ztunnel's */
	uint32_t target_mark;			    /* SO_MARK on connections to targets (0: none) */
};

struct hbone_server;

/* Serves TLS connections accepted on listen_fd (non-blocking, listening; not owned). NULL on failure. */
struct hbone_server *hbone_server_new(struct xm_loop *loop, int listen_fd, const struct hbone_server_config *cfg,
				      struct hbone_counters *counters);
/* Closes every connection and its streams' target connections. */
void hbone_server_free(struct hbone_server *srv);
/*
 * Draining (an agent restart; ztunnel's drain): stops accepting (listen_fd stays open, its queue for whoever
 * takes it next) and tells every client to open no new stream on its connection: a GOAWAY notice (last stream
 * 2^31-1) at once, then, HBONE_DRAIN_NOTICE_MS later (a round trip's margin), the final GOAWAY naming the last
 * stream it took, so no request in flight is refused. Open streams go on; a connection closes once they ended.
 */
void hbone_server_drain(struct hbone_server *srv);
#define HBONE_DRAIN_NOTICE_MS 500
size_t hbone_server_connections(const struct hbone_server *srv);
/*
 * Re-admission after a policy change (ztunnel's PolicyWatcher): asks recheck (admit's contract; 200 keeps the
 * stream) about every stream admitted so far that is still open or still connecting to its target, and ends
 * the ones refused: an open stream is reset (RST_STREAM CONNECT_ERROR, as a reset target connection is) and
 * its target connection reset (SO_LINGER 0); one still connecting answers 401 instead of 200. Streams it
 * refused are never asked again. The loop's thread only. Returns how many it ended.
 */
size_t hbone_server_recheck(struct hbone_server *srv, hbone_admit_fn recheck, void *ctx);

/* ---- client ---- */

struct hbone_client_config {
	X509_STORE *trust; /* reference taken */
	hbone_verify_fn verify;
	void *ctx;
	uint32_t max_streams_per_conn; /* 0: HBONE_MAX_STREAMS */
	uint64_t idle_timeout_ms;      /* 0: HBONE_POOL_IDLE_MS */
	uint64_t connect_timeout_ms;   /* 0: HBONE_CONNECT_TIMEOUT_MS (TCP and TLS) */
	uint64_t handshake_timeout_ms; /* once TCP connected, the TLS handshake's own limit (0: connect_timeout_ms) */
	uint64_t ping_interval_ms, ping_timeout_ms;
	bool no_resumption; /* never offer a session ticket: every connection makes a full handshake */
};

/*
 * One CONNECT request. The pool key is (src_id, dst_id, dst). A connection of the key that presented another
 * certificate than cert is used only when its certificate is the newer one (notBefore); one that presented an
 * older certificate is retired (HBONE_RETIRED_OWN_CERT) and the stream goes on a new connection with cert, so a
 * renewed or re-minted certificate is presented from the next stream on. The client keeps the newest session ticket of
 * each key and offers it on the key's next TLS connection only, only while cert is the certificate presented
 * when the ticket's session began, and only after checking the server's certificate from that session again.
 */
struct hbone_open {
	const char *src_id;		    /* our identity: the certificate's */
	const char *dst_id;		    /* the identity the server must prove */
	const struct sockaddr_storage *dst; /* the destination pod's IP and HBONE_PORT */
	X509 *cert;			    /* src_id's certificate, key and chain (borrowed until on_open) */
	EVP_PKEY *key;
	STACK_OF(X509) * chain;
	const struct sockaddr_storage *target; /* :authority: the pod's IP and the application port */
	const struct sockaddr_storage *client; /* Forwarded: for="ip:port" (NULL: no header) */
	const char *forwarded_host;	       /* ;host= in Forwarded (the service's hostname), or NULL */
	const char *baggage;		       /* NULL: no header */
	const char *traceparent;	       /* NULL: a new W3C traceparent */
};

struct hbone_client;

struct hbone_client *hbone_client_new(struct xm_loop *loop, const struct hbone_client_config *cfg,
				      struct hbone_counters *counters);
/* Closes every connection; open streams get on_close(-ECONNABORTED). Not from a stream callback. */
void hbone_client_free(struct hbone_client *cl);
/*
 * Draining: no new stream from now on (hbone_client_open returns NULL); every pooled connection says GOAWAY
 * (once ready) and closes when its open streams ended, which go on until then.
 */
void hbone_client_drain(struct hbone_client *cl);
/* A stream on a pooled connection (a new one when none has room); NULL when out of memory or draining. */
struct hbone_stream *hbone_client_open(struct hbone_client *cl, const struct hbone_open *req,
				       const struct hbone_stream_ops *ops, void *ctx);
/* What hbone_client_recheck asks about a pooled connection (borrowed for the call). */
struct hbone_pooled {
	const char *src_id, *dst_id;
	X509 *own;		     /* the certificate we presented */
	X509 *peer;		     /* the server's, NULL until it was verified */
	STACK_OF(X509) * peer_chain; /* what the server sent with it (its leaf first), or NULL */
};
/* true (with *why) when p must take no new stream any more. */
typedef bool (*hbone_stale_fn)(void *ctx, const struct hbone_pooled *p, enum hbone_retire_reason *why);
/*
 * After a change of what pooled connections were made with (our certificates renewed, the trust bundle
 * reloaded): asks stale about every connection not retired yet and retires those it names (counted in
 * retired[why]). Returns how many it retired. From the loop's thread, not from a stream callback.
 */
size_t hbone_client_recheck(struct hbone_client *cl, hbone_stale_fn stale, void *ctx);
/* TLS connections in the pool (connecting ones too). */
size_t hbone_client_connections(const struct hbone_client *cl);
/* Pool keys with a stored session ticket. */
size_t hbone_client_tickets(const struct hbone_client *cl);

/* ---- splice: a TCP connection carried by a stream (splice.c) ---- */

struct hbone_splice;
/* Called once when the splice ends: 0 when both directions ended cleanly, else a negative errno. */
typedef void (*hbone_splice_done_fn)(void *ctx, int err);

/*
 * Opens a CONNECT stream for req on cl and pipes fd (a connected non-blocking stream socket, owned from now on)
 * through it both ways, with the stream's backpressure: bytes read from fd only once the stream opened (200),
 * EOF on either side passed on as a half-close (END_STREAM, shutdown(SHUT_WR)), and a failure on either side
 * (a refused stream, a reset, a socket error) ends both, fd with a reset (SO_LINGER 0). Frees itself after
 * calling done. NULL when out of memory (fd closed, done not called).
 */
struct hbone_splice *hbone_splice_open(struct hbone_client *cl, struct xm_loop *loop, int fd,
				       const struct hbone_open *req, hbone_splice_done_fn done, void *ctx);
/* Called once with the stream's answer (hbone_stream_ops.on_open's status), before done when it failed. */
typedef void (*hbone_splice_opened_fn)(void *ctx, int status);
/*
 * Right after hbone_splice_open (no callback can come in between): opened(ctx, status) is called when the
 * stream's answer comes. A splice that ends without one (the socket reset first, the client freed) calls
 * done only.
 */
void hbone_splice_on_open(struct hbone_splice *sp, hbone_splice_opened_fn opened);
/*
 * Optional, right after hbone_splice_open (with or without hbone_splice_on_open): a stream refused before the
 * server processed it (REFUSED_STREAM: a GOAWAY that arrived as it was sent, as when the peer drains, or the
 * peer's stream limit) hands fd back to fn (with the splice's ctx; nothing was read from it, the splice is
 * gone, neither opened nor done is called) instead of a reset, so the caller can carry it again.
 */
typedef void (*hbone_splice_refused_fn)(void *ctx, int fd);
void hbone_splice_on_refused(struct hbone_splice *sp, hbone_splice_refused_fn fn);

/* ---- pieces with their own tests ---- */

/* Parses "a.b.c.d:port" or "[v6]:port" (port 1..65535, nothing else): 0 or -EINVAL. */
int hbone_parse_authority(const char *s, size_t len, struct sockaddr_storage *out);
/* The baggage header of a CONNECT as ztunnel sends it (baggage.c): the source workload's metadata. */
#define HBONE_BAGGAGE_MAX 512 /* what the server keeps of it (hbone_admit.baggage) */
struct hbone_baggage {
	const char *cluster;	   /* ztunnel's CLUSTER_ID ("Kubernetes" by default) */
	const char *ns;		   /* the namespace */
	const char *workload_kind; /* "deployment", "job", "cronjob", "pod": the key k8s.<kind>.name */
	const char *workload_name; /* the Deployment's, Job's, CronJob's or Pod's name */
	const char *service;	   /* canonical service (service.name) */
	const char *version;	   /* canonical revision (service.version) */
	const char *region, *zone; /* locality; "" when unknown, as ztunnel sends it then */
};
/*
 * "k8s.cluster.name=C,k8s.namespace.name=NS,k8s.KIND.name=W,service.name=S,service.version=V,cloud.region=R,
 * cloud.availability_zone=Z" into buf. Returns its length; -EINVAL when a value holds a byte a baggage value
 * cannot hold unencoded (or the kind is no lower-case word), -ENAMETOOLONG when it does not fit; buf is ""
 * then.
 */
int hbone_format_baggage(char *buf, size_t len, const struct hbone_baggage *b);

/* The Forwarded header (RFC 7239) of a CONNECT: its first element's for= and host= (forwarded.c). */
#define HBONE_FORWARDED_VALUE_MAX 256
struct hbone_forwarded {
	bool has_for;			      /* for= named an address (not "unknown", not obfuscated) */
	struct sockaddr_storage for_addr;     /* that address, its port 0 when it had none */
	char host[HBONE_FORWARDED_VALUE_MAX]; /* host=, "" when absent */
};
/* 0 (out filled, possibly with neither), or -EINVAL on a malformed header (out cleared). */
int hbone_parse_forwarded(const char *s, size_t len, struct hbone_forwarded *out);
/* Formats ss as an authority ("10.0.0.1:80", "[fd00::1]:80"); returns the length or -ENOSPC. */
int hbone_format_authority(const struct sockaddr_storage *ss, char *buf, size_t len);

#endif
