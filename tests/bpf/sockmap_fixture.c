// SPDX-License-Identifier: Apache-2.0
#include "sockmap_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datapath/sockmap.h"
#include "sandbox.h"
#include "skel/sockmap.skel.h"

struct smx smx;

/* Held until this test process exits (criterion runs each test in its own process). */
static void smx_hold_mem_lock(void)
{
	if (smx.mem_locked)
		return;
	smx.mem_lock_fd = open(SMX_TCP_MEM_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert(smx.mem_lock_fd >= 0, "open %s: %s", SMX_TCP_MEM_LOCK, strerror(errno));
	cr_assert_eq(flock(smx.mem_lock_fd, LOCK_SH), 0, "flock %s: %s", SMX_TCP_MEM_LOCK, strerror(errno));
	smx.mem_locked = true;
}

void smx_load(const char *cgroup)
{
	struct bpf_map *map;
	int cg_fd, err;

	smx_hold_mem_lock();
	smx.msg_link_fd = -1;
	smx.skel = sockmap__open();
	cr_assert(smx.skel, "open sockmap: %s", strerror(errno));
	for (map = bpf_object__next_map(smx.skel->obj, NULL); map; map = bpf_object__next_map(smx.skel->obj, map))
		bpf_map__set_pin_path(map, NULL);
	smx.skel->rodata->xm_tcp_mem_lag = sockmap_tcp_mem_lag(); /* as the agent sets it */
	cr_assert_eq(sockmap__load(smx.skel), 0, "load sockmap (verifier)");
	err = sockmap_attach_msg(bpf_program__fd(smx.skel->progs.xm_sockmap_msg),
				 bpf_map__fd(smx.skel->maps.xm_sock_pairs), &smx.msg_link_fd);
	cr_assert_eq(err, 0, "attach sk_msg: %s", strerror(-err));
	smx.msg_attached = true;
	cg_fd = open(cgroup, O_RDONLY | O_DIRECTORY);
	cr_assert(cg_fd >= 0);
	smx.ops_link = bpf_program__attach_cgroup(smx.skel->progs.xm_sockmap_ops, cg_fd);
	cr_assert(smx.ops_link, "attach sockops: %s", strerror(errno));
	close(cg_fd);
	smx_set_enabled(true);
}

void smx_unload(void)
{
	bpf_link__destroy(smx.ops_link);
	smx.ops_link = NULL;
	if (smx.msg_link_fd >= 0)
		close(smx.msg_link_fd);
	else if (smx.msg_attached && smx.skel)
		bpf_prog_detach2(bpf_program__fd(smx.skel->progs.xm_sockmap_msg),
				 bpf_map__fd(smx.skel->maps.xm_sock_pairs), BPF_SK_MSG_VERDICT);
	smx.msg_link_fd = -1;
	smx.msg_attached = false;
	sockmap__destroy(smx.skel);
	smx.skel = NULL;
}

void smx_setup(void)
{
	memset(&smx, 0, sizeof(smx));
	smx.msg_link_fd = -1;
	if (!sandbox_supported()) {
		smx.skipped = true;
		sandbox_cannot_run(sandbox_unsupported());
	}
	sandbox_enter("xmesh-smtest", smx.cgroup, sizeof(smx.cgroup));
	smx.own_cgroup = true;
	smx_load(smx.cgroup);
}

void smx_teardown(void)
{
	if (smx.skipped)
		return;
	smx_unload();
	sandbox_leave();
}

void smx_set_enabled(bool on)
{
	struct xm_sockmap_config cfg = { .enabled = on };
	__u32 zero = 0;

	cr_assert_eq(bpf_map_update_elem(bpf_map__fd(smx.skel->maps.xm_sockmap_config), &zero, &cfg, BPF_ANY), 0);
}

uint64_t smx_stat(unsigned int idx)
{
	uint64_t st[XM_SMSTAT_MAX];

	cr_assert_eq(sockmap_read_stats(bpf_map__fd(smx.skel->maps.xm_sockmap_stats), st), 0);
	return idx < XM_SMSTAT_MAX ? st[idx] : 0;
}

int smx_pairs(void)
{
	struct xm_sock_pair_key cur, next;
	int fd = bpf_map__fd(smx.skel->maps.xm_sock_pairs), n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0 && n < 1000000) {
		cur = next;
		prev = &cur;
		n++;
	}
	return n;
}

int smx_listen(const char *addr, int rcvbuf, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	bool v6 = strchr(addr, ':') != NULL;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), zero = 0;

	cr_assert(fd >= 0);
	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		cr_assert_eq(inet_pton(AF_INET6, addr, &a->sin6_addr), 1);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		cr_assert_eq(inet_pton(AF_INET, addr, &a->sin_addr), 1);
		len = sizeof(*a);
	}
	if (rcvbuf)
		cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0, "bind %s: %s", addr, strerror(errno));
	cr_assert_eq(listen(fd, 4096), 0);
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

void smx_pair_on(int lfd, const char *addr, uint16_t port, int *cli, int *srv)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	bool v6 = strchr(addr, ':') != NULL;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	cr_assert(fd >= 0);
	if (v6)
		cr_assert_eq(inet_pton(AF_INET6, addr, &a6.sin6_addr), 1);
	else
		cr_assert_eq(inet_pton(AF_INET, addr, &a4.sin_addr), 1);
	rc = v6 ? connect(fd, (struct sockaddr *)&a6, sizeof(a6)) : connect(fd, (struct sockaddr *)&a4, sizeof(a4));
	cr_assert_eq(rc, 0, "connect %s:%u: %s", addr, port, strerror(errno));
	*cli = fd;
	*srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(*srv >= 0, "accept: %s", strerror(errno));
}

void smx_pair(int *cli, int *srv)
{
	uint16_t port;
	int lfd = smx_listen("127.0.0.1", 0, &port);

	smx_pair_on(lfd, "127.0.0.1", port, cli, srv);
	close(lfd);
}

#define FNV_OFF	  0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

void smx_flow_init(struct smx_flow *f, int tx, int rx, uint64_t total, size_t chunk, uint32_t seed)
{
	memset(f, 0, sizeof(*f));
	f->tx = tx;
	f->rx = rx;
	f->total = total;
	f->chunk = chunk;
	f->seed = seed;
	f->h_tx = FNV_OFF;
	f->h_rx = FNV_OFF;
	f->first_bad = -1;
}

/* One socket of the pump: the flow it writes and the flow it reads (either may be NULL). */
struct smx_end {
	int fd;
	struct smx_flow *tx, *rx;
	bool want_out;
};

static struct smx_end *end_of(struct smx_end *ends, int *n, int fd)
{
	int i;

	for (i = 0; i < *n; i++)
		if (ends[i].fd == fd)
			return &ends[i];
	ends[*n] = (struct smx_end){ .fd = fd };
	return &ends[(*n)++];
}

static bool flow_done(const struct smx_flow *f)
{
	return f->rcvd == f->total && (!f->shut_wr || f->eof);
}

static void pump_write(int ep, struct smx_end *e, uint8_t *buf)
{
	struct smx_flow *f = e->tx;
	size_t n, i;
	ssize_t w;

	while (f->sent < f->total) {
		n = f->total - f->sent < f->chunk ? (size_t)(f->total - f->sent) : f->chunk;
		for (i = 0; i < n; i++)
			buf[i] = smx_pattern(f->seed, f->sent + i);
		w = write(e->fd, buf, n);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		cr_assert(w > 0, "write (flow seed %u at %llu): %s", f->seed, (unsigned long long)f->sent,
			  strerror(errno));
		for (i = 0; i < (size_t)w; i++)
			f->h_tx = (f->h_tx ^ buf[i]) * FNV_PRIME;
		f->sent += (uint64_t)w;
	}
	if (f->shut_wr)
		cr_assert_eq(shutdown(e->fd, SHUT_WR), 0, "shutdown: %s", strerror(errno));
	e->want_out = false;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = e };

	cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev), 0);
}

static void pump_read(struct smx_end *e, uint8_t *buf, size_t cap)
{
	struct smx_flow *f = e->rx;
	ssize_t r, i;

	for (;;) {
		r = read(e->fd, buf, cap);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		cr_assert(r >= 0, "read (flow seed %u at %llu): %s", f->seed, (unsigned long long)f->rcvd,
			  strerror(errno));
		if (r == 0) {
			cr_assert(f->shut_wr && f->rcvd == f->total, "EOF after %llu of %llu bytes (flow seed %u)",
				  (unsigned long long)f->rcvd, (unsigned long long)f->total, f->seed);
			f->eof = true;
			return;
		}
		cr_assert(f->rcvd + (uint64_t)r <= f->total, "flow seed %u: %llu bytes received, %llu sent in all",
			  f->seed, (unsigned long long)(f->rcvd + (uint64_t)r), (unsigned long long)f->total);
		for (i = 0; i < r; i++) {
			if (f->first_bad < 0 && buf[i] != smx_pattern(f->seed, f->rcvd + (uint64_t)i))
				f->first_bad = (int64_t)(f->rcvd + (uint64_t)i);
			f->h_rx = (f->h_rx ^ buf[i]) * FNV_PRIME;
		}
		f->rcvd += (uint64_t)r;
	}
}

void smx_pump(struct smx_flow *flows, int n, int stall_ms)
{
	size_t max_chunk = 65536, cap = 1 << 18;
	struct epoll_event evs[256];
	struct smx_end *ends = calloc((size_t)n * 2, sizeof(*ends));
	int n_ends = 0, ep, i, k, done;
	uint8_t *wbuf, *rbuf;

	cr_assert(ends);
	for (i = 0; i < n; i++) {
		end_of(ends, &n_ends, flows[i].tx)->tx = &flows[i];
		end_of(ends, &n_ends, flows[i].rx)->rx = &flows[i];
		if (flows[i].chunk > max_chunk)
			max_chunk = flows[i].chunk;
	}
	wbuf = malloc(max_chunk);
	rbuf = malloc(cap);
	cr_assert(wbuf && rbuf);
	ep = epoll_create1(EPOLL_CLOEXEC);
	cr_assert(ep >= 0);
	for (i = 0; i < n_ends; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ends[i] };

		fcntl(ends[i].fd, F_SETFL, fcntl(ends[i].fd, F_GETFL) | O_NONBLOCK);
		if (ends[i].tx) {
			ends[i].want_out = true;
			ev.events |= EPOLLOUT;
		}
		cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, ends[i].fd, &ev), 0);
	}
	for (;;) {
		for (done = 0, i = 0; i < n; i++)
			done += flow_done(&flows[i]);
		if (done == n)
			break;
		k = epoll_wait(ep, evs, 256, stall_ms);
		cr_assert(k >= 0, "epoll_wait: %s", strerror(errno));
		if (k == 0) {
			for (i = 0; i < n && flow_done(&flows[i]); i++)
				;
			cr_assert_fail("stalled %d ms with %d of %d flows done; first open flow (seed %u): sent %llu, "
				       "received %llu of %llu (a missed wakeup or stuck data)",
				       stall_ms, done, n, flows[i].seed, (unsigned long long)flows[i].sent,
				       (unsigned long long)flows[i].rcvd, (unsigned long long)flows[i].total);
		}
		for (i = 0; i < k; i++) {
			struct smx_end *e = evs[i].data.ptr;

			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && e->rx && !flow_done(e->rx))
				pump_read(e, rbuf, cap);
			if ((evs[i].events & (EPOLLOUT | EPOLLERR)) && e->tx && e->want_out)
				pump_write(ep, e, wbuf);
			/* A finished end leaves the epoll set: a readable EOF would otherwise spin. */
			if (!e->want_out && (!e->rx || flow_done(e->rx)))
				epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, NULL);
		}
	}
	close(ep);
	free(wbuf);
	free(rbuf);
	free(ends);
}

void smx_assert_flows(const struct smx_flow *flows, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		const struct smx_flow *f = &flows[i];

		cr_assert_eq(f->rcvd, f->total, "flow %d: received %llu of %llu", i, (unsigned long long)f->rcvd,
			     (unsigned long long)f->total);
		cr_assert_eq(f->first_bad, -1, "flow %d (seed %u): byte %lld differs (lost, reordered or corrupted)", i,
			     f->seed, (long long)f->first_bad);
		cr_assert_eq(f->h_tx, f->h_rx, "flow %d: hash sent %016llx != received %016llx", i,
			     (unsigned long long)f->h_tx, (unsigned long long)f->h_rx);
	}
}
