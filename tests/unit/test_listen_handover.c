// SPDX-License-Identifier: Apache-2.0
/* Listening sockets across a restart: a holder keeps them, the next process takes them, queued connects survive. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
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
	holder = listen_handover_spawn(path, fds, 2, NULL, 10, "xmesh-test-hold");
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

/* ms since a CLOCK_MONOTONIC start. */
static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * Nobody comes back: timeout_s after the spawning process exited (not before: its drain may take longer), the
 * holder turns the capture off by zeroing entry 0 of the map it was given, whatever its value size (the L7
 * proxy's xm_l7_proxy, the tunnel's xm_hbone_proxy), and lets the sockets go.
 */
Test(listen_handover, no_taker_turns_the_capture_off_after_the_owner_exited)
{
	static const uint32_t sizes[] = { 40, 24 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint8_t val[64], got[64], zero[64] = { 0 };
		uint32_t key = 0;
		uint16_t port;
		int lfd = listener(&port), status, pp[2];
		int map = bpf_map_create(BPF_MAP_TYPE_ARRAY, "hold_test", 4, sizes[k], 1, NULL);
		struct timespec t0;
		char path[64];
		pid_t owner, holder = 0;
		long gone_ms = -1;

		cr_assert_geq(map, 0, "bpf_map_create: %s", strerror(errno));
		memset(val, 0xab, sizeof(val));
		cr_assert_eq(bpf_map_update_elem(map, &key, val, BPF_ANY), 0);
		snprintf(path, sizeof(path), "/tmp/xmesh-handover-off-%d-%zu.sock", getpid(), k);
		cr_assert_eq(pipe(pp), 0);
		/* The owner (an agent) spawns the holder, then takes 1.5 s (its drain) before it exits. */
		owner = fork();
		cr_assert_geq(owner, 0);
		if (owner == 0) {
			struct listen_handover_undo undo = { .capture_map_fd = map };
			pid_t h = listen_handover_spawn(path, &lfd, 1, &undo, 1, "xmesh-test-hold");

			(void)!write(pp[1], &h, sizeof(h));
			usleep(1500 * 1000);
			_exit(0);
		}
		close(lfd);
		cr_assert_eq(read(pp[0], &holder, sizeof(holder)), (ssize_t)sizeof(holder));
		cr_assert_gt(holder, 0, "spawn: %d", holder);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		usleep(1200 * 1000);
		cr_assert_eq(bpf_map_lookup_elem(map, &key, got), 0);
		cr_expect_eq(memcmp(got, val, sizes[k]), 0, "the countdown started before the owner exited");
		cr_assert_eq(waitpid(owner, &status, 0), owner);
		while (ms_since(&t0) < 6000) {
			if (!access(path, F_OK) || kill(holder, 0) == 0) {
				usleep(20000);
				continue;
			}
			gone_ms = ms_since(&t0);
			break;
		}
		cr_assert_geq(gone_ms, 0, "the holder did not exit after its timeout");
		cr_expect_geq(gone_ms, 2300, "the holder gave up %ld ms after the spawn: before owner exit + 1 s",
			      gone_ms);
		cr_assert_eq(bpf_map_lookup_elem(map, &key, got), 0);
		cr_expect_eq(memcmp(got, zero, sizes[k]), 0, "value size %u: entry 0 not zeroed after the timeout",
			     sizes[k]);
		close(pp[0]);
		close(pp[1]);
		close(map);
	}
}
