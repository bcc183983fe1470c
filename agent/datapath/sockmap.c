// SPDX-License-Identifier: Apache-2.0
#include "datapath/sockmap.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile/local_addrs.h"
#include "core/grow.h"
#include "core/log.h"
#include "core/percpu.h"
#include "datapath/bpf_loader.h"
#include "datapath/datapath.h"
#include "datapath/pins.h"
#include "skel/mesh_ops.skel.h"
#include "skel/sockmap.skel.h"

XM_BPF_SKEL_OPS(sockmap);
XM_BPF_SKEL_OPS(mesh_ops);

/* Not in the uapi header libbpf 1.1 ships with; the kernel's value since 6.10. */
#define XM_BPF_LINK_TYPE_SOCKMAP 14

static const char *const stat_names[XM_SMSTAT_MAX] = {
	[XM_SMSTAT_REDIR_MSGS] = "redirected_msgs",
	[XM_SMSTAT_REDIR_BYTES] = "redirected_bytes",
	[XM_SMSTAT_FALLBACK_NO_PEER] = "fallback_no_peer",
	[XM_SMSTAT_FALLBACK_ORDER] = "fallback_order",
	[XM_SMSTAT_FALLBACK_OFF] = "fallback_off",
	[XM_SMSTAT_FALLBACK_BYTES] = "fallback_bytes",
	[XM_SMSTAT_FALLBACK_NO_STATE] = "fallback_no_state",
	[XM_SMSTAT_INSERTED] = "sockets_inserted",
	[XM_SMSTAT_INSERT_FAILED] = "insert_failed",
	[XM_SMSTAT_NOT_LOCAL] = "peer_not_local",
	[XM_SMSTAT_SKIPPED_OFF] = "skipped_off",
	[XM_SMSTAT_CLOSED] = "sockets_closed",
	[XM_SMSTAT_CLOSED_TX_BYTES] = "closed_tx_bytes",
	[XM_SMSTAT_CLOSED_RX_BYTES] = "closed_rx_bytes",
	[XM_SMSTAT_FALLBACK_MEM_PRESSURE] = "fallback_mem_pressure",
	[XM_SMSTAT_SKIPPED_PORT] = "skipped_excluded_port",
};

const char *sockmap_stat_name(unsigned int idx)
{
	return idx < XM_SMSTAT_MAX ? stat_names[idx] : "?";
}

/* What the kernel says about a link; the sockmap member is read by offset (newer than our uapi header). */
struct xm_link_info_raw {
	__u32 type;
	__u32 id;
	__u32 prog_id;
	__u32 pad;
	union {
		struct {
			__u64 cgroup_id;
			__u32 attach_type;
		} cgroup;
		struct {
			__u32 map_id;
			__u32 attach_type;
		} sockmap;
	};
	__u8 rest[64];
};

static int map_id_of(int map_fd, __u32 *id)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(map_fd, &info, &len) < 0)
		return -errno;
	*id = info.id;
	return 0;
}

/*
 * A pinned link may be adopted only if it is attached where we would attach it ourselves: sk_msg to our
 * sockhash (cgroup NULL), sockops to this cgroup.
 */
static int link_check(int link_fd, const struct xm_sockmap *sm, const char *name, const char *cgroup)
{
	struct xm_link_info_raw info;
	__u32 len = sizeof(info), map_id = 0;
	struct stat st;
	int err;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len) < 0)
		return -errno;
	if (!cgroup) {
		err = map_id_of(bpf_map__fd(sm->skel->maps.xm_sock_pairs), &map_id);
		if (err)
			return err;
		if (info.type == XM_BPF_LINK_TYPE_SOCKMAP && info.sockmap.map_id == map_id)
			return 0;
		log_error("pinned link %s is attached elsewhere (type %u, map id %u, xm_sock_pairs is %u); run xmesh "
			  "cleanup",
			  name, info.type, info.sockmap.map_id, map_id);
		return -EEXIST;
	}
	if (stat(cgroup, &st) < 0)
		return -errno;
	if (info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == (__u64)st.st_ino)
		return 0;
	log_error("pinned link %s is attached elsewhere (cgroup id %llu, %s is %llu); run xmesh cleanup", name,
		  (unsigned long long)info.cgroup.cgroup_id, cgroup, (unsigned long long)st.st_ino);
	return -EEXIST;
}

/* Swaps our program into a pinned link: 1 adopted, 0 no such pin, or a negative errno. cgroup: as link_check. */
static int adopt(struct xm_sockmap *sm, const char *name, int prog_fd, const char *cgroup)
{
	char path[4096];
	int fd, err;

	err = pins_link_path(path, sizeof(path), sm->bpffs, name);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	err = link_check(fd, sm, name, cgroup);
	if (!err && bpf_link_update(fd, prog_fd, NULL) < 0) {
		err = -errno;
		log_error("update pinned link %s: %s", path, strerror(errno));
	}
	close(fd);
	if (err)
		return err;
	sm->n_adopted++;
	return 1;
}

static int pin_link_fd(struct xm_sockmap *sm, const char *name, int link_fd)
{
	char path[4096];
	int err;

	err = pins_link_path(path, sizeof(path), sm->bpffs, name);
	if (!err && bpf_obj_pin(link_fd, path) < 0) {
		err = -errno;
		log_error("pin link %s: %s", path, strerror(errno));
	}
	close(link_fd);
	if (!err)
		sm->n_attached++;
	return err;
}

int sockmap_attach_msg(int prog_fd, int map_fd, int *link_fd)
{
	int fd;

	*link_fd = -1;
	fd = bpf_link_create(prog_fd, map_fd, BPF_SK_MSG_VERDICT, NULL);
	if (fd >= 0) {
		*link_fd = fd;
		return 0;
	}
	/* Before 6.10 sockmap programs have no links: the attachment belongs to the map. */
	if (bpf_prog_attach(prog_fd, map_fd, BPF_SK_MSG_VERDICT, 0) < 0)
		return -errno;
	return 0;
}

/* sk_msg first: a socket that sockops inserts must already find the verdict program on the map. */
static int attach_msg(struct xm_sockmap *sm)
{
	int prog_fd = bpf_program__fd(sm->skel->progs.xm_sockmap_msg);
	int map_fd = bpf_map__fd(sm->skel->maps.xm_sock_pairs);
	int err, link_fd;

	err = adopt(sm, XM_SOCKMAP_MSG_LINK, prog_fd, NULL);
	if (err) {
		sm->msg_link = err > 0;
		return err < 0 ? err : 0;
	}
	err = sockmap_attach_msg(prog_fd, map_fd, &link_fd);
	if (err) {
		log_error("attach sk_msg to xm_sock_pairs: %s", strerror(-err));
		return err;
	}
	if (link_fd < 0) {
		/* Re-attaching on restart replaces the program the map holds: no gap, nothing to pin. */
		log_info("sockmap: kernel has no sockmap links (< 6.10): sk_msg attached to the map directly");
		sm->n_attached++;
		return 0;
	}
	sm->msg_link = true;
	return pin_link_fd(sm, XM_SOCKMAP_MSG_LINK, link_fd);
}

static int attach_ops_at(struct xm_sockmap *sm, const char *cgroup, int cgroup_fd, const char *link_name)
{
	int prog_fd = bpf_program__fd(sm->skel->progs.xm_sockmap_ops);
	int err, link_fd;

	err = adopt(sm, link_name, prog_fd, cgroup);
	if (err)
		return err < 0 ? err : 0;
	link_fd = bpf_link_create(prog_fd, cgroup_fd, BPF_CGROUP_SOCK_OPS, NULL);
	if (link_fd < 0) {
		err = -errno;
		log_error("attach sockops %s to cgroup %s: %s", link_name, cgroup, strerror(errno));
		return err;
	}
	return pin_link_fd(sm, link_name, link_fd);
}

/*
 * The mesh cgroup's one sockops program (bpf/mesh_ops.bpf.c: the socket LB's part and ours in one run per
 * callback) swapped into the socket LB's pinned link. 1 when it took the link, 0 when there is no such link
 * (our own program then attaches next to whatever runs there), or a negative errno.
 */
static int take_lb_link(struct xm_sockmap *sm)
{
	char path[4096];
	int fd, err;

	err = pins_link_path(path, sizeof(path), sm->bpffs, XM_SOCK_LB_OPS_LINK);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	err = link_check(fd, sm, XM_SOCK_LB_OPS_LINK, sm->cgroup);
	if (!err)
		sm->mesh = bpf_loader_open(&mesh_ops_skel_ops, sm->bpffs,
					   "run xmesh cleanup, or start with --no-sockmap", &err);
	if (sm->mesh) {
		if (bpf_link_update(fd, bpf_program__fd(sm->mesh->progs.xm_mesh_ops), NULL) < 0) {
			err = -errno;
			log_error("update pinned link %s: %s", path, strerror(errno));
		}
	}
	close(fd);
	return err ? err : 1;
}

/* An earlier agent's separate sockops link on the mesh cgroup: our part now runs in the LB's link. */
static int remove_separate_ops_link(struct xm_sockmap *sm)
{
	char path[4096];
	int err = pins_link_path(path, sizeof(path), sm->bpffs, XM_SOCKMAP_OPS_LINK);
	int fd;

	if (err)
		return err;
	/*
	 * Detached here, not only unpinned: the kernel releases an unpinned link from a workqueue, so the program
	 * would keep running next to xm_mesh_ops (the sockmap half twice per callback) for a moment after this.
	 */
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		if (bpf_link_detach(fd))
			log_warn("sockmap: detaching %s: %s (it goes when its pin does)", path, strerror(errno));
		close(fd);
	}
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	log_info("sockmap: removed the separate sockops link an earlier agent left (%s)", path);
	return 0;
}

static int attach_ops(struct xm_sockmap *sm)
{
	int err = take_lb_link(sm);

	if (err < 0)
		return err;
	if (err > 0) {
		sm->n_adopted++;
		return remove_separate_ops_link(sm);
	}
	return attach_ops_at(sm, sm->cgroup, sm->cgroup_fd, XM_SOCKMAP_OPS_LINK);
}

int sockmap_attach_ops_cgroup(struct xm_sockmap *sm, const char *cgroup, const char *link_name)
{
	int fd, err;

	if (!sm->skel)
		return -ENODEV;
	fd = bpf_loader_open_cgroup(cgroup);
	if (fd < 0)
		return fd;
	err = attach_ops_at(sm, cgroup, fd, link_name);
	close(fd);
	return err;
}

/* sk_msg's TCP-memory margin is a read-only global of the object: set between open and load. */
static void sockmap_before_load(void *skel)
{
	((struct sockmap *)skel)->rodata->xm_tcp_mem_lag = sockmap_tcp_mem_lag();
}

static const struct xm_bpf_skel_ops sockmap_load_ops = {
	.name = "sockmap",
	.open = sockmap_skel_open,
	.object = sockmap_skel_object,
	.load = sockmap_skel_load,
	.destroy = sockmap_skel_destroy,
	.before_load = sockmap_before_load,
};

int sockmap_open(struct xm_sockmap *sm, const char *bpffs, const char *cgroup, bool enabled,
		 const uint16_t *excluded_ports, size_t n_excluded)
{
	char hint[12700];
	int err;

	memset(sm, 0, sizeof(*sm));
	sm->cgroup_fd = -1;
	snprintf(sm->bpffs, sizeof(sm->bpffs), "%s", bpffs);
	snprintf(sm->cgroup, sizeof(sm->cgroup), "%s", cgroup);
	sm->cgroup_fd = bpf_loader_open_cgroup(cgroup);
	if (sm->cgroup_fd < 0)
		return sm->cgroup_fd;
	snprintf(hint, sizeof(hint),
		 "kernel without sockhash/sk_msg support, or maps pinned under %s by an incompatible version? xmesh "
		 "cleanup --bpffs %s --cgroup %s; or --no-sockmap",
		 bpffs, bpffs, cgroup);
	sm->skel = bpf_loader_open(&sockmap_load_ops, sm->bpffs, hint, &err);
	if (!sm->skel)
		goto fail;
	/* The switch is set before anything attaches, so a fresh attach never runs with a stale setting. */
	err = sockmap_set_enabled(sm, enabled);
	if (!err)
		err = sockmap_sync_excluded_ports(bpf_map__fd(sm->skel->maps.xm_sockmap_excl_ports), excluded_ports,
						  n_excluded);
	if (err)
		goto fail;
	err = attach_msg(sm);
	if (err)
		goto fail;
	err = attach_ops(sm);
	if (err)
		goto fail;
	log_info("sockmap: redirection %s; %d attached, %d adopted (sk_msg through %s; sockops %s)",
		 enabled ? "on" : "off", sm->n_attached, sm->n_adopted, sm->msg_link ? "a pinned link" : "the map",
		 sm->mesh ? "in one program with the socket LB's" : "a program of its own");
	if (n_excluded)
		log_info("sockmap: %zu port(s) excluded from redirection", n_excluded);
	return 0;
fail:
	sockmap_close(sm);
	return err;
}

void sockmap_close(struct xm_sockmap *sm)
{
	mesh_ops__destroy(sm->mesh);
	sm->mesh = NULL;
	sockmap__destroy(sm->skel);
	sm->skel = NULL;
	if (sm->cgroup_fd >= 0)
		close(sm->cgroup_fd);
	sm->cgroup_fd = -1;
}

int sockmap_set_enabled(const struct xm_sockmap *sm, bool on)
{
	struct xm_sockmap_config cfg = { .enabled = on ? 1 : 0 };
	__u32 zero = 0;

	if (!sm->skel)
		return -ENODEV;
	if (bpf_map_update_elem(bpf_map__fd(sm->skel->maps.xm_sockmap_config), &zero, &cfg, BPF_ANY) < 0) {
		log_error("sockmap: set switch %s: %s", on ? "on" : "off", strerror(errno));
		return -errno;
	}
	return 0;
}

int sockmap_parse_ports(const char *list, uint16_t *ports, size_t cap, size_t *n)
{
	const char *p = list;
	unsigned long v;
	char *end;

	*n = 0;
	while (*p) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = strtoul(p, &end, 10);
		if (v < 1 || v > 65535 || (*end && *end != ','))
			return -EINVAL;
		if (*n == cap)
			return -E2BIG;
		ports[(*n)++] = (uint16_t)v;
		p = *end ? end + 1 : end;
		if (*end && !*p)
			return -EINVAL; /* trailing comma */
	}
	return *n ? 0 : -EINVAL;
}

static bool port_listed(uint16_t port, const uint16_t *ports, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ports[i] == port)
			return true;
	return false;
}

int sockmap_sync_excluded_ports(int map_fd, const uint16_t *ports, size_t n)
{
	struct xm_sockmap_excl_port one = { .excluded = 1 };
	__u32 key, next, stale[XM_MAX_EXCLUDED_PORTS];
	size_t i, n_stale = 0;
	void *prev = NULL;

	if (n > XM_MAX_EXCLUDED_PORTS)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		key = ports[i];
		if (bpf_map_update_elem(map_fd, &key, &one, BPF_ANY) < 0) {
			log_error("sockmap: exclude port %u: %s", key, strerror(errno));
			return -errno;
		}
	}
	/* A previous agent's list may hold ports this one no longer excludes (at most the map's size). */
	while (bpf_map_get_next_key(map_fd, prev, &next) == 0 && n_stale < XM_MAX_EXCLUDED_PORTS) {
		key = next;
		prev = &key;
		if (!port_listed((uint16_t)key, ports, n))
			stale[n_stale++] = key;
	}
	for (i = 0; i < n_stale; i++)
		bpf_map_delete_elem(map_fd, &stale[i]);
	return 0;
}

int sockmap_get_enabled(const struct xm_sockmap *sm)
{
	struct xm_sockmap_config cfg;
	__u32 zero = 0;

	if (!sm->skel)
		return -ENODEV;
	if (bpf_map_lookup_elem(bpf_map__fd(sm->skel->maps.xm_sockmap_config), &zero, &cfg) < 0)
		return -errno;
	return cfg.enabled ? 1 : 0;
}

/* The whole map against want: after a start, when the map may hold anything a previous agent left. */
static int sync_local_ips_full(int fd, const struct xm_local_addrs *want)
{
	struct xm_local_ip_key cur, next, *stale = NULL;
	size_t n_stale = 0, cap_stale = 0, i;
	int err = 0;
	void *prev;

	/* Add first: an address that stays local is never missing, not even for an instant. */
	for (i = 0; i < want->n; i++) {
		struct xm_local_ip v = { .flags = want->flags[i] };

		if (bpf_map_update_elem(fd, &want->keys[i], &v, BPF_ANY) < 0) {
			err = -errno;
			log_error("sockmap: xm_local_ips: add address %zu of %zu: %s", i + 1, want->n, strerror(-err));
			goto out;
		}
	}
	for (prev = NULL; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &cur) {
		cur = next;
		if (local_addrs_has(want, &cur))
			continue;
		if (XM_GROW(stale, cap_stale, n_stale + 1)) {
			err = -ENOMEM;
			goto out;
		}
		stale[n_stale++] = cur;
	}
	for (i = 0; i < n_stale; i++)
		if (bpf_map_delete_elem(fd, &stale[i]) < 0 && errno != ENOENT)
			err = -errno;
	log_debug("sockmap: %zu local addresses (%zu removed)", want->n, n_stale);
out:
	free(stale);
	return err;
}

/*
 * Only what changed between two sorted sets: a one-object change at 10,000 services writes a few entries
 * instead of rewriting (and walking) the whole map on every apply.
 */
static int sync_local_ips_diff(int fd, const struct xm_local_addrs *was, const struct xm_local_addrs *want)
{
	size_t i = 0, j = 0, added = 0, removed = 0;
	int err = 0, c;

	/* Add first (both walks in key order): an address that stays local is never missing. */
	while (j < want->n) {
		c = i < was->n ? memcmp(&was->keys[i], &want->keys[j], sizeof(want->keys[j])) : 1;
		if (c < 0) {
			i++;
			continue;
		}
		if (c > 0 || was->flags[i] != want->flags[j]) {
			struct xm_local_ip v = { .flags = want->flags[j] };

			if (bpf_map_update_elem(fd, &want->keys[j], &v, BPF_ANY) < 0) {
				err = -errno;
				log_error("sockmap: xm_local_ips: add an address: %s", strerror(-err));
				return err;
			}
			added++;
		}
		if (c == 0)
			i++;
		j++;
	}
	for (i = 0; i < was->n; i++) {
		if (local_addrs_has(want, &was->keys[i]))
			continue;
		if (bpf_map_delete_elem(fd, &was->keys[i]) < 0 && errno != ENOENT)
			err = -errno;
		removed++;
	}
	log_debug("sockmap: %zu local addresses (%zu written, %zu removed)", want->n, added, removed);
	return err;
}

int sockmap_sync_local_ips(struct xm_sockmap *sm, const struct xm_local_addrs *was, const struct xm_local_addrs *want)
{
	int err;

	if (!sm->skel)
		return -ENODEV;
	if (was)
		err = sync_local_ips_diff(bpf_map__fd(sm->skel->maps.xm_local_ips), was, want);
	else
		err = sync_local_ips_full(bpf_map__fd(sm->skel->maps.xm_local_ips), want);
	if (!err)
		sm->n_local_ips = want->n;
	return err;
}

long sockmap_tcp_mem_lag(void)
{
	long pages = 256; /* the kernel default (SK_MEMORY_PCPU_RESERVE), fixed where there is no sysctl */
	FILE *f = fopen("/proc/sys/net/core/mem_pcpu_rsv", "re");
	int ncpu = libbpf_num_possible_cpus();

	if (f) {
		if (fscanf(f, "%ld", &pages) != 1 || pages < 0)
			pages = 256;
		fclose(f);
	}
	return pages * (ncpu > 0 ? ncpu : 1);
}

int sockmap_read_stats(int stats_fd, uint64_t out[XM_SMSTAT_MAX])
{
	int err = percpu_sum_u64(stats_fd, XM_SMSTAT_MAX, out);

	if (err)
		memset(out, 0, sizeof(uint64_t) * XM_SMSTAT_MAX);
	return err;
}

int sockmap_fds(const struct xm_sockmap *sm, struct xm_sockmap_fds *out)
{
	if (!sm->skel)
		return -ENODEV;
	out->pairs = bpf_map__fd(sm->skel->maps.xm_sock_pairs);
	out->sk_storage = bpf_map__fd(sm->skel->maps.xm_sockmap_sk);
	return 0;
}

int sockmap_stats(const struct xm_sockmap *sm, uint64_t out[XM_SMSTAT_MAX])
{
	if (!sm->skel)
		return -ENODEV;
	return sockmap_read_stats(bpf_map__fd(sm->skel->maps.xm_sockmap_stats), out);
}
