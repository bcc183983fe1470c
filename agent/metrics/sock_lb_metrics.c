// SPDX-License-Identifier: Apache-2.0
#include "metrics/sock_lb_metrics.h"

#include <stdbool.h>
#include <string.h>

#include <xmesh/lb.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "core/percpu.h"
#include "metrics/registry.h"

/* A new counter in enum xm_sock_stat needs a family (or a label value) here. */
XM_STATIC_ASSERT(XM_STAT_SOCK_MAX == 8, "xm_sock_stat changed: update sock_lb_metrics_collect");

int sock_lb_metrics_collect(int stats_fd, struct xm_scrape *sc)
{
	static const char *const proto[] = { "protocol" }, *const reason[] = { "reason" };
	static const char *const tcp[] = { "tcp" }, *const udp[] = { "udp" };
	static const char *const path[] = { "path" }, *const proxy[] = { "proxy" }, *const l4[] = { "l4_no_proxy" };
	static const char *const no_backend[] = { "no_backend" }, *const lookup_miss[] = { "lookup_miss" };
	static bool warned;
	struct xm_scrape_family *f;
	uint64_t v[XM_STAT_SOCK_MAX];
	int err;

	/* Read everything first: a scrape gets all three families or none of them. */
	err = percpu_sum_u64(stats_fd, XM_STAT_SOCK_MAX, v);
	if (err) {
		if (!warned)
			log_warn("metrics: xm_sock_stats: %s; xmesh_sock_lb_* left out of scrapes", strerror(-err));
		warned = true;
		return err;
	}
	f = scrape_family(
	    sc, "xmesh_sock_lb_connects_total", "counter",
	    "Sockets whose service VIP the socket LB rewrote to a backend: TCP connects, UDP connects and "
	    "sendmsgs.");
	scrape_u64(f, proto, tcp, 1, v[XM_STAT_SOCK_LB_TCP]);
	scrape_u64(f, proto, udp, 1, v[XM_STAT_SOCK_LB_UDP]);
	f = scrape_family(
	    sc, "xmesh_sock_lb_refused_total", "counter",
	    "Connects to a service VIP refused with ECONNREFUSED: no ready backend, or a backend lookup that "
	    "missed while a config was being applied.");
	scrape_u64(f, reason, no_backend, 1, v[XM_STAT_SOCK_NO_BACKEND]);
	scrape_u64(f, reason, lookup_miss, 1, v[XM_STAT_SOCK_LOOKUP_MISS]);
	f = scrape_family(
	    sc, "xmesh_sock_lb_revnat_total", "counter",
	    "getpeername and recvmsg calls answered with the service VIP instead of the backend address.");
	scrape_u64(f, NULL, NULL, 0, v[XM_STAT_SOCK_REVNAT]);
	f = scrape_family(sc, "xmesh_sock_lb_l7_connects_total", "counter",
			  "TCP connects to an HTTP service port: sent to the agent's L7 proxy, or balanced at L4 "
			  "because no proxy is configured for the address family.");
	scrape_u64(f, path, proxy, 1, v[XM_STAT_SOCK_L7_CAPTURE]);
	scrape_u64(f, path, l4, 1, v[XM_STAT_SOCK_L7_NO_PROXY]);
	f = scrape_family(sc, "xmesh_sock_lb_hbone_connects_total", "counter",
			  "TCP connects to a pod of another node (dialed, or the backend chosen for a service VIP) "
			  "sent to the agent's HBONE tunnel listener.");
	scrape_u64(f, NULL, NULL, 0, v[XM_STAT_SOCK_HBONE_CAPTURE]);
	return 0;
}
