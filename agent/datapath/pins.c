// SPDX-License-Identifier: Apache-2.0
#include "datapath/pins.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <linux/magic.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mkdir_p.h"

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
	err = xm_mkdir_p(dir, 0700);
	if (err) {
		log_error("create pin directory %s: %s", dir, strerror(-err));
		return err;
	}
	if (statfs(dir, &st) < 0 || st.f_type != BPF_FS_MAGIC) {
		log_error("%s is not on a bpf filesystem (mount -t bpf bpf DIR)", dir);
		return -EINVAL;
	}
	snprintf(links, sizeof(links), "%s/%s", dir, XM_LINKS_SUBDIR);
	err = xm_mkdir_p(links, 0700);
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

int pins_each_iface(const char *dir, const char *map, int (*fn)(int ifindex, const char *name))
{
	__u32 k, next, *prev = NULL;
	int fd = pins_open(dir, map), err = 0;

	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		char name[IF_NAMESIZE] = "?";

		k = next;
		prev = &k;
		if (!if_indextoname(k, name))
			continue; /* not in this namespace (or gone with it) */
		if (fn((int)k, name))
			err = -EIO;
	}
	close(fd);
	return err;
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

bool pins_btf_layout_equal(const struct btf *a, unsigned int ida, const struct btf *b, unsigned int idb)
{
	const struct btf_type *ta, *tb;
	const struct btf_member *ma, *mb;
	int ra = btf__resolve_type(a, ida), rb = btf__resolve_type(b, idb);

	if (ra < 0 || rb < 0)
		return true; /* nothing to compare by: the sizes were */
	ta = btf__type_by_id(a, (__u32)ra);
	tb = btf__type_by_id(b, (__u32)rb);
	if (!ta || !tb || btf_kind(ta) != btf_kind(tb) ||
	    btf__resolve_size(a, (__u32)ra) != btf__resolve_size(b, (__u32)rb))
		return false;
	if (!btf_is_composite(ta))
		return true;
	if (btf_vlen(ta) != btf_vlen(tb))
		return false;
	ma = btf_members(ta);
	mb = btf_members(tb);
	for (int i = 0; i < btf_vlen(ta); i++, ma++, mb++) {
		if (ma->offset != mb->offset ||
		    strcmp(btf__name_by_offset(a, ma->name_off), btf__name_by_offset(b, mb->name_off)) ||
		    btf__resolve_size(a, ma->type) != btf__resolve_size(b, mb->type))
			return false;
	}
	return true;
}

/* Why the pinned map fd cannot serve as map (NULL when it can). */
static const char *pin_mismatch(int fd, const struct bpf_map *map, const struct btf *obj_btf)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	const char *why = NULL;
	struct btf *pinned;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		return NULL; /* libbpf's own check will say what is wrong */
	if (info.type != bpf_map__type(map))
		return "type";
	if (info.key_size != bpf_map__key_size(map) || info.value_size != bpf_map__value_size(map))
		return "key or value size";
	if (info.max_entries != bpf_map__max_entries(map))
		return "max_entries";
	if (info.map_flags != bpf_map__map_flags(map))
		return "flags";
	if (!obj_btf || !info.btf_id || !info.btf_value_type_id || !bpf_map__btf_value_type_id(map))
		return NULL;
	pinned = btf__load_from_kernel_by_id(info.btf_id);
	if (!pinned)
		return NULL;
	if (!pins_btf_layout_equal(pinned, info.btf_value_type_id, obj_btf, bpf_map__btf_value_type_id(map)) ||
	    (info.btf_key_type_id && bpf_map__btf_key_type_id(map) &&
	     !pins_btf_layout_equal(pinned, info.btf_key_type_id, obj_btf, bpf_map__btf_key_type_id(map))))
		why = "key or value layout";
	btf__free(pinned);
	return why;
}

int pins_replace_incompatible(struct bpf_object *obj)
{
	const struct btf *obj_btf = bpf_object__btf(obj);
	struct bpf_map *map;
	int replaced = 0;

	bpf_object__for_each_map (map, obj) {
		const char *path = bpf_map__pin_path(map), *why;
		int fd;

		if (!path || (fd = bpf_obj_get(path)) < 0)
			continue;
		why = pin_mismatch(fd, map, obj_btf);
		close(fd);
		if (!why)
			continue;
		if (unlink(path) < 0) {
			log_warn("pinned map %s differs from this version's (%s) but cannot be removed: %s", path, why,
				 strerror(errno));
			continue;
		}
		log_warn("pinned map %s was made by another version (%s differs): replaced by an empty one; programs "
			 "still attached keep the old one until they are replaced",
			 path, why);
		replaced++;
	}
	return replaced;
}
