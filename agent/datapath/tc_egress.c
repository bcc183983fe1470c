// SPDX-License-Identifier: Apache-2.0
/* Our TC egress filters (datapath/tc_egress.h). */
#include "datapath/tc_egress.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "datapath/bpf_loader.h"

int tc_egress_attach(const struct tc_egress_filter *f, int ifindex, int prog_fd, const char **step)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = f->handle, .priority = f->priority, .flags = BPF_TC_F_REPLACE,
			    .prog_fd = prog_fd);
	int err;

	/* An existing qdisc gives -EEXIST, whose kernel message is no warning. */
	bpf_loader_expect("Exclusivity flag on");
	err = bpf_tc_hook_create(&hook);
	bpf_loader_expect(NULL);
	if (err && err != -EEXIST) {
		*step = "create clsact";
		return err;
	}
	err = bpf_tc_attach(&hook, &opts);
	if (err)
		*step = "attach TC egress";
	return err;
}

int tc_egress_detach_ours(const struct tc_egress_filter *f, int ifindex)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, q, .handle = f->handle, .priority = f->priority);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, del, .handle = f->handle, .priority = f->priority);
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd, err;

	if (bpf_tc_query(&hook, &q))
		return 0; /* nothing at our handle */
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (err || strcmp(info.name, f->prog_name))
		return 0; /* someone else's filter at our handle: leave it */
	return bpf_tc_detach(&hook, &del);
}
