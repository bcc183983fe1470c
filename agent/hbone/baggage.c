// SPDX-License-Identifier: Apache-2.0
/*
 * The baggage header of an HBONE CONNECT, byte for byte as ztunnel writes it (src/proxy/outbound.rs,
 * baggage()): the source workload's cluster, namespace, kind and name, canonical service and revision, and
 * locality, as W3C baggage members in that order, values unencoded. ztunnel's peers read it to label metrics
 * of a source they do not know themselves.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hbone/hbone.h"

/* What a baggage value may hold unencoded (W3C baggage: no CTL, space, DQUOTE, comma, semicolon, backslash). */
static bool plain_value(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == ',' || *p == ';' || *p == '\\')
			return false;
	return true;
}

int hbone_format_baggage(char *buf, size_t len, const struct hbone_baggage *b)
{
	const char *const v[] = { b->cluster, b->ns,	  b->workload_kind, b->workload_name,
				  b->service, b->version, b->region,	    b->zone };
	int n;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (!v[i] || !plain_value(v[i]))
			return -EINVAL;
	/* the kind is part of a key: a lower-case word ("deployment", "pod", ...) */
	if (!b->workload_kind[0] || strspn(b->workload_kind, "abcdefghijklmnopqrstuvwxyz") != strlen(b->workload_kind))
		return -EINVAL;
	n = snprintf(buf, len,
		     "k8s.cluster.name=%s,k8s.namespace.name=%s,k8s.%s.name=%s,service.name=%s,service.version=%s,"
		     "cloud.region=%s,cloud.availability_zone=%s",
		     b->cluster, b->ns, b->workload_kind, b->workload_name, b->service, b->version, b->region, b->zone);
	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return n;
}
