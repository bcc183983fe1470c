/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the HTTP/1 parser shared by its files: byte-class tables, the SSE2 scans that find the end of a
 * header value or a request target 16 bytes at a time, and the header-section parser common to both heads.
 */
#ifndef XMESH_HTTP_H1_SCAN_H
#define XMESH_HTTP_H1_SCAN_H

#include <stdbool.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "http/h1.h"

/* 1 for the tchar of RFC 9110 §5.6.2 (method and field-name bytes). */
extern const uint8_t h1_tchar[256];
/* 1 for a byte that ends a run of field-value bytes: controls (HT, CR and LF included) and DEL. */
extern const uint8_t h1_value_stop[256];
/* 1 for a byte that ends a run of request-target bytes: not visible ASCII, or '#' (no fragment on the wire). */
extern const uint8_t h1_target_stop[256];
/* ASCII lower case of every byte (others unchanged). */
extern const uint8_t h1_lower[256];
/* 1 for the bytes of an RFC 3986 reg-name: unreserved, '%' and sub-delims. */
extern const uint8_t h1_reg_name_char[256];

/* Whether the n bytes at p equal lit (lower case ASCII) case-insensitively. */
static inline bool h1_eq_lower(const char *p, const char *lit, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (h1_lower[(uint8_t)p[i]] != (uint8_t)lit[i])
			return false;
	return true;
}

/*
 * Whether s is an RFC 3986 authority without userinfo: host [":" port], the host a reg-name or an IPv6
 * literal in brackets. need_host: the host may not be empty; need_port: the port must be there.
 */
bool h1_authority_valid(struct h1_str s, bool need_host, bool need_port);

/*
 * The next element of the comma-separated list s (RFC 9110 §5.6.1) from *pos on, without surrounding
 * whitespace; empty elements are skipped. false when none is left.
 */
static inline bool h1_list_next(struct h1_str s, uint32_t *pos, struct h1_str *elem)
{
	uint32_t i = *pos, start, stop;

	while (i < s.len && (s.p[i] == ' ' || s.p[i] == '\t' || s.p[i] == ','))
		i++;
	if (i >= s.len) {
		*pos = i;
		return false;
	}
	start = i;
	while (i < s.len && s.p[i] != ',')
		i++;
	stop = i;
	while (stop > start && (s.p[stop - 1] == ' ' || s.p[stop - 1] == '\t'))
		stop--;
	*pos = i;
	elem->p = s.p + start;
	elem->len = stop - start;
	return true;
}

/* Past the run of token bytes starting at p. Tokens are short (methods, field names): a table walk. */
static inline const char *h1_skip_token(const char *p, const char *end)
{
	/* Four bytes a round while they last: one branch instead of four. */
	while (end - p >= 4 &&
	       h1_tchar[(uint8_t)p[0]] & h1_tchar[(uint8_t)p[1]] & h1_tchar[(uint8_t)p[2]] & h1_tchar[(uint8_t)p[3]])
		p += 4;
	while (p < end && h1_tchar[(uint8_t)*p])
		p++;
	return p;
}

/* The first byte in [p, end) that is a control or DEL (HT included: the caller decides), or end. */
static inline const char *h1_skip_value(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i ctl_max = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i stop = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, ctl_max), v), _mm_cmpeq_epi8(v, del));
		int mask = _mm_movemask_epi8(stop);

		if (mask)
			return p + __builtin_ctz((unsigned int)mask);
		p += 16;
	}
#endif
	while (p < end && !h1_value_stop[(uint8_t)*p])
		p++;
	return p;
}

/* The first byte in [p, end) that is not visible ASCII (0x21..0x7e) or is '#', or end. */
static inline const char *h1_skip_target(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i lo = _mm_set1_epi8(0x21), span = _mm_set1_epi8(0x7e - 0x21), hash = _mm_set1_epi8('#');

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i off = _mm_sub_epi8(v, lo); /* visible ASCII lands in [0, span] unsigned */
		__m128i ok = _mm_cmpeq_epi8(_mm_min_epu8(off, span), off);
		int mask = (~_mm_movemask_epi8(ok) | _mm_movemask_epi8(_mm_cmpeq_epi8(v, hash))) & 0xffff;

		if (mask)
			return p + __builtin_ctz((unsigned int)mask);
		p += 16;
	}
#endif
	while (p < end && !h1_target_stop[(uint8_t)*p])
		p++;
	return p;
}

/* Parser status inside the module: a head length (> 0), need more, or an error in *err. */
#define H1_MORE	 0
#define H1_ERROR (-1)

/* What the header section said about framing and the connection, gathered while its lines are parsed. */
struct h1_fields {
	struct h1_header *headers;
	uint32_t n_headers;
	uint32_t n_content_length;
	uint64_t content_length;
	uint32_t n_transfer_encoding;
	struct h1_str transfer_encoding;
	uint32_t n_host;
	struct h1_str host;
	bool conn_close, conn_keep_alive, conn_upgrade;
	bool has_upgrade;
	bool expect_continue;
};

/*
 * Parses header field lines from p up to and including the blank line that ends the section. Returns the
 * offset past it from base, H1_MORE, or H1_ERROR with *err set. end is the caller's limit (head size).
 */
int h1_parse_fields(const char *base, const char *p, const char *end, struct h1_fields *f, enum h1_error *err);

/*
 * The transfer codings of a Transfer-Encoding value: 1 when the list is well formed and ends in a single
 * "chunked", 0 when it is well formed but does not (only responses may say so), -1 when malformed.
 */
int h1_te_final_chunked(struct h1_str te);

/*
 * Checks the HTTP-version at p, of which avail bytes have arrived: its minor version (0 or 1) once all 8 are
 * there, H1_VERSION_MORE while what came can still become one, or H1_ERROR with *err set.
 */
#define H1_VERSION_MORE (-2)
int h1_parse_version(const char *p, size_t avail, enum h1_error *err);

#endif
