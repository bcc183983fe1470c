// SPDX-License-Identifier: Apache-2.0
#include "datapath/pins.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "core/log.h"

static int mkdir_p(const char *path)
{
	char tmp[4096];
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int ensure_bpffs_mounted(const char *dir)
{
	struct statfs st;

	if (strncmp(dir, "/sys/fs/bpf/", 12) != 0)
		return 0;
	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") < 0) {
		log_error("mount bpffs on /sys/fs/bpf: %s", strerror(errno));
		return -errno;
	}
	log_info("mounted bpffs on /sys/fs/bpf");
	return 0;
}

int pins_prepare(const char *dir)
{
	char links[4096];
	struct statfs st;
	int err;

	err = ensure_bpffs_mounted(dir);
	if (err)
		return err;
	err = mkdir_p(dir);
	if (err) {
		log_error("create pin directory %s: %s", dir, strerror(-err));
		return err;
	}
	if (statfs(dir, &st) < 0 || st.f_type != BPF_FS_MAGIC) {
		log_error("%s is not on a bpf filesystem (mount -t bpf bpf DIR)", dir);
		return -EINVAL;
	}
	snprintf(links, sizeof(links), "%s/%s", dir, XM_LINKS_SUBDIR);
	err = mkdir_p(links);
	if (err)
		log_error("create %s: %s", links, strerror(-err));
	return err;
}

int pins_link_path(char *buf, size_t len, const char *dir, const char *name)
{
	if (snprintf(buf, len, "%s/%s/%s", dir, XM_LINKS_SUBDIR, name) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Detaching first makes removal synchronous: an unpinned link is released only when the kernel drops its
 * last reference, which can be after we return.
 */
static void detach_link(const char *path)
{
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return;
	if (bpf_link_detach(fd) < 0 && errno != EINVAL && errno != EOPNOTSUPP)
		log_warn("detach link %s: %s", path, strerror(errno));
	close(fd);
}

static int remove_files_in(const char *dir, bool links)
{
	char path[4096];
	struct dirent *de;
	int err = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_type == DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (links)
			detach_link(path);
		if (unlink(path) < 0 && errno != ENOENT) {
			err = -errno;
			log_error("unpin %s: %s", path, strerror(errno));
		}
	}
	closedir(d);
	return err;
}

int pins_remove_all(const char *dir)
{
	char links[4096];
	int err, err2;

	snprintf(links, sizeof(links), "%s/%s", dir, XM_LINKS_SUBDIR);
	err = remove_files_in(links, true);
	if (rmdir(links) < 0 && errno != ENOENT && !err)
		err = -errno;
	err2 = remove_files_in(dir, false);
	if (rmdir(dir) < 0 && errno != ENOENT && !err2)
		err2 = -errno;
	return err ? err : err2;
}

int pins_open(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

int pins_keep_link(struct bpf_link *link, const char *path)
{
	int err = bpf_link__pin(link, path);

	if (err) {
		log_error("pin link %s: %s", path, strerror(-err));
		bpf_link__destroy(link);
		return err;
	}
	bpf_link__disconnect(link);
	bpf_link__destroy(link);
	return 0;
}
