/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Same-node socket acceleration as the agent sees it: loads bpf/sockmap.bpf.c (maps pinned by name next to
 * the socket LB's), attaches sk_msg to the sockhash and sockops to the cgroup through pinned links (or
 * adopts the links a previous agent left), and drives the runtime switch and the local-peer address map.
 */
#ifndef XMESH_DATAPATH_SOCKMAP_H
#define XMESH_DATAPATH_SOCKMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/sockmap.h>

struct mesh_ops;
struct sockmap;
struct xm_local_addrs;

#define XM_SOCKMAP_OPS_LINK "xm_sockmap_ops"
#define XM_SOCKMAP_MSG_LINK "xm_sockmap_msg"
/* sockops on the L7 proxy's own cgroup (its listener's accepted sockets, datapath/l7_capture.h) */
#define XM_SOCKMAP_L7_PROXY_OPS_LINK "xm_sockmap_ops_l7proxy"

struct xm_sockmap {
	struct sockmap *skel;
	/*
	 * The mesh cgroup's one sockops program (bpf/mesh_ops.bpf.c), in the socket LB's pinned link; NULL where
	 * there is no such link (our own xm_sockmap_ops then runs next to the LB's).
	 */
	struct mesh_ops *mesh;
	char bpffs[4096];
	char cgroup[4096];
	int cgroup_fd;
	bool msg_link; /* sk_msg attached through a pinned bpf_link (kernel >= 6.10), else bpf_prog_attach */
	int n_attached;
	int n_adopted;
	size_t n_local_ips; /* addresses published by the last sync */
};

/*
 * Loads, attaches or adopts, sets the switch to enabled and the excluded ports (before sockops attaches).
 * sockops: where the socket LB's link is pinned under bpffs for this cgroup, one program doing both parts
 * replaces the LB's in that link (and an earlier agent's separate link goes); else xm_sockmap_ops attaches
 * through a link of its own. Returns 0 or a negative errno.
 */
int sockmap_open(struct xm_sockmap *sm, const char *bpffs, const char *cgroup, bool enabled,
		 const uint16_t *excluded_ports, size_t n_excluded);
/* Closes fds; programs, links and maps stay through their pins. */
void sockmap_close(struct xm_sockmap *sm);

/*
 * Attaches sockops to one more cgroup (the L7 proxy's: l7_capture_socket_in_cgroup makes its listener there)
 * through a link pinned as link_name, or adopts the one a previous agent left, so sockets of that cgroup enter
 * the sockhash like the mesh's. Never the root cgroup. 0 or a negative errno; -ENODEV when not loaded.
 */
int sockmap_attach_ops_cgroup(struct xm_sockmap *sm, const char *cgroup, const char *link_name);

/* The runtime switch in xm_sockmap_config (see include/xmesh/sockmap.h). */
int sockmap_set_enabled(const struct xm_sockmap *sm, bool on);
/*
 * --sockmap-exclude-ports: "5432,3306" into ports (1..65535, at most cap). -EINVAL on anything else
 * (empty, a sign, a space, a trailing comma), -E2BIG over cap.
 */
int sockmap_parse_ports(const char *list, uint16_t *ports, size_t cap, size_t *n);
/* Makes xm_sockmap_excl_ports (map_fd) hold exactly these ports: new ones first, then stale ones go. */
int sockmap_sync_excluded_ports(int map_fd, const uint16_t *ports, size_t n);

/* 1 on, 0 off, or a negative errno. */
int sockmap_get_enabled(const struct xm_sockmap *sm);

/*
 * Makes xm_local_ips hold exactly the addresses that live on this node (compile/local_addrs.h). New ones are
 * added before stale ones are removed. was: what the last successful sync published, so only the
 * difference is written; NULL (after a start, or a failed sync) walks and rewrites the whole map.
 */
int sockmap_sync_local_ips(struct xm_sockmap *sm, const struct xm_local_addrs *was, const struct xm_local_addrs *want);

/*
 * Attaches an sk_msg program to a sockhash: a bpf_link when the kernel has them (6.10+, *link_fd >= 0,
 * to be pinned), else bpf_prog_attach (*link_fd = -1; the attachment lives as long as the map).
 */
int sockmap_attach_msg(int prog_fd, int map_fd, int *link_fd);

/*
 * Pages by which TCP's global memory count may lag the real usage: net.core.mem_pcpu_rsv (what a CPU charges
 * before the count sees it) times the possible CPUs. sk_msg's margin below tcp_mem[1] (xm_tcp_mem_lag).
 */
long sockmap_tcp_mem_lag(void);

/* Sums the per-CPU counters of xm_sockmap_stats (fd) into out[XM_SMSTAT_MAX]. */
int sockmap_read_stats(int stats_fd, uint64_t out[XM_SMSTAT_MAX]);
/* Counter names, for status and `xmesh maps`. */
const char *sockmap_stat_name(unsigned int idx);

/* Fds a socket inserted from userspace needs (datapath/l7_capture.h): the sockhash and the per-socket storage. */
struct xm_sockmap_fds {
	int pairs;	/* xm_sock_pairs */
	int sk_storage; /* xm_sockmap_sk */
};
/* -ENODEV when sockmap is not loaded. */
int sockmap_fds(const struct xm_sockmap *sm, struct xm_sockmap_fds *out);

/* The counters of a loaded sockmap, summed over CPUs. -ENODEV when it is not loaded. */
int sockmap_stats(const struct xm_sockmap *sm, uint64_t out[XM_SMSTAT_MAX]);

#endif
