// SPDX-License-Identifier: Apache-2.0
/* Plain netlink requests (datapath/nl_raw.h). */
#include "datapath/nl_raw.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int nl_raw_open(int protocol)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int nl_raw_request(int fd, struct nlmsghdr *req, nl_raw_fn fn, void *arg)
{
	static __thread uint32_t seq;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	bool once = !(req->nlmsg_flags & (NLM_F_DUMP | NLM_F_ACK));
	long buf[32768 / sizeof(long)]; /* the kernel's largest dump message batch */
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int stop = 0;

	req->nlmsg_seq = ++seq;
	if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recvmsg(fd, &mh, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (mh.msg_flags & MSG_TRUNC) /* an answer cut short: never judge on part of it */
			return -EMSGSIZE;
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_seq != req->nlmsg_seq)
				continue;
			if (nh->nlmsg_type == NLMSG_DONE)
				return stop;
			if (nh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nh);

				if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					return -EPROTO;
				return e->error ? e->error : stop;
			}
			if (!stop && fn)
				stop = fn(nh, arg); /* a dump is read to its end all the same */
			if (once)
				return stop;
		}
	}
}

const struct nlattr *nl_raw_attr(const void *attrs, size_t len, int type)
{
	const struct nlattr *a = attrs;

	while (len >= sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= len) {
		size_t step = NLA_ALIGN(a->nla_len);

		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		if (step >= len)
			break;
		len -= step;
		a = (const struct nlattr *)((const char *)a + step);
	}
	return NULL;
}
