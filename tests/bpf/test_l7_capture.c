// SPDX-License-Identifier: Apache-2.0
/*
 * L7 capture: a connect to an HTTP service port lands on the proxy's listener at a node address, the client
 * still sees the VIP, and the proxy learns the VIP from the kernel's 4-tuple; the hop rides the sockmap.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xmesh/l7.h>

#include "core/percpu.h"
#include "datapath/l7_capture.h"
#include "datapath/pins.h"
#include "datapath/sockmap.h"
#include "sandbox.h"
#include "skel/sock_lb.skel.h"
#include "skel/sockmap.skel.h"
#include "sock_lb_fixture.h"
#include "sockmap_fixture.h"

/* The node's InternalIPs in the e2e topology: here on the sandbox's loopback. */
#define PROXY4 "10.200.1.1"
#define PROXY6 "fd00:200::1"
#define VIP4   "10.96.0.10"
#define VIP4B  "10.96.0.11"
#define VIP6   "fd00:96::10"

static int proxy_lfd = -1;
static uint16_t proxy_port; /* host order */

/* struct in6_ifreq of linux/ipv6.h, which clashes with netinet/in.h. */
struct xm_in6_ifreq {
	struct in6_addr addr;
	uint32_t prefixlen;
	int ifindex;
};

static void add_proxy_addresses(void)
{
	struct xm_in6_ifreq r6 = { .prefixlen = 128, .ifindex = (int)if_nametoindex("lo") };
	int fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert(fd6 >= 0);
	fx_add_addr4(PROXY4);
	inet_pton(AF_INET6, PROXY6, &r6.addr);
	cr_assert_eq(ioctl(fd6, SIOCSIFADDR, &r6), 0, "add " PROXY6 ": %s", strerror(errno));
	close(fd6);
}

/* The proxy's dual-stack listener on every address (IPv4 arrives v4-mapped); outside: in the agent's cgroup. */
static void proxy_listen(bool outside)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	socklen_t len = sizeof(a);
	int off = 0;

	proxy_lfd = outside ? sandbox_socket_outside(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC)
			    : socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(proxy_lfd >= 0);
	cr_assert_eq(setsockopt(proxy_lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)), 0);
	cr_assert_eq(bind(proxy_lfd, (struct sockaddr *)&a, sizeof(a)), 0, "bind proxy: %s", strerror(errno));
	cr_assert_eq(listen(proxy_lfd, 64), 0);
	cr_assert_eq(getsockname(proxy_lfd, (struct sockaddr *)&a, &len), 0);
	proxy_port = ntohs(a.sin6_port);
}

static void proxy_on(bool v4, bool v6)
{
	struct l7_capture_proxy p = { .v4 = v4, .v6 = v6, .port = proxy_port };

	inet_pton(AF_INET, PROXY4, &p.addr4.v4);
	inet_pton(AF_INET6, PROXY6, p.addr6.bytes);
	cr_assert_eq(l7_capture_set_proxy(fx.fds.l7_proxy, &p), 0);
}

static void setup(void)
{
	fx_setup();
	add_proxy_addresses();
	proxy_listen(false);
}

static void teardown(void)
{
	if (proxy_lfd >= 0)
		close(proxy_lfd);
	proxy_lfd = -1;
	fx_teardown();
}

/* The next connection the proxy's listener has, or -1 after 2 s. */
static int proxy_accept(void)
{
	struct pollfd p = { .fd = proxy_lfd, .events = POLLIN };

	if (poll(&p, 1, 2000) != 1)
		return -1;
	return accept4(proxy_lfd, NULL, NULL, SOCK_CLOEXEC);
}

static struct xm_svc_key svc_key(const char *vip, uint16_t port)
{
	struct xm_svc_key k;
	bool v6 = strchr(vip, ':') != NULL;

	memset(&k, 0, sizeof(k));
	cr_assert_eq(inet_pton(v6 ? AF_INET6 : AF_INET, vip, k.vip.bytes), 1);
	k.family = v6 ? XM_FAMILY_V6 : XM_FAMILY_V4;
	k.port = htons(port);
	k.proto = XM_PROTO_TCP;
	return k;
}

static void expect_lookup(int accepted, const char *vip, uint16_t port, uint32_t svc_id)
{
	struct xm_svc_key got, want = svc_key(vip, port);
	uint32_t id = 0;
	int err = l7_capture_lookup(fx.fds.l7_origdst, accepted, &got, &id);

	cr_assert_eq(err, 0, "lookup: %s", strerror(-err));
	cr_expect_eq(memcmp(&got, &want, sizeof(got)), 0, "lookup gave another destination than %s:%u", vip, port);
	cr_expect_eq(id, svc_id, "svc_id %u, want %u", id, svc_id);
	/* Taken: a second lookup of the same connection finds nothing. */
	cr_expect_eq(l7_capture_lookup(fx.fds.l7_origdst, accepted, &got, &id), -ENOENT);
}

/* One captured connect: lands on the proxy, the app sees the VIP, the proxy learns it; nothing is counted at L4. */
static void captured_once(const char *dial, const char *vip, const char *seen)
{
	char peer[80], want[80];
	uint32_t svc_id;
	int c, s, i;

	fx_listeners(2, SOCK_STREAM, strchr(vip, ':') != NULL);
	svc_id = fx_publish_flags(vip, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 2, XM_SVC_F_L7);
	proxy_on(true, true);
	c = fx_connect(dial, 80);
	cr_assert(c >= 0, "connect %s: %s", dial, strerror(-c));
	s = proxy_accept();
	cr_assert(s >= 0, "the proxy's listener got no connection");
	cr_expect_not(fx_backend_pending(), "a backend got the captured connection");
	fx_peer_str(c, peer, sizeof(peer));
	snprintf(want, sizeof(want), "%s 80", seen);
	cr_expect_str_eq(peer, want, "getpeername on the client");
	expect_lookup(s, vip, 80, svc_id);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_L7_CAPTURE), 1);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_LB_TCP), 0);
	cr_expect_eq(fx_backend_conns_total(), 0, "a captured socket counted for a backend");
	close(c);
	close(s);
	/* CLOSE removes the socket's state; a captured socket never gets TCP connection metrics. */
	for (i = 0; i < 100 && fx_map_entries(bpf_map__fd(fx.skel->maps.xm_sock_state), sizeof(__u64)); i++)
		usleep(10000);
	cr_expect_eq(fx_map_entries(bpf_map__fd(fx.skel->maps.xm_sock_state), sizeof(__u64)), 0);
	cr_expect_eq(fx_map_entries(fx.fds.conn_metrics, sizeof(struct xm_conn_metrics_key)), 0);
	cr_expect_eq(fx_backend_conns_total(), 0);
}

// cppcheck-suppress unknownMacro
TestSuite(l7_capture, .init = setup, .fini = teardown, .timeout = 30);

Test(l7_capture, ipv4_connect_lands_on_proxy)
{
	captured_once(VIP4, VIP4, VIP4);
}

Test(l7_capture, ipv6_connect_lands_on_proxy)
{
	captured_once(VIP6, VIP6, VIP6);
}

Test(l7_capture, v4_mapped_connect_lands_on_proxy)
{
	captured_once("::ffff:" VIP4, VIP4, "::ffff:" VIP4);
}

Test(l7_capture, without_proxy_balanced_at_l4)
{
	int c, i;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	/* A fresh map (no agent has configured a proxy), then one switched on and off again. */
	for (i = 0; i < 2; i++) {
		if (i == 1) {
			proxy_on(true, true);
			cr_assert_eq(l7_capture_set_proxy(fx.fds.l7_proxy, NULL), 0);
		}
		c = fx_connect(VIP4, 80);
		cr_assert(c >= 0, "connect: %s", strerror(-c));
		cr_expect_eq(fx_backend_conns_total(), 1, "an L4-balanced connection is counted for its backend");
		cr_expect_eq(fx_accept_which(), 0, "the backend did not get the connection");
		close(c);
		for (int w = 0; w < 100 && fx_backend_conns_total(); w++)
			usleep(10000);
	}
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_L7_NO_PROXY), 2);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_L7_CAPTURE), 0);
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_LB_TCP), 2);
}

Test(l7_capture, family_without_proxy_balanced_at_l4)
{
	int c;

	fx_listeners(1, SOCK_STREAM, true);
	fx_publish_flags(VIP6, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	proxy_on(true, false);
	c = fx_connect(VIP6, 80);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	cr_expect_eq(fx_accept_which(), 0, "the IPv6 service went elsewhere with only an IPv4 proxy");
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_L7_NO_PROXY), 1);
	close(c);
}

Test(l7_capture, other_service_untouched)
{
	int c;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	proxy_on(true, true);
	c = fx_connect(VIP4, 80);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	cr_expect_eq(fx_accept_which(), 0, "a TCP service port went to the proxy");
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_L7_CAPTURE), 0);
	cr_expect_eq(fx_map_entries(fx.fds.l7_origdst, sizeof(struct xm_l7_origdst_key)), 0);
	close(c);
}

Test(l7_capture, udp_to_http_port_balanced_at_l4)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80) };
	char buf[8];
	int c;

	fx_listeners(1, SOCK_DGRAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_UDP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	proxy_on(true, true);
	c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, VIP4, &a.sin_addr);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(send(c, "ping", 4, 0), 4);
	cr_expect_eq(recv(fx.listen_fd[0], buf, sizeof(buf), MSG_DONTWAIT), 4, "the UDP backend got nothing");
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_L7_CAPTURE), 0);
	close(c);
}

/* Two services in one apply (fx_publish replaces the whole state). */
static void publish_two(uint32_t *id_a, uint32_t *id_b)
{
	static struct xm_lb_backend be[2];
	struct xm_lb_service svc[2];
	struct xm_lb_state st = { .services = svc, .n_services = 2 };
	struct xm_lbmap_stats stats;
	int i;

	memset(svc, 0, sizeof(svc));
	for (i = 0; i < 2; i++) {
		memset(&be[i], 0, sizeof(be[i]));
		be[i].family = XM_FAMILY_V4;
		inet_pton(AF_INET, "127.0.0.1", be[i].addr.bytes);
		be[i].port = fx.port[i];
		be[i].ready = true;
		snprintf(svc[i].ns, sizeof(svc[i].ns), "test");
		snprintf(svc[i].name, sizeof(svc[i].name), "svc%d", i);
		svc[i].key = svc_key(i ? VIP4B : VIP4, 80);
		svc[i].flags = XM_SVC_F_L7;
		svc[i].backends = &be[i];
		svc[i].n_backends = svc[i].n_ready = 1;
	}
	cr_assert_eq(lbmap_apply(fx.lbmap, &st, 0, &stats), 0);
	*id_a = lbmap_svc_id(fx.lbmap, &svc[0].key);
	*id_b = lbmap_svc_id(fx.lbmap, &svc[1].key);
	cr_assert_neq(*id_a, *id_b);
}

static uint16_t local_port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static uint16_t peer_port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t len = sizeof(a);

	cr_assert_eq(getpeername(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin6_port);
}

Test(l7_capture, each_client_gets_its_own_destination)
{
	struct sockaddr_in direct = { .sin_family = AF_INET, .sin_port = htons(0) };
	struct xm_svc_key got;
	uint32_t id_a, id_b, id;
	int ca, cb, cd, s1, s2, sd;

	fx_listeners(2, SOCK_STREAM, false);
	publish_two(&id_a, &id_b);
	proxy_on(true, true);
	ca = fx_connect(VIP4, 80);
	cb = fx_connect(VIP4B, 80);
	cr_assert(ca >= 0 && cb >= 0);
	s1 = proxy_accept();
	s2 = proxy_accept();
	cr_assert(s1 >= 0 && s2 >= 0);
	/* Taken in the reverse order of the connects, each by its own 4-tuple. */
	if (peer_port_of(s1) == local_port_of(ca)) {
		expect_lookup(s2, VIP4B, 80, id_b);
		expect_lookup(s1, VIP4, 80, id_a);
	} else {
		cr_assert_eq(peer_port_of(s2), local_port_of(ca));
		expect_lookup(s1, VIP4B, 80, id_b);
		expect_lookup(s2, VIP4, 80, id_a);
	}
	/* A client dialing the proxy's address itself claims nothing: the proxy must refuse it. */
	cd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, PROXY4, &direct.sin_addr);
	direct.sin_port = htons(proxy_port);
	cr_assert_eq(connect(cd, (struct sockaddr *)&direct, sizeof(direct)), 0);
	sd = proxy_accept();
	cr_assert(sd >= 0);
	cr_expect_eq(l7_capture_lookup(fx.fds.l7_origdst, sd, &got, &id), -ENOENT);
	close(ca);
	close(cb);
	close(cd);
	close(s1);
	close(s2);
	close(sd);
}

/*
 * The pod ↔ proxy hop on the sockmap. The proxy's listener is made outside the mesh cgroup, as the agent's is,
 * so sockops never sees its accepted sockets: l7_capture_sockmap_add puts them in.
 */
static void sm_setup(void)
{
	struct xm_local_ip_key k;
	struct xm_local_ip v = { .flags = XM_LOCAL_IP_NODE };
	int fd;

	fx_setup();
	add_proxy_addresses();
	proxy_listen(true);
	memset(&smx, 0, sizeof(smx));
	smx_load(fx.cgroup);
	/* The proxy address is this node's InternalIP: local, as compile/local_addrs.c publishes it. */
	fd = bpf_map__fd(smx.skel->maps.xm_local_ips);
	memset(&k, 0, sizeof(k));
	k.family = XM_FAMILY_V4;
	inet_pton(AF_INET, PROXY4, &k.addr.v4);
	cr_assert_eq(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0);
	k.family = XM_FAMILY_V6;
	inet_pton(AF_INET6, PROXY6, k.addr.bytes);
	cr_assert_eq(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0);
	proxy_on(true, true);
}

static void sm_teardown(void)
{
	smx_unload();
	teardown();
}

static int sm_add(int s)
{
	return l7_capture_sockmap_add(bpf_map__fd(smx.skel->maps.xm_sock_pairs),
				      bpf_map__fd(smx.skel->maps.xm_sockmap_sk), s);
}

TestSuite(l7_sockmap, .init = sm_setup, .fini = sm_teardown, .timeout = 60);

/* A captured connection, both sockets on the sockmap: 1 MiB each way, every byte redirected. */
static void hop_redirected(const char *vip)
{
	struct smx_flow f[2];
	int c, s, err;

	fx_listeners(1, SOCK_STREAM, strchr(vip, ':') != NULL);
	fx_publish_flags(vip, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	c = fx_connect(vip, 80);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	s = proxy_accept();
	cr_assert(s >= 0);
	cr_assert_eq(smx_pairs(), 1, "sockops put the pod's socket in (and only it: the proxy's is outside)");
	err = sm_add(s);
	cr_assert_eq(err, 0, "l7_capture_sockmap_add: %s", strerror(-err));
	cr_expect_eq(sm_add(s), -EEXIST);
	cr_assert_eq(smx_pairs(), 2);
	smx_flow_init(&f[0], c, s, 1 << 20, 16384, 1);
	smx_flow_init(&f[1], s, c, 1 << 20, 16384, 2);
	smx_pump(f, 2, 5000);
	smx_assert_flows(f, 2);
	cr_expect_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 2u << 20, "redirected %llu of %u bytes",
		     (unsigned long long)smx_stat(XM_SMSTAT_REDIR_BYTES), 2u << 20);
	cr_expect_eq(smx_stat(XM_SMSTAT_FALLBACK_BYTES), 0);
	close(c);
	close(s);
}

Test(l7_sockmap, ipv4_hop_redirected_both_ways)
{
	hop_redirected(VIP4);
}

Test(l7_sockmap, ipv6_hop_redirected_both_ways)
{
	hop_redirected(VIP6);
}

Test(l7_sockmap, not_added_stays_on_tcp)
{
	struct smx_flow f[2];
	int c, s;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	c = fx_connect(VIP4, 80);
	s = proxy_accept();
	cr_assert(c >= 0 && s >= 0);
	smx_flow_init(&f[0], c, s, 256 << 10, 16384, 3);
	smx_flow_init(&f[1], s, c, 256 << 10, 16384, 4);
	smx_pump(f, 2, 5000);
	smx_assert_flows(f, 2);
	cr_expect_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 0);
	cr_expect_eq(smx_pairs(), 1);
	close(c);
	close(s);
}

/* The usual race: the client sends its request before the proxy accepted. Its direction stays on TCP (order). */
Test(l7_sockmap, request_sent_before_add_keeps_order)
{
	struct smx_flow f[2];
	char first[1000], got[1000];
	int c, s, i;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	c = fx_connect(VIP4, 80);
	cr_assert(c >= 0);
	for (i = 0; i < (int)sizeof(first); i++)
		first[i] = (char)(i * 7);
	cr_assert_eq(write(c, first, sizeof(first)), (ssize_t)sizeof(first));
	s = proxy_accept();
	cr_assert(s >= 0);
	cr_assert_eq(sm_add(s), 0);
	cr_assert_eq(recv(s, got, sizeof(got), MSG_WAITALL), (ssize_t)sizeof(got));
	cr_assert_eq(memcmp(first, got, sizeof(got)), 0);
	smx_flow_init(&f[0], c, s, 256 << 10, 16384, 5);
	smx_flow_init(&f[1], s, c, 256 << 10, 16384, 6);
	smx_pump(f, 2, 5000);
	smx_assert_flows(f, 2);
	/* Proxy → pod redirected; pod → proxy on TCP since its first bytes went there. */
	cr_expect_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 256u << 10);
	close(c);
	close(s);
}

Test(l7_sockmap, refused_after_proxy_wrote)
{
	int c, s;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	c = fx_connect(VIP4, 80);
	s = proxy_accept();
	cr_assert(c >= 0 && s >= 0);
	cr_assert_eq(write(s, "x", 1), 1);
	cr_expect_eq(sm_add(s), -EBUSY, "a socket that already sent on TCP must not be redirected");
	cr_expect_eq(smx_pairs(), 1);
	close(c);
	close(s);
}

/*
 * The alternative to the userspace add: the proxy's listener made (l7_capture_socket_in_cgroup) in a cgroup of
 * its own where only sockmap's sockops runs; the agent and the test process stay where they are. Accepted
 * sockets enter the sockhash at PASSIVE_ESTABLISHED, before the client can send, so even a request written
 * right after connect() is redirected.
 */
static char proxy_cgroup[600];
static struct bpf_link *proxy_ops_link;

static void listener_in_cgroup_setup(void)
{
	fx_setup();
	add_proxy_addresses();
	memset(&smx, 0, sizeof(smx));
	smx_load(fx.cgroup);
	snprintf(proxy_cgroup, sizeof(proxy_cgroup), "%s-proxy", fx.cgroup);
	cr_assert(mkdir(proxy_cgroup, 0755) == 0, "mkdir %s: %s", proxy_cgroup, strerror(errno));
}

static void listener_in_cgroup_teardown(void)
{
	if (proxy_lfd >= 0)
		close(proxy_lfd);
	proxy_lfd = -1;
	bpf_link__destroy(proxy_ops_link);
	proxy_ops_link = NULL;
	/* No task is left in it (the child that made the socket has been reaped); sockets do not hold it. */
	rmdir(proxy_cgroup);
	sm_teardown();
}

TestSuite(l7_sockmap_inside, .init = listener_in_cgroup_setup, .fini = listener_in_cgroup_teardown, .timeout = 60);

Test(l7_sockmap_inside, request_at_once_redirected)
{
	struct xm_local_ip_key k;
	struct xm_local_ip v = { .flags = XM_LOCAL_IP_NODE };
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct smx_flow f[2];
	socklen_t len = sizeof(a);
	char first[1000], got[1000];
	int cg, c, s, off = 0, err, i;
	uint32_t svc_id;

	memset(&k, 0, sizeof(k));
	k.family = XM_FAMILY_V4;
	inet_pton(AF_INET, PROXY4, &k.addr.v4);
	cr_assert_eq(bpf_map_update_elem(bpf_map__fd(smx.skel->maps.xm_local_ips), &k, &v, BPF_ANY), 0);
	cg = open(proxy_cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(cg >= 0);
	proxy_ops_link = bpf_program__attach_cgroup(smx.skel->progs.xm_sockmap_ops, cg);
	cr_assert(proxy_ops_link, "attach sockops to %s: %s", proxy_cgroup, strerror(errno));
	proxy_lfd = l7_capture_socket_in_cgroup(cg, AF_INET6, SOCK_STREAM | SOCK_CLOEXEC);
	close(cg);
	cr_assert(proxy_lfd >= 0, "l7_capture_socket_in_cgroup: %s", strerror(-proxy_lfd));
	cr_assert_eq(setsockopt(proxy_lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)), 0);
	cr_assert_eq(bind(proxy_lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(proxy_lfd, 64), 0);
	cr_assert_eq(getsockname(proxy_lfd, (struct sockaddr *)&a, &len), 0);
	proxy_port = ntohs(a.sin6_port);
	proxy_on(true, true);
	fx_listeners(1, SOCK_STREAM, false);
	svc_id = fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	c = fx_connect(VIP4, 80);
	cr_assert(c >= 0);
	cr_assert_eq(smx_pairs(), 2, "both ends in the sockhash at establishment");
	/* Written before the proxy even accepted: the accepted socket is already in, so it is redirected. */
	for (i = 0; i < (int)sizeof(first); i++)
		first[i] = (char)(i * 13);
	cr_assert_eq(write(c, first, sizeof(first)), (ssize_t)sizeof(first));
	s = proxy_accept();
	cr_assert(s >= 0);
	cr_assert_eq(recv(s, got, sizeof(got), MSG_WAITALL), (ssize_t)sizeof(got));
	cr_assert_eq(memcmp(first, got, sizeof(got)), 0);
	err = sm_add(s);
	cr_expect_eq(err, -EEXIST, "sockops already put it in (%s)", strerror(-err));
	smx_flow_init(&f[0], c, s, 256 << 10, 16384, 7);
	smx_flow_init(&f[1], s, c, 256 << 10, 16384, 8);
	smx_pump(f, 2, 5000);
	smx_assert_flows(f, 2);
	cr_expect_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), (512u << 10) + sizeof(first));
	cr_expect_eq(smx_stat(XM_SMSTAT_FALLBACK_BYTES), 0);
	expect_lookup(s, VIP4, 80, svc_id);
	close(c);
	close(s);
}

/* The socket belongs to the cgroup asked for, not the caller's: the mesh's connect hook does not see it. */
Test(l7_sockmap_inside, socket_belongs_to_the_cgroup_asked_for)
{
	struct sockaddr_in vip = { .sin_family = AF_INET, .sin_port = htons(80) };
	int cg, fd, rc;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	inet_pton(AF_INET, VIP4, &vip.sin_addr);
	cg = open(proxy_cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(cg >= 0);
	fd = l7_capture_socket_in_cgroup(cg, AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
	close(cg);
	cr_assert(fd >= 0, "l7_capture_socket_in_cgroup: %s", strerror(-fd));
	rc = connect(fd, (struct sockaddr *)&vip, sizeof(vip));
	cr_expect(rc < 0, "a socket of the proxy cgroup was balanced by the mesh cgroup's connect hook");
	close(fd);
	/* The same from the caller's own cgroup is balanced. */
	fd = fx_connect(VIP4, 80);
	cr_expect(fd >= 0, "connect from the mesh cgroup: %s", strerror(-fd));
	if (fd >= 0)
		close(fd);
}

/*
 * Map errors: with a full one-entry origdst map the capture still happens, the failed insert is counted and
 * the proxy finds no destination (it refuses); with a full socket-state map the connect is balanced at L4.
 */
static void one_entry_maps(struct sock_lb *skel)
{
	cr_assert_eq(bpf_map__set_type(skel->maps.xm_l7_origdst, BPF_MAP_TYPE_HASH), 0);
	cr_assert_eq(bpf_map__set_max_entries(skel->maps.xm_l7_origdst, 1), 0);
	cr_assert_eq(bpf_map__set_type(skel->maps.xm_sock_state, BPF_MAP_TYPE_HASH), 0);
	cr_assert_eq(bpf_map__set_max_entries(skel->maps.xm_sock_state, 1), 0);
}

static void map_errors_setup(void)
{
	fx_before_load = one_entry_maps;
	setup();
}

TestSuite(l7_capture_map_errors, .init = map_errors_setup, .fini = teardown, .timeout = 30);

Test(l7_capture_map_errors, full_origdst_counted_and_refused)
{
	struct xm_l7_origdst_key k;
	struct xm_l7_origdst v;
	struct xm_svc_key got;
	uint32_t id;
	int c, s;

	memset(&k, 0xee, sizeof(k));
	memset(&v, 0, sizeof(v));
	cr_assert_eq(bpf_map_update_elem(fx.fds.l7_origdst, &k, &v, BPF_NOEXIST), 0);
	fx_listeners(1, SOCK_STREAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	proxy_on(true, true);
	c = fx_connect(VIP4, 80);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	s = proxy_accept();
	cr_assert(s >= 0, "not captured");
	cr_expect_eq(fx_map_error(XM_MAPERR_L7_ORIGDST), 1);
	cr_expect_eq(l7_capture_lookup(fx.fds.l7_origdst, s, &got, &id), -ENOENT);
	close(c);
	close(s);
}

Test(l7_capture_map_errors, full_sock_state_balanced_at_l4)
{
	__u64 cookie = 0xeeeeeeeeULL;
	struct xm_sock_state st;
	int c;

	memset(&st, 0, sizeof(st));
	cr_assert_eq(bpf_map_update_elem(bpf_map__fd(fx.skel->maps.xm_sock_state), &cookie, &st, BPF_NOEXIST), 0);
	fx_listeners(1, SOCK_STREAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	proxy_on(true, true);
	c = fx_connect(VIP4, 80);
	cr_assert(c >= 0, "connect: %s", strerror(-c));
	cr_expect_eq(fx_accept_which(), 0, "without socket state the connect must reach a backend");
	cr_expect_eq(fx_map_error(XM_MAPERR_SOCK_STATE), 1, "counted once");
	cr_expect_eq(fx_sock_stat(XM_STAT_SOCK_L7_CAPTURE), 0);
	close(c);
}

Test(l7_sockmap_inside, socket_in_cgroup_errors)
{
	int cg = open(proxy_cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	cr_assert(cg >= 0);
	cr_expect_eq(l7_capture_socket_in_cgroup(cg, AF_PACKET + 100, SOCK_STREAM), -EAFNOSUPPORT,
		     "socket()'s error in the child comes back");
	close(cg);
	cg = open("/dev/null", O_RDONLY | O_CLOEXEC);
	rc = l7_capture_socket_in_cgroup(cg, AF_INET, SOCK_STREAM);
	cr_expect(rc < 0, "a non-cgroup fd gave %d", rc);
	close(cg);
}

/*
 * The agent's way: sockmap loaded with pins (sockmap_open), its sockops attached to the proxy's cgroup through a
 * pinned link (sockmap_attach_ops_cgroup), adopted by the next agent, and removed by cleanup with the rest.
 */
static char pin_dir[128];

static void pinned_setup(void)
{
	listener_in_cgroup_setup();
	smx_unload(); /* the agent's own sockmap instead of the fixture's */
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/xmesh-l7test-%d", getpid());
}

static void pinned_teardown(void)
{
	if (proxy_lfd >= 0)
		close(proxy_lfd);
	proxy_lfd = -1;
	pins_remove_all(pin_dir);
	rmdir(proxy_cgroup);
	teardown();
}

TestSuite(l7_sockmap_pinned, .init = pinned_setup, .fini = pinned_teardown, .timeout = 60);

static int pairs_in(int map_fd)
{
	return fx_map_entries(map_fd, sizeof(struct xm_sock_pair_key));
}

Test(l7_sockmap_pinned, proxy_cgroup_link_attached_adopted_and_used)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(0) };
	struct xm_local_ip_key k;
	struct xm_local_ip v = { .flags = XM_LOCAL_IP_NODE };
	struct xm_sockmap sm;
	struct xm_sockmap_fds fds;
	uint64_t st[XM_SMSTAT_MAX];
	char link[300];
	socklen_t len = sizeof(a);
	int cg, c, s;

	cr_assert_eq(sockmap_open(&sm, pin_dir, fx.cgroup, true, NULL, 0), 0);
	cr_assert_eq(sockmap_attach_ops_cgroup(&sm, proxy_cgroup, XM_SOCKMAP_L7_PROXY_OPS_LINK), 0);
	cr_expect_eq(sm.n_attached, 3, "sk_msg, sockops on the mesh, sockops on the proxy cgroup");
	snprintf(link, sizeof(link), "%s/links/%s", pin_dir, XM_SOCKMAP_L7_PROXY_OPS_LINK);
	cr_expect_eq(access(link, F_OK), 0, "no pinned link %s", link);
	sockmap_close(&sm);
	/* The next agent adopts it; attaching it to another cgroup under the same name is refused. */
	cr_assert_eq(sockmap_open(&sm, pin_dir, fx.cgroup, true, NULL, 0), 0);
	cr_expect_eq(sockmap_attach_ops_cgroup(&sm, fx.cgroup, XM_SOCKMAP_L7_PROXY_OPS_LINK), -EEXIST);
	cr_assert_eq(sockmap_attach_ops_cgroup(&sm, proxy_cgroup, XM_SOCKMAP_L7_PROXY_OPS_LINK), 0);
	/* Both sockops links; sk_msg's too where the kernel has sockmap links (6.10+), else it is re-attached. */
	cr_expect_eq(sm.n_adopted, sm.msg_link ? 3 : 2);
	cr_assert_eq(sockmap_fds(&sm, &fds), 0);

	memset(&k, 0, sizeof(k));
	k.family = XM_FAMILY_V4;
	inet_pton(AF_INET, PROXY4, &k.addr.v4);
	cr_assert_eq(bpf_map_update_elem(bpf_map__fd(sm.skel->maps.xm_local_ips), &k, &v, BPF_ANY), 0);
	cg = open(proxy_cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	proxy_lfd = l7_capture_socket_in_cgroup(cg, AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
	close(cg);
	cr_assert(proxy_lfd >= 0);
	inet_pton(AF_INET, PROXY4, &a.sin_addr);
	cr_assert_eq(bind(proxy_lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(proxy_lfd, 8), 0);
	cr_assert_eq(getsockname(proxy_lfd, (struct sockaddr *)&a, &len), 0);
	proxy_port = ntohs(a.sin_port);
	proxy_on(true, false);
	fx_listeners(1, SOCK_STREAM, false);
	fx_publish_flags(VIP4, 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1, XM_SVC_F_L7);
	c = fx_connect(VIP4, 80);
	cr_assert(c >= 0);
	cr_expect_eq(pairs_in(fds.pairs), 2, "the pod's socket and the proxy's accepted one");
	s = proxy_accept();
	cr_assert(s >= 0);
	cr_assert_eq(write(c, "GET / HTTP/1.1\r\n\r\n", 18), 18);
	cr_assert_eq(write(s, "HTTP/1.1 204 No Content\r\n\r\n", 27), 27);
	{
		char buf[64];

		cr_expect_eq(recv(s, buf, sizeof(buf), MSG_WAITALL), 18);
		cr_expect_eq(recv(c, buf, 27, MSG_WAITALL), 27);
	}
	cr_assert_eq(sockmap_stats(&sm, st), 0);
	cr_expect_eq(st[XM_SMSTAT_REDIR_BYTES], 18 + 27, "request and response both redirected");
	cr_expect_eq(st[XM_SMSTAT_FALLBACK_BYTES], 0);
	close(c);
	close(s);
	sockmap_close(&sm);
}
