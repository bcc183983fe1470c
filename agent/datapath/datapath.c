// SPDX-License-Identifier: Apache-2.0
#include "datapath/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xmesh/outlier.h>

#include "core/log.h"
#include "datapath/bpf_loader.h"
#include "datapath/pins.h"
#include "skel/sock_lb.skel.h"

XM_BPF_SKEL_OPS(sock_lb);

const char *const xm_sock_prog_names[] = {
	"xm_connect4", "xm_connect6",	  "xm_sendmsg4",     "xm_sendmsg6", "xm_recvmsg4",
	"xm_recvmsg6", "xm_getpeername4", "xm_getpeername6", "xm_sockops",
};
const int xm_n_sock_progs = sizeof(xm_sock_prog_names) / sizeof(xm_sock_prog_names[0]);

/* A pinned link may only be adopted if it is attached to the cgroup we serve. */
static int link_check_cgroup(int link_fd, const char *cgroup, const char *name)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	struct stat st;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len) < 0)
		return -errno;
	if (stat(cgroup, &st) < 0)
		return -errno;
	if (info.type != BPF_LINK_TYPE_CGROUP || info.cgroup.cgroup_id != (__u64)st.st_ino) {
		log_error("pinned link %s is attached elsewhere (cgroup id %llu, %s is %llu); run xmesh cleanup", name,
			  (unsigned long long)info.cgroup.cgroup_id, cgroup, (unsigned long long)st.st_ino);
		return -EEXIST;
	}
	return 0;
}

/*
 * Whether the link runs the mesh cgroup's one sockops program (the socket LB's part and sockmap's): sockmap,
 * loaded next, swaps in its own; putting the LB's alone back for that moment would leave new connections out
 * of the sockhash.
 */
static bool link_runs_mesh_ops(int link_fd)
{
	struct bpf_link_info info;
	struct bpf_prog_info prog;
	__u32 len = sizeof(info);
	int fd;
	bool yes;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len) < 0)
		return false;
	fd = bpf_prog_get_fd_by_id(info.prog_id);
	if (fd < 0)
		return false;
	memset(&prog, 0, sizeof(prog));
	len = sizeof(prog);
	yes = bpf_obj_get_info_by_fd(fd, &prog, &len) == 0 && !strcmp(prog.name, XM_MESH_OPS_PROG);
	close(fd);
	return yes;
}

static int attach_or_adopt(struct xm_datapath *dp, struct bpf_program *prog)
{
	const char *name = bpf_program__name(prog);
	struct bpf_link *link;
	char path[4096];
	int fd, err;

	err = pins_link_path(path, sizeof(path), dp->bpffs, name);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		err = link_check_cgroup(fd, dp->cgroup, name);
		/* Swapping the program inside the live link: no instant without a hook. */
		if (!err && !strcmp(name, XM_SOCK_LB_OPS_LINK) && link_runs_mesh_ops(fd))
			log_info("%s: the mesh cgroup's one sockops program stays until sockmap swaps in its own",
				 path);
		else if (!err && bpf_link_update(fd, bpf_program__fd(prog), NULL) < 0) {
			err = -errno;
			log_error("update pinned link %s: %s", path, strerror(errno));
		}
		close(fd);
		if (!err)
			dp->n_adopted++;
		return err;
	}
	link = bpf_program__attach_cgroup(prog, dp->cgroup_fd);
	if (!link) {
		err = -errno;
		log_error("attach %s to cgroup %s: %s", name, dp->cgroup, strerror(errno));
		return err;
	}
	err = pins_keep_link(link, path);
	if (!err)
		dp->n_attached++;
	return err;
}

/*
 * Pins this agent's xm_outlier_report (replacing an earlier agent's), so that other modules (the L7 proxy's
 * upstream connects) report into the same state without reaching into the skeleton.
 */
static int pin_report_prog(struct xm_datapath *dp)
{
	char path[4096];
	int err;

	if (snprintf(path, sizeof(path), "%s/%s", dp->bpffs, XM_OUTLIER_REPORT_PIN) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (unlink(path) < 0 && errno != ENOENT) {
		log_error("unpin %s: %s", path, strerror(errno));
		return -errno;
	}
	err = bpf_program__pin(dp->sock->progs.xm_outlier_report, path);
	if (err)
		log_error("pin %s: %s", path, strerror(-err));
	return err;
}

int datapath_open(struct xm_datapath *dp, const char *bpffs, const char *cgroup)
{
	struct bpf_program *prog;
	char hint[12600];
	int err;

	memset(dp, 0, sizeof(*dp));
	dp->cgroup_fd = -1;
	snprintf(dp->bpffs, sizeof(dp->bpffs), "%s", bpffs);
	snprintf(dp->cgroup, sizeof(dp->cgroup), "%s", cgroup);
	dp->cgroup_fd = bpf_loader_open_cgroup(cgroup);
	if (dp->cgroup_fd < 0)
		return dp->cgroup_fd;
	snprintf(hint, sizeof(hint),
		 "maps pinned under %s by an incompatible version? xmesh cleanup --bpffs %s --cgroup %s", bpffs, bpffs,
		 cgroup);
	dp->sock = bpf_loader_open(&sock_lb_skel_ops, dp->bpffs, hint, &err);
	if (!dp->sock)
		goto fail;
	bpf_object__for_each_program (prog, dp->sock->obj) {
		/* The outlier-report program is run on demand by the agent, never attached. */
		if (bpf_program__type(prog) == BPF_PROG_TYPE_XDP)
			continue;
		err = attach_or_adopt(dp, prog);
		if (err)
			goto fail;
	}
	err = pin_report_prog(dp);
	if (err)
		goto fail;
	return 0;
fail:
	datapath_close(dp);
	return err;
}

void datapath_map_fds(const struct xm_datapath *dp, struct xm_map_fds *fds)
{
	fds->services = bpf_map__fd(dp->sock->maps.xm_services);
	fds->slots = bpf_map__fd(dp->sock->maps.xm_slots);
	fds->backends = bpf_map__fd(dp->sock->maps.xm_backends);
	fds->backend_conns = bpf_map__fd(dp->sock->maps.xm_backend_conns);
	fds->maglev = bpf_map__fd(dp->sock->maps.xm_maglev);
	fds->rr_state = bpf_map__fd(dp->sock->maps.xm_rr_state);
	fds->sock_stats = bpf_map__fd(dp->sock->maps.xm_sock_stats);
	fds->outlier_cfg = bpf_map__fd(dp->sock->maps.xm_outlier_cfg);
	fds->outlier = bpf_map__fd(dp->sock->maps.xm_outlier);
	fds->outlier_svc = bpf_map__fd(dp->sock->maps.xm_outlier_svc);
	fds->outlier_ids = bpf_map__fd(dp->sock->maps.xm_outlier_ids);
	fds->events = bpf_map__fd(dp->sock->maps.xm_events);
	fds->conn_metrics = bpf_map__fd(dp->sock->maps.xm_conn_metrics);
	fds->map_errors = bpf_map__fd(dp->sock->maps.xm_map_errors);
	fds->l7_proxy = bpf_map__fd(dp->sock->maps.xm_l7_proxy);
	fds->l7_origdst = bpf_map__fd(dp->sock->maps.xm_l7_origdst);
	fds->hbone_proxy = bpf_map__fd(dp->sock->maps.xm_hbone_proxy);
	fds->hbone_dsts = bpf_map__fd(dp->sock->maps.xm_hbone_dsts);
	fds->hbone_origdst = bpf_map__fd(dp->sock->maps.xm_hbone_origdst);
	fds->outlier_report_prog = bpf_program__fd(dp->sock->progs.xm_outlier_report);
}

void datapath_close(struct xm_datapath *dp)
{
	/* Destroying the skeleton closes fds only: links were disconnected, maps are pinned. */
	sock_lb__destroy(dp->sock);
	dp->sock = NULL;
	if (dp->cgroup_fd >= 0)
		close(dp->cgroup_fd);
	dp->cgroup_fd = -1;
}

int datapath_remove(const char *bpffs)
{
	return pins_remove_all(bpffs);
}
