// SPDX-License-Identifier: Apache-2.0
/*
 * Inbound HBONE steering: one routing rule per uplink and a local default route, for IPv4 and IPv6
 * (datapath/hbone_steer.h).
 */
#include "datapath/hbone_steer.h"

#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define HBONE_DPORT 15008

static int talk(struct nl_sock *sk, struct nl_msg *msg)
{
	int err = nl_send_auto(sk, msg);

	nlmsg_free(msg);
	if (err < 0)
		return -EIO;
	err = nl_wait_for_ack(sk);
	if (err >= 0)
		return 0;
	return err == -NLE_EXIST	  ? -EEXIST
	       : err == -NLE_OBJ_NOTFOUND ? -ENOENT
	       : err == -NLE_PERM	  ? -EPERM
	       : err == -NLE_AF_NOSUPPORT ? -EAFNOSUPPORT
					  : -EIO;
}

static struct nl_msg *rule_msg(int family, int type, int flags, const char *iface)
{
	struct fib_rule_hdr h = { .family = (uint8_t)family, .action = FR_ACT_TO_TBL };
	struct fib_rule_port_range dport = { .start = HBONE_DPORT, .end = HBONE_DPORT };
	struct nl_msg *msg = nlmsg_alloc_simple(type, flags | NLM_F_REQUEST);

	if (!msg)
		return NULL;
	if (nlmsg_append(msg, &h, sizeof(h), NLMSG_ALIGNTO) || nla_put_u32(msg, FRA_PRIORITY, XM_HBONE_STEER_PRIO) ||
	    nla_put_u32(msg, FRA_TABLE, XM_HBONE_STEER_TABLE) || nla_put_string(msg, FRA_IFNAME, iface) ||
	    nla_put_u8(msg, FRA_IP_PROTO, IPPROTO_TCP) || nla_put(msg, FRA_DPORT_RANGE, sizeof(dport), &dport)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

static int rule(struct nl_sock *sk, int family, int type, int flags, const char *iface)
{
	struct nl_msg *msg = rule_msg(family, type, flags | NLM_F_ACK, iface);

	return msg ? talk(sk, msg) : -ENOMEM;
}

/* "local 0.0.0.0/0 dev lo" (IPv4) or "local ::/0 dev lo" (IPv6) in the steering table. */
static struct nl_msg *route_msg(int family, int type, int flags, int *err)
{
	struct rtmsg r = { .rtm_family = (unsigned char)family,
			   .rtm_table = RT_TABLE_UNSPEC,
			   .rtm_protocol = RTPROT_STATIC,
			   .rtm_scope = RT_SCOPE_HOST,
			   .rtm_type = RTN_LOCAL };
	struct nl_msg *msg = nlmsg_alloc_simple(type, flags | NLM_F_REQUEST);
	unsigned lo = if_nametoindex("lo");

	*err = -ENOMEM;
	if (!msg)
		return NULL;
	if (!lo || nlmsg_append(msg, &r, sizeof(r), NLMSG_ALIGNTO) ||
	    nla_put_u32(msg, RTA_TABLE, XM_HBONE_STEER_TABLE) || nla_put_u32(msg, RTA_OIF, lo)) {
		nlmsg_free(msg);
		*err = lo ? -ENOMEM : -ENODEV;
		return NULL;
	}
	return msg;
}

static int route(struct nl_sock *sk, int family, int type, int flags)
{
	int err;
	struct nl_msg *msg = route_msg(family, type, flags | NLM_F_ACK, &err);

	return msg ? talk(sk, msg) : err;
}

/* Appends msg's bytes to buf (freeing msg): 0 or -ENOSPC. */
static int append(struct nl_msg *msg, uint8_t *buf, size_t cap, size_t *len)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	size_t n = NLMSG_ALIGN(h->nlmsg_len);
	int err = 0;

	if (n > cap - *len)
		err = -ENOSPC;
	else
		memcpy(buf + *len, h, h->nlmsg_len);
	if (!err)
		*len += n;
	nlmsg_free(msg);
	return err;
}

int hbone_steer_removal(const char *const *ifaces, size_t n, void *buf, size_t cap)
{
	size_t len = 0;
	struct nl_msg *msg;
	int err = 0;

	memset(buf, 0, cap);
	/* Both families: on a host without IPv6 the kernel answers those with an error nobody reads. */
	for (size_t f = 0; !err && f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;

		for (size_t i = 0; !err && i < n; i++) {
			msg = rule_msg(family, RTM_DELRULE, 0, ifaces[i]);
			err = msg ? append(msg, buf, cap, &len) : -ENOMEM;
		}
		if (!err) {
			msg = route_msg(family, RTM_DELROUTE, 0, &err);
			err = msg ? append(msg, buf, cap, &len) : err;
		}
	}
	return err ? err : (int)len;
}

static struct nl_sock *open_rtnl(void)
{
	struct nl_sock *sk = nl_socket_alloc();

	if (sk && nl_connect(sk, NETLINK_ROUTE)) {
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

/* The route and the rules of one family, keeping what a previous run left. */
static int install_family(struct nl_sock *sk, int family, const char *const *ifaces, size_t n)
{
	int err = route(sk, family, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);

	for (size_t i = 0; !err && i < n; i++) {
		/*
		 * A rule a previous agent left (kept across a restart: its holder has the listener) stays as it is:
		 * removing and adding it again would forward a peer's SYN to the pod in between.
		 */
		err = rule(sk, family, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, ifaces[i]);
		if (err == -EEXIST)
			err = 0;
	}
	return err;
}

static void remove_family(struct nl_sock *sk, int family, const char *const *ifaces, size_t n)
{
	for (size_t i = 0; i < n; i++)
		while (rule(sk, family, RTM_DELRULE, 0, ifaces[i]) == 0)
			;
	route(sk, family, RTM_DELROUTE, 0);
}

int hbone_steer_install(const char *const *ifaces, size_t n)
{
	struct nl_sock *sk = open_rtnl();
	int err;

	if (!sk)
		return -EIO;
	err = install_family(sk, AF_INET, ifaces, n);
	if (!err) {
		err = install_family(sk, AF_INET6, ifaces, n);
		/* A host without IPv6 (ipv6.disable=1) has no IPv6 pods to serve. */
		if (err == -EAFNOSUPPORT)
			err = 0;
	}
	nl_socket_free(sk);
	return err;
}

void hbone_steer_remove(const char *const *ifaces, size_t n)
{
	struct nl_sock *sk = open_rtnl();

	if (!sk)
		return;
	remove_family(sk, AF_INET, ifaces, n);
	remove_family(sk, AF_INET6, ifaces, n);
	nl_socket_free(sk);
}
