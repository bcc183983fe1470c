// SPDX-License-Identifier: Apache-2.0
/*
 * The HBONE tunnel's client-side capture in the kernel (bpf/lib/hbone_capture.h, agent/datapath/hbone_capture.c):
 * a connect to a tunnelled pod of another node — dialed, or the backend chosen for a VIP — lands on the agent's
 * outbound listener at a node address, the application still sees what it dialed, and the listener learns the
 * real destination from the kernel's 4-tuple. The "remote pods" are the fixture's loopback backends: their
 * address has an xm_hbone_dsts entry as a pod of another node would. IPv6 (ipv6_* tests) goes to the listener
 * on the node's IPv6 address, the same way.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xmesh/hbone.h>

#include "datapath/hbone_capture.h"
#include "mtls_table_fixture.h"
#include "outlier/outlier.h"
#include "sandbox.h"
#include "skel/sock_lb.skel.h"
#include "sock_lb_fixture.h"

#define NODE4 "10.200.1.1"  /* the node's InternalIP: where the outbound listener is */
#define NODE6 "fd00:200::1" /* the node's IPv6 InternalIP: where the IPv6 outbound listener is */
#define POD   "127.0.0.1"   /* the fixture's backends: a pod of another node for these tests */
#define POD6  "::1"	    /* the fixture's IPv6 backends */
#define VIP4  "10.96.0.10"
#define VIP6  "fd00:96::10"

static int tl_fd = -1;	 /* the tunnel's outbound listener, made outside the mesh cgroup as the agent's */
static int tl6_fd = -1;	 /* its IPv6 twin on NODE6, at the same port (as the agent's) */
static uint16_t tl_port; /* host order */
static int l7_fd = -1;	 /* the L7 proxy's listener, for the test that has one */
static uint16_t l7_port; /* host order */

/* A listener at addr (IPv4 or IPv6) and *port (0: any, set to the port taken). */
static int listen_on(const char *addr, uint16_t *port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(*port) };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(*port) };
	bool v6 = strchr(addr, ':') != NULL;
	struct sockaddr *sa = v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a;
	socklen_t len = v6 ? sizeof(a6) : sizeof(a);
	int fd = sandbox_socket_outside(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC);

	cr_assert(fd >= 0);
	cr_assert_eq(inet_pton(v6 ? AF_INET6 : AF_INET, addr, v6 ? (void *)&a6.sin6_addr : (void *)&a.sin_addr), 1);
	cr_assert_eq(bind(fd, sa, len), 0, "bind %s: %s", addr, strerror(errno));
	cr_assert_eq(listen(fd, 64), 0);
	cr_assert_eq(getsockname(fd, sa, &len), 0);
	*port = ntohs(v6 ? a6.sin6_port : a.sin_port);
	return fd;
}

/* struct in6_ifreq of linux/ipv6.h, which clashes with netinet/in.h. */
struct xm_in6_ifreq {
	struct in6_addr addr;
	uint32_t prefixlen;
	int ifindex;
};

static void add_addr6(const char *addr)
{
	struct xm_in6_ifreq r6 = { .prefixlen = 128, .ifindex = (int)if_nametoindex("lo") };
	int fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert(fd6 >= 0);
	cr_assert_eq(inet_pton(AF_INET6, addr, &r6.addr), 1);
	cr_assert_eq(ioctl(fd6, SIOCSIFADDR, &r6), 0, "add %s: %s", addr, strerror(errno));
	close(fd6);
	/*
	 * The address is tentative until the kernel's DAD work runs (at once on lo, but from a workqueue): a bind
	 * before that fails with EADDRNOTAVAIL, as it did under load. Wait for it to be usable, at most 2 s.
	 */
	for (int i = 0; i < 200; i++) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = r6.addr };
		int probe = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		int ok = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof(a)) == 0;

		if (probe >= 0)
			close(probe);
		if (ok)
			return;
		usleep(10000);
	}
	cr_assert_fail("%s stayed unusable (tentative) for 2 s", addr);
}

static void setup(void)
{
	fx_setup();
	fx_add_addr4(NODE4);
	add_addr6(NODE6);
	tl_port = 0;
	tl_fd = listen_on(NODE4, &tl_port);
	tl6_fd = listen_on(NODE6, &tl_port);
}

static void teardown(void)
{
	if (tl_fd >= 0)
		close(tl_fd);
	if (tl6_fd >= 0)
		close(tl6_fd);
	if (l7_fd >= 0)
		close(l7_fd);
	tl_fd = tl6_fd = l7_fd = -1;
	fx_teardown();
}

/* The listeners in xm_hbone_proxy for the families asked. */
static void listener_on(bool v4, bool v6)
{
	struct l7_capture_proxy p = { .v4 = v4, .v6 = v6, .port = tl_port };

	inet_pton(AF_INET, NODE4, &p.addr4.v4);
	inet_pton(AF_INET6, NODE6, p.addr6.bytes);
	cr_assert_eq(hbone_capture_set_proxy(fx.fds.hbone_proxy, &p), 0);
}

/* xm_hbone_dsts made to hold exactly these entries (as after a restart: from unknown content). */
static void tunnelled(struct xm_mtls_entry *e, size_t n)
{
	struct xm_mtls_table t = mtx_table(e, n);

	cr_assert_eq(hbone_capture_sync(fx.fds.hbone_dsts, NULL, &t), 0);
	mtx_assert_map_is(fx.fds.hbone_dsts, &t);
}

static void tunnel_pod(uint16_t port, uint8_t mode)
{
	struct xm_mtls_entry e = mtx_entry(POD, port, mode, 0);

	tunnelled(&e, 1);
}

static void tunnel_pod6(uint16_t port, uint8_t mode)
{
	struct xm_mtls_entry e = mtx_entry(POD6, port, mode, 0);

	tunnelled(&e, 1);
}

/* The next connection a listener has, or -1 after 2 s (wait) or at once. */
static int accept_on(int lfd, int wait_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	if (poll(&p, 1, wait_ms) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static void sa_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	char ip[INET6_ADDRSTRLEN] = "?";

	cr_assert(ss->ss_family == AF_INET || ss->ss_family == AF_INET6, "not AF_INET(6): %u", ss->ss_family);
	if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s %u", ip, ntohs(s6->sin6_port));
		return;
	}
	inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "%s %u", ip, ntohs(s4->sin_port));
}

static void local_str(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	sa_str(&ss, buf, len);
}

/* The accepted connection's entry: target and dialed as "addr port", taken out (a second lookup finds none). */
static void expect_captured(int c, int s, const char *target, const char *dialed, uint32_t svc_id)
{
	struct hbone_captured got;
	char t[64], d[64], cl[64], want_cl[64];
	uint64_t netns = 0;
	socklen_t nl = sizeof(netns);
	int err;

	memset(&got, 0xa5, sizeof(got));
	err = hbone_capture_lookup(fx.fds.hbone_origdst, s, &got);
	cr_assert_eq(err, 0, "hbone_capture_lookup: %s", strerror(-err));
	sa_str(&got.target, t, sizeof(t));
	sa_str(&got.dialed, d, sizeof(d));
	sa_str(&got.client, cl, sizeof(cl));
	local_str(c, want_cl, sizeof(want_cl));
	cr_expect_str_eq(t, target, "target");
	cr_expect_str_eq(d, dialed, "dialed");
	cr_expect_str_eq(cl, want_cl, "client");
	cr_expect_eq(got.svc_id, svc_id, "svc_id %u, want %u", got.svc_id, svc_id);
	cr_assert_eq(getsockopt(c, SOL_SOCKET, SO_NETNS_COOKIE, &netns, &nl), 0);
	cr_expect_eq(got.netns, netns, "netns cookie");
	cr_expect_eq(hbone_capture_lookup(fx.fds.hbone_origdst, s, &got), -ENOENT, "the entry is taken once");
}

static void wait_closed(void)
{
	int fd = bpf_map__fd(fx.skel->maps.xm_sock_state);

	for (int i = 0; i < 100 && (fx_map_entries(fd, sizeof(__u64)) || fx_backend_conns_total()); i++)
		usleep(10000);
	cr_expect_eq(fx_map_entries(fd, sizeof(__u64)), 0, "CLOSE removes the socket's state");
	cr_expect_eq(fx_backend_conns_total(), 0, "close uncounts");
}

// cppcheck-suppress unknownMacro
TestSuite(hbone_capture, .init = setup, .fini = teardown, .timeout = 30);

Test(hbone_capture, direct_dial_lands_on_listener)
{
	char peer[80], want[80];
	int c, s;

	fx_listeners(1, SOCK_STREAM, false);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	c = fx_connect(POD, fx.port[0]);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	s = accept_on(tl_fd, 2000);
	cr_assert(s >= 0, "the tunnel listener got no connection");
	cr_expect_not(fx_backend_pending(), "the pod got the connection in plaintext");
	snprintf(want, sizeof(want), POD " %u", fx.port[0]);
	fx_peer_str(c, peer, sizeof(peer));
	cr_expect_str_eq(peer, want, "getpeername answers the pod dialed");
	expect_captured(c, s, want, want, 0);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 1);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_LB_TCP), 0);
	cr_expect_eq(fx_backend_conns_total(), 0, "a pod dialed directly has no backend to count");
	close(c);
	close(s);
	wait_closed();
	cr_expect_eq(fx_map_entries(fx.fds.conn_metrics, sizeof(struct xm_conn_metrics_key)), 0);
}

Test(hbone_capture, v4_mapped_dial_lands_on_listener)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
	char peer[80], want[80], target[80];
	int c, s;

	fx_listeners(1, SOCK_STREAM, false);
	tunnel_pod(0, XM_MTLS_MODE_PERMISSIVE);
	listener_on(true, false);
	c = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(c >= 0);
	inet_pton(AF_INET6, "::ffff:" POD, &a.sin6_addr);
	a.sin6_port = htons(fx.port[0]);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
	s = accept_on(tl_fd, 2000);
	cr_assert(s >= 0, "the tunnel listener got no connection");
	snprintf(want, sizeof(want), "::ffff:" POD " %u", fx.port[0]);
	fx_peer_str(c, peer, sizeof(peer));
	cr_expect_str_eq(peer, want, "getpeername answers the pod dialed, v4-mapped");
	{
		struct hbone_captured got;

		cr_assert_eq(hbone_capture_lookup(fx.fds.hbone_origdst, s, &got), 0);
		sa_str(&got.target, target, sizeof(target));
		snprintf(want, sizeof(want), POD " %u", fx.port[0]);
		cr_expect_str_eq(target, want);
	}
	close(c);
	close(s);
}

/* A VIP whose chosen backend is a tunnelled pod: target = that backend, the app sees the VIP, counted. */
Test(hbone_capture, vip_dial_tunnels_the_chosen_backend)
{
	char peer[80], want_t[80], t[80];
	struct hbone_captured got;
	uint32_t svc_id;
	int c, s, chosen = -1, i;

	fx_listeners(2, SOCK_STREAM, false);
	svc_id = fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 2, 0);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	c = fx_connect(VIP4, 80);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	s = accept_on(tl_fd, 2000);
	cr_assert(s >= 0, "the tunnel listener got no connection");
	cr_expect_not(fx_backend_pending(), "a backend got the connection in plaintext");
	fx_peer_str(c, peer, sizeof(peer));
	cr_expect_str_eq(peer, VIP4 " 80", "getpeername answers the VIP");
	cr_assert_eq(hbone_capture_lookup(fx.fds.hbone_origdst, s, &got), 0);
	sa_str(&got.target, t, sizeof(t));
	for (i = 0; i < 2; i++) {
		snprintf(want_t, sizeof(want_t), POD " %u", fx.port[i]);
		if (!strcmp(t, want_t))
			chosen = i;
	}
	cr_assert(chosen >= 0, "target %s is none of the backends", t);
	sa_str(&got.dialed, t, sizeof(t));
	cr_expect_str_eq(t, VIP4 " 80");
	cr_expect_eq(got.svc_id, svc_id);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 1);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_LB_TCP), 1, "balanced by the socket LB first");
	/* LEAST_REQUEST sees the connection on the backend it goes to. */
	{
		struct xm_backend_conns bc;
		__u32 id = fx_backend_id(chosen);

		cr_assert_eq(bpf_map_lookup_elem(fx.fds.backend_conns, &id, &bc), 0);
		cr_expect_eq(bc.active, 1, "the chosen backend counts the tunnelled connection");
		cr_expect_eq(fx_backend_conns_total(), 1);
	}
	/* The second connect goes to the other backend (least request), through the tunnel too. */
	{
		int c2 = fx_connect(VIP4, 80), s2;

		cr_assert(c2 >= 0);
		s2 = accept_on(tl_fd, 2000);
		cr_assert(s2 >= 0);
		cr_assert_eq(hbone_capture_lookup(fx.fds.hbone_origdst, s2, &got), 0);
		sa_str(&got.target, t, sizeof(t));
		snprintf(want_t, sizeof(want_t), POD " %u", fx.port[1 - chosen]);
		cr_expect_str_eq(t, want_t, "least request picked the other backend");
		cr_expect_eq(fx_backend_conns_total(), 2);
		close(c2);
		close(s2);
	}
	close(c);
	close(s);
	wait_closed();
	/* Istio's TCP metrics count both, per backend, marked as carried in mutual TLS. */
	cr_expect_eq(fx_map_entries(fx.fds.conn_metrics, sizeof(struct xm_conn_metrics_key)), 2);
	{
		struct xm_conn_metrics_key k, next, *prev = NULL;
		struct xm_conn_metrics m;

		while (bpf_map_get_next_key(fx.fds.conn_metrics, prev, &next) == 0) {
			k = next;
			prev = &k;
			cr_assert_eq(bpf_map_lookup_elem(fx.fds.conn_metrics, &k, &m), 0);
			cr_expect_eq(k.flags, XM_CONN_F_MTLS, "a tunnelled connection's metrics are marked mutual TLS");
			cr_expect_eq(k.svc_id, svc_id);
			cr_expect(m.opened == 1 && m.closed == 1, "opened %llu closed %llu",
				  (unsigned long long)m.opened, (unsigned long long)m.closed);
		}
	}
}

/*
 * The hop to the local listener says nothing of the backend's health: a refused hop (no listener) is no
 * outlier failure of the backend, and its count goes back.
 */
Test(hbone_capture, refused_hop_is_no_outlier_failure)
{
	struct xm_outlier_detection od;
	struct xm_endpoint_health h;
	uint32_t svc_id;
	int c, i;

	memset(&od, 0, sizeof(od));
	config_outlier_defaults(&od);
	od.set = true;
	od.consecutive_5xx_errors = 1;
	od.max_ejection_percent = 100;
	fx_listeners(1, SOCK_STREAM, false);
	svc_id = fx_publish_od(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, &od);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	close(tl_fd); /* the agent's listener is gone: the hop is refused */
	tl_fd = -1;
	for (i = 0; i < 3; i++) {
		c = fx_connect(VIP4, 80);
		cr_expect_eq(c, -ECONNREFUSED, "connect %d: %d", i, c);
		if (c >= 0)
			close(c);
	}
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 3);
	cr_assert_eq(outlier_read(fx.fds.outlier, svc_id, fx_backend_id(0), &h), 0);
	cr_expect_not(h.ejected, "the backend was ejected for the local hop's failures");
	cr_expect_eq(h.consecutive_local, 0);
	cr_expect_eq(h.consecutive_5xx, 0);
	wait_closed();
	/* Without the tunnel the same refusal is the backend's: reported (the check above can fail). */
	close(fx.listen_fd[0]);
	fx.n_backends = 0;
	tunnel_pod(0, XM_MTLS_MODE_DISABLE);
	c = fx_connect(VIP4, 80);
	cr_expect_eq(c, -ECONNREFUSED);
	cr_assert_eq(outlier_read(fx.fds.outlier, svc_id, fx_backend_id(0), &h), 0);
	cr_expect(h.ejected, "a refused plaintext connect was not reported");
}

/* A connect that is not captured reaches the pod itself; nothing is recorded. */
static void expect_plain(const char *dial, uint16_t port)
{
	int c = fx_connect(dial, port);

	cr_assert(c >= 0, "connect %s %u: %s", dial, port, strerror(-c));
	cr_expect_eq(fx_accept_which(), 0, "the pod did not get the connection");
	cr_expect_eq(accept_on(tl_fd, 0), -1, "the tunnel listener got it");
	cr_expect_eq(accept_on(tl6_fd, 0), -1, "the IPv6 tunnel listener got it");
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 0);
	cr_expect_eq(fx_map_entries(fx.fds.hbone_origdst, sizeof(struct xm_l7_origdst_key)), 0);
	close(c);
}

Test(hbone_capture, disable_is_plaintext)
{
	fx_listeners(1, SOCK_STREAM, false);
	tunnel_pod(0, XM_MTLS_MODE_DISABLE);
	listener_on(true, false);
	expect_plain(POD, fx.port[0]);
}

Test(hbone_capture, no_entry_is_plaintext)
{
	struct xm_mtls_entry other = mtx_entry("10.244.9.9", 0, XM_MTLS_MODE_STRICT, 0);

	fx_listeners(1, SOCK_STREAM, false);
	tunnelled(&other, 1);
	listener_on(true, false);
	expect_plain(POD, fx.port[0]);
}

Test(hbone_capture, vip_backend_without_entry_is_plaintext)
{
	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	listener_on(true, false);
	expect_plain(VIP4, 80);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_LB_TCP), 1);
}

/* portLevelMtls: the port's own entry wins over the pod's, both ways. */
Test(hbone_capture, port_level_entry_overrides_the_pod)
{
	struct xm_mtls_entry e[2];
	int c, s;

	fx_listeners(2, SOCK_STREAM, false);
	e[0] = mtx_entry(POD, 0, XM_MTLS_MODE_STRICT, 0);
	e[1] = mtx_entry(POD, fx.port[0], XM_MTLS_MODE_DISABLE, 0);
	tunnelled(e, 2);
	listener_on(true, false);
	expect_plain(POD, fx.port[0]);
	/* The pod's other port follows the pod's STRICT. */
	c = fx_connect(POD, fx.port[1]);
	cr_assert(c >= 0);
	s = accept_on(tl_fd, 2000);
	cr_expect(s >= 0, "the pod's other port was not tunnelled");
	close(c);
	if (s >= 0)
		close(s);
	/* And the other way: a DISABLE pod with one port PERMISSIVE. */
	e[0] = mtx_entry(POD, 0, XM_MTLS_MODE_DISABLE, 0);
	e[1] = mtx_entry(POD, fx.port[0], XM_MTLS_MODE_PERMISSIVE, 0);
	tunnelled(e, 2);
	c = fx_connect(POD, fx.port[0]);
	cr_assert(c >= 0);
	s = accept_on(tl_fd, 2000);
	cr_expect(s >= 0, "the PERMISSIVE port of a DISABLE pod was not tunnelled");
	close(c);
	if (s >= 0)
		close(s);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 2);
}

/* A connection to 15008 is already HBONE (a client such as ztunnel's): never tunnelled again. */
Test(hbone_capture, port_15008_is_not_captured)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(XM_HBONE_INBOUND_PORT) };

	fx_listeners(0, SOCK_STREAM, false);
	fx.listen_fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fx.listen_fd[0] >= 0);
	inet_pton(AF_INET, POD, &a.sin_addr);
	cr_assert_eq(bind(fx.listen_fd[0], (struct sockaddr *)&a, sizeof(a)), 0, "bind 15008: %s", strerror(errno));
	cr_assert_eq(listen(fx.listen_fd[0], 8), 0);
	fx.port[0] = XM_HBONE_INBOUND_PORT;
	fx.n_backends = 1;
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	expect_plain(POD, XM_HBONE_INBOUND_PORT);
}

Test(hbone_capture, without_listener_is_plaintext)
{
	fx_listeners(1, SOCK_STREAM, false);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	/* A fresh map (no agent has set a listener), then an IPv6-only listener, then one set and unset again. */
	expect_plain(POD, fx.port[0]);
	listener_on(false, true);
	expect_plain(POD, fx.port[0]);
	listener_on(true, false);
	cr_assert_eq(hbone_capture_set_proxy(fx.fds.hbone_proxy, NULL), 0);
	expect_plain(POD, fx.port[0]);
}

Test(hbone_capture, udp_is_not_captured)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char buf[8];
	int c;

	fx_listeners(1, SOCK_DGRAM, false);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, POD, &a.sin_addr);
	a.sin_port = htons(fx.port[0]);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(send(c, "ping", 4, 0), 4);
	cr_expect_eq(recv(fx.listen_fd[0], buf, sizeof(buf), MSG_DONTWAIT), 4, "the pod got nothing");
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 0);
	close(c);
}

/* An HTTP service port captured by the L7 proxy stays the proxy's: it tunnels its own upstream connections. */
Test(hbone_capture, l7_captured_service_stays_the_proxys)
{
	struct l7_capture_proxy p = { .v4 = true };
	int c, s;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	l7_fd = listen_on(NODE4, &l7_port);
	p.port = l7_port;
	inet_pton(AF_INET, NODE4, &p.addr4.v4);
	cr_assert_eq(l7_capture_set_proxy(fx.fds.l7_proxy, &p), 0);
	c = fx_connect(VIP4, 80);
	cr_assert(c >= 0);
	s = accept_on(l7_fd, 2000);
	cr_expect(s >= 0, "the L7 proxy did not get the HTTP connect");
	cr_expect_eq(accept_on(tl_fd, 0), -1, "the tunnel listener got an L7-captured connect");
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 0);
	close(c);
	if (s >= 0)
		close(s);
}

/* A connection the kernel did not capture (dialing the listener itself) has no entry: the agent must refuse. */
Test(hbone_capture, lookup_of_an_uncaptured_connection)
{
	struct hbone_captured got;
	int c, s;

	listener_on(true, false);
	c = fx_connect(NODE4, tl_port);
	cr_assert(c >= 0);
	s = accept_on(tl_fd, 2000);
	cr_assert(s >= 0);
	cr_expect_eq(hbone_capture_lookup(fx.fds.hbone_origdst, s, &got), -ENOENT);
	cr_expect_eq(hbone_capture_lookup(fx.fds.hbone_origdst, -1, &got), -EBADF);
	close(c);
	close(s);
}

/* Two captured connections at once: each accepted socket finds its own destination. */
Test(hbone_capture, each_connection_gets_its_own_destination)
{
	char want[2][80], t[80];
	struct hbone_captured got;
	int c[2], s[2], i, j;

	fx_listeners(2, SOCK_STREAM, false);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	for (i = 0; i < 2; i++) {
		c[i] = fx_connect(POD, fx.port[i]);
		cr_assert(c[i] >= 0);
		snprintf(want[i], sizeof(want[i]), POD " %u", fx.port[i]);
	}
	for (i = 0; i < 2; i++) {
		char peer[64], local[64];

		s[i] = accept_on(tl_fd, 2000);
		cr_assert(s[i] >= 0);
		cr_assert_eq(hbone_capture_lookup(fx.fds.hbone_origdst, s[i], &got), 0);
		sa_str(&got.client, peer, sizeof(peer));
		sa_str(&got.target, t, sizeof(t));
		for (j = 0; j < 2; j++) {
			local_str(c[j], local, sizeof(local));
			if (!strcmp(local, peer))
				break;
		}
		cr_assert(j < 2, "client %s is none of the connecting sockets", peer);
		cr_expect_str_eq(t, want[j], "connection %d", j);
	}
	for (i = 0; i < 2; i++) {
		close(c[i]);
		close(s[i]);
	}
}

/* Sync: from unknown content (stale keys dropped), then from a known table (changed, added, removed). */
Test(hbone_capture, sync_follows_each_table)
{
	struct xm_mtls_entry stale = mtx_entry("10.244.7.7", 0, XM_MTLS_MODE_STRICT, 0);
	struct xm_mtls_entry a[] = {
		mtx_entry("10.244.2.5", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
		mtx_entry("10.244.2.5", 8080, XM_MTLS_MODE_DISABLE, 0),
		mtx_entry("10.244.2.6", 0, XM_MTLS_MODE_PERMISSIVE, 0),
	};
	struct xm_mtls_entry b[] = {
		mtx_entry("10.244.2.5", 0, XM_MTLS_MODE_PERMISSIVE, 0),
		mtx_entry("10.244.2.6", 0, XM_MTLS_MODE_PERMISSIVE, 0),
		mtx_entry("10.244.3.9", 9090, XM_MTLS_MODE_STRICT, 0),
	};
	struct xm_mtls_table ta = mtx_table(a, 3), tb = mtx_table(b, 3), empty = { 0 };

	cr_assert_eq(bpf_map_update_elem(fx.fds.hbone_dsts, &stale.key, &stale.val, BPF_ANY), 0);
	cr_assert_eq(hbone_capture_sync(fx.fds.hbone_dsts, NULL, &ta), 0);
	mtx_assert_map_is(fx.fds.hbone_dsts, &ta);
	cr_assert_eq(hbone_capture_sync(fx.fds.hbone_dsts, &ta, &tb), 0);
	mtx_assert_map_is(fx.fds.hbone_dsts, &tb);
	cr_assert_eq(hbone_capture_sync(fx.fds.hbone_dsts, &tb, &empty), 0);
	mtx_assert_map_is(fx.fds.hbone_dsts, &empty);
	cr_expect_eq(hbone_capture_sync(-1, NULL, &ta), -EIO, "a bad map fd is an error");
}

/* IPv6: a pod of another node dialed directly lands on the IPv6 listener; its entry names the IPv6 pod. */
Test(hbone_capture, ipv6_direct_dial_lands_on_v6_listener)
{
	char peer[80], want[80];
	int c, s;

	fx_listeners(1, SOCK_STREAM, true);
	tunnel_pod6(0, XM_MTLS_MODE_STRICT);
	listener_on(true, true);
	c = fx_connect(POD6, fx.port[0]);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	s = accept_on(tl6_fd, 2000);
	cr_assert(s >= 0, "the IPv6 tunnel listener got no connection");
	cr_expect_eq(accept_on(tl_fd, 0), -1, "the IPv4 listener got an IPv6 connect");
	cr_expect_not(fx_backend_pending(), "the pod got the connection in plaintext");
	local_str(s, peer, sizeof(peer));
	snprintf(want, sizeof(want), NODE6 " %u", tl_port);
	cr_expect_str_eq(peer, want, "rewritten to the IPv6 listener");
	snprintf(want, sizeof(want), POD6 " %u", fx.port[0]);
	fx_peer_str(c, peer, sizeof(peer));
	cr_expect_str_eq(peer, want, "getpeername answers the pod dialed");
	expect_captured(c, s, want, want, 0);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 1);
	cr_expect_eq(fx_backend_conns_total(), 0, "a pod dialed directly has no backend to count");
	close(c);
	close(s);
	wait_closed();
}

/* IPv6 VIP: the socket LB's backend is tunnelled: target = that IPv6 backend, dialed = the VIP, counted. */
Test(hbone_capture, ipv6_vip_dial_tunnels_the_chosen_backend)
{
	char peer[80], want[80];
	uint32_t svc_id;
	int c, s;

	fx_listeners(1, SOCK_STREAM, true);
	svc_id = fx_publish_flags(VIP6, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, 0);
	tunnel_pod6(0, XM_MTLS_MODE_PERMISSIVE);
	listener_on(true, true);
	c = fx_connect(VIP6, 80);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	s = accept_on(tl6_fd, 2000);
	cr_assert(s >= 0, "the IPv6 tunnel listener got no connection");
	cr_expect_not(fx_backend_pending(), "the backend got the connection in plaintext");
	fx_peer_str(c, peer, sizeof(peer));
	cr_expect_str_eq(peer, VIP6 " 80", "getpeername answers the VIP");
	snprintf(want, sizeof(want), POD6 " %u", fx.port[0]);
	expect_captured(c, s, want, VIP6 " 80", svc_id);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_HBONE_CAPTURE), 1);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_LB_TCP), 1, "balanced by the socket LB first");
	cr_expect_eq(fx_backend_conns_total(), 1, "the backend counts the tunnelled connection");
	close(c);
	close(s);
	wait_closed();
	cr_expect_eq(fx_map_entries(fx.fds.conn_metrics, sizeof(struct xm_conn_metrics_key)), 1);
	{
		struct xm_conn_metrics_key k;

		cr_assert_eq(bpf_map_get_next_key(fx.fds.conn_metrics, NULL, &k), 0);
		cr_expect_eq(k.family, XM_FAMILY_V6);
		cr_expect_eq(k.flags, XM_CONN_F_MTLS, "marked mutual TLS");
	}
}

/* Each family has its own listener flag: IPv6 is not captured without its own (an IPv6-only one: above). */
Test(hbone_capture, ipv6_needs_the_v6_listener)
{
	int c, s;

	fx_listeners(1, SOCK_STREAM, true);
	tunnel_pod6(0, XM_MTLS_MODE_STRICT);
	expect_plain(POD6, fx.port[0]); /* a fresh map */
	listener_on(true, false);
	expect_plain(POD6, fx.port[0]);
	listener_on(false, true);
	c = fx_connect(POD6, fx.port[0]);
	cr_assert(c >= 0);
	s = accept_on(tl6_fd, 2000);
	cr_expect(s >= 0, "the IPv6 pod was not captured by the IPv6-only listener");
	close(c);
	if (s >= 0)
		close(s);
}

/* The same verdicts as IPv4: DISABLE, no entry, a DISABLE port of a STRICT pod, 15008 stay plaintext. */
Test(hbone_capture, ipv6_plaintext_verdicts)
{
	struct xm_mtls_entry e[2];
	int c, s;

	fx_listeners(2, SOCK_STREAM, true);
	listener_on(true, true);
	tunnel_pod6(0, XM_MTLS_MODE_DISABLE);
	expect_plain(POD6, fx.port[0]);
	e[0] = mtx_entry("fd00:244::9", 0, XM_MTLS_MODE_STRICT, 0);
	tunnelled(e, 1);
	expect_plain(POD6, fx.port[0]);
	e[0] = mtx_entry(POD6, 0, XM_MTLS_MODE_STRICT, 0);
	e[1] = mtx_entry(POD6, fx.port[0], XM_MTLS_MODE_DISABLE, 0);
	tunnelled(e, 2);
	expect_plain(POD6, fx.port[0]);
	c = fx_connect(POD6, fx.port[1]);
	cr_assert(c >= 0);
	s = accept_on(tl6_fd, 2000);
	cr_expect(s >= 0, "the STRICT pod's other port was not tunnelled");
	close(c);
	if (s >= 0)
		close(s);
}

Test(hbone_capture, ipv6_port_15008_is_not_captured)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(XM_HBONE_INBOUND_PORT) };

	fx_listeners(0, SOCK_STREAM, true);
	fx.listen_fd[0] = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fx.listen_fd[0] >= 0);
	inet_pton(AF_INET6, POD6, &a.sin6_addr);
	cr_assert_eq(bind(fx.listen_fd[0], (struct sockaddr *)&a, sizeof(a)), 0, "bind 15008: %s", strerror(errno));
	cr_assert_eq(listen(fx.listen_fd[0], 8), 0);
	fx.port[0] = XM_HBONE_INBOUND_PORT;
	fx.n_backends = 1;
	tunnel_pod6(0, XM_MTLS_MODE_STRICT);
	listener_on(true, true);
	expect_plain(POD6, XM_HBONE_INBOUND_PORT);
}

/*
 * Map errors: with a full one-entry origdst map the connect is still captured, the failed insert counted, and
 * the listener finds no destination (the agent refuses it); with a full socket-state map it goes out plain.
 */
static void one_entry_maps(struct sock_lb *skel)
{
	cr_assert_eq(bpf_map__set_type(skel->maps.xm_hbone_origdst, BPF_MAP_TYPE_HASH), 0);
	cr_assert_eq(bpf_map__set_max_entries(skel->maps.xm_hbone_origdst, 1), 0);
	cr_assert_eq(bpf_map__set_type(skel->maps.xm_sock_state, BPF_MAP_TYPE_HASH), 0);
	cr_assert_eq(bpf_map__set_max_entries(skel->maps.xm_sock_state, 1), 0);
}

static void map_errors_setup(void)
{
	fx_before_load = one_entry_maps;
	setup();
}

TestSuite(hbone_capture_map_errors, .init = map_errors_setup, .fini = teardown, .timeout = 30);

Test(hbone_capture_map_errors, full_origdst_counted_and_refused)
{
	struct xm_l7_origdst_key k;
	struct xm_hbone_origdst v;
	struct hbone_captured got;
	int c, s;

	memset(&k, 0xee, sizeof(k));
	memset(&v, 0, sizeof(v));
	cr_assert_eq(bpf_map_update_elem(fx.fds.hbone_origdst, &k, &v, BPF_NOEXIST), 0);
	fx_listeners(1, SOCK_STREAM, false);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	c = fx_connect(POD, fx.port[0]);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	s = accept_on(tl_fd, 2000);
	cr_assert(s >= 0, "not captured");
	cr_expect_eq(fx_map_error(XM_MAPERR_HBONE_ORIGDST), 1);
	cr_expect_eq(hbone_capture_lookup(fx.fds.hbone_origdst, s, &got), -ENOENT);
	close(c);
	close(s);
}

Test(hbone_capture_map_errors, full_sock_state_goes_plain)
{
	__u64 cookie = 0xeeeeeeeeULL;
	struct xm_sock_state st;

	memset(&st, 0, sizeof(st));
	cr_assert_eq(bpf_map_update_elem(bpf_map__fd(fx.skel->maps.xm_sock_state), &cookie, &st, BPF_NOEXIST), 0);
	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	tunnel_pod(0, XM_MTLS_MODE_STRICT);
	listener_on(true, false);
	/* Neither a pod dialed directly nor a VIP's backend can be captured without the socket's state. */
	expect_plain(POD, fx.port[0]);
	expect_plain(VIP4, 80);
	cr_expect_eq(fx_map_error(XM_MAPERR_SOCK_STATE), 2);
}
