// SPDX-License-Identifier: Apache-2.0
#include "datapath/neigh.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/grow.h"
#include "core/log.h"

struct nexthop {
	int family; /* AF_INET / AF_INET6 */
	int ifindex;
	unsigned char addr[16];
};

struct nexthops {
	struct nexthop *v;
	size_t n, cap;
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

/* Collects the entries carrying our protocol (dump callback). */
static int on_neigh(struct nl_msg *msg, void *arg)
{
	struct nexthops *ours = arg;
	struct nlmsghdr *nh = nlmsg_hdr(msg);
	struct ndmsg *ndm = nlmsg_data(nh);
	struct nlattr *tb[NDA_MAX + 1];
	struct nexthop h = { .family = ndm->ndm_family, .ifindex = ndm->ndm_ifindex };

	if (nh->nlmsg_type != RTM_NEWNEIGH || nlmsg_parse(nh, sizeof(*ndm), tb, NDA_MAX, NULL) < 0)
		return NL_SKIP;
	if ((h.family != AF_INET && h.family != AF_INET6) || !tb[NDA_PROTOCOL] ||
	    nla_get_u8(tb[NDA_PROTOCOL]) != XM_NEIGH_PROTO || !tb[NDA_DST] ||
	    nla_len(tb[NDA_DST]) != (int)alen(h.family))
		return NL_OK;
	memcpy(h.addr, nla_data(tb[NDA_DST]), alen(h.family));
	nexthops_add(ours, &h);
	return NL_OK;
}

static int dump_ours(struct nl_sock *sk, struct nexthops *ours)
{
	struct ndmsg ndm = { .ndm_family = AF_UNSPEC };
	int err;

	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_neigh, ours);
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

int neigh_sync(struct xm_neigh_node *nodes, size_t n)
{
	struct nexthops want = { 0 }, ours = { 0 };
	struct nl_sock *sk = nl_socket_alloc();
	int err;

	if (!sk)
		return -ENOMEM;
	err = nl_connect(sk, NETLINK_ROUTE);
	if (err < 0) {
		log_warn("neighbours: netlink: %s", nl_geterror(err));
		nl_socket_free(sk);
		return -EIO;
	}
	for (size_t i = 0; i < n; i++) {
		struct nexthop h;

		nodes[i].managed = false;
		if (route_get(sk, &nodes[i], &h))
			continue;
		err = neigh_change(sk, &h, true);
		if (err < 0) {
			log_debug("neighbours: no managed entry for a node's next hop: %s", nl_geterror(err));
			continue;
		}
		nodes[i].managed = true;
		nexthops_add(&want, &h);
	}
	err = dump_ours(sk, &ours);
	for (size_t i = 0; !err && i < ours.n; i++)
		if (!nexthops_has(&want, &ours.v[i]))
			neigh_change(sk, &ours.v[i], false);
	free(want.v);
	free(ours.v);
	nl_socket_free(sk);
	return err < 0 ? -EIO : 0;
}
