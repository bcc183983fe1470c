// SPDX-License-Identifier: Apache-2.0
/* The pods' network namespaces, by their veths' link-netnsid (datapath/pod_netns.h). */
#include "datapath/pod_netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "core/grow.h"
#include "datapath/nl_raw.h"

struct ids {
	int32_t *v;
	size_t n, cap;
	bool nomem;
};

static bool ids_has(const struct ids *s, int32_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return true;
	return false;
}

static int on_link(const struct nlmsghdr *nh, void *arg)
{
	struct ids *s = arg;
	size_t hdr = NLMSG_ALIGN(sizeof(struct ifinfomsg));
	const struct nlattr *a;
	int32_t id;

	if (nh->nlmsg_type != RTM_NEWLINK || nh->nlmsg_len < NLMSG_LENGTH(hdr))
		return 0;
	a = nl_raw_attr((const char *)NLMSG_DATA(nh) + hdr, nh->nlmsg_len - NLMSG_LENGTH(hdr), IFLA_LINK_NETNSID);
	if (!a || a->nla_len < NLA_HDRLEN + sizeof(id))
		return 0;
	memcpy(&id, (const char *)a + NLA_HDRLEN, sizeof(id));
	if (id < 0 || ids_has(s, id))
		return 0;
	if (XM_GROW(s->v, s->cap, s->n + 1)) {
		s->nomem = true;
		return 0;
	}
	s->v[s->n++] = id;
	return 0;
}

/* The ids of the namespaces the links of this namespace lead to. */
static int peer_ids(int rt, struct ids *s)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} q;
	int err;

	memset(&q, 0, sizeof(q));
	q.nh.nlmsg_len = sizeof(q);
	q.nh.nlmsg_type = RTM_GETLINK;
	q.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.ifi.ifi_family = AF_UNSPEC;
	err = nl_raw_request(rt, &q.nh, on_link, s);
	return err ? err : s->nomem ? -ENOMEM : 0;
}

static int on_nsid(const struct nlmsghdr *nh, void *arg)
{
	size_t hdr = NLMSG_ALIGN(sizeof(struct rtgenmsg));
	const struct nlattr *a;

	if (nh->nlmsg_type != RTM_NEWNSID || nh->nlmsg_len < NLMSG_LENGTH(hdr))
		return 0;
	a = nl_raw_attr((const char *)NLMSG_DATA(nh) + hdr, nh->nlmsg_len - NLMSG_LENGTH(hdr), NETNSA_NSID);
	if (a && a->nla_len >= NLA_HDRLEN + sizeof(int32_t))
		memcpy(arg, (const char *)a + NLA_HDRLEN, sizeof(int32_t));
	return 0;
}

/* The id this namespace gives the namespace open at fd (-1: none, or fd is no namespace). */
static int32_t nsid_of(int rt, int fd)
{
	struct {
		struct nlmsghdr nh;
		struct rtgenmsg g;
		char pad[NLMSG_ALIGN(sizeof(struct rtgenmsg)) - sizeof(struct rtgenmsg)];
		struct nlattr a;
		uint32_t fd;
	} q;
	int32_t id = -1;

	memset(&q, 0, sizeof(q));
	q.nh.nlmsg_len = sizeof(q);
	q.nh.nlmsg_type = RTM_GETNSID;
	q.nh.nlmsg_flags = NLM_F_REQUEST;
	q.g.rtgen_family = AF_UNSPEC;
	q.a.nla_len = NLA_HDRLEN + sizeof(uint32_t);
	q.a.nla_type = NETNSA_FD;
	q.fd = (uint32_t)fd;
	if (nl_raw_request(rt, &q.nh, on_nsid, &id))
		return -1;
	return id;
}

long pod_netns_find(const char *const *dirs, struct pod_netns **out)
{
	struct ids peers = { 0 }, taken = { 0 };
	struct pod_netns *v = NULL;
	size_t n = 0, cap = 0;
	int rt = nl_raw_open(NETLINK_ROUTE), err;

	*out = NULL;
	if (rt < 0)
		return rt;
	err = peer_ids(rt, &peers);
	for (size_t d = 0; !err && peers.n && dirs[d]; d++) {
		DIR *dir = opendir(dirs[d]);
		struct dirent *e;

		while (dir && (e = readdir(dir))) {
			char path[4096];
			int32_t id;
			int fd;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dirs[d], e->d_name);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			id = nsid_of(rt, fd);
			/* /var/run/netns is /run/netns on most hosts: each namespace once */
			if (id < 0 || !ids_has(&peers, id) || ids_has(&taken, id) || XM_GROW(v, cap, n + 1) ||
			    XM_GROW(taken.v, taken.cap, taken.n + 1)) {
				close(fd);
				continue;
			}
			taken.v[taken.n++] = id;
			v[n].fd = fd;
			v[n].nsid = id;
			snprintf(v[n].name, sizeof(v[n].name), "%.63s", e->d_name);
			n++;
		}
		if (dir)
			closedir(dir);
	}
	close(rt);
	free(peers.v);
	free(taken.v);
	if (err) {
		pod_netns_close(v, n);
		return err;
	}
	*out = v;
	return (long)n;
}

void pod_netns_close(struct pod_netns *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(v[i].fd);
	free(v);
}
