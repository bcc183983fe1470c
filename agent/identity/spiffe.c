// SPDX-License-Identifier: Apache-2.0
/*
 * SPIFFE IDs as the SPIFFE spec (SPIFFE-ID.md, "SPIFFE Identity and Verifiable Identity Document") defines
 * them: spiffe://<trust domain><path>, nothing else. Strict on purpose: a peer's certificate carries one,
 * and an ID that two parsers could read differently must not pass.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "identity/identity.h"

#define SCHEME "spiffe://"

static bool td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
	       c == '_';
}

bool spiffe_trust_domain_valid(const char *td)
{
	size_t n = strlen(td);

	if (!n || n > XM_TRUST_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!td_char(td[i]))
			return false;
	return true;
}

/* Istio's /ns/<ns>/sa/<sa>: exactly four segments. */
static void istio_parts(const char *path, size_t len, struct xm_spiffe_id *out)
{
	const char *ns, *sa, *slash;
	size_t ns_len, sa_len;

	out->ns[0] = out->sa[0] = '\0';
	if (len < 4 || memcmp(path, "/ns/", 4))
		return;
	ns = path + 4;
	slash = memchr(ns, '/', len - 4);
	if (!slash)
		return;
	ns_len = (size_t)(slash - ns);
	if ((size_t)(path + len - slash) < 4 || memcmp(slash, "/sa/", 4))
		return;
	sa = slash + 4;
	sa_len = (size_t)(path + len - sa);
	if (memchr(sa, '/', sa_len) || ns_len >= sizeof(out->ns) || sa_len >= sizeof(out->sa))
		return;
	memcpy(out->ns, ns, ns_len);
	out->ns[ns_len] = '\0';
	memcpy(out->sa, sa, sa_len);
	out->sa[sa_len] = '\0';
}

int spiffe_parse(const char *s, size_t len, struct xm_spiffe_id *out, const char **why)
{
	const char *td, *path, *end = s + len;
	size_t td_len, seg;
	const char *dummy;

	if (!why)
		why = &dummy;
	if (len > XM_SPIFFE_MAX)
		return *why = "longer than 2048 bytes", -EINVAL;
	if (len < sizeof(SCHEME) - 1 || memcmp(s, SCHEME, sizeof(SCHEME) - 1))
		return *why = "scheme is not spiffe://", -EINVAL;
	td = s + sizeof(SCHEME) - 1;
	for (path = td; path < end && *path != '/'; path++) {
		if (*path == ':')
			return *why = "trust domain with a port", -EINVAL;
		if (*path == '@')
			return *why = "user info", -EINVAL;
		if (!td_char(*path))
			return *why = "trust domain character outside [a-z0-9._-]", -EINVAL;
	}
	td_len = (size_t)(path - td);
	if (!td_len)
		return *why = "empty trust domain", -EINVAL;
	if (td_len > XM_TRUST_DOMAIN_MAX)
		return *why = "trust domain longer than 255", -EINVAL;
	if (path == end)
		return *why = "no path (a trust domain is no workload identity)", -EINVAL;
	/* path: one or more "/segment" */
	seg = 0;
	for (const char *p = path; p < end; p++) {
		if (*p == '/') {
			if (p > path && seg == 0)
				return *why = "empty path segment", -EINVAL;
			if (p > path && seg == 1 && p[-1] == '.')
				return *why = "path segment \".\"", -EINVAL;
			if (p > path && seg == 2 && p[-1] == '.' && p[-2] == '.')
				return *why = "path segment \"..\"", -EINVAL;
			seg = 0;
			continue;
		}
		if (*p == '%')
			return *why = "percent-encoding", -EINVAL;
		if (*p == '?')
			return *why = "query", -EINVAL;
		if (*p == '#')
			return *why = "fragment", -EINVAL;
		if (!path_char(*p))
			return *why = "path character outside [a-zA-Z0-9._-]", -EINVAL;
		seg++;
	}
	if (seg == 0)
		return *why = "trailing slash", -EINVAL;
	if ((seg == 1 && end[-1] == '.') || (seg == 2 && end[-1] == '.' && end[-2] == '.'))
		return *why = "path segment \".\" or \"..\"", -EINVAL;
	if (out) {
		memcpy(out->uri, s, len);
		out->uri[len] = '\0';
		memcpy(out->trust_domain, td, td_len);
		out->trust_domain[td_len] = '\0';
		istio_parts(path, (size_t)(end - path), out);
	}
	*why = NULL;
	return 0;
}

static bool segment_valid(const char *s)
{
	size_t n = strlen(s);

	if (!n || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!path_char(s[i]))
			return false;
	return true;
}

int spiffe_format(char *buf, size_t len, const char *td, const char *ns, const char *sa)
{
	int n;

	if (!sa || !*sa)
		sa = "default";
	if (!spiffe_trust_domain_valid(td) || !segment_valid(ns) || !segment_valid(sa))
		return -EINVAL;
	n = snprintf(buf, len, SCHEME "%s/ns/%s/sa/%s", td, ns, sa);
	if (n < 0 || (size_t)n >= len || n > XM_SPIFFE_MAX)
		return -ENAMETOOLONG;
	return 0;
}
