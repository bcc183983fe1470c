// SPDX-License-Identifier: Apache-2.0
/* Listening sockets across a restart: a holder keeps them, the next process takes them, queued connects survive. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "l7/handover.h"

static int listener(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int dial(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s", strerror(errno));
	return fd;
}

static uint16_t port_of(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

Test(l7_handover, queued_connections_survive_the_owner)
{
	char path[64];
	uint16_t p1, p2;
	int fds[2] = { listener(&p1), listener(&p2) }, got[4], client, status;
	size_t n = 0;
	pid_t holder;

	snprintf(path, sizeof(path), "/tmp/xmesh-handover-test-%d.sock", getpid());
	holder = l7_handover_spawn(path, fds, 2, -1, 10);
	cr_assert_gt(holder, 0, "spawn: %d", holder);
	/* The owner lets go: only the holder keeps the sockets; a connect now waits in the accept queue. */
	close(fds[0]);
	close(fds[1]);
	for (int i = 0; i < 100 && access(path, F_OK); i++)
		usleep(10000);
	client = dial(p1);
	cr_assert_eq(l7_handover_receive(path, got, 4, &n), 0);
	cr_assert_eq(n, 2);
	cr_expect_eq(port_of(got[0]), p1);
	cr_expect_eq(port_of(got[1]), p2);
	cr_expect_geq(accept(got[0], NULL, NULL), 0, "the connection queued during the handover is still there");
	cr_assert_eq(waitpid(holder, &status, 0), holder);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_expect_neq(access(path, F_OK), 0, "the holder removes its socket");
	close(client);
	close(got[0]);
	close(got[1]);
}

Test(l7_handover, nobody_to_take_over_from)
{
	int fds[1];
	size_t n = 7;

	cr_expect_eq(l7_handover_receive("/tmp/xmesh-handover-test-none.sock", fds, 1, &n), -ENOENT);
	cr_expect_eq(n, 0);
}
