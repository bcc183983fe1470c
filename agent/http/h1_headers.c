// SPDX-License-Identifier: Apache-2.0
/*
 * Looking at parsed header fields: case-insensitive names, the first field of a name, which fields are
 * hop-by-hop (RFC 9110 §7.6.1), authorities (Host, targets), and the short names of the parser's errors.
 */
#include <ctype.h>
#include <string.h>

#include "http/h1_scan.h"

bool h1_name_eq(struct h1_str s, const char *name)
{
	size_t n = strlen(name);
	uint32_t i;

	if (s.len != n)
		return false;
	for (i = 0; i < s.len; i++)
		if (h1_lower[(uint8_t)s.p[i]] != h1_lower[(uint8_t)name[i]])
			return false;
	return true;
}

static bool span_eq(struct h1_str a, struct h1_str b)
{
	uint32_t i;

	if (a.len != b.len)
		return false;
	for (i = 0; i < a.len; i++)
		if (h1_lower[(uint8_t)a.p[i]] != h1_lower[(uint8_t)b.p[i]])
			return false;
	return true;
}

const struct h1_header *h1_find(const struct h1_header *h, uint32_t n, const char *name)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (h1_name_eq(h[i].name, name))
			return &h[i];
	return NULL;
}

bool h1_is_hop_by_hop(const struct h1_header *all, uint32_t n, struct h1_str name)
{
	static const char *const always[] = {
		"connection", "keep-alive",	    "proxy-connection",	   "te", "transfer-encoding", "upgrade",
		"trailer",    "proxy-authenticate", "proxy-authorization",
	};
	size_t k;
	uint32_t i;

	for (k = 0; k < sizeof(always) / sizeof(always[0]); k++)
		if (h1_name_eq(name, always[k]))
			return true;
	/* And every field the sender named in Connection (any of its lines). */
	for (i = 0; i < n; i++) {
		struct h1_str opt;
		uint32_t pos = 0;

		if (!h1_name_eq(all[i].name, "connection"))
			continue;
		while (h1_list_next(all[i].value, &pos, &opt))
			if (span_eq(opt, name))
				return true;
	}
	return false;
}

bool h1_authority_valid(struct h1_str s, bool need_host, bool need_port)
{
	const char *p = s.p, *end = s.p + s.len, *host_end;

	if (p < end && *p == '[') {
		for (host_end = p + 1; host_end < end && *host_end != ']'; host_end++)
			if (!isxdigit((unsigned char)*host_end) && *host_end != ':' && *host_end != '.')
				return false;
		if (host_end == end || host_end == p + 1)
			return false;
		host_end++;
	} else {
		for (host_end = p; host_end < end && h1_reg_name_char[(uint8_t)*host_end]; host_end++)
			;
		if (need_host && host_end == p)
			return false;
	}
	if (host_end == end)
		return !need_port;
	if (*host_end != ':' || (need_port && host_end + 1 == end))
		return false;
	for (p = host_end + 1; p < end; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

const char *h1_error_name(enum h1_error e)
{
	static const char *const names[H1_E_MAX] = {
		[H1_E_NONE] = "none",
		[H1_E_TOO_LARGE] = "too_large",
		[H1_E_TOO_MANY_HEADERS] = "too_many_headers",
		[H1_E_BAD_METHOD] = "bad_method",
		[H1_E_BAD_TARGET] = "bad_target",
		[H1_E_BAD_VERSION] = "bad_version",
		[H1_E_BAD_STATUS] = "bad_status",
		[H1_E_BAD_HEADER_NAME] = "bad_header_name",
		[H1_E_BAD_HEADER_VALUE] = "bad_header_value",
		[H1_E_OBS_FOLD] = "obs_fold",
		[H1_E_BARE_CR] = "bare_cr",
		[H1_E_BARE_LF] = "bare_lf",
		[H1_E_CL_AND_TE] = "cl_and_te",
		[H1_E_BAD_CONTENT_LENGTH] = "bad_content_length",
		[H1_E_BAD_TRANSFER_ENCODING] = "bad_transfer_encoding",
		[H1_E_MISSING_HOST] = "missing_host",
		[H1_E_BAD_CHUNK] = "bad_chunk",
		[H1_E_VERSION_NOT_SUPPORTED] = "version_not_supported",
	};

	return (unsigned int)e < H1_E_MAX && names[e] ? names[e] : "unknown";
}
