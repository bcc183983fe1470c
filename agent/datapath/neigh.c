// SPDX-License-Identifier: Apache-2.0
#include "datapath/neigh.h"

#include <errno.h>
#include <net/if_arp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/grow.h"
#include "core/log.h"

struct nexthop {
	int family; /* AF_INET / AF_INET6 */
	int ifindex;
	unsigned char addr[16];
	uint32_t mtu; /* route_get: the route's RTAX_MTU, 0 if it has none (not part of the identity) */
};

struct nexthops {
	struct nexthop *v;
	size_t n, cap;
};

/* A neighbour entry with a valid link-layer address, as the dump found it. */
struct resolved {
	struct nexthop h;
	uint8_t lladdr[6];
};

/* What one dump of the neighbour table collects. */
struct neigh_dump {
	struct nexthops ours; /* entries carrying XM_NEIGH_PROTO */
	struct resolved *res; /* every entry with a valid Ethernet address */
	size_t n_res, cap_res;
};

static size_t alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool nexthop_eq(const struct nexthop *a, const struct nexthop *b)
{
	return a->family == b->family && a->ifindex == b->ifindex && !memcmp(a->addr, b->addr, alen(a->family));
}

static bool nexthops_has(const struct nexthops *s, const struct nexthop *h)
{
	for (size_t i = 0; i < s->n; i++)
		if (nexthop_eq(&s->v[i], h))
			return true;
	return false;
}

static int nexthops_add(struct nexthops *s, const struct nexthop *h)
{
	if (nexthops_has(s, h))
		return 0;
	if (XM_GROW(s->v, s->cap, s->n + 1))
		return -ENOMEM;
	s->v[s->n++] = *h;
	return 0;
}

static int on_route(struct nl_msg *msg, void *arg)
{
	struct nexthop *h = arg;
	struct nlmsghdr *nh = nlmsg_hdr(msg);
	struct rtmsg *rtm = nlmsg_data(nh);
	struct nlattr *tb[RTA_MAX + 1];

	if (nh->nlmsg_type != RTM_NEWROUTE || nlmsg_parse(nh, sizeof(*rtm), tb, RTA_MAX, NULL) < 0)
		return NL_SKIP;
	if (rtm->rtm_type != RTN_UNICAST || !tb[RTA_OIF])
		return NL_SKIP; /* local, blackhole, unreachable: no neighbour to resolve */
	h->ifindex = (int)nla_get_u32(tb[RTA_OIF]);
	if (tb[RTA_METRICS]) {
		struct nlattr *mx[RTAX_MAX + 1];

		if (nla_parse_nested(mx, RTAX_MAX, tb[RTA_METRICS], NULL) == 0 && mx[RTAX_MTU] &&
		    nla_len(mx[RTAX_MTU]) >= 4)
			h->mtu = nla_get_u32(mx[RTAX_MTU]);
	}
	if (tb[RTA_GATEWAY] && nla_len(tb[RTA_GATEWAY]) == (int)alen(h->family))
		memcpy(h->addr, nla_data(tb[RTA_GATEWAY]), alen(h->family));
	return NL_OK;
}

/* The next hop the kernel would use for the node: its gateway, or the node itself when on-link. */
static int route_get(struct nl_sock *sk, const struct xm_neigh_node *node, struct nexthop *h)
{
	struct rtmsg rtm = { .rtm_family = node->family == XM_FAMILY_V4 ? AF_INET : AF_INET6 };
	struct nl_msg *msg;
	int err;

	memset(h, 0, sizeof(*h));
	h->family = rtm.rtm_family;
	rtm.rtm_dst_len = (unsigned char)(alen(h->family) * 8);
	memcpy(h->addr, node->addr.bytes, alen(h->family));
	msg = nlmsg_alloc_simple(RTM_GETROUTE, 0);
	if (!msg)
		return -ENOMEM;
	if (nlmsg_append(msg, &rtm, sizeof(rtm), NLMSG_ALIGNTO) < 0 ||
	    nla_put(msg, RTA_DST, (int)alen(h->family), h->addr) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_route, h);
	err = nl_send_auto(sk, msg);
	nlmsg_free(msg);
	if (err >= 0)
		err = nl_recvmsgs_default(sk);
	if (err >= 0)
		err = nl_wait_for_ack(sk); /* the request carried NLM_F_ACK (libnl's auto-ack) */
	if (err < 0)
		return -ENETUNREACH; /* no route: nothing to keep resolved */
	return h->ifindex > 0 ? 0 : -ENETUNREACH;
}

/* The states in which bpf_fib_lookup uses an entry's address (NUD_VALID without NUD_NOARP). */
#define RESOLVED_STATES (NUD_PERMANENT | NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE)

/* Collects the entries carrying our protocol, and every resolved Ethernet neighbour (dump callback). */
static int on_neigh(struct nl_msg *msg, void *arg)
{
	struct neigh_dump *d = arg;
	struct nlmsghdr *nh = nlmsg_hdr(msg);
	struct ndmsg *ndm = nlmsg_data(nh);
	struct nlattr *tb[NDA_MAX + 1];
	struct nexthop h = { .family = ndm->ndm_family, .ifindex = ndm->ndm_ifindex };

	if (nh->nlmsg_type != RTM_NEWNEIGH || nlmsg_parse(nh, sizeof(*ndm), tb, NDA_MAX, NULL) < 0)
		return NL_SKIP;
	if ((h.family != AF_INET && h.family != AF_INET6) || !tb[NDA_DST] ||
	    nla_len(tb[NDA_DST]) != (int)alen(h.family))
		return NL_OK;
	memcpy(h.addr, nla_data(tb[NDA_DST]), alen(h.family));
	if (tb[NDA_PROTOCOL] && nla_get_u8(tb[NDA_PROTOCOL]) == XM_NEIGH_PROTO)
		nexthops_add(&d->ours, &h);
	if ((ndm->ndm_state & RESOLVED_STATES) && tb[NDA_LLADDR] && nla_len(tb[NDA_LLADDR]) == 6 &&
	    !XM_GROW(d->res, d->cap_res, d->n_res + 1)) {
		d->res[d->n_res].h = h;
		memcpy(d->res[d->n_res++].lladdr, nla_data(tb[NDA_LLADDR]), 6);
	}
	return NL_OK;
}

static int dump_neighbours(struct nl_sock *sk, struct neigh_dump *d)
{
	struct ndmsg ndm = { .ndm_family = AF_UNSPEC };
	int err;

	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_neigh, d);
	err = nl_send_simple(sk, RTM_GETNEIGH, NLM_F_DUMP, &ndm, sizeof(ndm));
	if (err >= 0)
		err = nl_recvmsgs_default(sk);
	return err < 0 ? err : 0;
}

/* add: a managed, externally learned entry (never collected); else the entry's removal. */
static int neigh_change(struct nl_sock *sk, const struct nexthop *h, bool add)
{
	struct ndmsg ndm = {
		.ndm_family = (unsigned char)h->family,
		.ndm_ifindex = h->ifindex,
		.ndm_state = NUD_NONE,
		.ndm_flags = add ? NTF_EXT_LEARNED : 0,
	};
	struct nl_msg *msg =
	    nlmsg_alloc_simple(add ? RTM_NEWNEIGH : RTM_DELNEIGH, add ? NLM_F_CREATE | NLM_F_REPLACE : 0);

	if (!msg)
		return -ENOMEM;
	if (nlmsg_append(msg, &ndm, sizeof(ndm), NLMSG_ALIGNTO) < 0 ||
	    nla_put(msg, NDA_DST, (int)alen(h->family), h->addr) < 0 ||
	    (add && (nla_put_u32(msg, NDA_FLAGS_EXT, NTF_EXT_MANAGED) < 0 ||
		     nla_put_u8(msg, NDA_PROTOCOL, XM_NEIGH_PROTO) < 0))) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return nl_send_sync(sk, msg); /* frees msg */
}

/* The egress interface's MAC and MTU (Ethernet only). */
static bool link_info(int fd, int ifindex, uint8_t mac[6], uint32_t *mtu)
{
	struct ifreq ifr = { 0 };

	if (fd < 0 || !if_indextoname((unsigned)ifindex, ifr.ifr_name) || ioctl(fd, SIOCGIFMTU, &ifr) < 0)
		return false;
	*mtu = (uint32_t)ifr.ifr_mtu;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 || ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		return false;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return true;
}

/* Fills the node's resolved next hop h from the dump, if the kernel has it resolved. */
static void node_resolve(struct xm_neigh_node *node, const struct nexthop *h, const struct neigh_dump *d, int fd)
{
	uint32_t dev_mtu;

	for (size_t i = 0; i < d->n_res; i++) {
		if (!nexthop_eq(&d->res[i].h, h) || !link_info(fd, h->ifindex, node->smac, &dev_mtu))
			continue;
		memcpy(node->dmac, d->res[i].lladdr, 6);
		node->ifindex = h->ifindex;
		node->mtu = h->mtu && h->mtu < dev_mtu ? h->mtu : dev_mtu;
		node->resolved = true;
		return;
	}
}

int neigh_sync(struct xm_neigh_node *nodes, size_t n)
{
	struct nexthops want = { 0 };
	struct neigh_dump d = { 0 };
	struct nl_sock *sk = nl_socket_alloc();
	int err, derr, fd;

	if (!sk)
		return -ENOMEM;
	err = nl_connect(sk, NETLINK_ROUTE);
	if (err < 0) {
		log_warn("neighbours: netlink: %s", nl_geterror(err));
		nl_socket_free(sk);
		return -EIO;
	}
	/* Before the entries are touched: what the kernel has resolved now is what XDP may use. */
	derr = dump_neighbours(sk, &d);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	for (size_t i = 0; i < n; i++) {
		struct nexthop h;

		nodes[i].managed = false;
		nodes[i].resolved = false;
		if (route_get(sk, &nodes[i], &h))
			continue;
		node_resolve(&nodes[i], &h, &d, fd);
		err = neigh_change(sk, &h, true);
		if (err < 0) {
			log_debug("neighbours: no managed entry for a node's next hop: %s", nl_geterror(err));
			continue;
		}
		nodes[i].managed = true;
		nexthops_add(&want, &h);
	}
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; !derr && i < d.ours.n; i++)
		if (!nexthops_has(&want, &d.ours.v[i]))
			neigh_change(sk, &d.ours.v[i], false);
	free(want.v);
	free(d.ours.v);
	free(d.res);
	nl_socket_free(sk);
	return derr < 0 ? -EIO : 0;
}
