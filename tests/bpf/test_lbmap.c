// SPDX-License-Identifier: Apache-2.0
/*
 * lbmap when the kernel refuses a write: a service port whose outlier count cannot be written is not
 * published, and one whose removal fails stays in the agent's view (it is still served). The refusals come
 * from read-only descriptors of the real maps (the kernel answers EPERM to writes through them).
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sock_lb_fixture.h"

TestSuite(lbmap, .init = fx_setup, .fini = fx_teardown, .timeout = 30);

static int read_only_fd(int fd)
{
	LIBBPF_OPTS(bpf_get_fd_by_id_opts, opts, .open_flags = BPF_F_RDONLY);
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	int ro;

	memset(&info, 0, sizeof(info));
	cr_assert_eq(bpf_obj_get_info_by_fd(fd, &info, &len), 0, "map info: %s", strerror(errno));
	ro = bpf_map_get_fd_by_id_opts(info.id, &opts);
	cr_assert(ro >= 0, "read-only fd of map %u: %s", info.id, strerror(errno));
	return ro;
}

/* One service port 10.96.0.10:80/TCP with one ready backend 127.0.0.1:8080; outlier detection when od. */
static void one_service(struct xm_lb_service *svc, struct xm_lb_backend *be, const struct xm_outlier_detection *od)
{
	memset(svc, 0, sizeof(*svc));
	memset(be, 0, sizeof(*be));
	snprintf(svc->ns, sizeof(svc->ns), "test");
	snprintf(svc->name, sizeof(svc->name), "svc");
	svc->key.family = XM_FAMILY_V4;
	inet_pton(AF_INET, "10.96.0.10", &svc->key.vip.v4);
	svc->key.port = htons(80);
	svc->key.proto = XM_PROTO_TCP;
	svc->algo = XM_LB_ROUND_ROBIN;
	be->family = XM_FAMILY_V4;
	inet_pton(AF_INET, "127.0.0.1", &be->addr.v4);
	be->port = 8080;
	be->ready = true;
	svc->backends = be;
	svc->n_backends = 1;
	svc->n_ready = 1;
	if (od) {
		svc->outlier_on = true;
		svc->outlier = *od;
	}
}

Test(lbmap, outlier_count_not_written_leaves_the_port_unpublished)
{
	struct xm_outlier_detection od;
	struct xm_lb_service svc;
	struct xm_lb_backend be;
	struct xm_lb_state st = { .services = &svc, .n_services = 1 };
	struct xm_lbmap_stats stats;
	struct xm_map_fds fds = fx.fds;
	struct xm_svc_value v;
	struct xm_lbmap *m;

	config_outlier_defaults(&od);
	od.set = true;
	one_service(&svc, &be, &od);
	fds.outlier_svc = read_only_fd(fx.fds.outlier_svc);
	m = lbmap_open(&fds);
	cr_assert(m);
	cr_expect_eq(lbmap_apply(m, &st, 0, &stats), -EIO);
	cr_expect_eq(stats.errors, 1);
	cr_expect_eq(lbmap_svc_id(m, &svc.key), 0, "published without its ejection count");
	cr_expect_neq(bpf_map_lookup_elem(fx.fds.services, &svc.key, &v), 0, "the service map has the port");
	lbmap_free(m);
	close(fds.outlier_svc);
}

Test(lbmap, failed_removal_keeps_the_port_in_view)
{
	struct xm_lb_service svc;
	struct xm_lb_backend be;
	struct xm_lb_state st = { .services = &svc, .n_services = 1 }, none = { 0 };
	struct xm_lbmap_stats stats;
	struct xm_map_fds fds = fx.fds;
	struct xm_svc_value v;
	struct xm_lbmap *m;
	uint32_t id;

	one_service(&svc, &be, NULL);
	cr_assert_eq(lbmap_apply(fx.lbmap, &st, 0, &stats), 0);
	id = lbmap_svc_id(fx.lbmap, &svc.key);
	cr_assert_neq(id, 0);
	/* A second agent view whose deletes the kernel refuses: it adopts the port, then tries to remove it. */
	fds.services = read_only_fd(fx.fds.services);
	m = lbmap_open(&fds);
	cr_assert(m);
	for (int round = 0; round < 3; round++) {
		cr_expect_eq(lbmap_apply(m, &none, 0, &stats), -EIO, "round %d", round);
		cr_expect_eq(stats.errors, 1, "round %d", round);
		cr_expect_eq(stats.services, 1, "round %d: the port is still served", round);
		cr_expect_eq(lbmap_svc_id(m, &svc.key), id, "round %d: the port left the view", round);
	}
	cr_expect_eq(bpf_map_lookup_elem(fx.fds.services, &svc.key, &v), 0);
	lbmap_free(m);
	close(fds.services);
}

/* Adoption drops the lists no service points at (a crashed apply left them) and keeps the rest. */
Test(lbmap, adoption_drops_orphan_lists_and_keeps_referenced_ones)
{
	struct xm_lb_service svc;
	struct xm_lb_backend be;
	struct xm_lb_state st = { .services = &svc, .n_services = 1 };
	struct xm_lbmap_stats stats;
	struct xm_svc_value v;
	struct xm_slot_key live, orphan;
	struct xm_slot_value sv = { .backend_id = 1 }, got;
	struct xm_lbmap *m;

	one_service(&svc, &be, NULL);
	cr_assert_eq(lbmap_apply(fx.lbmap, &st, 0, &stats), 0);
	cr_assert_eq(bpf_map_lookup_elem(fx.fds.services, &svc.key, &v), 0);
	live = (struct xm_slot_key){ .table_id = v.table_id, .slot = 0 };
	orphan = (struct xm_slot_key){ .table_id = v.table_id + 100, .slot = 0 };
	cr_assert_eq(bpf_map_update_elem(fx.fds.slots, &orphan, &sv, BPF_ANY), 0);
	m = lbmap_open(&fx.fds);
	cr_assert(m);
	cr_expect_neq(bpf_map_lookup_elem(fx.fds.slots, &orphan, &got), 0, "the orphan list is still there");
	cr_expect_eq(bpf_map_lookup_elem(fx.fds.slots, &live, &got), 0, "the served list was dropped");
	lbmap_free(m);
}
