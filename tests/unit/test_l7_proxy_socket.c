// SPDX-License-Identifier: Apache-2.0
/*
 * The proxy's listening sockets come from opts->make_socket when set (the module makes them in the proxy's
 * cgroup): one call per worker and address, the socket it returns is the one that listens, and its error
 * fails the address.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "l7/proxy.h"

struct maker {
	int calls;
	int fail; /* 0: make sockets; else the -errno to return */
	int last_fd;
};

static int make(void *ctx, int domain, int type)
{
	struct maker *m = ctx;
	int fd;

	m->calls++;
	if (m->fail)
		return m->fail;
	cr_expect_eq(domain, AF_INET);
	cr_expect(type & SOCK_NONBLOCK, "listeners are non-blocking");
	fd = socket(domain, type, 0);
	m->last_fd = fd;
	return fd < 0 ? -errno : fd;
}

static int refuse(void *ctx, int listen_fd, int fd, struct xm_svc_key *vip, uint32_t *svc_id)
{
	(void)ctx, (void)listen_fd, (void)fd, (void)vip, (void)svc_id;
	return -ENOENT;
}

static struct l7_proxy *start(struct maker *m)
{
	struct l7_proxy_opts opts = { .n_workers = 2, .resolve = refuse, .make_socket = make, .socket_ctx = m };
	int err;
	struct l7_proxy *p = l7_proxy_new(&opts, &err);

	cr_assert_not_null(p, "l7_proxy_new: %d", err);
	return p;
}

Test(l7_proxy_socket, listeners_come_from_the_hook)
{
	struct maker m = { 0 };
	struct l7_proxy *p = start(&m);
	struct l7_proxy_addr a = { .family = XM_FAMILY_V4 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in bound;
	socklen_t len = sizeof(bound);
	int c;

	a.addr.v4 = htonl(0x7f000001);
	cr_assert_eq(l7_proxy_listen(p, &a, 1), 0);
	cr_expect_eq(m.calls, 2, "one socket per worker, got %d", m.calls);
	cr_expect(l7_proxy_listening(p, &a));
	/* the hook's socket is the one bound to the proxy's port */
	cr_assert_eq(getsockname(m.last_fd, (struct sockaddr *)&bound, &len), 0);
	cr_expect_eq(ntohs(bound.sin_port), l7_proxy_port(p));
	sin.sin_addr.s_addr = htonl(0x7f000001);
	sin.sin_port = htons(l7_proxy_port(p));
	c = socket(AF_INET, SOCK_STREAM, 0);
	cr_expect_eq(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s", strerror(errno));
	close(c);
	/* the same address again keeps its sockets: no new ones */
	cr_assert_eq(l7_proxy_listen(p, &a, 1), 0);
	cr_expect_eq(m.calls, 2);
	l7_proxy_free(p);
}

Test(l7_proxy_socket, a_failing_hook_fails_the_address)
{
	struct maker m = { .fail = -EPERM };
	struct l7_proxy *p = start(&m);
	struct l7_proxy_addr a = { .family = XM_FAMILY_V4 };

	a.addr.v4 = htonl(0x7f000001);
	cr_expect_eq(l7_proxy_listen(p, &a, 1), -EPERM);
	cr_expect_not(l7_proxy_listening(p, &a));
	l7_proxy_free(p);
}
