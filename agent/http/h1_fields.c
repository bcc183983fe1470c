// SPDX-License-Identifier: Apache-2.0
/*
 * The header section of a request or response head (RFC 9112 §5): field lines up to the blank line, checked
 * byte for byte, and the fields that decide framing and the connection noted as they go by.
 */
#include <string.h>

#include "http/h1_scan.h"

/* Content-Length = 1*DIGIT (RFC 9110 §8.6); lists ("5, 5"), signs, spaces and overflow are refused. */
static bool parse_content_length(struct h1_str v, uint64_t *out)
{
	uint64_t n = 0;
	uint32_t i;

	if (!v.len)
		return false;
	for (i = 0; i < v.len; i++) {
		unsigned int d = (uint8_t)v.p[i] - '0';

		if (d > 9 || n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*out = n;
	return true;
}

static void note_connection(struct h1_fields *f, struct h1_str v)
{
	struct h1_str opt;
	uint32_t pos = 0;

	while (h1_list_next(v, &pos, &opt)) {
		if (opt.len == 5 && h1_eq_lower(opt.p, "close", 5))
			f->conn_close = true;
		else if (opt.len == 10 && h1_eq_lower(opt.p, "keep-alive", 10))
			f->conn_keep_alive = true;
		else if (opt.len == 7 && h1_eq_lower(opt.p, "upgrade", 7))
			f->conn_upgrade = true;
	}
}

/*
 * Whether a HT sits between the colon and the value or between the value and the CR: for framing fields,
 * where not every implementation counts HT as whitespace (libhttp-parser refuses "Content-Length: 5<HT>").
 */
static bool tab_around(struct h1_str v)
{
	const char *p;

	for (p = v.p; p[-1] == ' ' || p[-1] == '\t'; p--)
		if (p[-1] == '\t')
			return true;
	for (p = v.p + v.len; *p == ' ' || *p == '\t'; p++)
		if (*p == '\t')
			return true;
	return false;
}

/* A field that matters to framing or to the connection; others are only stored. */
static int note_field(struct h1_fields *f, struct h1_str name, struct h1_str value, enum h1_error *err)
{
	switch (name.len) {
	case 4:
		if (!h1_eq_lower(name.p, "host", 4))
			break;
		if (++f->n_host > 1) { /* RFC 9112 §3.2: more than one Host is a 400 */
			*err = H1_E_MISSING_HOST;
			return H1_ERROR;
		}
		if (!h1_authority_valid(value, false, false)) {
			*err = H1_E_BAD_HEADER_VALUE;
			return H1_ERROR;
		}
		f->host = value;
		break;
	case 6:
		if (h1_eq_lower(name.p, "expect", 6) && value.len == 12 && h1_eq_lower(value.p, "100-continue", 12))
			f->expect_continue = true;
		break;
	case 7:
		if (h1_eq_lower(name.p, "upgrade", 7))
			f->has_upgrade = true;
		break;
	case 10:
		if (h1_eq_lower(name.p, "connection", 10))
			note_connection(f, value);
		break;
	case 14:
		if (!h1_eq_lower(name.p, "content-length", 14))
			break;
		/* Even an equal duplicate: a recipient that takes the other line, or joins them, frames differently. */
		if (++f->n_content_length > 1 || !parse_content_length(value, &f->content_length) ||
		    tab_around(value)) {
			*err = H1_E_BAD_CONTENT_LENGTH;
			return H1_ERROR;
		}
		break;
	case 17:
		if (!h1_eq_lower(name.p, "transfer-encoding", 17))
			break;
		/* One line only (nobody has to join lists to frame), and no HT around the codings. */
		if (++f->n_transfer_encoding > 1 || tab_around(value)) {
			*err = H1_E_BAD_TRANSFER_ENCODING;
			return H1_ERROR;
		}
		f->transfer_encoding = value;
		break;
	}
	return 0;
}

/* Classifies the byte at p that ended a name or a value where a CR LF was not expected yet. */
static int line_break_error(const char *p, const char *end, enum h1_error otherwise, enum h1_error *err)
{
	if (*p == '\r') {
		if (p + 1 == end)
			return H1_MORE;
		*err = p[1] == '\n' ? otherwise : H1_E_BARE_CR;
	} else {
		*err = *p == '\n' ? H1_E_BARE_LF : otherwise;
	}
	return H1_ERROR;
}

int h1_parse_fields(const char *base, const char *p, const char *end, struct h1_fields *f, enum h1_error *err)
{
	for (;;) {
		const char *name, *value, *stop;
		struct h1_header *h;

		if (p == end)
			return H1_MORE;
		if (*p == '\r') {
			if (p + 1 == end)
				return H1_MORE;
			if (p[1] != '\n') {
				*err = H1_E_BARE_CR;
				return H1_ERROR;
			}
			return (int)(p + 2 - base);
		}
		if (*p == ' ' || *p == '\t') { /* obs-fold, or whitespace before the first field (§2.2) */
			*err = H1_E_OBS_FOLD;
			return H1_ERROR;
		}
		name = p;
		p = h1_skip_token(p, end);
		if (p == end)
			return H1_MORE;
		if (*p != ':' || p == name) {
			if (*p == ':' || *p == ' ' || *p == '\t') { /* empty, or "Name : value" (§5.1) */
				*err = H1_E_BAD_HEADER_NAME;
				return H1_ERROR;
			}
			return line_break_error(p, end, H1_E_BAD_HEADER_NAME, err);
		}
		if (f->n_headers == H1_MAX_HEADERS) {
			*err = H1_E_TOO_MANY_HEADERS;
			return H1_ERROR;
		}
		h = &f->headers[f->n_headers];
		h->name.p = name;
		h->name.len = (uint32_t)(p - name);
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		value = p;
		for (;;) {
			p = h1_skip_value(p, end);
			if (p == end)
				return H1_MORE;
			if (*p != '\t')
				break;
			p++;
		}
		if (*p != '\r' || p + 1 == end || p[1] != '\n') {
			if (*p != '\r' && *p != '\n') {
				*err = H1_E_BAD_HEADER_VALUE;
				return H1_ERROR;
			}
			return line_break_error(p, end, H1_E_BAD_HEADER_VALUE, err);
		}
		stop = p;
		while (stop > value && (stop[-1] == ' ' || stop[-1] == '\t'))
			stop--;
		h->value.p = value;
		h->value.len = (uint32_t)(stop - value);
		f->n_headers++;
		if (note_field(f, h->name, h->value, err) < 0)
			return H1_ERROR;
		p += 2;
	}
}

int h1_te_final_chunked(struct h1_str te)
{
	uint32_t i = 0, n_chunked = 0;
	bool last_chunked = false, any = false;

	/* A comma list of codings; parameters (";q=") and empty elements are not accepted. */
	while (i < te.len) {
		uint32_t start, stop;

		while (i < te.len && (te.p[i] == ' ' || te.p[i] == '\t'))
			i++;
		start = i;
		while (i < te.len && h1_tchar[(uint8_t)te.p[i]])
			i++;
		stop = i;
		if (stop == start)
			return -1;
		while (i < te.len && (te.p[i] == ' ' || te.p[i] == '\t'))
			i++;
		if (i < te.len && te.p[i] != ',')
			return -1;
		if (i < te.len && ++i == te.len) /* a trailing comma */
			return -1;
		any = true;
		last_chunked = stop - start == 7 && h1_eq_lower(te.p + start, "chunked", 7);
		n_chunked += last_chunked;
	}
	if (!any || n_chunked > 1)
		return -1;
	return last_chunked;
}

int h1_parse_version(const char *p, size_t avail, enum h1_error *err)
{
	static const char pattern[] = "HTTP/9.9"; /* '9': any digit here */
	size_t i, n = avail < 8 ? avail : 8;

	for (i = 0; i < n; i++) {
		bool ok = pattern[i] == '9' ? (p[i] >= '0' && p[i] <= '9') : p[i] == pattern[i];

		if (!ok) {
			*err = H1_E_BAD_VERSION;
			return H1_ERROR;
		}
	}
	if (avail < 8)
		return H1_VERSION_MORE;
	if (p[5] != '1' || p[7] > '1') {
		*err = H1_E_VERSION_NOT_SUPPORTED;
		return H1_ERROR;
	}
	return p[7] - '0';
}
