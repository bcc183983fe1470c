// SPDX-License-Identifier: Apache-2.0
/*
 * `xmesh routes`: per captured service port, the vhost its clients reach (name, domains) and its routes
 * in order (match, action, destinations with weights and endpoint counts), as text or JSON.
 */
#include <stdio.h>

#include "core/strbuf.h"
#include "l7/ratelimit.h"
#include "l7/retry.h"
#include "l7/routes.h"
#include "l7/routes_internal.h"

static const char *action_name(enum l7_action a)
{
	return a == L7_ACTION_REDIRECT ? "redirect" : a == L7_ACTION_DIRECT_RESPONSE ? "direct_response" : "route";
}

/* `uri prefix "/api"` for text. */
static void text_str_match(struct strbuf *out, const char *field, const struct l7_str_match *m)
{
	if (m->kind == L7_MATCH_ANY)
		return;
	sb_printf(out, " %s %s ", field, l7_match_kind_name(m->kind));
	sb_json_str(out, m->value);
}

static void text_kv(struct strbuf *out, const char *field, const struct l7_kv_match *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sb_printf(out, " %s[%s]", field, kv[i].name);
		if (kv[i].m.kind == L7_MATCH_ANY) {
			sb_puts(out, " present");
			continue;
		}
		sb_printf(out, " %s ", l7_match_kind_name(kv[i].m.kind));
		sb_json_str(out, kv[i].m.value);
	}
}

static void text_match(struct strbuf *out, const struct l7_match *m)
{
	size_t start = out->len;

	text_str_match(out, m->ignore_uri_case ? "uri(ignore case)" : "uri", &m->uri);
	text_str_match(out, "scheme", &m->scheme);
	text_str_match(out, "method", &m->method);
	text_str_match(out, "authority", &m->authority);
	text_kv(out, "header", m->headers, m->n_headers);
	text_kv(out, "without_header", m->without_headers, m->n_without_headers);
	text_kv(out, "query", m->query_params, m->n_query_params);
	if (m->port)
		sb_printf(out, " port %u", m->port);
	for (size_t i = 0; i < m->n_source_labels; i++)
		sb_printf(out, " source_label %s=%s", m->source_labels[i].key, m->source_labels[i].value);
	if (m->source_namespace)
		sb_printf(out, " source_namespace %s", m->source_namespace);
	if (out->len == start)
		sb_puts(out, " any");
}

/* "retries 2 on connect-failure,... [per-try 1000ms] [backoff 25ms] [same-host] [remote-localities]". */
static void render_retry_text(const struct l7_retry_policy *p, struct strbuf *out)
{
	char on[512];

	if (!p->attempts) {
		sb_puts(out, "      retries off\n");
		return;
	}
	l7_retry_on_format(p, on, sizeof(on));
	sb_printf(out, "      retries %u on %s", p->attempts, on[0] ? on : "-");
	if (p->per_try_timeout_ms)
		sb_printf(out, " per-try %llums", (unsigned long long)p->per_try_timeout_ms);
	if (p->backoff_base_ms != L7_RETRY_BACKOFF_BASE_MS)
		sb_printf(out, " backoff %ums", p->backoff_base_ms);
	if (!p->previous_hosts)
		sb_puts(out, " same-host");
	if (p->retry_remote_localities)
		sb_puts(out, " remote-localities");
	sb_puts(out, "\n");
}

static void render_retry_json(const struct l7_retry_policy *p, struct strbuf *out)
{
	char on[512];

	l7_retry_on_format(p, on, sizeof(on));
	sb_printf(out, ",\"retries\":{\"attempts\":%u,\"retry_on\":", p->attempts);
	sb_json_str(out, on);
	sb_printf(out,
		  ",\"per_try_timeout_ms\":%llu,\"backoff_base_ms\":%u,\"previous_hosts\":%s,"
		  "\"retry_remote_localities\":%s}",
		  (unsigned long long)p->per_try_timeout_ms, p->backoff_base_ms, p->previous_hosts ? "true" : "false",
		  p->retry_remote_localities ? "true" : "false");
}

static void text_route(struct strbuf *out, const struct l7_route *r)
{
	sb_printf(out, "    route %s", r->name && r->name[0] ? r->name : "-");
	if (r->vs_name[0])
		sb_printf(out, " (virtualservice %s/%s, %s:%d:%d)", r->vs_ns, r->vs_name,
			  r->loc.file ? r->loc.file : "?", r->loc.line, r->loc.col);
	sb_puts(out, "\n");
	if (!r->n_matches)
		sb_puts(out, "      match: any\n");
	for (size_t m = 0; m < r->n_matches; m++) {
		sb_puts(out, "      match:");
		text_match(out, &r->matches[m]);
		sb_puts(out, "\n");
	}
	switch (r->action) {
	case L7_ACTION_ROUTE:
		for (size_t d = 0; d < r->n_dests; d++) {
			const struct l7_cluster *c = r->dests[d].cluster;

			sb_printf(out, "      -> %s weight %u (%zu endpoints)\n", c ? c->name : "?", r->dests[d].weight,
				  c ? c->n_endpoints : 0);
		}
		break;
	case L7_ACTION_REDIRECT:
		sb_printf(out, "      redirect %u", r->redirect_code);
		if (r->redirect_scheme)
			sb_printf(out, " scheme %s", r->redirect_scheme);
		if (r->redirect_authority)
			sb_printf(out, " authority %s", r->redirect_authority);
		if (r->redirect_port)
			sb_printf(out, " port %u", r->redirect_port);
		if (r->redirect_uri)
			sb_printf(out, " uri %s", r->redirect_uri);
		sb_puts(out, "\n");
		break;
	case L7_ACTION_DIRECT_RESPONSE:
		sb_printf(out, "      direct response %u (%zu bytes)\n", r->direct_status, r->direct_body_len);
		break;
	}
	if (r->rewrite_uri || r->rewrite_authority)
		sb_printf(out, "      rewrite%s%s%s%s\n", r->rewrite_uri ? " uri " : "",
			  r->rewrite_uri ? r->rewrite_uri : "", r->rewrite_authority ? " authority " : "",
			  r->rewrite_authority ? r->rewrite_authority : "");
	if (r->mirror)
		sb_printf(out, "      mirror %s %.4g%%\n", r->mirror->name, r->mirror_percent);
	if (r->timeout_ms)
		sb_printf(out, "      timeout %llums\n", (unsigned long long)r->timeout_ms);
	if (r->fault_delay_ms)
		sb_printf(out, "      fault delay %llums %.4g%%\n", (unsigned long long)r->fault_delay_ms,
			  r->fault_delay_percent);
	if (r->fault_abort_status)
		sb_printf(out, "      fault abort %u %.4g%%\n", r->fault_abort_status, r->fault_abort_percent);
	if (r->action == L7_ACTION_ROUTE)
		render_retry_text(&r->retry, out);
}

static void render_text(const struct l7_route_table *t, struct strbuf *out)
{
	if (!t->n_services)
		sb_puts(out, "no HTTP service ports\n");
	for (size_t i = 0; i < t->n_services; i++) {
		const struct l7_service *s = &t->services[i];
		const struct l7_vhost *v = s->vhost;
		char key[64];

		lb_format_key(&s->key, key, sizeof(key));
		sb_printf(out, "%s %s/%s\n", key, s->svc ? s->svc->ns : "?", s->svc ? s->svc->name : "?");
		sb_printf(out, "  vhost %s domains", v->name);
		for (size_t d = 0; d < v->n_domains; d++)
			sb_printf(out, "%s %s", d ? "," : "", v->domains[d]);
		sb_puts(out, "\n");
		for (size_t r = 0; r < v->n_routes; r++)
			text_route(out, &v->routes[r]);
	}
	l7_ratelimit_render(t, false, out);
}

static void json_str_match(struct strbuf *out, const char *field, const struct l7_str_match *m, bool *first)
{
	if (m->kind == L7_MATCH_ANY)
		return;
	sb_printf(out, "%s\"%s\":{\"%s\":", *first ? "" : ",", field, l7_match_kind_name(m->kind));
	sb_json_str(out, m->value);
	sb_puts(out, "}");
	*first = false;
}

static void json_kv(struct strbuf *out, const char *field, const struct l7_kv_match *kv, size_t n, bool *first)
{
	if (!n)
		return;
	sb_printf(out, "%s\"%s\":{", *first ? "" : ",", field);
	for (size_t i = 0; i < n; i++) {
		sb_puts(out, i ? "," : "");
		sb_json_str(out, kv[i].name);
		if (kv[i].m.kind == L7_MATCH_ANY) {
			sb_puts(out, ":{}");
			continue;
		}
		sb_printf(out, ":{\"%s\":", l7_match_kind_name(kv[i].m.kind));
		sb_json_str(out, kv[i].m.value);
		sb_puts(out, "}");
	}
	sb_puts(out, "}");
	*first = false;
}

static void json_match(struct strbuf *out, const struct l7_match *m)
{
	bool first = true;

	sb_puts(out, "{");
	json_str_match(out, "uri", &m->uri, &first);
	json_str_match(out, "scheme", &m->scheme, &first);
	json_str_match(out, "method", &m->method, &first);
	json_str_match(out, "authority", &m->authority, &first);
	json_kv(out, "headers", m->headers, m->n_headers, &first);
	json_kv(out, "withoutHeaders", m->without_headers, m->n_without_headers, &first);
	json_kv(out, "queryParams", m->query_params, m->n_query_params, &first);
	if (m->port) {
		sb_printf(out, "%s\"port\":%u", first ? "" : ",", m->port);
		first = false;
	}
	if (m->n_source_labels) {
		sb_printf(out, "%s\"sourceLabels\":{", first ? "" : ",");
		for (size_t i = 0; i < m->n_source_labels; i++) {
			sb_puts(out, i ? "," : "");
			sb_json_str(out, m->source_labels[i].key);
			sb_puts(out, ":");
			sb_json_str(out, m->source_labels[i].value);
		}
		sb_puts(out, "}");
		first = false;
	}
	if (m->source_namespace) {
		sb_printf(out, "%s\"sourceNamespace\":", first ? "" : ",");
		sb_json_str(out, m->source_namespace);
		first = false;
	}
	if (m->ignore_uri_case)
		sb_printf(out, "%s\"ignoreUriCase\":true", first ? "" : ",");
	sb_puts(out, "}");
}

/* "ns/name", or "" when name is empty. */
static void json_ns_name(struct strbuf *out, const char *ns, const char *name)
{
	char buf[64 + XM_NAME_MAX + 2];

	if (snprintf(buf, sizeof(buf), "%s%s%s", name[0] ? ns : "", name[0] ? "/" : "", name) < 0)
		buf[0] = '\0';
	sb_json_str(out, buf);
}

static void json_opt_str(struct strbuf *out, const char *key, const char *v)
{
	if (!v)
		return;
	sb_printf(out, ",\"%s\":", key);
	sb_json_str(out, v);
}

static void json_route(struct strbuf *out, const struct l7_route *r)
{
	sb_puts(out, "{\"name\":");
	sb_json_str(out, r->name ? r->name : "");
	sb_puts(out, ",\"virtual_service\":");
	json_ns_name(out, r->vs_ns, r->vs_name);
	sb_puts(out, ",\"match\":[");
	for (size_t m = 0; m < r->n_matches; m++) {
		sb_puts(out, m ? "," : "");
		json_match(out, &r->matches[m]);
	}
	sb_printf(out, "],\"action\":\"%s\"", action_name(r->action));
	if (r->action == L7_ACTION_ROUTE) {
		sb_puts(out, ",\"destinations\":[");
		for (size_t d = 0; d < r->n_dests; d++) {
			const struct l7_cluster *c = r->dests[d].cluster;

			sb_puts(out, d ? ",{\"cluster\":" : "{\"cluster\":");
			sb_json_str(out, c ? c->name : "");
			sb_printf(out, ",\"weight\":%u,\"endpoints\":%zu}", r->dests[d].weight, c ? c->n_endpoints : 0);
		}
		sb_puts(out, "]");
	} else if (r->action == L7_ACTION_REDIRECT) {
		sb_printf(out, ",\"redirect\":{\"code\":%u", r->redirect_code);
		json_opt_str(out, "uri", r->redirect_uri);
		json_opt_str(out, "authority", r->redirect_authority);
		json_opt_str(out, "scheme", r->redirect_scheme);
		if (r->redirect_port)
			sb_printf(out, ",\"port\":%u", r->redirect_port);
		sb_puts(out, "}");
	} else {
		sb_printf(out, ",\"direct_response\":{\"status\":%u,\"body_bytes\":%zu}", r->direct_status,
			  r->direct_body_len);
	}
	if (r->rewrite_uri || r->rewrite_authority) {
		sb_puts(out, ",\"rewrite\":{");
		if (r->rewrite_uri) {
			sb_puts(out, "\"uri\":");
			sb_json_str(out, r->rewrite_uri);
		}
		if (r->rewrite_authority) {
			sb_puts(out, r->rewrite_uri ? ",\"authority\":" : "\"authority\":");
			sb_json_str(out, r->rewrite_authority);
		}
		sb_puts(out, "}");
	}
	if (r->mirror) {
		sb_puts(out, ",\"mirror\":{\"cluster\":");
		sb_json_str(out, r->mirror->name);
		sb_printf(out, ",\"percent\":%.6g}", r->mirror_percent);
	}
	if (r->timeout_ms)
		sb_printf(out, ",\"timeout_ms\":%llu", (unsigned long long)r->timeout_ms);
	if (r->fault_delay_ms || r->fault_abort_status) {
		sb_puts(out, ",\"fault\":{");
		if (r->fault_delay_ms)
			sb_printf(out, "\"delay\":{\"ms\":%llu,\"percent\":%.6g}%s",
				  (unsigned long long)r->fault_delay_ms, r->fault_delay_percent,
				  r->fault_abort_status ? "," : "");
		if (r->fault_abort_status)
			sb_printf(out, "\"abort\":{\"status\":%u,\"percent\":%.6g}", r->fault_abort_status,
				  r->fault_abort_percent);
		sb_puts(out, "}");
	}
	if (r->action == L7_ACTION_ROUTE)
		render_retry_json(&r->retry, out);
	sb_puts(out, "}");
}

static void render_json(const struct l7_route_table *t, struct strbuf *out)
{
	sb_puts(out, "{\"services\":[");
	for (size_t i = 0; i < t->n_services; i++) {
		const struct l7_service *s = &t->services[i];
		const struct l7_vhost *v = s->vhost;
		char key[64];

		lb_format_key(&s->key, key, sizeof(key));
		sb_puts(out, i ? ",{\"vip\":" : "{\"vip\":");
		sb_json_str(out, key);
		sb_puts(out, ",\"service\":");
		json_ns_name(out, s->svc ? s->svc->ns : "", s->svc ? s->svc->name : "");
		sb_puts(out, ",\"vhost\":{\"name\":");
		sb_json_str(out, v->name);
		sb_puts(out, ",\"domains\":[");
		for (size_t d = 0; d < v->n_domains; d++) {
			sb_puts(out, d ? "," : "");
			sb_json_str(out, v->domains[d]);
		}
		sb_puts(out, "],\"routes\":[");
		for (size_t r = 0; r < v->n_routes; r++) {
			sb_puts(out, r ? "," : "");
			json_route(out, &v->routes[r]);
		}
		sb_puts(out, "]}}");
	}
	sb_puts(out, "]");
	l7_ratelimit_render(t, true, out);
	sb_puts(out, "}\n");
}

void l7_routes_render(const struct l7_route_table *t, bool json, struct strbuf *out)
{
	if (json)
		render_json(t, out);
	else
		render_text(t, out);
}
