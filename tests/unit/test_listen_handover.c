// SPDX-License-Identifier: Apache-2.0
/* Listening sockets across a restart: a holder keeps them, the next process takes them, queued connects survive. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/listen_handover.h"

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

Test(listen_handover, queued_connections_survive_the_owner)
{
	char path[64];
	uint16_t p1, p2;
	int fds[2] = { listener(&p1), listener(&p2) }, got[4], client, status;
	size_t n = 0;
	pid_t holder;

	snprintf(path, sizeof(path), "/tmp/xmesh-handover-test-%d.sock", getpid());
	holder = listen_handover_spawn(path, fds, 2, -1, 10, "xmesh-test-hold");
	cr_assert_gt(holder, 0, "spawn: %d", holder);
	/* The owner lets go: only the holder keeps the sockets; a connect now waits in the accept queue. */
	close(fds[0]);
	close(fds[1]);
	for (int i = 0; i < 100 && access(path, F_OK); i++)
		usleep(10000);
	client = dial(p1);
	cr_assert_eq(listen_handover_receive(path, got, 4, &n), 0);
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

Test(listen_handover, nobody_to_take_over_from)
{
	int fds[1];
	size_t n = 7;

	cr_expect_eq(listen_handover_receive("/tmp/xmesh-handover-test-none.sock", fds, 1, &n), -ENOENT);
	cr_expect_eq(n, 0);
}

/*
 * Nobody comes back: the holder turns the capture off by zeroing entry 0 of the map it was given, whatever its
 * value size (the L7 proxy's xm_l7_proxy, the tunnel's xm_hbone_proxy), and lets the sockets go.
 */
Test(listen_handover, no_taker_turns_the_capture_off)
{
	static const uint32_t sizes[] = { 40, 24 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint8_t val[64], got[64], zero[64] = { 0 };
		uint32_t key = 0;
		uint16_t port;
		int lfd = listener(&port), status;
		int map = bpf_map_create(BPF_MAP_TYPE_ARRAY, "hold_test", 4, sizes[k], 1, NULL);
		char path[64];
		pid_t holder;

		cr_assert_geq(map, 0, "bpf_map_create: %s", strerror(errno));
		memset(val, 0xab, sizeof(val));
		cr_assert_eq(bpf_map_update_elem(map, &key, val, BPF_ANY), 0);
		snprintf(path, sizeof(path), "/tmp/xmesh-handover-off-%d-%zu.sock", getpid(), k);
		holder = listen_handover_spawn(path, &lfd, 1, map, 1, "xmesh-test-hold");
		cr_assert_gt(holder, 0, "spawn: %d", holder);
		close(lfd);
		cr_assert_eq(bpf_map_lookup_elem(map, &key, got), 0);
		cr_expect_eq(memcmp(got, val, sizes[k]), 0, "the capture stays on while the holder waits");
		cr_assert_eq(waitpid(holder, &status, 0), holder);
		cr_assert_eq(bpf_map_lookup_elem(map, &key, got), 0);
		cr_expect_eq(memcmp(got, zero, sizes[k]), 0, "value size %u: entry 0 not zeroed after the timeout",
			     sizes[k]);
		cr_expect_neq(access(path, F_OK), 0, "the holder removes its socket");
		close(map);
	}
}
