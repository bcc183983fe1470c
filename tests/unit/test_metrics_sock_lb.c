/* SPDX-License-Identifier: Apache-2.0 */
/* Per-CPU counter maps summed for a scrape, and the socket LB's families (needs CAP_BPF, else skipped). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xmesh/lb.h>
#include <xmesh/xdp.h>

#include "core/strbuf.h"
#include "core/percpu.h"
#include "metrics/registry.h"
#include "metrics/sock_lb_metrics.h"
#include "test_metrics.h"

/* A PERCPU_ARRAY like xm_sock_stats with key k on CPU c holding (k + 1) * (c + 1). */
static int make_stats_map(int *ncpu)
{
	uint64_t *vals;
	uint32_t k;
	int fd, c;

	*ncpu = libbpf_num_possible_cpus();
	cr_assert_gt(*ncpu, 0);
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "test_sock_stats", sizeof(uint32_t), sizeof(struct xm_counter),
			    XM_STAT_SOCK_MAX, NULL);
	if (fd < 0)
		cr_skip_test("cannot create a BPF map here (%s): per-CPU reads not tested", strerror(errno));
	vals = calloc((size_t)*ncpu, sizeof(*vals));
	cr_assert_not_null(vals);
	for (k = 0; k < XM_STAT_SOCK_MAX; k++) {
		for (c = 0; c < *ncpu; c++)
			vals[c] = (uint64_t)(k + 1) * (uint64_t)(c + 1);
		cr_assert_eq(bpf_map_update_elem(fd, &k, vals, BPF_ANY), 0);
	}
	free(vals);
	return fd;
}

static uint64_t expected(uint32_t k, int ncpu)
{
	return (uint64_t)(k + 1) * (uint64_t)ncpu * (uint64_t)(ncpu + 1) / 2;
}

Test(metrics_sock_lb, percpu_sums_every_cpu)
{
	uint64_t sums[XM_STAT_SOCK_MAX];
	int ncpu, fd = make_stats_map(&ncpu);
	uint32_t k;

	cr_assert_eq(percpu_sum_u64(fd, XM_STAT_SOCK_MAX, sums), 0);
	for (k = 0; k < XM_STAT_SOCK_MAX; k++)
		cr_expect_eq(sums[k], expected(k, ncpu), "key %u: %llu, want %llu over %d CPUs", k,
			     (unsigned long long)sums[k], (unsigned long long)expected(k, ncpu), ncpu);
	cr_expect_eq(percpu_sum_u64(fd, XM_STAT_SOCK_MAX + 1, sums), -ENOENT, "key past max_entries");
	close(fd);
}

/*
 * The layout of xm_xdp_tcp_counters (what `xmesh maps` decodes): four counters summed over the CPUs, then
 * the owner's ids, which every CPU holds alike and which are read, not summed.
 */
Test(metrics_sock_lb, percpu_value_sums_counters_keeps_owner)
{
	struct xm_xdp_tcp_metrics *vals, got;
	uint32_t key = 5, past = 8;
	uint64_t n;
	int ncpu = libbpf_num_possible_cpus(), fd, c;

	cr_assert_gt(ncpu, 0);
	n = (uint64_t)ncpu;
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "test_tcp_counters", sizeof(key), sizeof(*vals), 8, NULL);
	if (fd < 0)
		cr_skip_test("cannot create a BPF map here (%s)", strerror(errno));
	vals = calloc((size_t)ncpu, sizeof(*vals));
	cr_assert_not_null(vals);
	for (c = 0; c < ncpu; c++)
		vals[c] = (struct xm_xdp_tcp_metrics){ .opened = 1,
						       .closed = (uint64_t)c,
						       .sent_bytes = 1000,
						       .received_bytes = 1ull << 40,
						       .svc_id = 7,
						       .backend_id = 9 };
	cr_assert_eq(bpf_map_update_elem(fd, &key, vals, BPF_ANY), 0);
	cr_assert_eq(percpu_lookup_value(fd, &key, sizeof(got), XM_XDP_TCP_COUNTERS_LEN, &got), 0);
	cr_expect_eq(got.opened, n);
	cr_expect_eq(got.closed, n * (n - 1) / 2);
	cr_expect_eq(got.sent_bytes, 1000 * n);
	cr_expect_eq(got.received_bytes, n << 40);
	cr_expect_eq(got.svc_id, 7, "owner summed over %d CPUs: svc_id %u", ncpu, got.svc_id);
	cr_expect_eq(got.backend_id, 9, "owner summed over %d CPUs: backend_id %u", ncpu, got.backend_id);
	cr_expect_eq(percpu_lookup_value(fd, &past, sizeof(got), XM_XDP_TCP_COUNTERS_LEN, &got), -ENOENT);
	cr_expect_eq(percpu_lookup_value(fd, &key, sizeof(got), sizeof(got) + 8, &got), -EINVAL);
	free(vals);
	close(fd);
}

Test(metrics_sock_lb, renders_families)
{
	struct strbuf sb = { 0 };
	char want[128], out[4096];
	int ncpu, fd = make_stats_map(&ncpu);

	struct xm_scrape *sc = scrape_new();

	cr_assert_not_null(sc);
	cr_assert_eq(sock_lb_metrics_collect(fd, sc), 0);
	scrape_render(sc, &sb);
	scrape_free(sc);
	snprintf(want, sizeof(want), "\nxmesh_sock_lb_connects_total{protocol=\"tcp\"} %llu\n",
		 (unsigned long long)expected(XM_STAT_SOCK_LB_TCP, ncpu));
	cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	snprintf(want, sizeof(want), "\nxmesh_sock_lb_connects_total{protocol=\"udp\"} %llu\n",
		 (unsigned long long)expected(XM_STAT_SOCK_LB_UDP, ncpu));
	cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	snprintf(want, sizeof(want), "\nxmesh_sock_lb_refused_total{reason=\"no_backend\"} %llu\n",
		 (unsigned long long)expected(XM_STAT_SOCK_NO_BACKEND, ncpu));
	cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	snprintf(want, sizeof(want), "\nxmesh_sock_lb_refused_total{reason=\"lookup_miss\"} %llu\n",
		 (unsigned long long)expected(XM_STAT_SOCK_LOOKUP_MISS, ncpu));
	cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	snprintf(want, sizeof(want), "\nxmesh_sock_lb_revnat_total %llu\n",
		 (unsigned long long)expected(XM_STAT_SOCK_REVNAT, ncpu));
	cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	snprintf(want, sizeof(want), "\nxmesh_sock_lb_l7_connects_total{path=\"proxy\"} %llu\n",
		 (unsigned long long)expected(XM_STAT_SOCK_L7_CAPTURE, ncpu));
	cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	snprintf(want, sizeof(want), "\nxmesh_sock_lb_l7_connects_total{path=\"l4_no_proxy\"} %llu\n",
		 (unsigned long long)expected(XM_STAT_SOCK_L7_NO_PROXY, ncpu));
	cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	snprintf(want, sizeof(want), "\nxmesh_sock_lb_hbone_connects_total %llu\n",
		 (unsigned long long)expected(XM_STAT_SOCK_HBONE_CAPTURE, ncpu));
	cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	if (promtool_path())
		cr_expect_eq(promtool_check(sb.buf, out, sizeof(out)), 0, "promtool: %s", out);
	close(fd);
	sb_free(&sb);
}

Test(metrics_sock_lb, unreadable_map_renders_nothing)
{
	struct xm_scrape *sc = scrape_new();
	struct strbuf sb = { 0 };

	cr_assert_not_null(sc);
	cr_expect_eq(sock_lb_metrics_collect(-1, sc), -EBADF);
	scrape_render(sc, &sb);
	scrape_free(sc);
	cr_expect_eq(sb.len, 0);
}
