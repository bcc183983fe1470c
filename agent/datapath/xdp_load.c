// SPDX-License-Identifier: Apache-2.0
/* Loading xdp_lb and attaching it to the uplinks (XDP through pinned links, TC egress); detaching it. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "datapath/bpf_loader.h"
#include "datapath/pins.h"
#include "datapath/tc_egress.h"
#include "datapath/xdp.h"
#include "skel/xdp_lb.skel.h"

XM_BPF_SKEL_OPS(xdp_lb);

/* The pre-filter of a freshly loaded program, from what the pinned maps already serve. */
static void filter_from_pinned(struct xm_xdp *x)
{
	int fd = bpf_map__fd(x->skel->maps.xm_services);
	struct xm_svc_key k, next, *prev = NULL;
	struct xm_svc_value v;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &v) == 0 && (v.flags & XM_SVC_F_EXTERNAL))
			xdp_vip_filter_set(x->skel->bss->xm_vip_filter, &k);
	}
}

static int uplink_addrs(const char *name, struct xm_xdp_iface *ifc)
{
	struct ifaddrs *ifa, *i;

	memset(ifc, 0, sizeof(*ifc));
	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || strcmp(i->ifa_name, name))
			continue;
		if (i->ifa_addr->sa_family == AF_INET && !ifc->addr4.v4) {
			ifc->addr4.v4 = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
		} else if (i->ifa_addr->sa_family == AF_INET6 && !ifc->addr6.v6[0]) {
			const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;

			if (!IN6_IS_ADDR_LINKLOCAL(a))
				memcpy(ifc->addr6.bytes, a, 16);
		}
	}
	freeifaddrs(ifa);
	return 0;
}

static const struct tc_egress_filter nat_filter = { .handle = XM_TC_HANDLE,
						    .priority = XM_TC_PRIORITY,
						    .prog_name = "xm_tc_nat" };

static int attach_tc(struct xm_xdp *x, const struct xm_xdp_uplink *u)
{
	const char *step = "";
	int err = tc_egress_attach(&nat_filter, u->ifindex, bpf_program__fd(x->skel->progs.xm_tc_nat), &step);

	if (err)
		log_error("uplink %s: %s: %s", u->name, step, strerror(-err));
	return err;
}

static int detach_tc(int ifindex, const char *what)
{
	int err = tc_egress_detach_ours(&nat_filter, ifindex);

	if (err)
		log_error("%s: detach TC egress: %s", what, strerror(-err));
	return err;
}

static int attach_xdp(struct xm_xdp *x, struct xm_xdp_uplink *u)
{
	struct bpf_program *prog = x->skel->progs.xm_xdp_lb;
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	struct bpf_link *link;
	char path[4096], name[64];
	int fd, err;

	snprintf(name, sizeof(name), "xdp-%s", u->name);
	err = pins_link_path(path, sizeof(path), x->bpffs, name);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		memset(&info, 0, sizeof(info));
		err = bpf_obj_get_info_by_fd(fd, &info, &len) ? -errno : 0;
		if (!err && (info.type != BPF_LINK_TYPE_XDP || (int)info.xdp.ifindex != u->ifindex)) {
			log_error("pinned link %s is not XDP on %s (ifindex %d); run xmesh cleanup", path, u->name,
				  u->ifindex);
			err = -EEXIST;
		}
		/* Swapping the program inside the live link: the uplink is never without XDP. */
		if (!err && bpf_link_update(fd, bpf_program__fd(prog), NULL) < 0) {
			err = -errno;
			log_error("update pinned link %s: %s", path, strerror(errno));
		}
		close(fd);
		u->adopted = !err;
		return err;
	}
	link = bpf_program__attach_xdp(prog, u->ifindex);
	if (!link) {
		err = -errno;
		log_error("attach XDP to %s: %s (another XDP program there?)", u->name, strerror(errno));
		return err;
	}
	return pins_keep_link(link, path);
}

static int xdp_link_path(const struct xm_xdp *x, const struct xm_xdp_uplink *u, char *path, size_t len)
{
	char name[64];

	snprintf(name, sizeof(name), "xdp-%s", u->name);
	return pins_link_path(path, len, x->bpffs, name);
}

static bool xdp_link_pinned(const struct xm_xdp *x, const struct xm_xdp_uplink *u)
{
	char path[4096];

	return !xdp_link_path(x, u, path, sizeof(path)) && access(path, F_OK) == 0;
}

static void detach_uplink(struct xm_xdp *x, const struct xm_xdp_uplink *u)
{
	char path[4096];

	if (!xdp_link_path(x, u, path, sizeof(path)))
		unlink(path); /* the pin held the only reference: XDP detaches */
	detach_tc(u->ifindex, u->name);
}

/*
 * Maps of earlier versions that this one replaced under another name (so that loading never trips over
 * them): nothing uses them any more once this version's object is loaded.
 */
static void retire_pins(const char *bpffs)
{
	static const char *const retired[] = {
		"xm_xdp_tcp_metrics", /* a per-CPU hash until 2026-12: now xm_xdp_tcp_counters, an array */
	};
	char path[4200];

	for (size_t i = 0; i < sizeof(retired) / sizeof(retired[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", bpffs, retired[i]);
		if (unlink(path) == 0)
			log_info("xdp: removed %s, a map an earlier version pinned", path);
	}
}

int xdp_datapath_open(struct xm_xdp *x, const char *bpffs, const char *const *ifaces, size_t n)
{
	char hint[4200];
	size_t i;
	int err;

	memset(x, 0, sizeof(*x));
	snprintf(x->bpffs, sizeof(x->bpffs), "%s", bpffs);
	if (n > XM_XDP_MAX_IFACES) {
		log_error("at most %d --iface", XM_XDP_MAX_IFACES);
		return -E2BIG;
	}
	for (i = 0; i < n; i++) {
		struct xm_xdp_uplink *u = &x->uplinks[i];

		snprintf(u->name, sizeof(u->name), "%s", ifaces[i]);
		u->ifindex = (int)if_nametoindex(ifaces[i]);
		if (!u->ifindex) {
			log_error("--iface %s: no such interface in this network namespace", ifaces[i]);
			return -ENODEV;
		}
	}
	x->n_uplinks = n;
	i = 0; /* nothing attached yet: a failure before the uplinks' loop must not unpin their links */

	snprintf(hint, sizeof(hint), "maps pinned under %s by an incompatible version? xmesh cleanup", bpffs);
	x->skel = bpf_loader_open(&xdp_lb_skel_ops, x->bpffs, hint, &err);
	if (!x->skel)
		return err;
	filter_from_pinned(x);
	retire_pins(x->bpffs);
	for (i = 0; i < n; i++) {
		struct xm_xdp_uplink *u = &x->uplinks[i];
		struct xm_xdp_iface ifc;
		__u32 key = (__u32)u->ifindex;

		err = uplink_addrs(u->name, &ifc);
		if (!err && bpf_map_update_elem(bpf_map__fd(x->skel->maps.xm_xdp_ifaces), &key, &ifc, BPF_ANY) < 0)
			err = -errno;
		if (err) {
			log_error("uplink %s: record addresses: %s", u->name, strerror(-err));
			goto fail;
		}
		if (!ifc.addr4.v4 && !ifc.addr6.v6[0])
			log_warn("uplink %s has no address: it can neither send nor receive IPIP", u->name);
		/* TC first: replies of the first balanced flow must already be reverse-NATed. */
		err = attach_tc(x, u);
		if (!err) {
			err = attach_xdp(x, u);
			/* A previous agent's XDP link still runs its program: its replies keep their TC. */
			if (err && !xdp_link_pinned(x, u))
				detach_tc(u->ifindex, u->name);
		}
		if (err)
			goto fail;
		log_info("uplink %s (ifindex %d): XDP %s, TC egress attached", u->name, u->ifindex,
			 u->adopted ? "adopted" : "attached");
	}
	return 0;
fail:
	/* Undo what this call attached on the uplinks before the failing one; adopted ones were there before. */
	while (i-- > 0)
		if (!x->uplinks[i].adopted)
			detach_uplink(x, &x->uplinks[i]);
	xdp_datapath_close(x);
	return err;
}

void xdp_datapath_close(struct xm_xdp *x)
{
	xdp_nat_drain_free(&x->nat_drain);
	xdp_nexthops_free(&x->nexthops);
	xdp_lb__destroy(x->skel);
	x->skel = NULL;
}

int xdp_datapath_remove(const char *bpffs)
{
	return pins_each_iface(bpffs, "xm_xdp_ifaces", detach_tc);
}

int xdp_datapath_tcp_counters_fd(const struct xm_xdp *x)
{
	return x->skel ? bpf_map__fd(x->skel->maps.xm_xdp_tcp_counters) : -1;
}
