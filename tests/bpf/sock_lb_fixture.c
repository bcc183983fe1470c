// SPDX-License-Identifier: Apache-2.0
#include "sock_lb_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/percpu.h"
#include "datapath/datapath.h"
#include "sandbox.h"
#include "skel/sock_lb.skel.h"

struct fx fx;
void (*fx_before_load)(struct sock_lb *skel);

void fx_setup(void)
{
	struct bpf_program *prog;
	struct bpf_map *map;
	int cg_fd;

	memset(&fx, 0, sizeof(fx));
	if (!sandbox_supported()) {
		fx.skipped = true;
		sandbox_cannot_run(sandbox_unsupported());
	}
	sandbox_enter("xmesh-bpftest", fx.cgroup, sizeof(fx.cgroup));

	fx.skel = sock_lb__open();
	cr_assert(fx.skel, "open sock_lb: %s", strerror(errno));
	/* Tests never pin: every map lives and dies with this process. */
	bpf_object__for_each_map (map, fx.skel->obj)
		bpf_map__set_pin_path(map, NULL);
	if (fx_before_load)
		fx_before_load(fx.skel);
	cr_assert_eq(sock_lb__load(fx.skel), 0, "load sock_lb (verifier)");

	cg_fd = open(fx.cgroup, O_RDONLY | O_DIRECTORY);
	cr_assert(cg_fd >= 0);
	bpf_object__for_each_program (prog, fx.skel->obj) {
		struct bpf_link *l;

		if (bpf_program__type(prog) == BPF_PROG_TYPE_XDP)
			continue; /* run on demand, never attached */
		l = bpf_program__attach_cgroup(prog, cg_fd);

		cr_assert(l, "attach %s: %s", bpf_program__name(prog), strerror(errno));
		fx.links[fx.n_links++] = l;
	}
	close(cg_fd);
	datapath_map_fds(&(struct xm_datapath){ .sock = fx.skel }, &fx.fds);
	fx.lbmap = lbmap_open(&fx.fds);
	cr_assert(fx.lbmap);
}

void fx_teardown(void)
{
	int i;

	if (fx.skipped)
		return;
	for (i = 0; i < fx.n_backends; i++)
		close(fx.listen_fd[i]);
	lbmap_free(fx.lbmap);
	for (i = 0; i < fx.n_links; i++)
		bpf_link__destroy(fx.links[i]);
	sock_lb__destroy(fx.skel);
	fx_before_load = NULL;
	sandbox_leave();
}

void fx_listeners(int n, int type, bool v6)
{
	int i;

	cr_assert(n <= FX_MAX_BACKENDS);
	for (i = 0; i < n; i++) {
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct sockaddr_storage got;
		socklen_t len = sizeof(got);
		int fd = socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0);

		cr_assert(fd >= 0);
		cr_assert_eq(v6 ? bind(fd, (struct sockaddr *)&a6, sizeof(a6))
				: bind(fd, (struct sockaddr *)&a4, sizeof(a4)),
			     0, "bind: %s", strerror(errno));
		if (type == SOCK_STREAM)
			cr_assert_eq(listen(fd, 1024), 0);
		getsockname(fd, (struct sockaddr *)&got, &len);
		fx.port[i] =
		    ntohs(v6 ? ((struct sockaddr_in6 *)&got)->sin6_port : ((struct sockaddr_in *)&got)->sin_port);
		fx.listen_fd[i] = fd;
	}
	fx.n_backends = n;
}

void fx_publish(const char *vip, uint16_t port, int proto, uint8_t algo, int n)
{
	fx_publish_od(vip, port, proto, algo, n, NULL);
}

uint32_t fx_backend_id(int i)
{
	union xm_addr a;

	memset(&a, 0, sizeof(a));
	inet_pton(AF_INET, "127.0.0.1", &a.v4);
	return lbmap_backend_id(fx.lbmap, &a, htons(fx.port[i]), XM_FAMILY_V4);
}

static uint32_t fx_publish_ex(const char *vip, uint16_t port, int proto, uint8_t algo, int n,
			      const struct xm_outlier_detection *od, uint8_t flags)
{
	static struct xm_lb_backend backends[FX_MAX_BACKENDS];
	struct xm_lb_service svc;
	struct xm_lb_state st = { .services = &svc, .n_services = 1 };
	struct xm_lbmap_stats stats;
	bool v6 = strchr(vip, ':') != NULL;
	int i;

	memset(&svc, 0, sizeof(svc));
	snprintf(svc.ns, sizeof(svc.ns), "test");
	snprintf(svc.name, sizeof(svc.name), "svc");
	svc.key.family = v6 ? XM_FAMILY_V6 : XM_FAMILY_V4;
	cr_assert_eq(inet_pton(v6 ? AF_INET6 : AF_INET, vip, svc.key.vip.bytes), 1);
	svc.key.port = htons(port);
	svc.key.proto = (uint8_t)proto;
	svc.algo = algo;
	svc.flags = flags;
	svc.maglev_size = 65537;
	for (i = 0; i < n; i++) {
		memset(&backends[i], 0, sizeof(backends[i]));
		backends[i].family = svc.key.family;
		inet_pton(v6 ? AF_INET6 : AF_INET, v6 ? "::1" : "127.0.0.1", backends[i].addr.bytes);
		backends[i].port = fx.port[i];
		backends[i].ready = true;
	}
	svc.backends = backends;
	svc.n_backends = (size_t)n;
	svc.n_ready = (size_t)n;
	if (od) {
		svc.outlier_on = true;
		svc.outlier = *od;
	}
	cr_assert_eq(lbmap_apply(fx.lbmap, &st, 0, &stats), 0, "lbmap_apply");
	return lbmap_svc_id(fx.lbmap, &svc.key);
}

uint32_t fx_publish_od(const char *vip, uint16_t port, int proto, uint8_t algo, int n,
		       const struct xm_outlier_detection *od)
{
	return fx_publish_ex(vip, port, proto, algo, n, od, 0);
}

uint32_t fx_publish_flags(const char *vip, uint16_t port, int proto, uint8_t algo, int n, uint8_t flags)
{
	return fx_publish_ex(vip, port, proto, algo, n, NULL, flags);
}

int fx_accept_which(void)
{
	struct pollfd p[FX_MAX_BACKENDS];
	int i, n;

	for (i = 0; i < fx.n_backends; i++)
		p[i] = (struct pollfd){ .fd = fx.listen_fd[i], .events = POLLIN };
	n = poll(p, (nfds_t)fx.n_backends, 1000);
	if (n <= 0)
		return -1;
	for (i = 0; i < fx.n_backends; i++) {
		if (p[i].revents & POLLIN) {
			int c = accept4(fx.listen_fd[i], NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0)
				close(c);
			return i;
		}
	}
	return -1;
}

bool fx_backend_pending(void)
{
	struct pollfd p[FX_MAX_BACKENDS];
	int i;

	for (i = 0; i < fx.n_backends; i++)
		p[i] = (struct pollfd){ .fd = fx.listen_fd[i], .events = POLLIN };
	return poll(p, (nfds_t)fx.n_backends, 0) > 0;
}

void fx_peer_str(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];
	uint16_t port;

	cr_assert_eq(getpeername(fd, (struct sockaddr *)&ss, &sl), 0);
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	snprintf(buf, len, "%s %u", ip, port);
}

uint64_t fx_sock_stat(unsigned int idx)
{
	uint64_t v[XM_STAT_SOCK_MAX];

	cr_assert_eq(percpu_sum_u64(fx.fds.sock_stats, XM_STAT_SOCK_MAX, v), 0);
	return v[idx];
}

uint64_t fx_map_error(unsigned int idx)
{
	uint64_t v[XM_MAPERR_MAX];

	cr_assert_eq(percpu_sum_u64(fx.fds.map_errors, XM_MAPERR_MAX, v), 0);
	return v[idx];
}

int fx_map_entries(int fd, size_t key_size)
{
	unsigned char cur[64], next[64];
	void *prev = NULL;
	int n = 0;

	cr_assert_leq(key_size, sizeof(cur));
	while (bpf_map_get_next_key(fd, prev, next) == 0 && n < 1000000) {
		memcpy(cur, next, key_size);
		prev = cur;
		n++;
	}
	return n;
}

int64_t fx_backend_conns_total(void)
{
	struct xm_backend_conns bc;
	int64_t sum = 0;
	__u32 id;

	for (id = 1; id < 64; id++)
		if (bpf_map_lookup_elem(fx.fds.backend_conns, &id, &bc) == 0)
			sum += bc.active;
	return sum;
}

void fx_add_addr4(const char *addr)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	static int n_added;

	cr_assert(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo:%d", ++n_added);
	cr_assert_eq(inet_pton(AF_INET, addr, &a4.sin_addr), 1);
	memcpy(&ifr.ifr_addr, &a4, sizeof(a4));
	cr_assert_eq(ioctl(fd, SIOCSIFADDR, &ifr), 0, "add %s: %s", addr, strerror(errno));
	/* A /32: the class-A default would route the VIPs to loopback too. */
	inet_pton(AF_INET, "255.255.255.255", &a4.sin_addr);
	memcpy(&ifr.ifr_netmask, &a4, sizeof(a4));
	cr_assert_eq(ioctl(fd, SIOCSIFNETMASK, &ifr), 0, "netmask %s: %s", addr, strerror(errno));
	close(fd);
}

int fx_connect(const char *addr, uint16_t port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	bool v6 = strchr(addr, ':') != NULL;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -errno;
	if (v6)
		inet_pton(AF_INET6, addr, &a6.sin6_addr);
	else
		inet_pton(AF_INET, addr, &a4.sin_addr);
	rc = v6 ? connect(fd, (struct sockaddr *)&a6, sizeof(a6)) : connect(fd, (struct sockaddr *)&a4, sizeof(a4));
	if (rc < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}
