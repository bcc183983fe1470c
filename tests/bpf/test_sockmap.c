// SPDX-License-Identifier: Apache-2.0
/*
 * Same-node acceleration on this kernel, with real sockets on loopback in a private netns: insertion at
 * establishment and removal at close, proof of redirection (counters), integrity byte by byte in both
 * directions for 1 B to 4 MiB messages and for 1,000 connections at once, the ordering guard, the runtime
 * switch, and connections that predate the programs.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockmap_fixture.h"
#include "skel/sockmap.skel.h"

// cppcheck-suppress unknownMacro
TestSuite(sockmap, .init = smx_setup, .fini = smx_teardown, .timeout = 60);

static void wait_pairs(int want)
{
	int i, n = -1;

	/* Removal runs in the close path, but the passive side's close may finish in softirq. */
	for (i = 0; i < 200 && (n = smx_pairs()) != want; i++)
		usleep(10000);
	cr_assert_eq(n, want, "xm_sock_pairs has %d entries, want %d", n, want);
}

Test(sockmap, established_sockets_enter_and_closed_ones_leave)
{
	int c, s;

	cr_assert_eq(smx_pairs(), 0);
	smx_pair(&c, &s);
	wait_pairs(2);
	cr_assert_eq(smx_stat(XM_SMSTAT_INSERTED), 2, "inserted %llu",
		     (unsigned long long)smx_stat(XM_SMSTAT_INSERTED));
	close(c);
	close(s);
	wait_pairs(0);
	cr_assert_eq(smx_stat(XM_SMSTAT_CLOSED), 2, "closed %llu", (unsigned long long)smx_stat(XM_SMSTAT_CLOSED));
}

Test(sockmap, loopback_keys_carry_the_netns)
{
	struct xm_sock_pair_key k;
	int c, s, fd = -1;

	smx_pair(&c, &s);
	fd = bpf_map__fd(smx.skel->maps.xm_sock_pairs);
	cr_assert_eq(bpf_map_get_next_key(fd, NULL, &k), 0);
	cr_assert_neq(k.netns, 0, "a loopback key without netns cookie would match another pod's 127.0.0.1");
	cr_assert_eq(k.family, XM_FAMILY_V4);
	close(c);
	close(s);
}

Test(sockmap, payload_is_redirected_both_ways)
{
	struct smx_flow f[2];
	int c, s;

	smx_pair(&c, &s);
	smx_flow_init(&f[0], c, s, 1 << 20, 16384, 1);
	smx_flow_init(&f[1], s, c, 1 << 20, 16384, 2);
	smx_pump(f, 2, 5000);
	smx_assert_flows(f, 2);
	cr_assert_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 2u << 20, "redirected %llu bytes of %u, fallbacks %llu",
		     (unsigned long long)smx_stat(XM_SMSTAT_REDIR_BYTES), 2u << 20,
		     (unsigned long long)smx_stat(XM_SMSTAT_FALLBACK_BYTES));
	cr_assert_eq(smx_stat(XM_SMSTAT_FALLBACK_BYTES), 0);
	close(c);
	close(s);
}

/* Every message size from 1 byte to 4 MiB, each written with one write() call, both directions. */
Test(sockmap, message_sizes_1_byte_to_4_mib, .timeout = 120)
{
	static const size_t sizes[] = { 1,     2,     3,     7,	    100,   1000,   4095,    4096,   4097,
					16383, 16384, 65535, 65536, 65537, 262144, 1 << 20, 4 << 20 };
	const int n = (int)(sizeof(sizes) / sizeof(sizes[0]));
	struct smx_flow f[2];
	int i, c, s;

	for (i = 0; i < n; i++) {
		uint64_t reps = sizes[i] >= (1 << 20) ? 4 : sizes[i] >= 65536 ? 16 : 64;

		smx_pair(&c, &s);
		smx_flow_init(&f[0], c, s, sizes[i] * reps, sizes[i], (uint32_t)(10 + i));
		smx_flow_init(&f[1], s, c, sizes[i] * reps, sizes[i], (uint32_t)(100 + i));
		smx_pump(f, 2, 5000);
		smx_assert_flows(f, 2);
		close(c);
		close(s);
	}
	cr_assert_eq(smx_stat(XM_SMSTAT_FALLBACK_BYTES), 0, "%llu bytes fell back",
		     (unsigned long long)smx_stat(XM_SMSTAT_FALLBACK_BYTES));
	cr_assert_gt(smx_stat(XM_SMSTAT_REDIR_BYTES), 0);
}

/* 1,000 connections streaming at once, both directions, one epoll: wakeups, memory and integrity. */
Test(sockmap, thousand_concurrent_connections, .timeout = 120)
{
	enum {
		N = 1000,
		BYTES = 256 * 1024
	};
	struct rlimit rl = { 8192, 8192 };
	struct smx_flow *f = calloc(2 * N, sizeof(*f));
	int *c = calloc(N, sizeof(int)), *s = calloc(N, sizeof(int));
	uint16_t port;
	int i, lfd;

	cr_assert(f && c && s);
	setrlimit(RLIMIT_NOFILE, &rl);
	lfd = smx_listen("127.0.0.1", 0, &port);
	for (i = 0; i < N; i++)
		smx_pair_on(lfd, "127.0.0.1", port, &c[i], &s[i]);
	close(lfd);
	wait_pairs(2 * N);
	for (i = 0; i < N; i++) {
		smx_flow_init(&f[2 * i], c[i], s[i], BYTES, 4096 + (size_t)(i % 7) * 8191, (uint32_t)(1000 + i));
		smx_flow_init(&f[2 * i + 1], s[i], c[i], BYTES, 1000 + (size_t)(i % 5) * 12345, (uint32_t)(5000 + i));
	}
	smx_pump(f, 2 * N, 10000);
	smx_assert_flows(f, 2 * N);
	cr_assert_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), (uint64_t)2 * N * BYTES, "redirected %llu of %llu",
		     (unsigned long long)smx_stat(XM_SMSTAT_REDIR_BYTES), (unsigned long long)2 * N * BYTES);
	for (i = 0; i < N; i++) {
		close(c[i]);
		close(s[i]);
	}
	wait_pairs(0);
	free(f);
	free(c);
	free(s);
}

/*
 * The ordering guard: while the receiver is out of the map, the sender's bytes take TCP; once the receiver
 * is back, redirecting would let new bytes overtake the ones still queued in its TCP receive queue. The
 * direction must stay on TCP, and the receiver must read everything in order.
 */
Test(sockmap, direction_that_used_tcp_is_never_redirected_again)
{
	struct xm_sock_pair_key k, srv_key;
	int fd, c, s, found = 0;
	struct smx_flow f;
	__u64 sfd;
	char buf[4096];
	void *prev = NULL;

	smx_pair(&c, &s);
	wait_pairs(2);
	fd = bpf_map__fd(smx.skel->maps.xm_sock_pairs);
	/* Find the server's entry: its local port is the listener's, i.e. the client's remote port. */
	{
		struct sockaddr_in a;
		socklen_t len = sizeof(a);

		getsockname(s, (struct sockaddr *)&a, &len);
		while (bpf_map_get_next_key(fd, prev, &k) == 0) {
			if (k.local_port == ntohs(a.sin_port)) {
				srv_key = k;
				found = 1;
			}
			prev = &k;
			if (found)
				break;
		}
	}
	cr_assert(found, "server socket not in xm_sock_pairs");
	cr_assert_eq(bpf_map_delete_elem(fd, &srv_key), 0, "delete server: %s", strerror(errno));

	/* 64 KiB through TCP, left unread in the server's receive queue. */
	memset(buf, 'A', sizeof(buf));
	for (int i = 0; i < 16; i++)
		cr_assert_eq(write(c, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert_geq(smx_stat(XM_SMSTAT_FALLBACK_NO_PEER), 1);

	/* The server is back in the map; the client's direction must keep using TCP. */
	sfd = (__u64)s;
	cr_assert_eq(bpf_map_update_elem(fd, &srv_key, &sfd, BPF_NOEXIST), 0, "re-insert server: %s", strerror(errno));
	memset(buf, 'B', sizeof(buf));
	cr_assert_eq(write(c, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert_geq(smx_stat(XM_SMSTAT_FALLBACK_ORDER), 1, "no ordering fallback recorded");
	cr_assert_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 0, "the client's bytes were redirected after TCP ones");

	for (size_t got = 0; got < 17 * sizeof(buf);) {
		ssize_t r = read(s, buf, sizeof(buf));

		cr_assert_gt(r, 0, "read: %s", strerror(errno));
		for (ssize_t i = 0; i < r; i++)
			cr_assert_eq(buf[i], got + (size_t)i < 16 * sizeof(buf) ? 'A' : 'B', "byte %zu out of order",
				     got + (size_t)i);
		got += (size_t)r;
	}
	/* The other direction never used TCP: it is still redirected. */
	smx_flow_init(&f, s, c, 100000, 1000, 7);
	smx_pump(&f, 1, 5000);
	smx_assert_flows(&f, 1);
	cr_assert_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 100000);
	close(c);
	close(s);
}

/* The key under which sockops put the socket fd (loopback: with its netns cookie). */
static void self_key(int fd, struct xm_sock_pair_key *k)
{
	struct sockaddr_in l, r;
	socklen_t len = sizeof(l);
	socklen_t cl = sizeof(k->netns);

	memset(k, 0, sizeof(*k));
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&l, &len), 0);
	len = sizeof(r);
	cr_assert_eq(getpeername(fd, (struct sockaddr *)&r, &len), 0);
	k->family = XM_FAMILY_V4;
	k->local.v4 = l.sin_addr.s_addr;
	k->remote.v4 = r.sin_addr.s_addr;
	k->local_port = ntohs(l.sin_port);
	k->remote_port = ntohs(r.sin_port);
	cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &k->netns, &cl), 0);
}

static bool has_storage(int fd, struct xm_sockmap_sk *st)
{
	int sfd = bpf_map__fd(smx.skel->maps.xm_sockmap_sk);

	return bpf_map_lookup_elem(sfd, &fd, st) == 0;
}

/*
 * Sockops takes a socket without socket storage: sk_msg creates it at the first message, so a connection
 * that closes without sending never allocates it, and still counts as closed.
 */
Test(sockmap, socket_storage_starts_at_the_first_message)
{
	struct xm_sockmap_sk st;
	char b = 'x';
	int c, s;

	smx_pair(&c, &s);
	wait_pairs(2);
	cr_assert_not(has_storage(c, &st), "the client has storage before sending");
	cr_assert_not(has_storage(s, &st), "the server has storage before sending");
	cr_assert_eq(write(c, &b, 1), 1);
	cr_assert(has_storage(c, &st), "no storage after the first message");
	cr_assert_eq(st.redir_msgs, 1);
	cr_assert_eq(st.redir_bytes, 1);
	cr_assert_eq(st.flags & XM_SMSK_F_TCP_USED, 0);
	cr_assert_not(has_storage(s, &st), "receiving creates no storage");
	cr_assert_eq(read(s, &b, 1), 1);
	cr_assert_eq(b, 'x');
	close(c);
	close(s);
	wait_pairs(0);
	cr_assert_eq(smx_stat(XM_SMSTAT_CLOSED), 2, "closed %llu (the silent server must count too)",
		     (unsigned long long)smx_stat(XM_SMSTAT_CLOSED));
	/* TCP's bytes_acked of both (sequence space: SYN and FIN count) plus the client's redirected byte. */
	cr_assert_geq(smx_stat(XM_SMSTAT_CLOSED_TX_BYTES), 1, "closed_tx_bytes %llu",
		      (unsigned long long)smx_stat(XM_SMSTAT_CLOSED_TX_BYTES));
}

/*
 * A socket whose first message in the map follows TCP payload it sent while out of the map (still unread by
 * the peer): the state created at that message must see the TCP bytes and keep the direction on TCP.
 */
Test(sockmap, tcp_payload_before_the_first_message_in_the_map_keeps_tcp)
{
	struct xm_sock_pair_key k;
	struct xm_sockmap_sk st;
	char buf[4096];
	__u64 cfd;
	int fd, c, s;

	smx_pair(&c, &s);
	wait_pairs(2);
	fd = bpf_map__fd(smx.skel->maps.xm_sock_pairs);
	self_key(c, &k);
	cr_assert_eq(bpf_map_delete_elem(fd, &k), 0, "delete client: %s", strerror(errno));
	memset(buf, 'A', sizeof(buf));
	cr_assert_eq(write(c, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert_not(has_storage(c, &st), "a socket out of the map ran sk_msg");
	cfd = (__u64)c;
	cr_assert_eq(bpf_map_update_elem(fd, &k, &cfd, BPF_NOEXIST), 0, "re-insert client: %s", strerror(errno));
	memset(buf, 'B', sizeof(buf));
	cr_assert_eq(write(c, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert(has_storage(c, &st));
	cr_assert_neq(st.flags & XM_SMSK_F_TCP_USED, 0, "TCP payload before the first message went unseen");
	cr_assert_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 0, "redirected after TCP bytes: could overtake them");
	for (size_t got = 0; got < 2 * sizeof(buf);) {
		ssize_t r = read(s, buf, sizeof(buf));

		cr_assert_gt(r, 0, "read: %s", strerror(errno));
		for (ssize_t i = 0; i < r; i++)
			cr_assert_eq(buf[i], got + (size_t)i < sizeof(buf) ? 'A' : 'B', "byte %zu out of order",
				     got + (size_t)i);
		got += (size_t)r;
	}
	close(c);
	close(s);
}

/* Switching off and on mid-stream: open connections keep working, nothing is lost or reordered. */
Test(sockmap, runtime_switch_mid_stream)
{
	struct smx_flow f[2];
	uint64_t redir_on, redir_off;
	int c, s, round;

	smx_pair(&c, &s);
	for (round = 0; round < 3; round++) {
		smx_flow_init(&f[0], c, s, 1 << 20, 32768, (uint32_t)(round * 2 + 1));
		smx_flow_init(&f[1], s, c, 1 << 20, 32768, (uint32_t)(round * 2 + 2));
		smx_set_enabled(round != 1);
		redir_on = smx_stat(XM_SMSTAT_REDIR_BYTES);
		smx_pump(f, 2, 5000);
		smx_assert_flows(f, 2);
		redir_off = smx_stat(XM_SMSTAT_REDIR_BYTES);
		if (round == 0)
			cr_assert_eq(redir_off - redir_on, 2u << 20, "round 0 redirected %llu",
				     (unsigned long long)(redir_off - redir_on));
		else
			/* Off, and on again after TCP carried data: ordering keeps this connection on TCP. */
			cr_assert_eq(redir_off, redir_on, "round %d redirected bytes", round);
	}
	cr_assert_geq(smx_stat(XM_SMSTAT_FALLBACK_OFF), 1);
	close(c);
	close(s);

	/* A connection opened while off is not inserted; one opened after switching on is. */
	smx_set_enabled(false);
	smx_pair(&c, &s);
	cr_assert_eq(smx_pairs(), 0);
	cr_assert_eq(smx_stat(XM_SMSTAT_SKIPPED_OFF), 2);
	close(c);
	close(s);
	smx_set_enabled(true);
	smx_pair(&c, &s);
	wait_pairs(2);
	close(c);
	close(s);
}

/* Established before the programs were attached: never accelerated, still works. */
Test(sockmap, connection_from_before_attach_keeps_working)
{
	struct smx_flow f[2];
	int c, s;

	smx_unload();
	smx_pair(&c, &s);
	smx_load(smx.cgroup);
	cr_assert_eq(smx_pairs(), 0);
	smx_flow_init(&f[0], c, s, 1 << 20, 65536, 1);
	smx_flow_init(&f[1], s, c, 1 << 20, 65536, 2);
	smx_pump(f, 2, 5000);
	smx_assert_flows(f, 2);
	cr_assert_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 0);
	close(c);
	close(s);
}
