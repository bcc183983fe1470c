// SPDX-License-Identifier: Apache-2.0
/*
 * The chunked transfer coding (RFC 9112 §7.1) as a resumable scanner: it finds where a chunked body ends and
 * counts its payload while the proxy forwards the bytes as they are (scan), or takes the payload out of the
 * framing for a client that cannot read chunked (decode). Chunk data is skipped or moved in one step.
 */
#include <string.h>

#include "http/h1_scan.h"

enum chunk_state {
	CH_SIZE_START, /* the first hex digit of a chunk size */
	CH_SIZE,       /* more hex digits, ';', whitespace before ';', or CR */
	CH_SIZE_WS,    /* whitespace after the size: only ';' may follow (BWS of chunk-ext) */
	CH_EXT,	       /* chunk extensions, up to CR */
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER_START, /* a trailer field line, or the CR of the empty line that ends the body */
	CH_TRAILER_NAME,
	CH_TRAILER_VALUE,
	CH_TRAILER_LF,
	CH_FINAL_LF,
	CH_DONE,
};

/* Hex digit value plus one; 0 for any other byte. */
static const uint8_t hex_plus_one[256] = {
	['0'] = 1,  ['1'] = 2,	['2'] = 3,  ['3'] = 4,	['4'] = 5,  ['5'] = 6,	['6'] = 7,  ['7'] = 8,
	['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

void h1_chunked_init(struct h1_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

static int fail(enum h1_error *err, enum h1_error e)
{
	*err = e;
	return -1;
}

/* One byte of framing (size line, CRLF after data, trailer): 0, or -1 with *err set. */
static int frame_byte(struct h1_chunked *c, uint8_t b, enum h1_error *err)
{
	if (c->state < CH_DATA && ++c->line_len > H1_MAX_CHUNK_LINE)
		return fail(err, H1_E_TOO_LARGE);
	if (c->state >= CH_TRAILER_START && ++c->trailer_bytes > H1_MAX_TRAILER_BYTES)
		return fail(err, H1_E_TOO_LARGE);
	switch (c->state) {
	case CH_SIZE_START:
	case CH_SIZE:
		if (hex_plus_one[b]) {
			/* 2^60 and more is no size anyone sends: refuse rather than wrap. */
			if (c->remaining > (UINT64_MAX >> 4))
				return fail(err, H1_E_BAD_CHUNK);
			c->remaining = c->remaining << 4 | (uint64_t)(hex_plus_one[b] - 1);
			c->state = CH_SIZE;
		} else if (c->state == CH_SIZE_START) {
			return fail(err, H1_E_BAD_CHUNK); /* empty size, sign, "0x" ... */
		} else if (b == ';') {
			c->state = CH_EXT;
		} else if (b == ' ' || b == '\t') {
			c->state = CH_SIZE_WS;
		} else if (b == '\r') {
			c->state = CH_SIZE_LF;
		} else {
			return fail(err, H1_E_BAD_CHUNK);
		}
		break;
	case CH_SIZE_WS:
		if (b == ';')
			c->state = CH_EXT;
		else if (b != ' ' && b != '\t')
			return fail(err, H1_E_BAD_CHUNK);
		break;
	case CH_EXT:
		if (b == '\r')
			c->state = CH_SIZE_LF;
		else if (h1_value_stop[b] && b != '\t') /* a bare LF or a control: framed differently elsewhere */
			return fail(err, H1_E_BAD_CHUNK);
		break;
	case CH_SIZE_LF:
		if (b != '\n')
			return fail(err, H1_E_BAD_CHUNK);
		c->line_len = 0;
		c->state = c->remaining ? CH_DATA : CH_TRAILER_START;
		break;
	case CH_DATA_CR:
		if (b != '\r')
			return fail(err, H1_E_BAD_CHUNK);
		c->state = CH_DATA_LF;
		break;
	case CH_DATA_LF:
		if (b != '\n')
			return fail(err, H1_E_BAD_CHUNK);
		c->state = CH_SIZE_START;
		break;
	case CH_TRAILER_START:
		if (b == '\r')
			c->state = CH_FINAL_LF;
		else if (h1_tchar[b])
			c->state = CH_TRAILER_NAME;
		else /* obs-fold, a bare LF, an empty name */
			return fail(err, H1_E_BAD_CHUNK);
		break;
	case CH_TRAILER_NAME:
		if (b == ':')
			c->state = CH_TRAILER_VALUE;
		else if (!h1_tchar[b])
			return fail(err, H1_E_BAD_CHUNK);
		break;
	case CH_TRAILER_VALUE:
		if (b == '\r')
			c->state = CH_TRAILER_LF;
		else if (h1_value_stop[b] && b != '\t')
			return fail(err, H1_E_BAD_CHUNK);
		break;
	case CH_TRAILER_LF:
		if (b != '\n')
			return fail(err, H1_E_BAD_CHUNK);
		c->state = CH_TRAILER_START;
		break;
	case CH_FINAL_LF:
		if (b != '\n')
			return fail(err, H1_E_BAD_CHUNK);
		c->state = CH_DONE;
		c->done = true;
		break;
	}
	return 0;
}

/* Payload bytes of the current chunk among buf[i..len), all of which are data: the length to take. */
static size_t data_span(struct h1_chunked *c, size_t i, size_t len)
{
	uint64_t n = len - i < c->remaining ? len - i : c->remaining;

	c->remaining -= n;
	c->data_bytes += n;
	if (!c->remaining)
		c->state = CH_DATA_CR;
	return (size_t)n;
}

long h1_chunked_scan(struct h1_chunked *c, const char *buf, size_t len, enum h1_error *err)
{
	size_t i = 0;

	*err = H1_E_NONE;
	while (i < len && c->state != CH_DONE) {
		if (c->state == CH_DATA) {
			i += data_span(c, i, len);
			continue;
		}
		if (frame_byte(c, (uint8_t)buf[i++], err) < 0)
			return -1;
	}
	return (long)i;
}

long h1_chunked_decode(struct h1_chunked *c, const char *src, size_t len, char *dst, size_t *payload_len,
		       enum h1_error *err)
{
	size_t i = 0, out = 0;

	*err = H1_E_NONE;
	*payload_len = 0;
	while (i < len && c->state != CH_DONE) {
		if (c->state == CH_DATA) {
			size_t n = data_span(c, i, len);

			/* dst may be src: payload only moves towards the front (out <= i) */
			if (dst + out != src + i)
				memmove(dst + out, src + i, n);
			out += n;
			i += n;
			continue;
		}
		if (frame_byte(c, (uint8_t)src[i++], err) < 0)
			return -1;
	}
	*payload_len = out;
	return (long)i;
}
