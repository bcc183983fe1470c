// SPDX-License-Identifier: Apache-2.0
/* Same-node socket acceleration as a module: load/adopt, the local-address set per snapshot, the switch. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "compile/snapshot.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/module.h"
#include "datapath/l7_proxy_cgroup.h"
#include "datapath/sockmap.h"

struct sockmap_mod {
	struct xm_sockmap sm;
	struct xm_snapshot *published; /* whose local addresses the map holds; NULL: unknown, sync it whole */
};

/*
 * The L7 proxy's cgroup (its listeners are made there, daemon/mod_l7.c) gets sockops too, so the pod <-> proxy
 * hop joins the sockhash at connection setup. Without it the proxy makes its listeners where it runs.
 */
static void attach_proxy_cgroup(struct xm_sockmap *sm, const char *served)
{
	char path[PATH_MAX] = "";
	int err = l7_proxy_cgroup_path(served, path, sizeof(path));

	if (!err)
		err = l7_proxy_cgroup_create(path);
	if (!err && !l7_proxy_cgroup_inherits(served, path))
		err = sockmap_attach_ops_cgroup(sm, path, XM_SOCKMAP_L7_PROXY_OPS_LINK);
	if (err)
		log_warn("sockmap: L7 proxy cgroup %s: %s; the pod <-> proxy hop takes the TCP/IP stack", path,
			 strerror(-err));
}

static int sockmap_mod_init(struct xm_agent *a, void **state)
{
	const struct xm_agent_opts *o = daemon_opts(a);
	struct sockmap_mod *m = calloc(1, sizeof(*m));

	*state = NULL;
	if (!m)
		return -ENOMEM;
	m->sm.cgroup_fd = -1;
	/* --no-sockmap still loads it: programs a previous agent left must see the switch go off. */
	if (sockmap_open(&m->sm, o->bpffs, o->cgroup, !o->no_sockmap, o->sockmap_excl_ports, o->n_sockmap_excl_ports)) {
		sockmap_close(&m->sm);
		free(m);
		if (!o->no_sockmap)
			return -EIO;
		log_warn("sockmap: not loaded; same-node redirection stays off");
		return 0;
	}
	if (o->proxy_workers != 0)
		attach_proxy_cgroup(&m->sm, o->cgroup);
	*state = m;
	return 0;
}

static int sockmap_mod_apply(void *state, struct xm_snapshot *next)
{
	struct sockmap_mod *m = state;
	int err = sockmap_sync_local_ips(&m->sm, m->published ? &m->published->local : NULL, &next->local);

	/* After a failure the map's content is unknown: the next apply syncs it whole. */
	snapshot_put(m->published);
	m->published = err ? NULL : snapshot_get(next);
	if (err)
		log_warn("sockmap: local addresses not fully published; affected peers use plain TCP");
	return err;
}

static void sockmap_mod_status(void *state, const struct xm_snapshot *cur, bool json, struct strbuf *out)
{
	const struct xm_sockmap *sm = &((const struct sockmap_mod *)state)->sm;
	int on = sockmap_get_enabled(sm);
	const char *sw = on < 0 ? "unknown" : on ? "on" : "off";

	(void)cur;
	if (json)
		sb_printf(
		    out, ",\"sockmap\":{\"redirection\":\"%s\",\"attached\":%d,\"adopted\":%d,\"local_addresses\":%zu}",
		    sw, sm->n_attached, sm->n_adopted, sm->n_local_ips);
	else
		sb_printf(
		    out,
		    "programs: sockmap loaded, redirection %s (%d attached now, %d adopted), %zu local addresses\n", sw,
		    sm->n_attached, sm->n_adopted, sm->n_local_ips);
}

/* "sockmap on|off|status" on the admin socket. */
static bool sockmap_mod_admin(void *state, const char *command, struct strbuf *out)
{
	struct xm_sockmap *sm = &((struct sockmap_mod *)state)->sm;
	const char *args;
	uint64_t st[XM_SMSTAT_MAX];
	int on;

	if (strncmp(command, "sockmap", 7) || (command[7] && command[7] != ' '))
		return false;
	args = command[7] ? command + 8 : "";
	if (!strcmp(args, "on") || !strcmp(args, "off")) {
		bool want = !strcmp(args, "on");

		if (sockmap_set_enabled(sm, want)) {
			sb_printf(out, "error: could not switch sockmap %s\n", args);
			return true;
		}
		log_info("sockmap: redirection switched %s (admin)", args);
		sb_printf(out, "ok: sockmap %s\n", args);
		return true;
	}
	if (*args && strcmp(args, "status")) {
		sb_printf(out, "error: sockmap on|off|status\n");
		return true;
	}
	on = sockmap_get_enabled(sm);
	sb_printf(out, "sockmap: %s, %zu local addresses, sk_msg via %s\n",
		  on < 0 ? "unknown"
		  : on	 ? "on"
			 : "off",
		  sm->n_local_ips, sm->msg_link ? "link" : "map attach");
	if (sockmap_stats(sm, st) == 0)
		for (unsigned int i = 0; i < XM_SMSTAT_MAX; i++)
			sb_printf(out, "%s %llu\n", sockmap_stat_name(i), (unsigned long long)st[i]);
	return true;
}

static void sockmap_mod_close(void *state)
{
	struct sockmap_mod *m = state;

	snapshot_put(m->published);
	sockmap_close(&m->sm);
	free(m);
}

const struct xm_module xm_module_sockmap = {
	.name = "sockmap",
	.init = sockmap_mod_init,
	.apply = sockmap_mod_apply,
	.status = sockmap_mod_status,
	.admin = sockmap_mod_admin,
	.close = sockmap_mod_close,
};
