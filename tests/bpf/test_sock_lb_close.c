// SPDX-License-Identifier: Apache-2.0
/*
 * When a connection stops counting for LEAST_REQUEST: as soon as the client is done with it (close(), or
 * shutdown both ways), not when the server's kernel gets round to acking the FIN — it delays that ack until
 * the server process closes, so a slow server made its backend look loaded long after the client left.
 * Each connection leaves the count exactly once, also when the socket later reaches CLOSE.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "skel/sock_lb.skel.h"
#include "sock_lb_fixture.h"

#define VIP4  "10.96.0.10"
#define VPORT 80

TestSuite(sock_lb_close, .init = fx_setup, .fini = fx_teardown, .timeout = 30);

static int64_t active(void)
{
	return lbmap_backend_active(fx.lbmap, fx_backend_id(0));
}

/* The server's end of the connection the client just opened, kept open (a server that is slow to close). */
static int accept_held(void)
{
	struct pollfd p = { .fd = fx.listen_fd[0], .events = POLLIN };
	int c;

	cr_assert_eq(poll(&p, 1, 1000), 1, "no connection reached the backend");
	c = accept4(fx.listen_fd[0], NULL, NULL, SOCK_CLOEXEC);
	cr_assert(c >= 0, "accept: %s", strerror(errno));
	return c;
}

/* A connected client and its server end, counted once. */
static void open_pair(int *client, int *server)
{
	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	*client = fx_connect(VIP4, VPORT);
	cr_assert(*client >= 0, "connect: %s", strerror(-*client));
	*server = accept_held();
	cr_assert_eq(active(), 1, "active = %lld with one open connection", (long long)active());
}

/* Waits until every socket through a VIP reached CLOSE (sockops deletes its xm_sock_state entry then). */
static void wait_all_closed(void)
{
	int fd = bpf_map__fd(fx.skel->maps.xm_sock_state), ms;
	uint64_t key;

	for (ms = 0; ms < 5000; ms += 10) {
		if (bpf_map_get_next_key(fd, NULL, &key) < 0)
			return;
		usleep(10000);
	}
	cr_assert_fail("a client socket did not reach CLOSE within 5 s");
}

/* Waits until the client has seen the server's FIN (recv returns 0). */
static void wait_eof(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	cr_assert_eq(poll(&p, 1, 2000), 1, "no FIN from the server");
	cr_assert_eq(recv(fd, &c, 1, 0), 0, "expected EOF");
}

Test(sock_lb_close, client_close_ends_count_while_server_holds_its_end)
{
	int client, server;

	open_pair(&client, &server);
	close(client);
	/* Synchronous with close(): the server has not acked the FIN yet (its ack waits for its own close). */
	cr_assert_eq(active(), 0, "active = %lld right after the client closed", (long long)active());
	close(server);
	wait_all_closed();
	cr_assert_eq(active(), 0, "active = %lld once the socket reached CLOSE", (long long)active());
}

Test(sock_lb_close, shutdown_both_ways_ends_count)
{
	int client, server;

	open_pair(&client, &server);
	cr_assert_eq(shutdown(client, SHUT_RDWR), 0);
	cr_assert_eq(active(), 0, "active = %lld after shutdown(SHUT_RDWR)", (long long)active());
	close(server);
	close(client);
	wait_all_closed();
	cr_assert_eq(active(), 0, "active = %lld once the socket reached CLOSE", (long long)active());
}

Test(sock_lb_close, half_closed_client_stays_active_until_reply)
{
	int client, server;
	char buf[8];

	open_pair(&client, &server);
	cr_assert_eq(shutdown(client, SHUT_WR), 0);
	/* The request is sent, the reply is still to come: the connection is in use. */
	cr_assert_eq(active(), 1, "active = %lld while half-closed", (long long)active());
	cr_assert_eq(recv(server, buf, sizeof(buf), 0), 0, "the server should see the client's FIN");
	cr_assert_eq(send(server, "reply", 5, 0), 5);
	close(server);
	cr_assert_eq(recv(client, buf, sizeof(buf), MSG_WAITALL), 5, "the client should get the reply");
	close(client);
	wait_all_closed();
	cr_assert_eq(active(), 0, "active = %lld once the socket reached CLOSE", (long long)active());
}

Test(sock_lb_close, server_closing_first_counts_until_client_closes)
{
	int client, server;

	open_pair(&client, &server);
	close(server);
	wait_eof(client);
	/* CLOSE_WAIT: the client may still send; the connection is its until it closes. */
	cr_assert_eq(active(), 1, "active = %lld in CLOSE_WAIT", (long long)active());
	close(client);
	cr_assert_eq(active(), 0, "active = %lld right after the client closed", (long long)active());
	wait_all_closed();
	cr_assert_eq(active(), 0, "active = %lld once the socket reached CLOSE", (long long)active());
}
