// SPDX-License-Identifier: Apache-2.0
/* `xmesh status`: what the agent serves, from its own state plus live counts from the maps. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/xdp_render.h"
#include "lbmap/lbmap.h"
#include "outlier/outlier.h"

/* Outlier state of one endpoint of a service port, when that port has outlier detection on. */
static void health_of(const struct xm_agent *a, const struct xm_lb_service *s, uint32_t id,
		      struct xm_endpoint_health *h)
{
	struct xm_map_fds fds;
	uint32_t svc_id = lbmap_svc_id(a->lbmap, &s->key);

	memset(h, 0, sizeof(*h));
	if (!s->outlier_on || !svc_id || !id)
		return;
	datapath_map_fds(&a->dp, &fds);
	outlier_read(fds.outlier, svc_id, id, h);
}

/* The XDP section, from one read of its counters. */
static void render_xdp(const struct xm_agent *a, bool json, struct strbuf *out)
{
	struct xm_xdp_stats s;

	if (!a->xdp.skel || xdp_stats_read(&a->xdp, &a->served, &s)) {
		xdp_render_status(NULL, json, out);
		return;
	}
	xdp_render_status(&s, json, out);
	xdp_stats_free(&s);
}

static void render_text(const struct xm_agent *a, struct strbuf *out)
{
	char when[32] = "never";
	size_t i, j;

	if (a->last_apply)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&a->last_apply));
	sb_printf(out, "agent: ready, node %s, cgroup %s, bpffs %s\n", a->opts.node_name ? a->opts.node_name : "-",
		  a->opts.cgroup, a->opts.bpffs);
	sb_printf(out,
		  "programs: socket LB %d (%d attached now, %d adopted); sockmap %s (%d attached now, %d adopted); "
		  "xdp %s\n",
		  xm_n_sock_progs, a->dp.n_attached, a->dp.n_adopted, a->sockmap.skel ? "loaded" : "off",
		  a->sockmap.n_attached, a->sockmap.n_adopted,
		  a->xdp.skel ? "on the uplinks below" : "off (no --iface)");
	sb_printf(out, "config: last apply %s, %llu ok, %llu rejected%s%s\n", when, (unsigned long long)a->applies_ok,
		  (unsigned long long)a->applies_failed, a->last_error[0] ? "; last error: " : "", a->last_error);
	if (a->xdp.skel)
		render_xdp(a, false, out);
	sb_printf(out, "services: %zu ports\n", a->served.n_services);
	for (i = 0; i < a->served.n_services; i++) {
		const struct xm_lb_service *s = &a->served.services[i];
		char key[80];

		lb_format_key(&s->key, key, sizeof(key));
		sb_printf(out, "\n%s/%s%s%s %s %s%s%s, %zu/%zu ready\n", s->ns, s->name, *s->port_name ? ":" : "",
			  s->port_name, key, lb_algo_name(s->algo),
			  s->flags & XM_SVC_F_EXTERNAL ? ", external (XDP)" : "",
			  s->outlier_on ? ", outlier detection" : "", s->n_ready, s->n_backends);
		if (!s->n_ready)
			sb_puts(out, "  (no ready endpoint: connects are refused)\n");
		for (j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];
			uint32_t id = lbmap_backend_id(a->lbmap, &b->addr, htons(b->port), b->family);
			char addr[80];

			struct xm_endpoint_health h;

			lb_format_backend(b, addr, sizeof(addr));
			health_of(a, s, id, &h);
			sb_printf(out, "  %-28s %-9s id %-5u active %-5lld %s%s%s", addr,
				  b->ready ? "ready" : "not-ready", id, (long long)lbmap_backend_active(a->lbmap, id),
				  b->local ? "local " : "", *b->pod ? "pod " : "", b->pod);
			if (s->outlier_on && h.ejected) {
				time_t until = time(NULL) + (time_t)((h.ejected_for_ms + 999) / 1000);
				char until_s[32];

				strftime(until_s, sizeof(until_s), "%H:%M:%SZ", gmtime(&until));
				sb_printf(
				    out,
				    " EJECTED until %s (%llu ms left, times ejected %llu, consecutive failures %u)",
				    until_s, (unsigned long long)h.ejected_for_ms, (unsigned long long)h.times_ejected,
				    h.consecutive_local);
			} else if (s->outlier_on)
				sb_printf(out, " healthy (consecutive failures %u, times ejected %llu)",
					  h.consecutive_local, (unsigned long long)h.times_ejected);
			sb_puts(out, "\n");
		}
	}
}

static void render_json(const struct xm_agent *a, struct strbuf *out)
{
	size_t i, j;

	sb_puts(out, "{\"agent\":{\"node\":");
	sb_json_str(out, a->opts.node_name ? a->opts.node_name : "");
	sb_puts(out, ",\"cgroup\":");
	sb_json_str(out, a->opts.cgroup);
	sb_puts(out, ",\"bpffs\":");
	sb_json_str(out, a->opts.bpffs);
	sb_printf(out, ",\"programs\":%d,\"attached\":%d,\"adopted\":%d}", xm_n_sock_progs, a->dp.n_attached,
		  a->dp.n_adopted);
	sb_printf(out, ",\"config\":{\"applies_ok\":%llu,\"applies_rejected\":%llu,\"last_apply\":%lld,\"last_error\":",
		  (unsigned long long)a->applies_ok, (unsigned long long)a->applies_failed, (long long)a->last_apply);
	sb_json_str(out, a->last_error);
	sb_puts(out, "},\"services\":[");
	for (i = 0; i < a->served.n_services; i++) {
		const struct xm_lb_service *s = &a->served.services[i];
		char key[80];

		lb_format_key(&s->key, key, sizeof(key));
		sb_puts(out, i ? ",{" : "{");
		sb_puts(out, "\"namespace\":");
		sb_json_str(out, s->ns);
		sb_puts(out, ",\"name\":");
		sb_json_str(out, s->name);
		sb_puts(out, ",\"port_name\":");
		sb_json_str(out, s->port_name);
		sb_puts(out, ",\"vip\":");
		sb_json_str(out, key);
		sb_printf(out,
			  ",\"algorithm\":\"%s\",\"external\":%s,\"outlier_detection\":%s,\"ready\":%zu,\"backends\":[",
			  lb_algo_name(s->algo), s->flags & XM_SVC_F_EXTERNAL ? "true" : "false",
			  s->outlier_on ? "true" : "false", s->n_ready);
		for (j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];
			uint32_t id = lbmap_backend_id(a->lbmap, &b->addr, htons(b->port), b->family);
			char addr[80];

			lb_format_backend(b, addr, sizeof(addr));
			sb_puts(out, j ? ",{\"address\":" : "{\"address\":");
			sb_json_str(out, addr);
			struct xm_endpoint_health h;

			health_of(a, s, id, &h);
			sb_printf(out,
				  ",\"id\":%u,\"ready\":%s,\"local\":%s,\"active\":%lld,\"ejected\":%s,"
				  "\"ejected_for_ms\":%llu,\"times_ejected\":%llu,\"consecutive_failures\":%u,\"pod\":",
				  id, b->ready ? "true" : "false", b->local ? "true" : "false",
				  (long long)lbmap_backend_active(a->lbmap, id), h.ejected ? "true" : "false",
				  (unsigned long long)h.ejected_for_ms, (unsigned long long)h.times_ejected,
				  h.consecutive_local);
			sb_json_str(out, b->pod);
			sb_puts(out, "}");
		}
		sb_puts(out, "]}");
	}
	sb_puts(out, "],\"xdp\":");
	render_xdp(a, true, out);
	sb_puts(out, "}\n");
}

void daemon_render_status(const struct xm_agent *a, bool json, struct strbuf *out)
{
	if (json)
		render_json(a, out);
	else
		render_text(a, out);
}
