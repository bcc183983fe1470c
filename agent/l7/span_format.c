// SPDX-License-Identifier: Apache-2.0
/*
 * A request's client span as Zipkin v2 JSON (zipkin-api zipkin2-api.yaml, Span): the fields Envoy's Zipkin
 * tracer fills for an outbound request in Istio. Every value from a request or a config is escaped and capped.
 */
#include "l7/span_export.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/fixbuf.h"
#include "l7/access_log.h"

/* Caps of escaped values, so a span stays under L7_SPAN_MAX. */
#define CAP_NAME    512
#define CAP_URL	    1024
#define CAP_METHOD  64
#define CAP_SERVICE 256
#define CAP_CLUSTER 512
#define CAP_NODE    256
_Static_assert(CAP_NAME + CAP_URL + CAP_METHOD + CAP_SERVICE + CAP_CLUSTER + CAP_NODE + 6 * 3 + 800 < L7_SPAN_MAX,
	       "the caps keep every span under L7_SPAN_MAX");

/* "value" escaped and capped. */
static void put_json(struct fixbuf *o, const char *value, size_t cap)
{
	char tmp[CAP_URL + 8];
	size_t n = l7_json_escape(value ? value : "", cap, tmp, sizeof(tmp));

	fb_put(o, "\"", 1);
	fb_put(o, tmp, n < sizeof(tmp) ? n : sizeof(tmp) - 1);
	fb_put(o, "\"", 1);
}

static void put_fmt(struct fixbuf *o, const char *fmt, unsigned long long v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), fmt, v);

	fb_put(o, tmp, (size_t)n);
}

/*
 * The operation name: a VirtualService route's name when it has one (Envoy's route name), else authority and path
 * without the query (the service's implicit route is named "default", which says nothing).
 */
static void put_name(struct fixbuf *o, const struct l7_record *r)
{
	char name[1024 + 256 + 1];
	const char *path = r->path ? r->path : "";
	size_t plen = strcspn(path, "?");

	if (r->route && r->route->vs_name[0] && r->route->name && r->route->name[0]) {
		put_json(o, r->route->name, CAP_NAME);
		return;
	}
	snprintf(name, sizeof(name), "%s%.*s", r->authority ? r->authority : "", (int)plen, path);
	put_json(o, name, CAP_NAME);
}

static void put_remote(struct fixbuf *o, const struct xm_lb_backend *b)
{
	char ip[INET6_ADDRSTRLEN];

	if (!b || (b->family != XM_FAMILY_V4 && b->family != XM_FAMILY_V6) ||
	    !inet_ntop(b->family == XM_FAMILY_V4 ? AF_INET : AF_INET6, b->addr.bytes, ip, sizeof(ip)))
		return;
	fb_puts(o, b->family == XM_FAMILY_V4 ? ",\"remoteEndpoint\":{\"ipv4\":\"" : ",\"remoteEndpoint\":{\"ipv6\":\"");
	fb_puts(o, ip);
	put_fmt(o, "\",\"port\":%llu}", b->port);
}

size_t l7_span_format(const struct l7_record *r, const char *node_id, char *buf, size_t len)
{
	struct fixbuf o;
	char url[1024 + 256 + 16], flags[L7_FLAGS_MAX];
	const char *service = r->source && r->source->canonical_service[0] ? r->source->canonical_service : "xmesh";

	fb_init(&o, buf, len);
	fb_puts(&o, "{\"traceId\":\"");
	fb_puts(&o, r->trace_id);
	fb_puts(&o, "\",\"id\":\"");
	fb_puts(&o, r->span_id);
	fb_puts(&o, "\"");
	if (r->parent_span_id[0]) {
		fb_puts(&o, ",\"parentId\":\"");
		fb_puts(&o, r->parent_span_id);
		fb_puts(&o, "\"");
	}
	fb_puts(&o, ",\"kind\":\"CLIENT\",\"name\":");
	put_name(&o, r);
	put_fmt(&o, ",\"timestamp\":%llu", r->start_unix_ns / 1000);
	/* Zipkin drops a zero duration as "unknown": a request took at least a microsecond. */
	put_fmt(&o, ",\"duration\":%llu", r->duration_ns / 1000 ? r->duration_ns / 1000 : 1);
	fb_puts(&o, ",\"localEndpoint\":{\"serviceName\":");
	put_json(&o, service, CAP_SERVICE);
	fb_puts(&o, "}");
	put_remote(&o, r->upstream);
	fb_puts(&o, ",\"tags\":{\"http.method\":");
	put_json(&o, r->method, CAP_METHOD);
	snprintf(url, sizeof(url), "http://%s%s", r->authority ? r->authority : "", r->path ? r->path : "");
	fb_puts(&o, ",\"http.url\":");
	put_json(&o, url, CAP_URL);
	put_fmt(&o, ",\"http.status_code\":\"%llu\"", r->status);
	l7_flags_format(r->flags, flags, sizeof(flags));
	fb_puts(&o, ",\"response_flags\":");
	put_json(&o, flags, CAP_METHOD);
	fb_puts(&o, ",\"upstream_cluster\":");
	put_json(&o, r->cluster ? r->cluster->name : "-", CAP_CLUSTER);
	/* Envoy's router tags an upstream span retry.count when it was a retry: here one span covers every try,
	 * and the tag says how many retries it took (docs/l7.md "Retries"). */
	if (r->attempts > 1)
		put_fmt(&o, ",\"retry.count\":\"%llu\"", r->attempts - 1);
	/* The upstream went through the node's mTLS tunnel (the request metric's connection_security_policy). */
	if (r->tunnelled)
		fb_puts(&o, ",\"connection_security_policy\":\"mutual_tls\"");
	fb_puts(&o, ",\"node_id\":");
	put_json(&o, node_id ? node_id : "", CAP_NODE);
	/* Envoy tags a span error when the response is 5xx or there was none. */
	if (r->status >= 500 || !r->status)
		fb_puts(&o, ",\"error\":\"true\"");
	fb_puts(&o, "}}");
	return fb_finish(&o);
}
