// SPDX-License-Identifier: Apache-2.0
/* `xmesh agent`: flags per DESIGN.md §3, then the daemon. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "config/model.h"
#include "core/log.h"
#include "core/mkdir_p.h"
#include "daemon/daemon.h"
#include "daemon/instance_lock.h"
#include "identity/identity.h"
#include "kube/kubeconfig.h"
#include "datapath/pins.h"
#include "datapath/sockmap.h"
#include "l7/access_log.h"
#include "l7/span_export.h"
#include "l7/proxy.h"
#include "lb/maglev.h"

#define XM_MAX_PROXY_WORKERS 256

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xmesh agent --config PATH [--config PATH]... --cgroup DIR [--iface IFNAME]...\n"
		"                   [--bpffs DIR] [--node NAME] [--metrics ADDR:PORT] [--admin SOCKET]\n"
		"                   [--maglev-size PRIME] [--detach-on-exit] [--log-level debug|info|warn|error]\n"
		"                   [--no-sockmap] [--sockmap-exclude-ports PORT[,PORT]...]\n"
		"                   [--proxy-workers N] [--proxy-port PORT] [--access-log PATH|-]\n"
		"                   [--access-log-format json|text] [--trace-sampling PERCENT]\n"
		"                   [--trace-endpoint URL] [--trust-domain NAME] [--ca-dir DIR]\n"
		"                   [--cert-ttl DURATION] [--state-dir DIR] [--root-namespace NS] [--hbone]\n"
		"                   [--cluster-id NAME]\n"
		"                   [--kubernetes | --kubeconfig PATH [--insecure]] [--kube-watch-timeout DURATION]\n"
		"                   [--kube-backoff-max DURATION] [--kube-sync-wait DURATION]\n"
		"                   [--kube-absent-retry DURATION] [--neigh-sync SECONDS]\n"
		"  --trace-sampling  share of new traces sampled, 0..100 with decimals (default 1, Istio's)\n"
		"  --trace-endpoint  Zipkin v2 collector for sampled spans, http://HOST:PORT/api/v2/spans\n"
		"  --trust-domain    of the SPIFFE identities (default cluster.local)\n"
		"  --ca-dir          Istio plug-in CA files (ca-cert.pem, ca-key.pem, root-cert.pem,\n"
		"                    cert-chain.pem); default: a root generated once in --state-dir/ca\n"
		"  --cert-ttl        workload certificate lifetime, 10s to 8760h (default 24h)\n"
		"  --state-dir       kept across restarts (default /var/lib/xmesh)\n"
		"  --root-namespace  namespace of the mesh-wide PeerAuthentication (default istio-system)\n"
		"  --hbone           serve HBONE (mTLS tunnel) on port 15008 for this node's pods: steers\n"
		"                    pod-IP:15008 from the uplinks to the agent (server side only; off by default)\n"
		"  --cluster-id      the cluster's name in the tunnel's baggage header, as Istio's CLUSTER_ID\n"
		"                    (default Kubernetes)\n"
		"  --kubernetes      objects from the API server, in-cluster service account (docs/kubernetes.md)\n"
		"  --kubeconfig      objects from the API server of the file's current context\n"
		"  --insecure        accept the kubeconfig's insecure-skip-tls-verify (refused otherwise)\n"
		"  --kube-watch-timeout  a watch silent this long is reopened (default 2m)\n"
		"  --kube-backoff-max    cap of the reconnect backoff (default 30s)\n"
		"  --kube-sync-wait      how long the start waits for the first lists (default 30s)\n"
		"  --kube-absent-retry   a kind the server does not serve (CRD absent) is asked for again after this\n"
		"                        (default 60s)\n"
		"  --neigh-sync      period of the remote nodes' next-hop sync for XDP, 1..3600 (default 30)\n");
}

/* What would let an agent start and serve nothing: say so before it starts. */
static int check_paths(const struct xm_agent_opts *o)
{
	struct statfs fs;
	struct stat st;
	size_t i;

	for (i = 0; i < o->n_config_paths; i++) {
		if (stat(o->config_paths[i], &st) < 0) {
			fprintf(stderr, "xmesh agent: --config %s: %s\n", o->config_paths[i], strerror(errno));
			return -1;
		}
	}
	if (stat(o->cgroup, &st) < 0) {
		fprintf(stderr, "xmesh agent: --cgroup %s: %s\n", o->cgroup, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || statfs(o->cgroup, &fs) < 0 || fs.f_type != CGROUP2_SUPER_MAGIC) {
		fprintf(stderr, "xmesh agent: --cgroup %s: not a cgroup v2 directory (want one on a cgroup2 mount)\n",
			o->cgroup);
		return -1;
	}
	return 0;
}

/* The API server's credentials, read once before anything starts: a broken kubeconfig is said at once. */
static int check_kube(const struct xm_agent_opts *o)
{
	struct kube_endpoint ep;
	char err[512];
	int rc;

	if (!o->kubernetes && !o->kubeconfig)
		return 0;
	rc = o->kubeconfig ? kubeconfig_load(o->kubeconfig, &ep, err, sizeof(err))
			   : kube_in_cluster(getenv("XMESH_SERVICEACCOUNT_DIR"), &ep, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "xmesh agent: %s%s%s%s\n",
			o->kubeconfig ? "--kubeconfig " : "--kubernetes: ", o->kubeconfig ? o->kubeconfig : "",
			o->kubeconfig ? ": " : "", err);
		return -1;
	}
	if (ep.insecure && !o->kube_insecure) {
		fprintf(
		    stderr,
		    "xmesh agent: --kubeconfig %s: insecure-skip-tls-verify would leave the API server's certificate "
		    "unchecked; refused without --insecure\n",
		    o->kubeconfig);
		kube_endpoint_free(&ep);
		return -1;
	}
	kube_endpoint_free(&ep);
	return 0;
}

int cmd_agent(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "iface", required_argument, NULL, 'i' },
		{ "bpffs", required_argument, NULL, 'b' },
		{ "node", required_argument, NULL, 'n' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "admin", required_argument, NULL, 'a' },
		{ "maglev-size", required_argument, NULL, 'M' },
		{ "detach-on-exit", no_argument, NULL, 'D' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "no-sockmap", no_argument, NULL, 'S' },
		{ "sockmap-exclude-ports", required_argument, NULL, 'P' },
		{ "proxy-workers", required_argument, NULL, 'W' },
		{ "proxy-port", required_argument, NULL, 'p' },
		{ "access-log", required_argument, NULL, 'L' },
		{ "access-log-format", required_argument, NULL, 'F' },
		{ "trace-sampling", required_argument, NULL, 'T' },
		{ "trace-endpoint", required_argument, NULL, 'E' },
		{ "trust-domain", required_argument, NULL, 'd' },
		{ "ca-dir", required_argument, NULL, 'C' },
		{ "cert-ttl", required_argument, NULL, 't' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "root-namespace", required_argument, NULL, 'R' },
		{ "hbone", no_argument, NULL, 'H' },
		{ "cluster-id", required_argument, NULL, 'u' },
		{ "kubernetes", no_argument, NULL, 'K' },
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "kube-watch-timeout", required_argument, NULL, 'w' },
		{ "kube-backoff-max", required_argument, NULL, 'B' },
		{ "kube-sync-wait", required_argument, NULL, 'Y' },
		{ "kube-absent-retry", required_argument, NULL, 'A' },
		{ "neigh-sync", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct xm_agent_opts o = {
		.bpffs = XM_DEFAULT_BPFFS,
		.admin_path = XM_DEFAULT_ADMIN_SOCK,
		.metrics_addr = "127.0.0.1:15090",
		.maglev_size = XM_MAGLEV_DEFAULT_SIZE,
		.proxy_workers = -1,
		.proxy_port = L7_PROXY_DEFAULT_PORT,
		.access_log_format = L7_LOG_JSON,
		.trace_sampling_percent = 1.0,
		.trust_domain = XM_DEFAULT_TRUST_DOMAIN,
		.cert_ttl_s = XM_DEFAULT_CERT_TTL_S,
		.state_dir = XM_DEFAULT_STATE_DIR,
	};
	int c, rc, err, lock_fd;
	pid_t holder;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (o.n_config_paths == XM_MAX_CONFIG_PATHS) {
				fprintf(stderr, "xmesh agent: at most %d --config paths\n", XM_MAX_CONFIG_PATHS);
				return 2;
			}
			o.config_paths[o.n_config_paths++] = optarg;
			break;
		case 'g':
			o.cgroup = optarg;
			break;
		case 'i':
			if (o.n_ifaces == XM_XDP_MAX_IFACES) {
				fprintf(stderr, "xmesh agent: at most %d --iface\n", XM_XDP_MAX_IFACES);
				return 2;
			}
			o.ifaces[o.n_ifaces++] = optarg;
			break;
		case 'b':
			o.bpffs = optarg;
			break;
		case 'n':
			o.node_name = optarg;
			break;
		case 'm':
			o.metrics_addr = optarg;
			break;
		case 'a':
			o.admin_path = optarg;
			break;
		case 'M': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || !maglev_is_prime((uint32_t)v) || v > XM_MAGLEV_MAX_SIZE || v < 3) {
				fprintf(stderr, "xmesh agent: --maglev-size %s: must be a prime between 3 and %u\n",
					optarg, XM_MAGLEV_MAX_SIZE);
				return 2;
			}
			o.maglev_size = (uint32_t)v;
			break;
		}
		case 'D':
			o.detach_on_exit = true;
			break;
		case 'S':
			o.no_sockmap = true;
			break;
		case 'H':
			o.hbone = true;
			break;
		case 'P':
			if (sockmap_parse_ports(optarg, o.sockmap_excl_ports, XM_MAX_EXCLUDED_PORTS,
						&o.n_sockmap_excl_ports)) {
				fprintf(stderr,
					"xmesh agent: --sockmap-exclude-ports %s: want ports 1-65535 separated by "
					"commas, at most %d\n",
					optarg, XM_MAX_EXCLUDED_PORTS);
				return 2;
			}
			break;
		case 'W': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (!*optarg || *end || v < 0 || v > XM_MAX_PROXY_WORKERS) {
				fprintf(stderr,
					"xmesh agent: --proxy-workers %s: want 0 (no L7 proxy: HTTP balanced at L4) to "
					"%d\n",
					optarg, XM_MAX_PROXY_WORKERS);
				return 2;
			}
			o.proxy_workers = (int)v;
			break;
		}
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (!*optarg || *end || v < 1 || v > 65535) {
				fprintf(stderr, "xmesh agent: --proxy-port %s: want a port 1-65535\n", optarg);
				return 2;
			}
			o.proxy_port = (uint16_t)v;
			break;
		}
		case 'L':
			if (!*optarg) {
				fprintf(stderr, "xmesh agent: --access-log: want a file path, or - for stderr\n");
				return 2;
			}
			o.access_log = optarg;
			break;
		case 'T': {
			char *end;
			double v;

			errno = 0;
			v = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(v >= 0.0 && v <= 100.0)) {
				fprintf(stderr, "xmesh agent: --trace-sampling %s: want a percentage 0-100\n", optarg);
				return 2;
			}
			o.trace_sampling_percent = v;
			break;
		}
		case 'E': {
			char host[256], port[16], path[1024];

			if (l7_span_parse_url(optarg, host, sizeof(host), port, sizeof(port), path, sizeof(path))) {
				fprintf(stderr, "xmesh agent: --trace-endpoint %s: want http://HOST[:PORT]/PATH\n",
					optarg);
				return 2;
			}
			o.trace_endpoint = optarg;
			break;
		}
		case 'd':
			if (!spiffe_trust_domain_valid(optarg)) {
				fprintf(stderr,
					"xmesh agent: --trust-domain %s: want 1-255 characters of a-z 0-9 . - _\n",
					optarg);
				return 2;
			}
			o.trust_domain = optarg;
			break;
		case 'C':
			o.ca_dir = optarg;
			break;
		case 'u':
			/* a baggage value as it is sent, unencoded; Istio's cluster IDs are names */
			if (!*optarg || strlen(optarg) > 253 ||
			    strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
				strlen(optarg)) {
				fprintf(stderr,
					"xmesh agent: --cluster-id %s: want 1-253 characters of a-z A-Z 0-9 . - _\n",
					optarg);
				return 2;
			}
			o.cluster_id = optarg;
			break;
		case 's':
			if (!*optarg) {
				fprintf(stderr, "xmesh agent: --state-dir: want a directory\n");
				return 2;
			}
			o.state_dir = optarg;
			break;
		case 't': {
			uint64_t ms;

			if (config_parse_duration_ms(optarg, &ms) || ms < 10000 || ms > 8760ULL * 3600 * 1000) {
				fprintf(stderr, "xmesh agent: --cert-ttl %s: want a duration from 10s to 8760h\n",
					optarg);
				return 2;
			}
			o.cert_ttl_s = (uint32_t)(ms / 1000);
			break;
		}
		case 'K':
			o.kubernetes = true;
			break;
		case 'k':
			o.kubeconfig = optarg;
			break;
		case 'I':
			o.kube_insecure = true;
			break;
		case 'w':
		case 'B':
		case 'Y':
		case 'A': {
			uint64_t ms;
			const char *flag = c == 'w'   ? "--kube-watch-timeout"
					   : c == 'B' ? "--kube-backoff-max"
					   : c == 'A' ? "--kube-absent-retry"
						      : "--kube-sync-wait";

			if (config_parse_duration_ms(optarg, &ms) || ms > 3600 * 1000 ||
			    ((c == 'w' || c == 'A') && ms < 1000) || (c == 'B' && ms < 100)) {
				fprintf(stderr, "xmesh agent: %s %s: want a duration up to 1h (at least %s)\n", flag,
					optarg,
					c == 'w' || c == 'A' ? "1s"
					: c == 'B'	     ? "100ms"
							     : "0s");
				return 2;
			}
			if (c == 'w')
				o.kube_watch_timeout_s = (uint32_t)(ms / 1000);
			else if (c == 'A')
				o.kube_absent_retry_s = (uint32_t)(ms / 1000);
			else if (c == 'B')
				o.kube_backoff_max_ms = (uint32_t)ms;
			else
				o.kube_sync_wait_ms = ms ? (uint32_t)ms : 1;
			break;
		}
		case 'N': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (!optarg[0] || *end || v < 1 || v > 3600) {
				fprintf(stderr, "xmesh agent: --neigh-sync %s: want seconds, 1 to 3600\n", optarg);
				return 2;
			}
			o.neigh_sync_s = (uint32_t)v;
			break;
		}
		case 'R':
			if (!optarg[0] || strlen(optarg) > 63) {
				fprintf(stderr, "xmesh agent: --root-namespace %s: want a namespace name\n", optarg);
				return 2;
			}
			o.root_namespace = optarg;
			break;
		case 'F':
			if (!strcmp(optarg, "json")) {
				o.access_log_format = L7_LOG_JSON;
			} else if (!strcmp(optarg, "text")) {
				o.access_log_format = L7_LOG_TEXT;
			} else {
				fprintf(stderr, "xmesh agent: --access-log-format %s: json or text\n", optarg);
				return 2;
			}
			break;
		case 'l':
			if (!strcmp(optarg, "debug"))
				xm_log_set_level(XM_LOG_DEBUG);
			else if (!strcmp(optarg, "info"))
				xm_log_set_level(XM_LOG_INFO);
			else if (!strcmp(optarg, "warn"))
				xm_log_set_level(XM_LOG_WARN);
			else if (!strcmp(optarg, "error"))
				xm_log_set_level(XM_LOG_ERROR);
			else {
				fprintf(stderr, "xmesh agent: --log-level %s: debug, info, warn or error\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "xmesh agent: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (o.kubernetes && o.kubeconfig) {
		fprintf(stderr, "xmesh agent: --kubernetes and --kubeconfig exclude each other\n");
		return 2;
	}
	if ((!o.n_config_paths && !o.kubernetes && !o.kubeconfig) || !o.cgroup) {
		fprintf(stderr, "xmesh agent: --cgroup and a source of config (--config, --kubernetes or --kubeconfig) "
				"are required\n");
		usage(stderr);
		return 2;
	}
	if (check_paths(&o) || check_kube(&o))
		return 1;
	/* Before anything is loaded, bound or pinned: a second agent must not touch the first one's. */
	if (pins_prepare(o.bpffs))
		return 1;
	lock_fd = instance_lock_take(o.bpffs, &holder);
	if (lock_fd < 0) {
		if (lock_fd == -EWOULDBLOCK && holder)
			fprintf(stderr, "xmesh agent: another agent (pid %d) runs on %s; not starting\n", (int)holder,
				o.bpffs);
		else if (lock_fd == -EWOULDBLOCK)
			fprintf(stderr, "xmesh agent: another agent runs on %s; not starting\n", o.bpffs);
		else
			fprintf(stderr, "xmesh agent: lock %s: %s\n", o.bpffs, strerror(-lock_fd));
		return 1;
	}
	err = xm_mkdir_parent(o.admin_path, 0700);
	if (err) {
		fprintf(stderr, "xmesh agent: --admin %s: create its directory: %s\n", o.admin_path, strerror(-err));
		close(lock_fd);
		return 1;
	}
	rc = daemon_run(&o);
	close(lock_fd);
	return rc;
}
