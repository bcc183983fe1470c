// SPDX-License-Identifier: Apache-2.0
/* `xmesh status`: the agent's own lines, then each module's part, all from the snapshot in force. */
#include <stdio.h>
#include <time.h>

#include "core/strbuf.h"
#include "daemon/agent.h"
#include "kube/client.h"

/* What is left of the start's wait for the first lists. */
static uint64_t wait_left_ms(const struct xm_agent *a)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	return a->kube_sync_until > now ? a->kube_sync_until - now : 0;
}

static void render_text(struct xm_agent *a, struct strbuf *out)
{
	char when[32] = "never";

	if (a->last_apply)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&a->last_apply));
	if (a->kube_syncing)
		sb_printf(out,
			  "agent: starting: waiting for the first lists of the Kubernetes API (at most %.1f s more; "
			  "--kube-sync-wait), node %s, cgroup %s, bpffs %s\n",
			  wait_left_ms(a) / 1000.0, a->opts.node_name ? a->opts.node_name : "-", a->opts.cgroup,
			  a->opts.bpffs);
	else
		sb_printf(out, "agent: ready, node %s, cgroup %s, bpffs %s\n",
			  a->opts.node_name ? a->opts.node_name : "-", a->opts.cgroup, a->opts.bpffs);
	sb_printf(out, "config: last apply %s, generation %llu, %llu ok, %llu rejected%s%s\n", when,
		  (unsigned long long)(a->snap ? a->snap->generation : 0), (unsigned long long)a->applies_ok,
		  (unsigned long long)a->applies_failed, a->last_error[0] ? "; last error: " : "", a->last_error);
}

static void render_json(struct xm_agent *a, struct strbuf *out)
{
	sb_printf(out, "{\"agent\":{\"state\":\"%s\",\"node\":", a->kube_syncing ? "syncing" : "ready");
	sb_json_str(out, a->opts.node_name ? a->opts.node_name : "");
	sb_puts(out, ",\"cgroup\":");
	sb_json_str(out, a->opts.cgroup);
	sb_puts(out, ",\"bpffs\":");
	sb_json_str(out, a->opts.bpffs);
	sb_printf(out,
		  "},\"config\":{\"generation\":%llu,\"applies_ok\":%llu,\"applies_rejected\":%llu,\"last_apply\":%lld,"
		  "\"last_error\":",
		  (unsigned long long)(a->snap ? a->snap->generation : 0), (unsigned long long)a->applies_ok,
		  (unsigned long long)a->applies_failed, (long long)a->last_apply);
	sb_json_str(out, a->last_error);
	sb_puts(out, "}");
}

void daemon_render_status(struct xm_agent *a, bool json, struct strbuf *out)
{
	if (json)
		render_json(a, out);
	else
		render_text(a, out);
	if (a->kube)
		kube_client_render_status(a->kube, json, out);
	for (size_t i = 0; i < a->n_inited; i++)
		if (a->states[i] && a->modules[i]->status)
			a->modules[i]->status(a->states[i], a->snap, json, out);
	if (json)
		sb_puts(out, "}\n");
}
