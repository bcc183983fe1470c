/* SPDX-License-Identifier: Apache-2.0 */
/* xmesh_map_update_errors_total{map} from a per-CPU array like xm_map_errors (needs CAP_BPF, else skipped). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xmesh/lb.h>

#include "core/strbuf.h"
#include "metrics/map_errors.h"
#include "metrics/registry.h"
#include "test_metrics.h"

/* One scrape with only this collector, rendered into sb. */
static int collect(int fd, struct strbuf *sb)
{
	struct xm_scrape *sc = scrape_new();
	int err;

	cr_assert_not_null(sc);
	err = map_errors_metrics_collect(fd, sc);
	scrape_render(sc, sb);
	scrape_free(sc);
	return err;
}

Test(metrics_map_errors, renders_each_map_summed_over_cpus)
{
	int ncpu = libbpf_num_possible_cpus(), fd, c;
	struct strbuf sb = { 0 };
	char want[128], out[4096];
	uint64_t *vals;
	uint32_t k;

	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "test_map_errors", sizeof(uint32_t), sizeof(struct xm_counter),
			    XM_MAPERR_MAX, NULL);
	if (fd < 0)
		cr_skip_test("cannot create a BPF map here (%s)", strerror(errno));
	vals = calloc((size_t)ncpu, sizeof(*vals));
	cr_assert_not_null(vals);
	for (k = 0; k < XM_MAPERR_MAX; k++) {
		for (c = 0; c < ncpu; c++)
			vals[c] = (uint64_t)(k + 1) * 10 + (uint64_t)c;
		cr_assert_eq(bpf_map_update_elem(fd, &k, vals, BPF_ANY), 0);
	}
	cr_assert_eq(collect(fd, &sb), 0);
	for (k = 0; k < XM_MAPERR_MAX; k++) {
		uint64_t sum = (uint64_t)(k + 1) * 10 * (uint64_t)ncpu + (uint64_t)ncpu * (uint64_t)(ncpu - 1) / 2;

		snprintf(want, sizeof(want), "\nxmesh_map_update_errors_total{map=\"%s\"} %llu\n", map_error_name(k),
			 (unsigned long long)sum);
		cr_expect(strstr(sb.buf, want), "want %s in:\n%s", want, sb.buf);
	}
	cr_expect_str_eq(map_error_name(XM_MAPERR_UDP_REVNAT), "xm_udp_revnat");
	cr_expect_str_eq(map_error_name(XM_MAPERR_SOCK_STATE), "xm_sock_state");
	cr_expect_str_eq(map_error_name(XM_MAPERR_HBONE_ORIGDST), "xm_hbone_origdst");
	if (promtool_path())
		cr_expect_eq(promtool_check(sb.buf, out, sizeof(out)), 0, "promtool: %s", out);
	free(vals);
	close(fd);
	sb_free(&sb);
}

Test(metrics_map_errors, unreadable_map_renders_nothing)
{
	struct strbuf sb = { 0 };

	cr_expect_eq(collect(-1, &sb), -EBADF);
	cr_expect_eq(sb.len, 0);
}
