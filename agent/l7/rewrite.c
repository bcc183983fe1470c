// SPDX-License-Identifier: Apache-2.0
/*
 * Envoy's header handling for a plain-HTTP mesh hop: hop-by-hop headers are dropped (RFC 9110 §7.6.1) and
 * the framing headers the proxy keeps (Transfer-Encoding: chunked, the Upgrade pair) are written again,
 * x-forwarded-for gets the client appended, x-forwarded-proto is "http", x-request-id is kept or added.
 */
#include "l7/rewrite.h"

#include "l7/trace.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct writer {
	char *p;
	size_t len, cap;
	bool overflow;
};

static void put(struct writer *w, const char *s, size_t n)
{
	if (!n)
		return;
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void put_str(struct writer *w, const char *s)
{
	put(w, s, strlen(s));
}

/* A string literal, its length known at compile time. */
#define put_lit(w, lit) put((w), "" lit, sizeof(lit) - 1)

static void put_span(struct writer *w, struct h1_str s)
{
	put(w, s.p, s.len);
}

static void put_header(struct writer *w, const char *name, size_t name_len, const char *value, size_t value_len)
{
	put(w, name, name_len);
	put(w, ": ", 2);
	put(w, value, value_len);
	put(w, "\r\n", 2);
}

/*
 * A head the proxy writes stays within the parser's limits, its own and the upstream's (Envoy's): a request
 * whose added fields would pass H1_MAX_HEADERS or H1_MAX_HEAD_BYTES is answered 431 instead.
 */
static int finish_head(struct writer *w)
{
	uint32_t lines = 0;

	if (w->overflow || w->len > H1_MAX_HEAD_BYTES)
		return -ENOSPC;
	for (const char *p = w->p, *end = w->p + w->len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		lines++;
	/* the start line and the empty line end the count */
	return lines > H1_MAX_HEADERS + 2 ? -ENOSPC : (int)w->len;
}

static int finish(struct writer *w)
{
	return w->overflow || w->len > (size_t)INT32_MAX ? -ENOSPC : (int)w->len;
}

/*
 * Hop-by-hop and so not forwarded (RFC 9110 §7.6.1), except Content-Length: the proxy streams the body as it came,
 * so the length stays part of the head whatever the peer names in Connection. Dropping it would let the body be
 * read as the next message by the other side (a request smuggled past the proxy, or a desynchronised response).
 * Transfer-Encoding and Upgrade are hop-by-hop by name and written again by the proxy when it keeps them.
 */
static bool not_forwarded(const struct h1_header *all, uint32_t n, struct h1_str name)
{
	return h1_is_hop_by_hop(all, n, name) && !h1_name_eq(name, "content-length");
}

/* Headers a route may not set or add: the proxy owns the framing and the authority. */
static bool reserved_name(const char *name)
{
	return !strcasecmp(name, "host") || !strcasecmp(name, "content-length") ||
	       !strcasecmp(name, "transfer-encoding") || !strcasecmp(name, "connection") ||
	       !strcasecmp(name, "upgrade");
}

static bool in_names(struct h1_str name, char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (h1_name_eq(name, names[i]))
			return true;
	return false;
}

static bool in_ops(struct h1_str name, const struct l7_header_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (h1_name_eq(name, ops[i].name))
			return true;
	return false;
}

static void put_ops(struct writer *w, const struct l7_header_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ops[i].value && !reserved_name(ops[i].name))
			put_header(w, ops[i].name, strlen(ops[i].name), ops[i].value, strlen(ops[i].value));
}

/* Is name removed or replaced by hd on the request (req) or response side? */
static bool dropped_by(const struct l7_headers *hd, struct h1_str name, bool req)
{
	if (!hd)
		return false;
	if (req)
		return in_names(name, hd->req_remove, hd->n_req_remove) || in_ops(name, hd->req_set, hd->n_req_set);
	return in_names(name, hd->resp_remove, hd->n_resp_remove) || in_ops(name, hd->resp_set, hd->n_resp_set);
}

static const struct l7_headers *route_headers(const struct l7_route *r)
{
	return r ? &r->headers : NULL;
}

static const struct l7_headers *dest_headers(const struct l7_destination *d)
{
	return d ? &d->headers : NULL;
}

int l7_rewrite_path(const struct h1_request *req, const struct l7_route *route, char *buf, size_t cap)
{
	struct writer w = { .p = buf, .cap = cap };
	struct h1_str path = req->path;

	if (!path.len)
		path = (struct h1_str){ "/", 1 };
	if (route && route->rewrite_uri) {
		const char *prefix = NULL;

		for (size_t i = 0; i < route->n_matches && !prefix; i++) {
			const struct l7_match *m = &route->matches[i];
			size_t n = m->uri.value ? strlen(m->uri.value) : 0;

			if (m->uri.kind != L7_MATCH_PREFIX || n > path.len)
				continue;
			if (m->ignore_uri_case ? !strncasecmp(path.p, m->uri.value, n)
					       : !memcmp(path.p, m->uri.value, n))
				prefix = m->uri.value;
		}
		put_str(&w, route->rewrite_uri);
		if (prefix)
			put(&w, path.p + strlen(prefix), path.len - strlen(prefix));
	} else {
		put_span(&w, path);
	}
	if (req->query.len) {
		put(&w, "?", 1);
		put_span(&w, req->query);
	}
	return finish(&w);
}

int l7_rewrite_request(const struct h1_request *req, const struct l7_req_rewrite *rw, char *buf, size_t cap)
{
	const struct l7_headers *rh = route_headers(rw->route), *dh = dest_headers(rw->dest);
	struct writer w = { .p = buf, .cap = cap };
	const struct h1_header *up;
	bool has_request_id = false, first_xff = true;
	int n;

	put_span(&w, req->method);
	put(&w, " ", 1);
	if (req->is_connect || (req->target.len == 1 && req->target.p[0] == '*')) {
		put_span(&w, req->target);
	} else {
		n = l7_rewrite_path(req, rw->route, w.p + w.len, w.cap - w.len);
		if (n < 0)
			return n;
		w.len += (size_t)n;
	}
	put_lit(&w, " HTTP/1.1\r\nhost: ");
	if (rw->route && rw->route->rewrite_authority)
		put_str(&w, rw->route->rewrite_authority);
	else if (req->host.len)
		put_span(&w, req->host);
	else if (rw->default_authority)
		put_str(&w, rw->default_authority);
	if (rw->host_suffix)
		put_str(&w, rw->host_suffix);
	put(&w, "\r\n", 2);

	for (uint32_t i = 0; i < req->n_headers; i++) {
		const struct h1_header *h = &req->headers[i];

		if (h1_name_eq(h->name, "host") || not_forwarded(req->headers, req->n_headers, h->name) ||
		    h1_name_eq(h->name, "x-forwarded-proto"))
			continue;
		if (h1_name_eq(h->name, "x-forwarded-for")) {
			continue; /* written below, all values joined, the client last */
		}
		if (dropped_by(rh, h->name, true) || dropped_by(dh, h->name, true))
			continue;
		if (rw->trace_headers && l7_trace_is_header(h->name))
			continue; /* replaced by the proxy's span below */
		if (rw->attempt_count && h->name.len == 21 && h1_name_eq(h->name, "x-envoy-attempt-count"))
			continue; /* replaced below */
		if (h1_name_eq(h->name, "x-request-id"))
			has_request_id = true;
		put_span(&w, h->name);
		put(&w, ": ", 2);
		put_span(&w, h->value);
		put(&w, "\r\n", 2);
	}
	put_lit(&w, "x-forwarded-for: ");
	for (uint32_t i = 0; i < req->n_headers; i++) {
		const struct h1_header *h = &req->headers[i];

		/* A client that names x-forwarded-for in Connection asked for it to go no further than us. */
		if (!h1_name_eq(h->name, "x-forwarded-for") || !h->value.len ||
		    h1_is_hop_by_hop(req->headers, req->n_headers, h->name))
			continue;
		if (!first_xff)
			put(&w, ", ", 2);
		put_span(&w, h->value);
		first_xff = false;
	}
	if (!first_xff)
		put(&w, ", ", 2);
	put_str(&w, rw->client_addr ? rw->client_addr : "");
	put_lit(&w, "\r\nx-forwarded-proto: http\r\n");
	if (!has_request_id && rw->request_id)
		put_header(&w, "x-request-id", 12, rw->request_id, strlen(rw->request_id));
	if (rw->trace_headers)
		put_str(&w, rw->trace_headers);
	if (rh) {
		put_ops(&w, rh->req_set, rh->n_req_set);
		put_ops(&w, rh->req_add, rh->n_req_add);
	}
	if (dh) {
		put_ops(&w, dh->req_set, dh->n_req_set);
		put_ops(&w, dh->req_add, dh->n_req_add);
	}
	if (req->body == H1_BODY_CHUNKED)
		put_lit(&w, "transfer-encoding: chunked\r\n");
	up = req->upgrade ? h1_find(req->headers, req->n_headers, "upgrade") : NULL;
	if (up) {
		put_lit(&w, "connection: upgrade\r\nupgrade: ");
		put_span(&w, up->value);
		put(&w, "\r\n", 2);
	} else if (rw->close) {
		put_lit(&w, "connection: close\r\n");
	}
	if (rw->attempt_count)
		put_lit(&w, "x-envoy-attempt-count: 1\r\n");
	put(&w, "\r\n", 2);
	return finish_head(&w);
}

int l7_rewrite_response(const struct h1_response *resp, const struct l7_resp_rewrite *rw, char *buf, size_t cap)
{
	const struct l7_headers *rh = route_headers(rw->route), *dh = dest_headers(rw->dest);
	bool informational = resp->status < 200 && resp->status != 101;
	struct writer w = { .p = buf, .cap = cap };
	unsigned int st = resp->status % 1000; /* the parser takes three digits */
	char line[13] = "HTTP/1.1 000 ";

	line[9] = (char)('0' + st / 100);
	line[10] = (char)('0' + st / 10 % 10);
	line[11] = (char)('0' + st % 10);
	put(&w, line, sizeof(line));
	if (resp->reason.len)
		put_span(&w, resp->reason);
	else
		put_str(&w, h1_reason_phrase(resp->status));
	put(&w, "\r\n", 2);
	for (uint32_t i = 0; i < resp->n_headers; i++) {
		const struct h1_header *h = &resp->headers[i];

		if (not_forwarded(resp->headers, resp->n_headers, h->name))
			continue;
		if (!informational && (dropped_by(rh, h->name, false) || dropped_by(dh, h->name, false)))
			continue;
		put_span(&w, h->name);
		put(&w, ": ", 2);
		put_span(&w, h->value);
		put(&w, "\r\n", 2);
	}
	if (informational) {
		put(&w, "\r\n", 2);
		return finish_head(&w);
	}
	if (rh) {
		put_ops(&w, rh->resp_set, rh->n_resp_set);
		put_ops(&w, rh->resp_add, rh->n_resp_add);
	}
	if (dh) {
		put_ops(&w, dh->resp_set, dh->n_resp_set);
		put_ops(&w, dh->resp_add, dh->n_resp_add);
	}
	if (rw->set_cookie && rw->set_cookie[0])
		put_header(&w, "set-cookie", 10, rw->set_cookie, strlen(rw->set_cookie));
	if (resp->body == H1_BODY_CHUNKED && !rw->dechunk)
		put_lit(&w, "transfer-encoding: chunked\r\n");
	if (resp->status == 101) {
		const struct h1_header *up = h1_find(resp->headers, resp->n_headers, "upgrade");

		put_lit(&w, "connection: upgrade\r\n");
		if (up) {
			put_lit(&w, "upgrade: ");
			put_span(&w, up->value);
			put(&w, "\r\n", 2);
		}
	} else if (rw->close) {
		put_lit(&w, "connection: close\r\n");
	} else if (rw->keep_alive_10) {
		put_lit(&w, "connection: keep-alive\r\n");
	}
	put(&w, "\r\n", 2);
	return finish_head(&w);
}

int l7_local_reply(uint16_t status, const char *extra, const char *body, size_t body_len, bool close, char *buf,
		   size_t cap)
{
	struct writer w = { .p = buf, .cap = cap };
	char line[96];

	snprintf(line, sizeof(line), "HTTP/1.1 %03u %s\r\ncontent-length: %zu\r\n", status, h1_reason_phrase(status),
		 body_len);
	put_str(&w, line);
	if (body_len)
		put_lit(&w, "content-type: text/plain\r\n");
	if (extra)
		put_str(&w, extra);
	if (close)
		put_lit(&w, "connection: close\r\n");
	put(&w, "\r\n", 2);
	if (body_len)
		put(&w, body, body_len);
	return finish(&w);
}
