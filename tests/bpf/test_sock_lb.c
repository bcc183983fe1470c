// SPDX-License-Identifier: Apache-2.0
/*
 * The socket LB programs on this kernel: verifier acceptance, connect/sendmsg rewriting, getpeername and
 * recvmsg reverse translation, each algorithm, refusal, and the live connection counts — with real
 * sockets on loopback inside a private netns, services published through the agent's lbmap.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sock_lb_fixture.h"
#include "skel/sock_lb.skel.h"

#define VIP4  "10.96.0.10"
#define VIP6  "fd00:96::10"
#define VPORT 80

TestSuite(sock_lb, .init = fx_setup, .fini = fx_teardown, .timeout = 30);

static void assert_peer_is(int fd, const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char got[INET6_ADDRSTRLEN] = "";
	uint16_t got_port;

	cr_assert_eq(getpeername(fd, (struct sockaddr *)&ss, &len), 0, "getpeername: %s", strerror(errno));
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, got, sizeof(got));
		got_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, got, sizeof(got));
		got_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	cr_assert_str_eq(got, addr, "getpeername: got %s:%u, want %s:%u", got, got_port, addr, port);
	cr_assert_eq(got_port, port, "getpeername port: got %u, want %u", got_port, port);
}

/* n connects to vip; returns how many landed on each backend, asserting getpeername = VIP each time. */
static void spread(const char *vip, int n, int counts[FX_MAX_BACKENDS])
{
	int i;

	memset(counts, 0, sizeof(int) * FX_MAX_BACKENDS);
	for (i = 0; i < n; i++) {
		int fd = fx_connect(vip, VPORT), which;

		cr_assert(fd >= 0, "connect %d to %s: %s", i, vip, strerror(-fd));
		assert_peer_is(fd, vip, VPORT);
		which = fx_accept_which();
		cr_assert(which >= 0, "connect %d: no backend saw it", i);
		counts[which]++;
		close(fd);
	}
}

static void assert_spread(const int counts[], int nb, int n, double lo, double hi)
{
	for (int b = 0; b < nb; b++) {
		double share = (double)counts[b] / n;

		cr_assert(share >= lo && share <= hi, "backend %d got %d of %d (%.1f%%), want %.0f–%.0f%%", b,
			  counts[b], n, share * 100, lo * 100, hi * 100);
	}
}

Test(sock_lb, least_request_spreads_and_getpeername_answers_vip)
{
	int counts[FX_MAX_BACKENDS];

	fx_listeners(3, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 3);
	spread(VIP4, 300, counts);
	assert_spread(counts, 3, 300, 0.20, 0.47);
}

Test(sock_lb, round_robin_spreads)
{
	int counts[FX_MAX_BACKENDS];

	fx_listeners(3, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_ROUND_ROBIN, 3);
	spread(VIP4, 300, counts);
	assert_spread(counts, 3, 300, 0.25, 0.42);
}

Test(sock_lb, random_spreads)
{
	int counts[FX_MAX_BACKENDS];

	fx_listeners(3, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 3);
	spread(VIP4, 300, counts);
	assert_spread(counts, 3, 300, 0.20, 0.47);
}

Test(sock_lb, maglev_keeps_one_client_on_one_backend)
{
	int counts[FX_MAX_BACKENDS], b, used = 0;

	fx_listeners(4, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_MAGLEV, 4);
	spread(VIP4, 50, counts);
	for (b = 0; b < 4; b++)
		used += counts[b] > 0;
	cr_assert_eq(used, 1, "one client reached %d backends", used);
}

Test(sock_lb, ipv6_and_v4_mapped)
{
	int counts[FX_MAX_BACKENDS];

	fx_listeners(2, SOCK_STREAM, true);
	fx_publish(VIP6, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 2);
	spread(VIP6, 100, counts);
	assert_spread(counts, 2, 100, 0.25, 0.75);
}

Test(sock_lb, v4_mapped_dial_from_v6_socket)
{
	int counts[FX_MAX_BACKENDS];

	fx_listeners(2, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 2);
	spread("::ffff:" VIP4, 60, counts);
	cr_assert_eq(counts[0] + counts[1], 60);
}

Test(sock_lb, no_ready_backend_refuses_at_once)
{
	struct timespec t0, t1;
	int fd;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fd = fx_connect(VIP4, VPORT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_eq(fd, -ECONNREFUSED, "connect: got %s, want ECONNREFUSED", fd >= 0 ? "success" : strerror(-fd));
	cr_assert_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 100);
}

Test(sock_lb, non_vip_untouched)
{
	int fd;

	fx_listeners(2, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 1);
	fd = fx_connect("127.0.0.1", fx.port[1]);
	cr_assert(fd >= 0);
	assert_peer_is(fd, "127.0.0.1", fx.port[1]);
	cr_assert_eq(fx_accept_which(), 1);
	close(fd);
	/* Same VIP, another port: not a service, left alone (and unroutable here). */
	cr_assert_eq(fx_connect(VIP4, VPORT + 1), -ENETUNREACH);
}

Test(sock_lb, udp_reply_comes_from_vip)
{
	struct sockaddr_in vip = { .sin_family = AF_INET, .sin_port = htons(VPORT) }, from, peer;
	socklen_t len = sizeof(from);
	char buf[16];
	int c;

	fx_listeners(1, SOCK_DGRAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_UDP, XM_LB_RANDOM, 1);
	inet_pton(AF_INET, VIP4, &vip.sin_addr);
	c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(sendto(c, "ping", 4, 0, (struct sockaddr *)&vip, sizeof(vip)), 4, "sendto: %s", strerror(errno));
	cr_assert_eq(recvfrom(fx.listen_fd[0], buf, sizeof(buf), 0, (struct sockaddr *)&peer, &len), 4);
	len = sizeof(peer);
	cr_assert_eq(sendto(fx.listen_fd[0], "pong", 4, 0, (struct sockaddr *)&peer, len), 4);
	len = sizeof(from);
	cr_assert_eq(recvfrom(c, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len), 4);
	cr_assert_eq(from.sin_addr.s_addr, vip.sin_addr.s_addr, "reply from %s, want the VIP",
		     inet_ntoa(from.sin_addr));
	cr_assert_eq(from.sin_port, vip.sin_port);
	close(c);
}

/*
 * A socket that has state already (here: UDP connected to the VIP, then elsewhere, then to the VIP again)
 * takes the path that updates it: getpeername follows each connect.
 */
Test(sock_lb, udp_reconnect_updates_the_socket_state)
{
	struct sockaddr_in vip = { .sin_family = AF_INET, .sin_port = htons(VPORT) }, other, peer;
	struct sockaddr_in lo = { .sin_family = AF_INET,
				  .sin_port = htons(9),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len;
	int c;

	fx_listeners(1, SOCK_DGRAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_UDP, XM_LB_RANDOM, 1);
	inet_pton(AF_INET, VIP4, &vip.sin_addr);
	c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(c >= 0);
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(connect(c, (struct sockaddr *)&vip, sizeof(vip)), 0, "connect VIP: %s", strerror(errno));
		len = sizeof(peer);
		cr_assert_eq(getpeername(c, (struct sockaddr *)&peer, &len), 0);
		cr_expect_eq(peer.sin_addr.s_addr, vip.sin_addr.s_addr, "round %d: peer %s, want the VIP", round,
			     inet_ntoa(peer.sin_addr));
		cr_assert_eq(connect(c, (struct sockaddr *)&lo, sizeof(lo)), 0);
		len = sizeof(other);
		cr_assert_eq(getpeername(c, (struct sockaddr *)&other, &len), 0);
		cr_expect_eq(other.sin_addr.s_addr, lo.sin_addr.s_addr, "round %d: not a service, peer %s", round,
			     inet_ntoa(other.sin_addr));
	}
	cr_expect_eq(fx_map_entries(bpf_map__fd(fx.skel->maps.xm_sock_state), sizeof(__u64)), 1,
		     "one state entry per socket");
	close(c);
}

static int64_t active_of(int backend)
{
	union xm_addr a;

	memset(&a, 0, sizeof(a));
	inet_pton(AF_INET, "127.0.0.1", &a.v4);
	return lbmap_backend_active(fx.lbmap, lbmap_backend_id(fx.lbmap, &a, htons(fx.port[backend]), XM_FAMILY_V4));
}

Test(sock_lb, live_connection_counts_follow_open_and_close)
{
	int fds[10], i, ms;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	for (i = 0; i < 10; i++) {
		fds[i] = fx_connect(VIP4, VPORT);
		cr_assert(fds[i] >= 0);
	}
	cr_assert_eq(active_of(0), 10, "active = %lld after 10 connects", (long long)active_of(0));
	/* Both ends close, so every client socket goes through the whole FIN exchange to CLOSE. */
	for (i = 0; i < 10; i++) {
		cr_assert_eq(fx_accept_which(), 0);
		close(fds[i]);
	}
	for (ms = 0; ms < 10000 && active_of(0) != 0; ms += 10)
		usleep(10000);
	cr_assert_eq(active_of(0), 0, "active = %lld after closing all", (long long)active_of(0));
}

Test(sock_lb, least_request_avoids_loaded_backend)
{
	int held[40], counts[FX_MAX_BACKENDS], i, n = 0;

	fx_listeners(2, SOCK_STREAM, false);
	/* Load backend 0 alone first, then offer both. */
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	for (i = 0; i < 40; i++) {
		held[i] = fx_connect(VIP4, VPORT);
		cr_assert(held[i] >= 0);
		cr_assert_eq(fx_accept_which(), 0);
	}
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 2);
	for (i = 0; i < 20; i++) {
		int fd = fx_connect(VIP4, VPORT), which;

		cr_assert(fd >= 0);
		which = fx_accept_which();
		n += which == 0;
		/* Keep them open, so backend 1 stays below backend 0 throughout. */
		(void)fd;
	}
	memset(counts, 0, sizeof(counts));
	cr_assert_eq(n, 0, "%d of 20 new connections went to the backend holding 40", n);
	for (i = 0; i < 40; i++)
		close(held[i]);
}

Test(sock_lb, removed_backend_gets_no_new_connections_and_old_list_is_collected)
{
	int counts[FX_MAX_BACKENDS];
	struct xm_slot_key k, next;
	int slots = 0;

	fx_listeners(3, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_ROUND_ROBIN, 3);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_ROUND_ROBIN, 2);
	spread(VIP4, 60, counts);
	cr_assert_eq(counts[2], 0, "removed backend got %d connections", counts[2]);
	lbmap_gc(fx.lbmap, UINT64_MAX);
	for (void *prev = NULL; bpf_map_get_next_key(fx.fds.slots, prev, &next) == 0; prev = &k) {
		k = next;
		slots++;
	}
	cr_assert_eq(slots, 2, "%d slots left in xm_slots, want the 2 of the current list", slots);
}

/* Istio's TCP metrics per (client, service port, backend), summed over the keys. */
static struct xm_conn_metrics conn_metrics_sum(void)
{
	struct xm_conn_metrics_key k, next;
	struct xm_conn_metrics sum = { 0 }, v;
	void *prev = NULL;

	while (bpf_map_get_next_key(fx.fds.conn_metrics, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fx.fds.conn_metrics, &k, &v))
			continue;
		sum.opened += v.opened;
		sum.closed += v.closed;
		sum.sent_bytes += v.sent_bytes;
		sum.received_bytes += v.received_bytes;
	}
	return sum;
}

Test(sock_lb, tcp_metrics_count_connections_and_bytes)
{
	char buf[4096];
	struct xm_conn_metrics m;
	int i, ms;

	memset(buf, 'x', sizeof(buf));
	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 1);
	for (i = 0; i < 3; i++) {
		int c = fx_connect(VIP4, VPORT), s;

		cr_assert(c >= 0);
		s = accept4(fx.listen_fd[0], NULL, NULL, SOCK_CLOEXEC);
		cr_assert(s >= 0);
		cr_assert_eq(write(c, buf, 1000), 1000);
		cr_assert_eq(recv(s, buf, 1000, MSG_WAITALL), 1000);
		cr_assert_eq(write(s, buf, 500), 500);
		cr_assert_eq(recv(c, buf, 500, MSG_WAITALL), 500);
		close(c);
		/*
		 * The last one: the server closes only after the client's FIN was acked. The orphaned client
		 * then closes from FIN_WAIT2 without the server's FIN, which bytes_received must not lose a
		 * byte for.
		 */
		if (i == 2)
			usleep(100000);
		close(s);
	}
	for (ms = 0; ms < 3000; ms += 10) {
		m = conn_metrics_sum();
		if (m.closed == 3)
			break;
		usleep(10000);
	}
	cr_log_info("opened %llu closed %llu sent %llu received %llu", (unsigned long long)m.opened,
		    (unsigned long long)m.closed, (unsigned long long)m.sent_bytes,
		    (unsigned long long)m.received_bytes);
	cr_assert_eq(m.opened, 3, "opened %llu", (unsigned long long)m.opened);
	cr_assert_eq(m.closed, 3, "closed %llu", (unsigned long long)m.closed);
	cr_assert_eq(m.sent_bytes, 3000, "sent %llu", (unsigned long long)m.sent_bytes);
	cr_assert_eq(m.received_bytes, 1500, "received %llu", (unsigned long long)m.received_bytes);
}

struct flipper {
	volatile bool stop;
	int flips;
};

/* Switches the service between 3 backends and 1, as fast as the agent's publisher can. */
static void *flip_backends(void *arg)
{
	struct flipper *f = arg;

	while (!f->stop) {
		fx_publish(VIP4, VPORT, IPPROTO_TCP, (f->flips & 2) ? XM_LB_ROUND_ROBIN : XM_LB_RANDOM,
			   (f->flips & 1) ? 1 : 3);
		lbmap_gc(fx.lbmap, UINT64_MAX); /* delete replaced lists at once: the harshest schedule */
		f->flips++;
	}
	return NULL;
}

/*
 * No connect() ever sees a half-applied service: while lists of different lengths and algorithms are
 * swapped continuously, every connect reaches a backend of one of the lists, none is refused. At least 2000
 * connects, and on until more than 20 switches overlapped them (a loaded machine may starve the switcher
 * for a while; 200,000 connects bound the wait).
 */
Test(sock_lb, connects_never_see_a_half_applied_service)
{
	struct flipper f = { 0 };
	pthread_t th;
	int i, refused = 0;

	fx_listeners(3, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 3);
	cr_assert_eq(pthread_create(&th, NULL, flip_backends, &f), 0);
	for (i = 0; i < 2000 || (f.flips <= 20 && i < 200000); i++) {
		int fd = fx_connect(VIP4, VPORT);

		if (fd < 0) {
			refused++;
			continue;
		}
		cr_assert(fx_accept_which() >= 0, "connect %d reached no backend", i);
		close(fd);
	}
	f.stop = true;
	pthread_join(th, NULL);
	cr_assert_eq(refused, 0, "%d of %d connects refused while %d switches happened", refused, i, f.flips);
	cr_assert_gt(f.flips, 20, "only %d switches: the test did not overlap connects with switches", f.flips);
}
