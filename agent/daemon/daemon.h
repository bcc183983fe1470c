/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent process: the control event loop, the config pipeline (watch → load → validate → compile into
 * an immutable snapshot → every module applies it), the admin socket, and the metrics listener on a thread
 * of its own. The parts that touch the kernel are modules (daemon/module.h) in an order the daemon owns.
 */
#ifndef XMESH_DAEMON_H
#define XMESH_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/sockmap.h>
#include <xmesh/xdp.h>

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
	int proxy_workers;	/* --proxy-workers: -1 one per CPU (default), 0 no L7 proxy (HTTP balanced at L4) */
	uint16_t proxy_port;	/* --proxy-port */
	const char *access_log; /* --access-log PATH|-; NULL: none */
	int access_log_format;	/* --access-log-format: enum l7_log_format */
	double trace_sampling_percent; /* --trace-sampling: new traces sampled, 0..100 */
	const char *trace_endpoint;    /* --trace-endpoint URL: Zipkin v2 collector; NULL: no export */
	const char *trust_domain;      /* --trust-domain: of every SPIFFE identity (default cluster.local) */
	const char *ca_dir;	       /* --ca-dir: Istio's plug-in CA files; NULL: the root generated in state_dir */
	const char *cluster_id;	       /* --cluster-id: in the tunnel's baggage; NULL: "Kubernetes" */
	uint32_t cert_ttl_s;	       /* --cert-ttl: workload certificates' lifetime (default 24 h) */
	const char *state_dir;	       /* --state-dir: what the agent keeps across restarts (the generated root) */
	const char *root_namespace;    /* --root-namespace: mesh-wide PeerAuthentication; NULL: istio-system */
	bool hbone;		       /* --hbone: serve HBONE on port 15008 for this node's pods (off by default) */
	bool kubernetes;	       /* --kubernetes: objects from the API server, in-cluster credentials */
	const char *kubeconfig;	       /* --kubeconfig PATH: objects from the API server of its current context */
	bool kube_insecure;	       /* --insecure: honour the kubeconfig's insecure-skip-tls-verify */
	uint32_t kube_watch_timeout_s; /* --kube-watch-timeout: a silent watch is reopened after it (0: 120 s) */
	uint32_t kube_backoff_max_ms;  /* --kube-backoff-max: reconnect backoff cap (0: 30 s) */
	uint32_t kube_sync_wait_ms;    /* --kube-sync-wait: how long the start waits for the first lists */
	uint32_t kube_absent_retry_s;  /* --kube-absent-retry: a kind not served is asked for again (0: 60 s) */
	uint32_t neigh_sync_s;	       /* --neigh-sync: remote nodes' next hops for XDP; 0: 30 s */
};

struct xm_agent;
struct xm_loop;
struct xm_snapshot;

/* Runs the agent until SIGTERM/SIGINT. Returns the process exit code. */
int daemon_run(const struct xm_agent_opts *opts);

/* What modules may ask of the daemon (daemon/module.h). */
const struct xm_agent_opts *daemon_opts(const struct xm_agent *a);
struct xm_loop *daemon_loop(const struct xm_agent *a);
/* The snapshot in force, for the control loop (NULL before the first config applied); no reference taken. */
const struct xm_snapshot *daemon_snapshot(const struct xm_agent *a);
/* The snapshot in force with a reference (snapshot_put when done), from any thread; NULL before the first. */
struct xm_snapshot *daemon_snapshot_acquire(struct xm_agent *a);
/*
 * The state of module m once it is initialised (NULL when it is off or not initialised yet); states never
 * change afterwards, so any thread may read them. For a module's own small API (daemon/tunnel.h).
 */
struct xm_module;
void *daemon_module_state(const struct xm_agent *a, const struct xm_module *m);

#endif
