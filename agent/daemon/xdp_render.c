// SPDX-License-Identifier: Apache-2.0
#include "daemon/xdp_render.h"

#include <stdio.h>

#include "core/strbuf.h"
#include "metrics/registry.h"

static void vip_json(const struct xm_xdp_vip_stats *v, struct strbuf *out)
{
	const struct xm_xdp_vip_counters *c = &v->counters;
	char key[80];

	lb_format_key(&v->svc->key, key, sizeof(key));
	sb_puts(out, "{\"vip\":");
	sb_json_str(out, key);
	sb_printf(out, ",\"local\":%llu,\"remote\":%llu,\"drop\":%llu,\"pass\":%llu,\"new_flows\":%llu,\"bytes\":%llu}",
		  (unsigned long long)c->packets[XM_VIP_LOCAL], (unsigned long long)c->packets[XM_VIP_REMOTE],
		  (unsigned long long)c->packets[XM_VIP_DROP], (unsigned long long)c->packets[XM_VIP_PASS],
		  (unsigned long long)c->packets[XM_VIP_NEW_FLOW], (unsigned long long)c->bytes);
}

static void status_json(const struct xm_xdp_stats *s, struct strbuf *out)
{
	size_t i;

	sb_puts(out, "{\"uplinks\":[");
	for (i = 0; i < s->n_uplinks; i++) {
		sb_puts(out, i ? "," : "");
		sb_json_str(out, s->uplinks[i].name);
	}
	sb_printf(out,
		  "],\"conntrack\":{\"entries\":%llu,\"capacity\":%u},\"tcp_counters\":{\"placed\":%zu,"
		  "\"unplaced\":%zu,\"positions\":%u},\"nat_draining\":%zu,\"verdicts\":{",
		  (unsigned long long)s->ct_entries, s->ct_capacity, s->tcp_pairs_placed, s->tcp_pairs_unplaced,
		  s->tcp_positions, s->nat_draining);
	for (i = 0; i < XM_XDP_STAT_MAX; i++)
		sb_printf(out, "%s\"%s\":%llu", i ? "," : "", xdp_stat_name((unsigned int)i),
			  (unsigned long long)s->verdicts[i]);
	sb_puts(out, "},\"vips\":[");
	for (i = 0; i < s->n_vips; i++) {
		sb_puts(out, i ? "," : "");
		vip_json(&s->vips[i], out);
	}
	sb_puts(out, "]}");
}

static void status_text(const struct xm_xdp_stats *s, struct strbuf *out)
{
	size_t i;

	sb_puts(out, "xdp: uplinks");
	for (i = 0; i < s->n_uplinks; i++)
		sb_printf(out, " %s%s", s->uplinks[i].name, s->uplinks[i].adopted ? " (adopted)" : "");
	sb_printf(out, "\nxdp: conntrack %llu/%u entries (%.1f%%)\n", (unsigned long long)s->ct_entries, s->ct_capacity,
		  s->ct_capacity ? 100.0 * (double)s->ct_entries / s->ct_capacity : 0.0);
	sb_printf(out, "xdp: istio tcp counters for %zu (service port, local backend) pairs in %u positions",
		  s->tcp_pairs_placed, s->tcp_positions);
	if (s->tcp_pairs_unplaced)
		sb_printf(out, "; %zu pairs found no room and are not counted", s->tcp_pairs_unplaced);
	if (s->nat_draining)
		sb_printf(out,
			  "\nxdp: reverse NAT kept for %zu (backend, VIP port) pairs no longer selected, while "
			  "their flows last",
			  s->nat_draining);
	sb_puts(out, "\nxdp: verdicts");
	for (i = 0; i < XM_XDP_STAT_MAX; i++)
		if (s->verdicts[i])
			sb_printf(out, " %s=%llu", xdp_stat_name((unsigned int)i), (unsigned long long)s->verdicts[i]);
	sb_puts(out, "\n");
	for (i = 0; i < s->n_vips; i++) {
		const struct xm_xdp_vip_counters *c = &s->vips[i].counters;
		char key[80];

		lb_format_key(&s->vips[i].svc->key, key, sizeof(key));
		sb_printf(out, "xdp: vip %s local=%llu remote=%llu drop=%llu pass=%llu new_flows=%llu bytes=%llu\n",
			  key, (unsigned long long)c->packets[XM_VIP_LOCAL],
			  (unsigned long long)c->packets[XM_VIP_REMOTE], (unsigned long long)c->packets[XM_VIP_DROP],
			  (unsigned long long)c->packets[XM_VIP_PASS], (unsigned long long)c->packets[XM_VIP_NEW_FLOW],
			  (unsigned long long)c->bytes);
	}
}

void xdp_render_status(const struct xm_xdp_stats *s, bool json, struct strbuf *out)
{
	if (!s) {
		if (json)
			sb_puts(out, "{\"uplinks\":[]}");
		return;
	}
	if (json)
		status_json(s, out);
	else
		status_text(s, out);
}

void xdp_render_metrics(const struct xm_xdp_stats *s, struct xm_scrape *sc)
{
	struct xm_scrape_family *f;
	static const char *const action[1] = { "action" }, *const state[1] = { "state" };
	static const char *const vip_labels[3] = { "destination_service", "vip", "verdict" };
	static const char *const verdicts[XM_VIP_VERDICT_MAX] = { "local", "remote", "drop", "pass", "new_flow" };
	const char *placed[1] = { "placed" }, *unplaced[1] = { "unplaced" };
	size_t i, v;

	if (!s)
		return;
	f = scrape_family(sc, "xmesh_xdp_packets_total", "counter",
			  "Packets the XDP and TC programs handled, by action.");
	for (i = 0; i < XM_XDP_STAT_MAX; i++) {
		const char *value[1] = { xdp_stat_name((unsigned int)i) };

		scrape_u64(f, action, value, 1, s->verdicts[i]);
	}
	f = scrape_family(sc, "xmesh_conntrack_entries", "gauge", "Flows in the XDP connection table.");
	scrape_u64(f, NULL, NULL, 0, s->ct_entries);
	f = scrape_family(sc, "xmesh_conntrack_capacity", "gauge", "Capacity of the XDP connection table.");
	scrape_u64(f, NULL, NULL, 0, s->ct_capacity);
	f = scrape_family(sc, "xmesh_xdp_istio_tcp_pairs", "gauge",
			  "(service port, local backend) pairs of external services whose Istio TCP metrics XDP counts "
			  "(placed), and those that found no room (unplaced: not counted).");
	scrape_u64(f, state, placed, 1, s->tcp_pairs_placed);
	scrape_u64(f, state, unplaced, 1, s->tcp_pairs_unplaced);
	f = scrape_family(sc, "xmesh_xdp_vip_packets_total", "counter", "Packets to an external VIP, by verdict.");
	for (i = 0; i < s->n_vips; i++) {
		const struct xm_lb_service *svc = s->vips[i].svc;
		char name[400], key[80];

		snprintf(name, sizeof(name), "%s.%s.svc.cluster.local", svc->name, svc->ns);
		lb_format_key(&svc->key, key, sizeof(key));
		for (v = 0; v < XM_VIP_VERDICT_MAX; v++) {
			const char *values[3] = { name, key, verdicts[v] };

			scrape_u64(f, vip_labels, values, 3, s->vips[i].counters.packets[v]);
		}
	}
}
