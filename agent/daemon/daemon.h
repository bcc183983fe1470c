/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent process: owns the control event loop and wires the modules together — datapath (BPF),
 * config (watch, load, validate), compile, lbmap (publish), admin (status). Later modules (metrics, L7,
 * mTLS) plug into the same loop.
 */
#ifndef XMESH_DAEMON_H
#define XMESH_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "compile/compile.h"
#include "core/loop.h"
#include "datapath/datapath.h"
#include "daemon/identity.h"
#include "datapath/sockmap.h"
#include "datapath/xdp.h"

#define XM_MAX_CONFIG_PATHS 32

struct xm_agent_opts {
	const char *config_paths[XM_MAX_CONFIG_PATHS];
	size_t n_config_paths;
	const char *cgroup;
	const char *bpffs;
	const char *node_name;
	const char *admin_path;
	const char *metrics_addr;
	uint32_t maglev_size;
	bool detach_on_exit;
	const char *ifaces[XM_XDP_MAX_IFACES]; /* --iface: uplinks for XDP + TC */
	size_t n_ifaces;
	bool no_sockmap; /* --no-sockmap: same-node redirection off (switchable at runtime) */
	uint16_t sockmap_excl_ports[XM_MAX_EXCLUDED_PORTS]; /* --sockmap-exclude-ports */
	size_t n_sockmap_excl_ports;
};

struct xm_ejection_count {
	uint32_t svc_id, backend_id, reason;
	uint64_t count;
};

struct xm_agent {
	struct xm_agent_opts opts;
	struct xm_loop *loop;
	struct xm_datapath dp;
	struct xm_sockmap sockmap;
	struct xm_xdp xdp; /* skel NULL without --iface */
	struct xm_lbmap *lbmap;
	struct xm_watch *watch;
	struct xm_config_cache *config_cache; /* parsed objects per config file, across reloads */
	struct xm_admin *admin;
	struct xm_outlier_events *outlier_events;
	struct xm_ejection_count *ejections; /* per (service port, endpoint, reason), for metrics */
	size_t n_ejections;
	uint64_t ejections_total, returns_total;
	struct xm_lb_state served;	 /* what the maps serve now */
	struct xm_identities identities; /* pod IPs of the served config, for metrics labels */
	struct xm_metrics *metrics;
	bool have_config; /* served came from a config that applied */
	uint64_t applies_ok, applies_failed;
	time_t last_apply; /* wall clock of the last attempt */
	char last_error[1024];
	unsigned neigh_ticks; /* GC ticks since the remote nodes' neighbours were last refreshed */
};

/* Remote nodes' neighbour entries are refreshed every 30 s (60 ticks of 500 ms): routes change. */
#define XM_NEIGH_REFRESH_TICKS 60

/* Runs the agent until SIGTERM/SIGINT. Returns the process exit code. */
int daemon_run(const struct xm_agent_opts *opts);

/* Renders `xmesh status` (text, or JSON when json is true). */
struct strbuf;
/* Renders the agent's metric families (a metrics source). */
void daemon_render_metrics(struct strbuf *out, void *ctx);
void daemon_render_status(const struct xm_agent *a, bool json, struct strbuf *out);

#endif
