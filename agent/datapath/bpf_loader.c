// SPDX-License-Identifier: Apache-2.0
#include "datapath/bpf_loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "datapath/pins.h"

static const char *expected_msg;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	if (level == LIBBPF_WARN && !(expected_msg && strstr(buf, expected_msg)))
		log_warn("%s", buf);
	else
		log_debug("%s", buf);
	return 0;
}

void bpf_loader_log_to_agent(void)
{
	libbpf_set_print(libbpf_print);
}

void bpf_loader_expect(const char *msg)
{
	expected_msg = msg;
}

int bpf_loader_open_cgroup(const char *cgroup)
{
	int fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	if (fd >= 0)
		return fd;
	err = -errno;
	log_error("open cgroup %s: %s", cgroup, strerror(errno));
	return err;
}

void *bpf_loader_open(const struct xm_bpf_skel_ops *ops, const char *bpffs, const char *hint, int *err)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = bpffs);
	void *skel;

	bpf_loader_log_to_agent();
	*err = pins_prepare(bpffs);
	if (*err)
		return NULL;
	skel = ops->open(&opts);
	if (!skel) {
		*err = -errno;
		log_error("open BPF object %s: %s", ops->name, strerror(errno));
		return NULL;
	}
	pins_replace_incompatible(ops->object(skel));
	if (ops->before_load)
		ops->before_load(skel);
	*err = ops->load(skel);
	if (*err) {
		log_error("load BPF object %s: %s (%s)", ops->name, strerror(-*err), hint);
		ops->destroy(skel);
		return NULL;
	}
	return skel;
}
