// SPDX-License-Identifier: Apache-2.0
/* The metrics registry: families shared by modules, equal series summed, stable order, invalid input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/strbuf.h"
#include "metrics/registry.h"
#include "test_metrics.h"

static const char *const reporter[] = { "reporter" };

static void render(struct xm_scrape *sc, struct strbuf *out)
{
	scrape_render(sc, out);
	cr_assert(!out->oom);
	cr_assert_not_null(out->buf);
}

Test(metrics_registry, two_modules_share_one_family)
{
	struct xm_scrape *sc = scrape_new();
	struct strbuf out = { 0 };
	const char *src[] = { "source" }, *dst[] = { "destination" };
	char promtool_out[4096];

	cr_assert_not_null(sc);
	/* The socket path, then XDP, each declaring the family as if alone. */
	scrape_u64(scrape_family(sc, "istio_tcp_sent_bytes_total", "counter", "h"), reporter, src, 1, 5);
	scrape_u64(scrape_family(sc, "xmesh_other", "gauge", "o"), NULL, NULL, 0, 1);
	scrape_u64(scrape_family(sc, "istio_tcp_sent_bytes_total", "counter", "h"), reporter, dst, 1, 7);
	render(sc, &out);
	cr_expect_str_eq(out.buf, "# HELP istio_tcp_sent_bytes_total h\n# TYPE istio_tcp_sent_bytes_total counter\n"
				  "istio_tcp_sent_bytes_total{reporter=\"destination\"} 7\n"
				  "istio_tcp_sent_bytes_total{reporter=\"source\"} 5\n"
				  "# HELP xmesh_other o\n# TYPE xmesh_other gauge\nxmesh_other 1\n");
	if (promtool_path())
		cr_expect_eq(promtool_check(out.buf, promtool_out, sizeof(promtool_out)), 0, "%s", promtool_out);
	sb_free(&out);
	scrape_free(sc);
}

Test(metrics_registry, equal_labels_are_one_series)
{
	struct xm_scrape *sc = scrape_new();
	struct xm_scrape_family *f = scrape_family(sc, "x_total", "counter", "h");
	struct strbuf out = { 0 };
	const char *a[] = { "a" }, *b[] = { "b" };

	scrape_u64(f, reporter, b, 1, 1);
	scrape_u64(f, reporter, a, 1, 2);
	scrape_u64(f, reporter, b, 1, 40);
	render(sc, &out);
	cr_expect_str_eq(out.buf, "# HELP x_total h\n# TYPE x_total counter\nx_total{reporter=\"a\"} 2\n"
				  "x_total{reporter=\"b\"} 41\n");
	sb_free(&out);
	scrape_free(sc);
}

Test(metrics_registry, invalid_input_leaves_the_scrape_valid)
{
	struct xm_scrape *sc = scrape_new();
	struct xm_scrape_family *f = scrape_family(sc, "ok_total", "counter", "h");
	const char *bad_names[] = { "__reserved" }, *v[] = { "x" };
	struct strbuf out = { 0 };

	cr_expect_null(scrape_family(sc, "bad name", "counter", "h"));
	cr_expect_null(scrape_family(sc, "ok_total", "gauge", "h"), "one family, two types");
	cr_expect_null(scrape_family(sc, "y", "summary", "h"));
	cr_expect_eq(scrape_u64(f, bad_names, v, 1, 1), -EINVAL);
	cr_expect_eq(scrape_u64(NULL, NULL, NULL, 0, 1), 0, "adding to a family that failed is a no-op");
	cr_expect_eq(scrape_histogram(f, NULL, NULL, 0, NULL, NULL, 0, 0, 0), -EINVAL, "not a histogram family");
	render(sc, &out);
	cr_expect_str_eq(out.buf, "# HELP ok_total h\n# TYPE ok_total counter\n");
	sb_free(&out);
	scrape_free(sc);
}

Test(metrics_registry, doubles_and_histograms_render_whole)
{
	struct xm_scrape *sc = scrape_new();
	static const double bounds[] = { 1, 10 };
	static const uint64_t counts[] = { 1, 3 };
	struct strbuf out = { 0 };

	scrape_double(scrape_family(sc, "ratio", "gauge", "r"), NULL, NULL, 0, NAN);
	scrape_histogram(scrape_family(sc, "lat_ms", "histogram", "l"), NULL, NULL, 0, bounds, counts, 2, 12.5, 4);
	render(sc, &out);
	cr_expect(strstr(out.buf, "ratio NaN\n"), "%s", out.buf);
	cr_expect(strstr(out.buf, "lat_ms_bucket{le=\"10\"} 3\nlat_ms_bucket{le=\"+Inf\"} 4\nlat_ms_sum 12.5\n"
				  "lat_ms_count 4\n"),
		  "%s", out.buf);
	sb_free(&out);
	scrape_free(sc);
}
