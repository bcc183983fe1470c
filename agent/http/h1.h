/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The project's one HTTP/1.x parser (RFC 9110/9112): request and response heads, and a chunked-body scanner.
 * Zero-copy: every string points into the caller's buffer. Heads are parsed by a pure function over the
 * bytes received so far (picohttpparser's model: call again with more bytes when it answers H1_MORE), so the
 * proxy, the metrics listener and the fuzz target run the same code. Strict: anything that two HTTP
 * implementations could frame differently (request smuggling) is an error, never a guess.
 */
#ifndef XMESH_HTTP_H1_H
#define XMESH_HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (documented in docs/l7.md). A head over them is H1_E_TOO_LARGE / H1_E_TOO_MANY_HEADERS. */
#define H1_MAX_HEAD_BYTES    (60 * 1024) /* request/status line plus header section: Envoy's 60 KiB default */
#define H1_MAX_REQUEST_LINE  (16 * 1024)
#define H1_MAX_HEADERS	     100  /* Envoy's default max_headers_count */
#define H1_MAX_CHUNK_LINE    1024 /* chunk-size line with extensions */
#define H1_MAX_TRAILER_BYTES (16 * 1024)

/* A span of the caller's buffer; not NUL-terminated. */
struct h1_str {
	const char *p;
	uint32_t len;
};

struct h1_header {
	struct h1_str name;  /* as received (case kept); compare with h1_name_eq */
	struct h1_str value; /* leading and trailing whitespace removed */
};

/* How the body after a head is delimited. */
enum h1_body {
	H1_BODY_NONE = 0, /* no body (requests without CL/TE; HEAD, 1xx, 204, 304 responses; CL: 0) */
	H1_BODY_LENGTH,	  /* content_length bytes */
	H1_BODY_CHUNKED,  /* Transfer-Encoding: chunked, scan with h1_chunked_scan */
	H1_BODY_CLOSE,	  /* responses only: until the server closes */
	H1_BODY_TUNNEL,	  /* after 101 Switching Protocols / 2xx to CONNECT: bytes both ways, no HTTP */
};

/* Why a head or a chunk was refused: each becomes a 400 (502 for an upstream response) and a counter. */
enum h1_error {
	H1_E_NONE = 0,
	H1_E_TOO_LARGE, /* head or request line over the limit */
	H1_E_TOO_MANY_HEADERS,
	H1_E_BAD_METHOD,	    /* not a token */
	H1_E_BAD_TARGET,	    /* not origin-form/absolute-form/authority-form(CONNECT)/asterisk-form(OPTIONS) */
	H1_E_BAD_VERSION,	    /* not "HTTP/" DIGIT "." DIGIT */
	H1_E_BAD_STATUS,	    /* status line: not three digits */
	H1_E_BAD_HEADER_NAME,	    /* empty, not a token, or whitespace before the colon */
	H1_E_BAD_HEADER_VALUE,	    /* a control character (NUL, bare CR, ...) in a value */
	H1_E_OBS_FOLD,		    /* a line starting with SP/HT (obsolete line folding) */
	H1_E_BARE_CR,		    /* CR not followed by LF */
	H1_E_BARE_LF,		    /* LF without CR in the head (accepted by RFC 9112 §2.2 "MAY", refused here) */
	H1_E_CL_AND_TE,		    /* Content-Length together with Transfer-Encoding */
	H1_E_BAD_CONTENT_LENGTH,    /* not digits, overflow, or differing/duplicate values */
	H1_E_BAD_TRANSFER_ENCODING, /* anything but a single final "chunked" (requests), or TE on HTTP/1.0 */
	H1_E_MISSING_HOST,	    /* HTTP/1.1 request without exactly one Host */
	H1_E_BAD_CHUNK,		    /* chunk size not hex, overflow, or missing CRLF after data */
	H1_E_VERSION_NOT_SUPPORTED, /* HTTP/x.y other than 1.0 and 1.1: 505 */
	H1_E_MAX,
};

struct h1_request {
	struct h1_str method;
	struct h1_str target;  /* as received */
	struct h1_str path;    /* target up to '?' (origin-form; absolute-form: the path part) */
	struct h1_str query;   /* after '?', without it; len 0 when none */
	struct h1_str host;    /* Host header (or the authority of an absolute-form target) */
	uint8_t minor_version; /* HTTP/1.minor */
	struct h1_header headers[H1_MAX_HEADERS];
	uint32_t n_headers;
	enum h1_body body; /* NONE, LENGTH or CHUNKED */
	uint64_t content_length;
	bool keep_alive;      /* 1.1 without "Connection: close", or 1.0 with "Connection: keep-alive" */
	bool expect_continue; /* Expect: 100-continue */
	bool upgrade;	      /* Connection: upgrade + Upgrade: (a tunnel if the response is 101) */
	bool is_head;	      /* method HEAD: the response has no body */
	bool is_connect;
};

struct h1_response {
	uint16_t status;
	struct h1_str reason;
	uint8_t minor_version;
	struct h1_header headers[H1_MAX_HEADERS];
	uint32_t n_headers;
	enum h1_body body; /* depends on the request too: see h1_parse_response */
	uint64_t content_length;
	bool keep_alive;
};

/*
 * Parses a request head from buf[0..len). Returns the head's length (> 0, the body starts there), 0 when
 * more bytes are needed (and len is still under the limits), or -1 with *err set. Errors are decided as soon
 * as the bytes that decide them are in: a prefix of a head answers 0 or the whole's error, never another.
 * Each call reads from the start (about 0.3 ns a byte); a head can only complete at a LF, so a caller fed a
 * byte at a time may skip calls until the new bytes hold a '\n' (an error is then seen a line later).
 * Empty lines (CR LF) before the request line are skipped (RFC 9112 §2.2) and count in the length.
 */
int h1_parse_request(const char *buf, size_t len, struct h1_request *req, enum h1_error *err);

/*
 * Parses a response head to a request whose method was HEAD (req_is_head) or CONNECT (req_is_connect);
 * body framing follows RFC 9112 §6.3 (HEAD, 1xx, 204, 304: none; 101 and 2xx to CONNECT: tunnel; no CL/TE:
 * close). Same return convention as h1_parse_request.
 */
int h1_parse_response(const char *buf, size_t len, bool req_is_head, bool req_is_connect, struct h1_response *resp,
		      enum h1_error *err);

/* Incremental chunked-body scanner. Zero it (or h1_chunked_init) before the first byte of a body. */
struct h1_chunked {
	uint32_t state;
	uint64_t remaining; /* data bytes left in the current chunk */
	uint32_t line_len;  /* bytes of the current size/trailer line so far (bounded) */
	uint32_t trailer_bytes;
	uint64_t data_bytes; /* payload bytes seen so far (metrics: request/response size) */
	bool done;	     /* the last chunk and the trailer section are complete */
};

void h1_chunked_init(struct h1_chunked *c);

/*
 * Consumes buf[0..len) of a chunked body, which the proxy forwards verbatim. Returns how many bytes belong
 * to the body (< len only when the body ended inside buf: c->done is then true and the rest is the next
 * message), or -1 with *err = H1_E_BAD_CHUNK / H1_E_TOO_LARGE.
 */
long h1_chunked_scan(struct h1_chunked *c, const char *buf, size_t len, enum h1_error *err);

/*
 * The same scan, but the payload is copied out: the chunk data among src[0..len) goes to dst, in order and
 * without the size lines, CRLFs, extensions or trailer (dropped), and *payload_len says how much. dst needs
 * room for len bytes, and may be src (the payload is compacted in place: it only moves towards the front).
 * Same return value, errors and limits as h1_chunked_scan (on -1, dst holds unspecified bytes).
 */
long h1_chunked_decode(struct h1_chunked *c, const char *src, size_t len, char *dst, size_t *payload_len,
		       enum h1_error *err);

/* Case-insensitive comparison of a header name (or any span) with a C string. */
bool h1_name_eq(struct h1_str s, const char *name);
/* The first header called name, or NULL. */
const struct h1_header *h1_find(const struct h1_header *h, uint32_t n, const char *name);
/* Hop-by-hop per RFC 9110 §7.6.1: Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade,
 * Trailer, Proxy-Authenticate, Proxy-Authorization, and every name listed in Connection. */
bool h1_is_hop_by_hop(const struct h1_header *all, uint32_t n, struct h1_str name);
const char *h1_error_name(enum h1_error e); /* "cl_and_te": metric label and log text */
/* "Not Found" for 404; "Unknown" for a status the agent never sends. */
const char *h1_reason_phrase(unsigned status);

#endif
