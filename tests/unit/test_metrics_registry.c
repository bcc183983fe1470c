// SPDX-License-Identifier: Apache-2.0
/* The metrics registry: families shared by modules, equal series summed, stable order, invalid input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* What the stderr of this test process holds after fn ran (criterion runs each test in a process of its own). */
static void capture_stderr(void (*fn)(void *), void *arg, char *buf, size_t len)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	size_t n;

	cr_assert(tmp && saved >= 0);
	fflush(stderr);
	cr_assert_eq(dup2(fileno(tmp), 2), 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, len - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
}

static void refuse_four(void *arg)
{
	struct xm_scrape *sc = arg;
	struct xm_scrape_family *f = scrape_family(sc, "ok_total", "counter", "h");
	const char *bad_names[] = { "__reserved" }, *v[] = { "x" };

	scrape_family(sc, "bad name", "counter", "h");
	scrape_family(sc, "ok_total", "gauge", "h");
	scrape_u64(f, bad_names, v, 1, 1);
	scrape_histogram(f, NULL, NULL, 0, NULL, NULL, 0, 0, 0);
	scrape_u64(NULL, NULL, NULL, 0, 1); /* the family that failed: counted once, when it was declared */
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

Test(metrics_registry, a_refused_sample_is_counted_and_logged_once)
{
	struct xm_scrape *sc = scrape_new();
	uint64_t before = scrape_rejected_total();
	char log[4096];

	capture_stderr(refuse_four, sc, log, sizeof(log));
	cr_expect_eq(scrape_rejected_total() - before, 4);
	cr_expect_eq(count(log, "left out of a scrape"), 1, "one log line for four refusals: %s", log);
	cr_expect(strstr(log, "bad name left out of a scrape: Invalid argument"), "%s", log);
	capture_stderr(refuse_four, sc, log, sizeof(log));
	cr_expect_eq(scrape_rejected_total() - before, 8);
	cr_expect_eq(count(log, "left out of a scrape"), 0, "logged once per process: %s", log);
	scrape_free(sc);
}

/* Istio's 25 labels, each value 4 KiB: no length limit, the series renders whole and nothing is refused. */
Test(metrics_registry, long_label_values_are_kept_whole)
{
	struct xm_scrape *sc = scrape_new();
	struct xm_scrape_family *f = scrape_family(sc, "istio_requests_total", "counter", "h");
	static char values[25][4096];
	char names[25][16];
	const char *n[25], *v[25];
	uint64_t before = scrape_rejected_total();
	struct strbuf out = { 0 };

	for (int i = 0; i < 25; i++) {
		snprintf(names[i], sizeof(names[i]), "label_%d", i);
		memset(values[i], 'a' + i, sizeof(values[i]) - 1);
		n[i] = names[i];
		v[i] = values[i];
	}
	cr_assert_eq(scrape_u64(f, n, v, 25, 3), 0);
	v[24] = "other";
	cr_assert_eq(scrape_u64(f, n, v, 25, 4), 0);
	render(sc, &out);
	cr_expect_eq(scrape_rejected_total(), before);
	cr_expect_eq(count(out.buf, "\nistio_requests_total{"), 2);
	cr_expect(strstr(out.buf, values[24]), "the long value of the last label is there");
	cr_expect(strstr(out.buf, "label_24=\"other\"} 4\n"));
	cr_expect_gt(out.len, 49 * 4095, "both series whole: 49 long values");
	sb_free(&out);
	scrape_free(sc);
}
