// SPDX-License-Identifier: Apache-2.0
#include "datapath/xdp.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "metrics/registry.h"
#include "datapath/neigh.h"
#include "datapath/pins.h"
#include "datapath/tcp_counters.h"
#include "skel/xdp_lb.skel.h"

static const char *const stat_names[XM_XDP_STAT_MAX] = {
	[XM_XDP_PASS_NOT_IP] = "pass_not_ip",	      [XM_XDP_PASS_NOT_VIP] = "pass_not_vip",
	[XM_XDP_PASS_MALFORMED] = "pass_malformed",   [XM_XDP_PASS_FRAGMENT] = "pass_fragment",
	[XM_XDP_PASS_IPV6_EXT] = "pass_ipv6_ext",     [XM_XDP_DROP_NO_NEIGH] = "drop_no_neigh",
	[XM_XDP_DNAT_LOCAL] = "dnat_local",	      [XM_XDP_TX_ENCAP] = "tx_encap",
	[XM_XDP_CT_HIT] = "ct_revalidated",	      [XM_XDP_DECAP] = "decap",
	[XM_XDP_DROP_NO_BACKEND] = "drop_no_backend", [XM_XDP_DROP_NO_LOCAL] = "drop_no_local",
	[XM_XDP_DROP_NO_ROUTE] = "drop_no_route",     [XM_XDP_DROP_TOO_BIG] = "drop_too_big",
	[XM_XDP_DROP_ERROR] = "drop_error",	      [XM_XDP_CT_NEW] = "ct_new",
	[XM_XDP_CT_NEW_NON_SYN] = "ct_new_non_syn",   [XM_TC_REV_NAT] = "tc_rev_nat",
	[XM_XDP_TX_ICMP_TOO_BIG] = "tx_icmp_too_big",
};

static void set_bit(__u64 *f, const struct xm_svc_key *k)
{
	uint32_t fold =
	    k->family == XM_FAMILY_V4 ? k->vip.v4 : k->vip.v6[0] ^ k->vip.v6[1] ^ k->vip.v6[2] ^ k->vip.v6[3];
	uint32_t bit = xm_vip_filter_bit(fold, k->port, k->proto);

	f[bit / 64] |= 1ULL << (bit % 64);
}

void xdp_vip_filter_fill(__u64 *filter, const struct xm_lb_state *st, bool add_only)
{
	static __u64 next[XM_VIP_FILTER_BITS / 64];
	size_t i;

	memset(next, 0, sizeof(next));
	for (i = 0; i < st->n_services; i++)
		if (st->services[i].flags & XM_SVC_F_EXTERNAL)
			set_bit(next, &st->services[i].key);
	/* Word by word: each store is atomic for the program, and a bit that stays set is never cleared. */
	for (i = 0; i < XM_VIP_FILTER_BITS / 64; i++) {
		__u64 w = add_only ? filter[i] | next[i] : next[i];

		if (filter[i] != w)
			filter[i] = w;
	}
}

struct nat_entry {
	struct xm_nat_backend_key key;
	struct xm_nat_vip vip;
};

static int nat_entry_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct nat_entry *)a)->key, &((const struct nat_entry *)b)->key,
		      sizeof(struct xm_nat_backend_key));
}

int xdp_nat_backends_sync(int fd, const struct xm_lb_state *st)
{
	struct xm_nat_backend_key k, next_key, *prev = NULL;
	struct nat_entry *e = NULL;
	size_t n = 0, cap = 0, i, j;
	int err = 0;

	for (i = 0; i < st->n_services; i++) {
		const struct xm_lb_service *s = &st->services[i];

		if (!(s->flags & XM_SVC_F_EXTERNAL))
			continue;
		for (j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];

			if (!b->ready || !b->local)
				continue;
			if (n == cap) {
				void *p = realloc(e, (cap = cap ? cap * 2 : 64) * sizeof(*e));

				if (!p) {
					free(e);
					return -ENOMEM;
				}
				e = p;
			}
			memset(&e[n], 0, sizeof(e[n]));
			e[n].key.addr = b->addr;
			e[n].key.port = htons(b->port);
			e[n].key.proto = s->key.proto;
			e[n].key.family = b->family;
			e[n].vip.vip = s->key.vip;
			e[n].vip.vport = s->key.port;
			n++;
		}
	}
	if (n > 1)
		qsort(e, n, sizeof(*e), nat_entry_cmp);
	for (i = 0; i < n; i = j) {
		struct xm_nat_backend_value v;

		memset(&v, 0, sizeof(v));
		for (j = i; j < n && !nat_entry_cmp(&e[i], &e[j]); j++) {
			if (v.count < XM_NAT_MAX_VIPS)
				v.vips[v.count++] = e[j].vip;
			else
				log_warn("a local backend serves more than %d external VIP ports: replies of the "
					 "others keep the pod's address",
					 XM_NAT_MAX_VIPS);
		}
		if (bpf_map_update_elem(fd, &e[i].key, &v, BPF_ANY) < 0) {
			err = -errno;
			log_error("xm_nat_backends: update: %s", strerror(errno));
		}
	}
	/* Backends that no longer serve an external VIP. */
	while (bpf_map_get_next_key(fd, prev, &next_key) == 0) {
		struct nat_entry probe;

		k = next_key;
		memset(&probe, 0, sizeof(probe));
		probe.key = k;
		if (!(n && bsearch(&probe, e, n, sizeof(*e), nat_entry_cmp)) && bpf_map_delete_elem(fd, &k) == 0) {
			prev = NULL;
			continue;
		}
		prev = &k;
	}
	free(e);
	return err;
}

/* An empty datagram to the discard port: the kernel resolves the next hop to send it (kernels < 5.16). */
static void prime_neighbour(const struct xm_neigh_node *n)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(9) };
	bool v4 = n->family == XM_FAMILY_V4;
	int fd = socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return;
	a4.sin_addr.s_addr = n->addr.v4;
	memcpy(&a6.sin6_addr, n->addr.bytes, 16);
	(void)!(v4 ? sendto(fd, "", 0, 0, (struct sockaddr *)&a4, sizeof(a4))
		   : sendto(fd, "", 0, 0, (struct sockaddr *)&a6, sizeof(a6)));
	close(fd);
}

void xdp_datapath_neighbours(const struct xm_lb_state *st)
{
	struct xm_neigh_node *nodes = NULL;
	size_t n = 0, cap = 0, i, j, k;

	for (i = 0; i < st->n_services; i++) {
		const struct xm_lb_service *s = &st->services[i];

		if (!(s->flags & XM_SVC_F_EXTERNAL))
			continue;
		for (j = 0; j < s->n_backends; j++) {
			const struct xm_lb_backend *b = &s->backends[j];

			if (b->local || !b->ready ||
			    !(b->node_addr.v6[0] | b->node_addr.v6[1] | b->node_addr.v6[2] | b->node_addr.v6[3]))
				continue;
			for (k = 0; k < n && memcmp(&nodes[k].addr, &b->node_addr, sizeof(b->node_addr)); k++)
				;
			if (k < n)
				continue;
			if (n == cap) {
				void *p = realloc(nodes, (cap = cap ? cap * 2 : 16) * sizeof(*nodes));

				if (!p)
					goto out;
				nodes = p;
			}
			nodes[n++] = (struct xm_neigh_node){ .addr = b->node_addr, .family = b->family };
		}
	}
	/* n = 0 too: removes the entries of nodes that no longer serve anything. */
	if (neigh_sync(nodes, n))
		log_warn("xdp: could not manage the neighbour entries of remote nodes; sending a datagram instead");
	for (i = 0; i < n; i++)
		if (!nodes[i].managed)
			prime_neighbour(&nodes[i]);
out:
	free(nodes);
}

int xdp_datapath_tcp_counters_fd(const struct xm_xdp *x)
{
	return x->skel ? bpf_map__fd(x->skel->maps.xm_xdp_tcp_counters) : -1;
}

int xdp_datapath_sync(struct xm_xdp *x, const struct xm_lb_state *st, bool before)
{
	struct tcp_counters_fill fill = { x->tcp_pairs_placed, x->tcp_pairs_unplaced }; /* kept if sync fails */
	int err;

	xdp_vip_filter_fill(x->skel->bss->xm_vip_filter, st, before);
	if (before)
		return 0;
	xdp_datapath_neighbours(st);
	err = xdp_nat_backends_sync(bpf_map__fd(x->skel->maps.xm_nat_backends), st);
	/* Not counted (logged, shown by status and metrics) is no reason to call the reverse NAT failed. */
	tcp_counters_sync(bpf_map__fd(x->skel->maps.xm_xdp_tcp_counters), st, &fill);
	x->tcp_pairs_placed = fill.placed;
	x->tcp_pairs_unplaced = fill.unplaced;
	return err;
}

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
			set_bit(x->skel->bss->xm_vip_filter, &k);
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

static int attach_tc(struct xm_xdp *x, const struct xm_xdp_uplink *u)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = u->ifindex, .attach_point = BPF_TC_EGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = XM_TC_HANDLE, .priority = XM_TC_PRIORITY,
			    .flags = BPF_TC_F_REPLACE, .prog_fd = bpf_program__fd(x->skel->progs.xm_tc_nat));
	int err = bpf_tc_hook_create(&hook);

	if (err && err != -EEXIST) {
		log_error("uplink %s: create clsact: %s", u->name, strerror(-err));
		return err;
	}
	/* TC filters are not links: REPLACE by our handle/priority swaps the program in place on restart. */
	err = bpf_tc_attach(&hook, &opts);
	if (err)
		log_error("uplink %s: attach TC egress: %s", u->name, strerror(-err));
	return err;
}

static int detach_tc(int ifindex, const char *what)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, q, .handle = XM_TC_HANDLE, .priority = XM_TC_PRIORITY);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, d, .handle = XM_TC_HANDLE, .priority = XM_TC_PRIORITY);
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd, err;

	if (bpf_tc_query(&hook, &q))
		return 0; /* nothing of ours there */
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (err || strcmp(info.name, "xm_tc_nat"))
		return 0; /* someone else's filter at our handle: leave it */
	err = bpf_tc_detach(&hook, &d);
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
	LIBBPF_OPTS(bpf_object_open_opts, opts);
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

	opts.pin_root_path = x->bpffs;
	x->skel = xdp_lb__open_opts(&opts);
	if (!x->skel) {
		err = -errno;
		log_error("open BPF object xdp_lb: %s", strerror(errno));
		return err;
	}
	pins_replace_incompatible(x->skel->obj);
	err = xdp_lb__load(x->skel);
	if (err) {
		log_error("load BPF object xdp_lb: %s (maps pinned under %s by an incompatible version? xmesh "
			  "cleanup)",
			  strerror(-err), bpffs);
		goto fail;
	}
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
	xdp_lb__destroy(x->skel);
	x->skel = NULL;
}

int xdp_datapath_remove(const char *bpffs)
{
	__u32 k, next, *prev = NULL;
	int fd = pins_open(bpffs, "xm_xdp_ifaces"), err = 0;

	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		char name[IF_NAMESIZE] = "?";

		k = next;
		prev = &k;
		if (!if_indextoname(k, name))
			continue; /* not in this namespace (or gone with it) */
		if (detach_tc((int)k, name))
			err = -EIO;
	}
	close(fd);
	return err;
}

static uint64_t percpu_sum(int fd, __u32 key, size_t value_size, size_t field_off)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	uint64_t sum = 0;
	uint8_t *vals;

	if (ncpu <= 0 || !(vals = calloc((size_t)ncpu, (value_size + 7) & ~7UL)))
		return 0;
	if (bpf_map_lookup_elem(fd, &key, vals) == 0)
		for (i = 0; i < ncpu; i++) {
			uint64_t v;

			memcpy(&v, vals + (size_t)i * ((value_size + 7) & ~7UL) + field_off, sizeof(v));
			sum += v;
		}
	free(vals);
	return sum;
}

static uint64_t ct_entries(int fd)
{
	static struct xm_ct_key keys[4096];
	static struct xm_ct_value vals[4096];
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	__u64 in = 0, out = 0;
	void *inp = NULL;
	uint64_t total = 0;

	for (;;) {
		__u32 count = 4096;
		int err = bpf_map_lookup_batch(fd, inp, &out, keys, vals, &count, &o);

		total += count;
		if (err)
			break; /* ENOENT: the end */
		in = out;
		inp = &in;
	}
	return total;
}

static void vip_counters(const struct xm_xdp *x, const struct xm_svc_key *key, struct xm_xdp_vip_counters *sum)
{
	size_t sz = sizeof(struct xm_xdp_vip_counters), f;
	struct xm_svc_value v;

	memset(sum, 0, sizeof(*sum));
	if (bpf_map_lookup_elem(bpf_map__fd(x->skel->maps.xm_services), key, &v) < 0 || !v.svc_id)
		return;
	for (f = 0; f < XM_VIP_VERDICT_MAX; f++)
		sum->packets[f] = percpu_sum(bpf_map__fd(x->skel->maps.xm_xdp_vip_stats), v.svc_id, sz, f * 8);
	sum->bytes = percpu_sum(bpf_map__fd(x->skel->maps.xm_xdp_vip_stats), v.svc_id, sz,
				offsetof(struct xm_xdp_vip_counters, bytes));
}

void xdp_datapath_status(const struct xm_xdp *x, const struct xm_lb_state *st, bool json, struct strbuf *out)
{
	struct xm_xdp_vip_counters c;
	int stats_fd, ct_fd;
	size_t i, n = 0;
	uint64_t ct;
	char key[80];

	if (!x || !x->skel) {
		if (json)
			sb_puts(out, "{\"uplinks\":[]}");
		return;
	}
	stats_fd = bpf_map__fd(x->skel->maps.xm_xdp_stats);
	ct_fd = bpf_map__fd(x->skel->maps.xm_ct);
	ct = ct_entries(ct_fd);
	if (json) {
		sb_puts(out, "{\"uplinks\":[");
		for (i = 0; i < x->n_uplinks; i++) {
			sb_puts(out, i ? "," : "");
			sb_json_str(out, x->uplinks[i].name);
		}
		sb_printf(out,
			  "],\"conntrack\":{\"entries\":%llu,\"capacity\":%u},\"tcp_counters\":{\"placed\":%zu,"
			  "\"unplaced\":%zu,\"positions\":%d},\"verdicts\":{",
			  (unsigned long long)ct, XM_CT_MAX, x->tcp_pairs_placed, x->tcp_pairs_unplaced,
			  XM_XDP_TCP_SLOTS);
		for (i = 0; i < XM_XDP_STAT_MAX; i++)
			sb_printf(out, "%s\"%s\":%llu", i ? "," : "", stat_names[i],
				  (unsigned long long)percpu_sum(stats_fd, (__u32)i, sizeof(struct xm_counter), 0));
		sb_puts(out, "},\"vips\":[");
		for (i = 0; st && i < st->n_services; i++) {
			if (!(st->services[i].flags & XM_SVC_F_EXTERNAL))
				continue;
			vip_counters(x, &st->services[i].key, &c);
			lb_format_key(&st->services[i].key, key, sizeof(key));
			sb_puts(out, n++ ? ",{\"vip\":" : "{\"vip\":");
			sb_json_str(out, key);
			sb_printf(
			    out,
			    ",\"local\":%llu,\"remote\":%llu,\"drop\":%llu,\"pass\":%llu,\"new_flows\":%llu,"
			    "\"bytes\":%llu}",
			    (unsigned long long)c.packets[XM_VIP_LOCAL], (unsigned long long)c.packets[XM_VIP_REMOTE],
			    (unsigned long long)c.packets[XM_VIP_DROP], (unsigned long long)c.packets[XM_VIP_PASS],
			    (unsigned long long)c.packets[XM_VIP_NEW_FLOW], (unsigned long long)c.bytes);
		}
		sb_puts(out, "]}");
		return;
	}
	sb_puts(out, "xdp: uplinks");
	for (i = 0; i < x->n_uplinks; i++)
		sb_printf(out, " %s%s", x->uplinks[i].name, x->uplinks[i].adopted ? " (adopted)" : "");
	sb_printf(out, "\nxdp: conntrack %llu/%u entries (%.1f%%)\n", (unsigned long long)ct, XM_CT_MAX,
		  100.0 * (double)ct / XM_CT_MAX);
	sb_printf(out, "xdp: istio tcp counters for %zu (service port, local backend) pairs in %d positions",
		  x->tcp_pairs_placed, XM_XDP_TCP_SLOTS);
	if (x->tcp_pairs_unplaced)
		sb_printf(out, "; %zu pairs found no room and are not counted", x->tcp_pairs_unplaced);
	sb_puts(out, "\nxdp: verdicts");
	for (i = 0; i < XM_XDP_STAT_MAX; i++) {
		uint64_t v = percpu_sum(stats_fd, (__u32)i, sizeof(struct xm_counter), 0);

		if (v)
			sb_printf(out, " %s=%llu", stat_names[i], (unsigned long long)v);
	}
	sb_puts(out, "\n");
	for (i = 0; st && i < st->n_services; i++) {
		if (!(st->services[i].flags & XM_SVC_F_EXTERNAL))
			continue;
		vip_counters(x, &st->services[i].key, &c);
		lb_format_key(&st->services[i].key, key, sizeof(key));
		sb_printf(out, "xdp: vip %s local=%llu remote=%llu drop=%llu pass=%llu new_flows=%llu bytes=%llu\n",
			  key, (unsigned long long)c.packets[XM_VIP_LOCAL],
			  (unsigned long long)c.packets[XM_VIP_REMOTE], (unsigned long long)c.packets[XM_VIP_DROP],
			  (unsigned long long)c.packets[XM_VIP_PASS], (unsigned long long)c.packets[XM_VIP_NEW_FLOW],
			  (unsigned long long)c.bytes);
	}
}

/* Prometheus families of the XDP path: verdict counters, connection-table fill, per-VIP packets. */
void xdp_datapath_metrics(const struct xm_xdp *x, const struct xm_lb_state *st, struct xm_scrape *sc)
{
	static const char *const action[1] = { "action" };
	static const char *const vip_labels[3] = { "destination_service", "vip", "verdict" };
	static const char *const verdicts[XM_VIP_VERDICT_MAX] = { "local", "remote", "drop", "pass", "new_flow" };
	struct xm_xdp_vip_counters c;
	struct xm_scrape_family *f;
	int stats_fd;
	size_t i, v;

	if (!x || !x->skel)
		return;
	stats_fd = bpf_map__fd(x->skel->maps.xm_xdp_stats);
	f = scrape_family(sc, "xmesh_xdp_packets_total", "counter",
			  "Packets the XDP and TC programs handled, by action.");
	for (i = 0; i < XM_XDP_STAT_MAX; i++) {
		const char *value[1] = { stat_names[i] };

		scrape_u64(f, action, value, 1, percpu_sum(stats_fd, (__u32)i, sizeof(struct xm_counter), 0));
	}
	f = scrape_family(sc, "xmesh_conntrack_entries", "gauge", "Flows in the XDP connection table.");
	scrape_u64(f, NULL, NULL, 0, ct_entries(bpf_map__fd(x->skel->maps.xm_ct)));
	f = scrape_family(sc, "xmesh_conntrack_capacity", "gauge", "Capacity of the XDP connection table.");
	scrape_u64(f, NULL, NULL, 0, XM_CT_MAX);
	f = scrape_family(sc, "xmesh_xdp_istio_tcp_pairs", "gauge",
			  "(service port, local backend) pairs of external services whose Istio TCP metrics XDP counts "
			  "(placed), and those that found no room (unplaced: not counted).");
	{
		static const char *const state[1] = { "state" };
		const char *placed[1] = { "placed" }, *unplaced[1] = { "unplaced" };

		scrape_u64(f, state, placed, 1, x->tcp_pairs_placed);
		scrape_u64(f, state, unplaced, 1, x->tcp_pairs_unplaced);
	}
	f = scrape_family(sc, "xmesh_xdp_vip_packets_total", "counter", "Packets to an external VIP, by verdict.");
	for (i = 0; st && i < st->n_services; i++) {
		const struct xm_lb_service *s = &st->services[i];
		char svc[400], key[80];

		if (!(s->flags & XM_SVC_F_EXTERNAL))
			continue;
		vip_counters(x, &s->key, &c);
		snprintf(svc, sizeof(svc), "%s.%s.svc.cluster.local", s->name, s->ns);
		lb_format_key(&s->key, key, sizeof(key));
		for (v = 0; v < XM_VIP_VERDICT_MAX; v++) {
			const char *values[3] = { svc, key, verdicts[v] };

			scrape_u64(f, vip_labels, values, 3, c.packets[v]);
		}
	}
}
