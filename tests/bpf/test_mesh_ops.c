// SPDX-License-Identifier: Apache-2.0
/*
 * The mesh cgroup's one sockops program (bpf/mesh_ops.bpf.c) in place of the socket LB's and sockmap's: the
 * same connections give the same outcomes (redirection, live counts, Istio TCP metrics, close counters), and
 * the agent's way of putting it in the LB's pinned link survives a restart (docs/sockmap.md).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "datapath/datapath.h"
#include "datapath/pins.h"
#include "datapath/sockmap.h"
#include "sandbox.h"
#include "sock_lb_fixture.h"
#include "sockmap_fixture.h"
#include "skel/mesh_ops.skel.h"
#include "skel/sock_lb.skel.h"
#include "skel/sockmap.skel.h"

static struct mesh_ops *mesh;
static struct bpf_link *mesh_link;

static __u32 prog_id(int prog_fd)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	cr_assert_eq(bpf_obj_get_info_by_fd(prog_fd, &info, &len), 0);
	return info.id;
}

/* Takes the fixture's link of one program off the cgroup. */
static void detach_fx_prog(int prog_fd)
{
	__u32 want = prog_id(prog_fd);

	for (int i = 0; i < fx.n_links; i++) {
		struct bpf_link_info info;
		__u32 len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (!fx.links[i] || bpf_obj_get_info_by_fd(bpf_link__fd(fx.links[i]), &info, &len) ||
		    info.prog_id != want)
			continue;
		bpf_link__destroy(fx.links[i]);
		fx.links[i] = NULL;
		return;
	}
	cr_assert_fail("the fixture attached no such program");
}

/* Every map of the mesh program is one of the two objects' (by name). */
static void reuse_maps(void)
{
	struct bpf_map *map;

	bpf_object__for_each_map (map, mesh->obj) {
		const char *name = bpf_map__name(map);
		struct bpf_map *from = bpf_object__find_map_by_name(fx.skel->obj, name);

		if (!from)
			from = bpf_object__find_map_by_name(smx.skel->obj, name);
		bpf_map__set_pin_path(map, NULL);
		if (from)
			cr_assert_eq(bpf_map__reuse_fd(map, bpf_map__fd(from)), 0, "reuse %s", name);
	}
}

/* The LB fixture and sockmap's maps, with xm_mesh_ops as the cgroup's only sockops program. */
static void mesh_setup(void)
{
	int cg;

	fx_setup();
	memset(&smx, 0, sizeof(smx));
	smx_load(fx.cgroup);
	detach_fx_prog(bpf_program__fd(fx.skel->progs.xm_sockops));
	bpf_link__destroy(smx.ops_link);
	smx.ops_link = NULL;
	mesh = mesh_ops__open();
	cr_assert(mesh);
	reuse_maps();
	cr_assert_eq(mesh_ops__load(mesh), 0, "load mesh_ops (verifier)");
	cg = open(fx.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(cg >= 0);
	mesh_link = bpf_program__attach_cgroup(mesh->progs.xm_mesh_ops, cg);
	cr_assert(mesh_link, "attach xm_mesh_ops: %s", strerror(errno));
	close(cg);
}

static void mesh_teardown(void)
{
	bpf_link__destroy(mesh_link);
	mesh_link = NULL;
	mesh_ops__destroy(mesh);
	mesh = NULL;
	smx_unload();
	fx_teardown();
}

// cppcheck-suppress unknownMacro
TestSuite(mesh_ops, .init = mesh_setup, .fini = mesh_teardown, .timeout = 30);

static void conn_metrics_sum(uint64_t *opened, uint64_t *closed)
{
	struct xm_conn_metrics_key k, next;
	struct xm_conn_metrics m;
	int fd = bpf_map__fd(fx.skel->maps.xm_conn_metrics);
	void *prev = NULL;

	*opened = *closed = 0;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &m) == 0) {
			*opened += m.opened;
			*closed += m.closed;
		}
	}
}

/* Waits up to 1 s for the live counts to drop to 0 (the close callbacks run as the sockets go). */
static int64_t conns_after_close(void)
{
	int64_t n = fx_backend_conns_total();

	for (int i = 0; i < 100 && n; i++) {
		usleep(10000);
		n = fx_backend_conns_total();
	}
	return n;
}

Test(mesh_ops, vip_connection_is_redirected_counted_and_metered)
{
	struct smx_flow f[2];
	uint64_t opened, closed;
	int c, s, i;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish("10.96.0.10", 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	c = fx_connect("10.96.0.10", 80);
	cr_assert(c >= 0, "connect VIP: %s", strerror(-c));
	s = accept(fx.listen_fd[0], NULL, NULL);
	cr_assert(s >= 0);
	cr_expect_eq(smx_pairs(), 2, "both ends in the sockhash");
	cr_expect_eq(fx_backend_conns_total(), 1, "the backend counts the live connection");
	smx_flow_init(&f[0], c, s, 1 << 20, 16384, 1);
	smx_flow_init(&f[1], s, c, 1 << 20, 16384, 2);
	smx_pump(f, 2, 5000);
	smx_assert_flows(f, 2);
	cr_expect_eq(smx_stat(XM_SMSTAT_REDIR_BYTES), 2u << 20);
	conn_metrics_sum(&opened, &closed);
	cr_expect_eq(opened, 1, "Istio TCP metrics: opened %llu", (unsigned long long)opened);
	close(c);
	close(s);
	cr_expect_eq(conns_after_close(), 0, "live count after close");
	for (i = 0; i < 100 && smx_stat(XM_SMSTAT_CLOSED) < 2; i++)
		usleep(10000);
	conn_metrics_sum(&opened, &closed);
	cr_expect_eq(closed, 1, "Istio TCP metrics: closed %llu", (unsigned long long)closed);
	cr_expect_eq(smx_stat(XM_SMSTAT_INSERTED), 2);
	cr_expect_eq(smx_stat(XM_SMSTAT_CLOSED), 2, "both sockets counted at close");
	cr_expect_eq(fx_map_entries(bpf_map__fd(fx.skel->maps.xm_sock_state), sizeof(__u64)), 0,
		     "the LB's per-socket state goes at close");
}

Test(mesh_ops, refused_vip_connect_is_uncounted_and_reported)
{
	int c;

	/* A backend that listens nowhere: the SYN is refused, the LB's close path must settle it. */
	fx_listeners(1, SOCK_STREAM, false);
	close(fx.listen_fd[0]);
	fx.listen_fd[0] = -1;
	fx_publish("10.96.0.11", 80, IPPROTO_TCP, XM_LB_LEAST_REQUEST, 1);
	c = fx_connect("10.96.0.11", 80);
	cr_expect(c < 0, "connect to a backend that listens nowhere");
	if (c >= 0)
		close(c);
	cr_expect_eq(conns_after_close(), 0, "live count after the refused connect");
	cr_expect_eq(smx_pairs(), 0, "nothing inserted");
	cr_expect_eq(fx_map_entries(bpf_map__fd(fx.skel->maps.xm_sock_state), sizeof(__u64)), 0);
}

/*
 * The agent's way (pinned, as datapath_open and sockmap_open do it): sockmap puts xm_mesh_ops into the LB's
 * link, so the mesh cgroup runs one sockops program; a restarted LB leaves it there, and sockmap swaps in
 * its own again. An earlier agent's separate sockmap link goes.
 */
static char pin_dir[128];
static char cg_dir[512];

static void pinned_setup(void)
{
	if (!sandbox_supported())
		sandbox_cannot_run(sandbox_unsupported());
	sandbox_enter("xmesh-meshops", cg_dir, sizeof(cg_dir));
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/xmesh-meshops-%d", getpid());
}

static void pinned_teardown(void)
{
	pins_remove_all(pin_dir);
	sandbox_leave();
}

TestSuite(mesh_ops_pinned, .init = pinned_setup, .fini = pinned_teardown, .timeout = 60);

/* Names of the sockops programs attached to the cgroup, space-separated. */
static void sockops_attached(char *out, size_t len)
{
	__u32 ids[16], cnt = 16;
	int fd = open(cg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	out[0] = '\0';
	cr_assert(fd >= 0);
	cr_assert_eq(bpf_prog_query(fd, BPF_CGROUP_SOCK_OPS, 0, NULL, ids, &cnt), 0);
	close(fd);
	for (__u32 i = 0; i < cnt; i++) {
		struct bpf_prog_info info;
		__u32 ilen = sizeof(info);
		int pfd = bpf_prog_get_fd_by_id(ids[i]);

		cr_assert(pfd >= 0);
		memset(&info, 0, sizeof(info));
		cr_assert_eq(bpf_obj_get_info_by_fd(pfd, &info, &ilen), 0);
		close(pfd);
		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", info.name);
	}
}

Test(mesh_ops_pinned, lb_link_runs_one_program_across_restarts)
{
	struct xm_datapath dp;
	struct xm_sockmap sm;
	char names[256], link[300];
	int cg, fd;

	cr_assert_eq(datapath_open(&dp, pin_dir, cg_dir), 0);
	sockops_attached(names, sizeof(names));
	cr_expect_str_eq(names, "xm_sockops");
	cr_assert_eq(sockmap_open(&sm, pin_dir, cg_dir, true, NULL, 0), 0);
	cr_expect(sm.mesh, "sockmap took the LB's link");
	sockops_attached(names, sizeof(names));
	cr_expect_str_eq(names, "xm_mesh_ops", "one sockops program on the mesh cgroup, not: %s", names);
	sockmap_close(&sm);
	datapath_close(&dp);

	/* The next agent: the LB leaves the one program in place; sockmap swaps in its own. */
	cr_assert_eq(datapath_open(&dp, pin_dir, cg_dir), 0);
	sockops_attached(names, sizeof(names));
	cr_expect_str_eq(names, "xm_mesh_ops", "the LB put its own program back: %s", names);

	/* As an earlier version left it: sockmap's own link next to the LB's. */
	cg = open(cg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(cg >= 0);
	{
		LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
		struct sockmap *old = sockmap__open_opts(&opts);

		cr_assert(old);
		cr_assert_eq(sockmap__load(old), 0);
		fd = bpf_link_create(bpf_program__fd(old->progs.xm_sockmap_ops), cg, BPF_CGROUP_SOCK_OPS, NULL);
		cr_assert(fd >= 0, "attach an earlier agent's sockops: %s", strerror(errno));
		cr_assert_eq(pins_link_path(link, sizeof(link), pin_dir, XM_SOCKMAP_OPS_LINK), 0);
		cr_assert_eq(bpf_obj_pin(fd, link), 0, "pin %s: %s", link, strerror(errno));
		close(fd);
		sockmap__destroy(old);
	}
	close(cg);
	sockops_attached(names, sizeof(names));
	cr_expect_str_eq(names, "xm_mesh_ops xm_sockmap_ops");

	cr_assert_eq(sockmap_open(&sm, pin_dir, cg_dir, true, NULL, 0), 0);
	cr_expect(sm.mesh);
	sockops_attached(names, sizeof(names));
	cr_expect_str_eq(names, "xm_mesh_ops", "the earlier separate link is gone, not: %s", names);
	cr_expect_neq(access(link, F_OK), 0, "%s still pinned", link);
	sockmap_close(&sm);
	datapath_close(&dp);
}
