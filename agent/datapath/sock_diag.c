// SPDX-License-Identifier: Apache-2.0
/* TCP sockets through NETLINK_SOCK_DIAG (datapath/sock_diag.h). */
#include "datapath/sock_diag.h"

#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "datapath/nl_raw.h"

struct diag_req {
	struct nlmsghdr nh;
	struct inet_diag_req_v2 r;
};

struct dump_ctx {
	sock_diag_fn fn;
	void *arg;
};

static int on_sock(const struct nlmsghdr *nh, void *arg)
{
	const struct dump_ctx *c = arg;
	const struct inet_diag_msg *m = NLMSG_DATA(nh);
	struct xm_diag_sock s;

	if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return 0;
	memset(&s, 0, sizeof(s));
	s.family = m->idiag_family;
	s.state = m->idiag_state;
	s.id = m->id;
	return c->fn(&s, c->arg);
}

int sock_diag_dump_tcp(int fd, int af, uint32_t states, sock_diag_fn fn, void *arg)
{
	struct diag_req q;
	struct dump_ctx c = { .fn = fn, .arg = arg };

	memset(&q, 0, sizeof(q));
	q.nh.nlmsg_len = sizeof(q);
	q.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.r.sdiag_family = (uint8_t)af;
	q.r.sdiag_protocol = IPPROTO_TCP;
	q.r.idiag_states = states;
	return nl_raw_request(fd, &q.nh, on_sock, &c);
}

int sock_diag_destroy_tcp(int fd, const struct xm_diag_sock *s)
{
	struct diag_req q;

	memset(&q, 0, sizeof(q));
	q.nh.nlmsg_len = sizeof(q);
	q.nh.nlmsg_type = SOCK_DESTROY;
	q.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	q.r.sdiag_family = s->family;
	q.r.sdiag_protocol = IPPROTO_TCP;
	q.r.idiag_states = ~0u;
	q.r.id = s->id;
	return nl_raw_request(fd, &q.nh, NULL, NULL);
}
