// SPDX-License-Identifier: Apache-2.0
/* `xmesh cleanup --bpffs DIR --cgroup DIR`: detaches xmesh's programs and removes its pins. */
#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "daemon/instance_lock.h"
#include "datapath/datapath.h"
#include "datapath/l7_proxy_cgroup.h"
#include "datapath/neigh.h"
#include "datapath/peer_auth.h"
#include "datapath/pins.h"
#include "datapath/xdp.h"

/* Counts programs named xm_* still attached to the cgroup (links detach once their pin is gone). */
static int count_ours_attached(const char *cgroup)
{
	static const enum bpf_attach_type types[] = {
		BPF_CGROUP_INET4_CONNECT,     BPF_CGROUP_INET6_CONNECT,	    BPF_CGROUP_UDP4_SENDMSG,
		BPF_CGROUP_UDP6_SENDMSG,      BPF_CGROUP_UDP4_RECVMSG,	    BPF_CGROUP_UDP6_RECVMSG,
		BPF_CGROUP_INET4_GETPEERNAME, BPF_CGROUP_INET6_GETPEERNAME, BPF_CGROUP_SOCK_OPS,
	};
	int fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
	size_t t;

	if (fd < 0)
		return -errno;
	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		__u32 ids[64], cnt = 64, i;

		if (bpf_prog_query(fd, types[t], 0, NULL, ids, &cnt) < 0)
			continue;
		for (i = 0; i < cnt; i++) {
			struct bpf_prog_info info;
			__u32 len = sizeof(info);
			int pfd = bpf_prog_get_fd_by_id(ids[i]);

			if (pfd < 0)
				continue;
			memset(&info, 0, sizeof(info));
			if (!bpf_obj_get_info_by_fd(pfd, &info, &len) && !strncmp(info.name, "xm_", 3))
				n++;
			close(pfd);
		}
	}
	close(fd);
	return n;
}

int cmd_cleanup(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bpffs", required_argument, NULL, 'b' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *bpffs = XM_DEFAULT_BPFFS, *cgroup = NULL;
	int c, err, left, lock_fd;
	struct stat st = { 0 };
	pid_t holder;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			bpffs = optarg;
			break;
		case 'g':
			cgroup = optarg;
			break;
		case 'h':
			printf("usage: xmesh cleanup [--bpffs DIR] [--cgroup DIR]\n");
			return 0;
		default:
			fprintf(stderr, "usage: xmesh cleanup [--bpffs DIR] [--cgroup DIR]\n");
			return 2;
		}
	}
	if (stat(bpffs, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "xmesh cleanup: nothing to remove: no xmesh pins under %s (%s)\n", bpffs,
			S_ISDIR(st.st_mode) ? strerror(errno) : "not a directory");
		return 1;
	}
	/* Held during the removal: an agent started meanwhile refuses instead of adopting half-removed pins. */
	lock_fd = instance_lock_take(bpffs, &holder);
	if (lock_fd == -EWOULDBLOCK) {
		if (holder)
			fprintf(stderr, "xmesh cleanup: an agent (pid %d) runs on %s: stop it first\n", (int)holder,
				bpffs);
		else
			fprintf(stderr, "xmesh cleanup: an agent runs on %s: stop it first\n", bpffs);
		return 1;
	}
	if (lock_fd < 0) {
		fprintf(stderr, "xmesh cleanup: lock %s: %s\n", bpffs, strerror(-lock_fd));
		return 1;
	}
	err = xdp_datapath_remove(bpffs); /* TC filters are not links: detach them before the pins go */
	if (!err)
		err = peer_auth_dp_remove(bpffs);
	if (!err)
		err = datapath_remove(bpffs);
	close(lock_fd);
	if (err) {
		fprintf(stderr, "xmesh cleanup: %s: %s\n", bpffs, strerror(-err));
		return 1;
	}
	if (cgroup) {
		left = count_ours_attached(cgroup);
		if (left > 0) {
			fprintf(stderr,
				"xmesh cleanup: %d xmesh program(s) still attached to %s (held by a running "
				"agent or an open link fd)\n",
				left, cgroup);
			return 1;
		}
	}
	/* The L7 proxy's cgroup the agent made next to the served one (its sockops link went with the pins). */
	if (cgroup && (err = l7_proxy_cgroup_remove(cgroup)))
		fprintf(stderr, "xmesh cleanup: the L7 proxy's cgroup next to %s: %s\n", cgroup, strerror(-err));
	/* The managed neighbour entries the agent kept for remote nodes (this network namespace's). */
	if (neigh_sync(NULL, 0))
		fprintf(stderr, "xmesh cleanup: could not remove xmesh's neighbour entries (netlink)\n");
	printf("removed xmesh links and maps under %s\n", bpffs);
	return 0;
}
