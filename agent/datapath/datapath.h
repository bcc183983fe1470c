/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel side as the agent sees it: loads the BPF objects (maps pinned under bpffs and adopted when
 * already there), and attaches each program through a pinned bpf_link, or swaps the program inside a
 * link that a previous agent left, so connections never see a gap.
 */
#ifndef XMESH_DATAPATH_H
#define XMESH_DATAPATH_H

#include <stdbool.h>

#include "datapath/map_fds.h"

struct sock_lb;

/*
 * The socket LB's sockops link (links/NAME under bpffs). sockmap (datapath/sockmap.h) swaps the mesh cgroup's
 * one program into it (bpf/mesh_ops.bpf.c), which the LB then leaves in place when it adopts the link.
 */
#define XM_SOCK_LB_OPS_LINK "xm_sockops"
#define XM_MESH_OPS_PROG    "xm_mesh_ops"

struct xm_datapath {
	struct sock_lb *sock;
	char bpffs[4096];
	char cgroup[4096];
	int cgroup_fd;
	int n_attached; /* links made new */
	int n_adopted;	/* links a previous agent left, now running our programs */
};

int datapath_open(struct xm_datapath *dp, const char *bpffs, const char *cgroup);
void datapath_map_fds(const struct xm_datapath *dp, struct xm_map_fds *fds);
/* Closes fds; programs and maps stay in the kernel through their pins. */
void datapath_close(struct xm_datapath *dp);

/* Removes every link and map pinned under bpffs (the programs detach with their links). */
int datapath_remove(const char *bpffs);

/* Names of the programs that are attached through links, for status and cleanup. */
extern const char *const xm_sock_prog_names[];
extern const int xm_n_sock_progs;

#endif
