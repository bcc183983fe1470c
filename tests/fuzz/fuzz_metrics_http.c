// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the metrics listener's request head parser (mhttp_parse_request), on the bytes a client
 * may send. Beyond memory safety it checks what the server relies on: a complete head is a prefix of the
 * input that parses the same on its own, every pointer stays inside the buffer, errors are 400, 431 or 505, and
 * feeding the same bytes in two pieces never turns a complete head into an error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && p + n <= buf + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mhttp_request req, again;
	char *buf;
	int r, r2;

	/* The server parses at most its buffer, the first 8 KiB; then it answers 431 or 414 itself. */
	if (size > MHTTP_MAX_REQUEST_DEFAULT)
		size = MHTTP_MAX_REQUEST_DEFAULT;
	/* An exact-size copy: ASan sees any read past what the client sent. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	r = mhttp_parse_request(buf, size, &req);
	if (r < 0 && r != -400 && r != -431 && r != -505)
		abort();
	if (r > 0) {
		if ((size_t)r > size || !inside(req.method, req.method_len, buf, (size_t)r) || !req.method_len)
			abort();
		/* The path is in the request line, or "/" for an absolute-form target without one. */
		if (!req.path_len ||
		    (!inside(req.path, req.path_len, buf, (size_t)r) && !(req.path_len == 1 && req.path[0] == '/')))
			abort();
		if (req.minor_version < 0 || req.minor_version > 9)
			abort();
		/* The head alone parses to the same head: what follows it (a body, a pipelined request) is not read. */
		r2 = mhttp_parse_request(buf, (size_t)r, &again);
		if (r2 != r || again.method_len != req.method_len || again.path_len != req.path_len)
			abort();
		/* Any shorter prefix, as a slow client delivers it, is "need more", never a head. */
		if (r > 1 && mhttp_parse_request(buf, (size_t)r - 1, &again) > 0)
			abort();
	}
	free(buf);
	return 0;
}
