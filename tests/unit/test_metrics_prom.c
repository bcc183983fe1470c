/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus exposition helpers: name validation, escaping, number formats, histograms, promtool. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "metrics/metrics.h"
#include "metrics/prom.h"
#include "metrics/registry.h"
#include "test_metrics.h"

Test(metrics_prom, metric_names)
{
	static const char *const good[] = {
		"a", "_", ":", "xmesh_build_info", "istio_tcp_sent_bytes_total", "job:rate5m", "A9_:z",
	};
	static const char *const bad[] = { "", "9abc", "a-b", "a b", "a.b", "ä", "a\n", "x{" };
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_expect(prom_metric_name_valid(good[i]), "\"%s\" should be a valid metric name", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect(!prom_metric_name_valid(bad[i]), "\"%s\" should be rejected", bad[i]);
	cr_expect(!prom_metric_name_valid(NULL));
}

Test(metrics_prom, label_names)
{
	static const char *const good[] = { "a", "_a", "le", "destination_service", "A1", "_" };
	static const char *const bad[] = { "", "__name__", "__", "1a", "a:b", "a-b", "a b", "é" };
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_expect(prom_label_name_valid(good[i]), "\"%s\" should be a valid label name", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect(!prom_label_name_valid(bad[i]), "\"%s\" should be rejected", bad[i]);
}

static void expect_escaped(bool label, const char *in, const char *want)
{
	struct strbuf sb = { 0 };

	if (label)
		prom_escape_label_value(&sb, in);
	else
		prom_escape_help(&sb, in);
	cr_expect_str_eq(sb.buf ? sb.buf : "", want, "%s escape: got \"%s\", want \"%s\"", label ? "label" : "help",
			 sb.buf ? sb.buf : "", want);
	sb_free(&sb);
}

Test(metrics_prom, label_value_escaping)
{
	expect_escaped(true, "", "");
	expect_escaped(true, "plain", "plain");
	expect_escaped(true, "a\\b", "a\\\\b");
	expect_escaped(true, "say \"hi\"", "say \\\"hi\\\"");
	expect_escaped(true, "two\nlines", "two\\nlines");
	expect_escaped(true, "\\\"\n", "\\\\\\\"\\n");
	expect_escaped(true, "tab\tand\rcr", "tab\tand\rcr"); /* only \, " and newline are escaped */
	expect_escaped(true, "trailing\\", "trailing\\\\");
}

Test(metrics_prom, help_escaping_leaves_quotes)
{
	expect_escaped(false, "a \"quoted\" word", "a \"quoted\" word");
	expect_escaped(false, "back\\slash\nnewline", "back\\\\slash\\nnewline");
}

Test(metrics_prom, utf8_kept_invalid_replaced)
{
	expect_escaped(true, "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80",
		       "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80");
	expect_escaped(true,
		       "a\xff"
		       "b",
		       "a\xef\xbf\xbd"
		       "b");
	expect_escaped(true, "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");		      /* overlong '/' */
	expect_escaped(true, "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
	expect_escaped(true, "cut \xe6\x97", "cut \xef\xbf\xbd\xef\xbf\xbd");	      /* truncated sequence */
	expect_escaped(false, "x\x80y", "x\xef\xbf\xbdy");
}

Test(metrics_prom, family_header)
{
	struct strbuf sb = { 0 };

	cr_assert_eq(prom_family(&sb, "xmesh_x_total", "counter", "Things \"counted\".\nSecond \\ line."), 0);
	cr_expect_str_eq(sb.buf, "# HELP xmesh_x_total Things \"counted\".\\nSecond \\\\ line.\n"
				 "# TYPE xmesh_x_total counter\n");
	sb_free(&sb);
}

Test(metrics_prom, family_rejects_and_appends_nothing)
{
	struct strbuf sb = { 0 };

	cr_expect_eq(prom_family(&sb, "xmesh_x", "counter", "counter without _total"), -EINVAL);
	cr_expect_eq(prom_family(&sb, "xmesh_x_total", "gauge", "gauge named like a counter"), -EINVAL);
	cr_expect_eq(prom_family(&sb, "xmesh_x", "summary", "unsupported type"), -EINVAL);
	cr_expect_eq(prom_family(&sb, "xmesh_x", NULL, "no type"), -EINVAL);
	cr_expect_eq(prom_family(&sb, "xmesh-x", "gauge", "bad name"), -EINVAL);
	cr_expect_eq(sb.len, 0, "nothing appended, got \"%s\"", sb.buf ? sb.buf : "");
	cr_expect_eq(prom_family(&sb, "xmesh_h_seconds", "histogram", "ok"), 0);
	sb_free(&sb);
}

Test(metrics_prom, samples)
{
	static const char *const names[] = { "service", "code" };
	static const char *const values[] = { "default/\"odd\"\\name\n", "200" };
	struct strbuf sb = { 0 };

	cr_assert_eq(prom_sample_u64(&sb, "xmesh_up", NULL, NULL, 0, 1), 0);
	cr_assert_eq(prom_sample_u64(&sb, "xmesh_req_total", names, values, 2, 18446744073709551615ull), 0);
	cr_assert_eq(prom_sample(&sb, "xmesh_ratio", names + 1, values + 1, 1, 0.25), 0);
	cr_expect_str_eq(sb.buf, "xmesh_up 1\n"
				 "xmesh_req_total{service=\"default/\\\"odd\\\"\\\\name\\n\",code=\"200\"} "
				 "18446744073709551615\n"
				 "xmesh_ratio{code=\"200\"} 0.25\n");
	sb_free(&sb);
}

Test(metrics_prom, sample_rejects_and_appends_nothing)
{
	static const char *const dup[] = { "a", "a" }, *const reserved[] = { "__name__" }, *const v[] = { "1", "2" };
	static const char *const null_value[] = { NULL };
	const char *many_n[PROM_MAX_LABELS + 1], *many_v[PROM_MAX_LABELS + 1];
	char names[PROM_MAX_LABELS + 1][8];
	struct strbuf sb = { 0 };
	size_t i;

	for (i = 0; i <= PROM_MAX_LABELS; i++) {
		snprintf(names[i], sizeof(names[i]), "l%zu", i);
		many_n[i] = names[i];
		many_v[i] = "x";
	}
	cr_expect_eq(prom_sample_u64(&sb, "m", dup, v, 2, 1), -EINVAL);
	cr_expect_eq(prom_sample_u64(&sb, "m", reserved, v, 1, 1), -EINVAL);
	cr_expect_eq(prom_sample_u64(&sb, "m", v, null_value, 1, 1), -EINVAL);
	cr_expect_eq(prom_sample_u64(&sb, "m", NULL, NULL, 1, 1), -EINVAL);
	cr_expect_eq(prom_sample_u64(&sb, "bad name", NULL, NULL, 0, 1), -EINVAL);
	cr_expect_eq(prom_sample(&sb, "m", many_n, many_v, PROM_MAX_LABELS + 1, 1), -EINVAL);
	cr_expect_eq(sb.len, 0, "nothing appended, got \"%s\"", sb.buf ? sb.buf : "");
	cr_expect_eq(prom_sample(&sb, "m", many_n, many_v, PROM_MAX_LABELS, 1), 0);
	sb_free(&sb);
}

Test(metrics_prom, number_formats)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{ 0, "0" },
		{ 1, "1" },
		{ -0.5, "-0.5" },
		{ 0.1, "0.1" },
		{ 1e-9, "1e-09" },
		{ 1e300, "1e+300" },
		{ 1.5e6, "1500000" },
		{ 1000, "1000" },
		{ 3600000, "3600000" },
		{ 2.5e15, "2.5e+15" },
		{ 0.30000000000000004, "0.30000000000000004" },
		{ 9007199254740993.0, "9007199254740992" },
		{ NAN, "NaN" },
		{ INFINITY, "+Inf" },
		{ -INFINITY, "-Inf" },
	};
	char buf[40];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		prom_format_double(buf, sizeof(buf), cases[i].v);
		cr_expect_str_eq(buf, cases[i].want, "case %zu: got %s want %s", i, buf, cases[i].want);
		if (isfinite(cases[i].v))
			cr_expect(strtod(buf, NULL) == cases[i].v, "%s does not read back", buf);
	}
}

Test(metrics_prom, histogram)
{
	static const char *const n[] = { "service" }, *const v[] = { "a\"b" };
	static const double bounds[] = { 0.005, 0.1, 1 };
	static const uint64_t counts[] = { 1, 3, 3 };
	struct strbuf sb = { 0 };

	cr_assert_eq(prom_histogram(&sb, "xmesh_d_seconds", n, v, 1, bounds, counts, 3, 2.5, 4), 0);
	cr_expect_str_eq(sb.buf, "xmesh_d_seconds_bucket{service=\"a\\\"b\",le=\"0.005\"} 1\n"
				 "xmesh_d_seconds_bucket{service=\"a\\\"b\",le=\"0.1\"} 3\n"
				 "xmesh_d_seconds_bucket{service=\"a\\\"b\",le=\"1\"} 3\n"
				 "xmesh_d_seconds_bucket{service=\"a\\\"b\",le=\"+Inf\"} 4\n"
				 "xmesh_d_seconds_sum{service=\"a\\\"b\"} 2.5\n"
				 "xmesh_d_seconds_count{service=\"a\\\"b\"} 4\n");
	sb_free(&sb);
	cr_assert_eq(prom_histogram(&sb, "xmesh_e_seconds", NULL, NULL, 0, NULL, NULL, 0, 0, 0), 0);
	cr_expect_str_eq(sb.buf, "xmesh_e_seconds_bucket{le=\"+Inf\"} 0\nxmesh_e_seconds_sum 0\n"
				 "xmesh_e_seconds_count 0\n");
	sb_free(&sb);
}

Test(metrics_prom, histogram_rejects)
{
	static const char *const le[] = { "le" }, *const v[] = { "1" };
	static const double up[] = { 1, 2 }, down[] = { 2, 1 }, inf[] = { 1, INFINITY };
	static const uint64_t ok[] = { 1, 2 }, falling[] = { 2, 1 };
	struct strbuf sb = { 0 };

	cr_expect_eq(prom_histogram(&sb, "h", le, v, 1, up, ok, 2, 0, 2), -EINVAL);
	cr_expect_eq(prom_histogram(&sb, "h", NULL, NULL, 0, down, ok, 2, 0, 2), -EINVAL);
	cr_expect_eq(prom_histogram(&sb, "h", NULL, NULL, 0, inf, ok, 2, 0, 2), -EINVAL);
	cr_expect_eq(prom_histogram(&sb, "h", NULL, NULL, 0, up, falling, 2, 0, 2), -EINVAL);
	cr_expect_eq(prom_histogram(&sb, "h", NULL, NULL, 0, up, ok, 2, 0, 1), -EINVAL); /* bucket > count */
	cr_expect_eq(sb.len, 0);
}

Test(metrics_prom, build_info)
{
	struct xm_scrape *sc = scrape_new();
	struct strbuf sb = { 0 };
	const char *line;

	cr_assert_not_null(sc);
	metrics_collect_build_info(sc);
	scrape_render(sc, &sb);
	scrape_free(sc);
	cr_assert_not_null(sb.buf);
	cr_expect(strstr(sb.buf, "# TYPE xmesh_build_info gauge\n"), "%s", sb.buf);
	/* Not compared with this file's XMESH_VERSION: make does not rebuild either object when it changes. */
	line = strstr(sb.buf, "\nxmesh_build_info{version=\"");
	cr_assert_not_null(line, "%s", sb.buf);
	line += strlen("\nxmesh_build_info{version=\"");
	cr_expect(*line != '"' && strstr(line, "\"} 1\n") && !strchr(line, '\\'), "%s", sb.buf);
	sb_free(&sb);
}

Test(metrics_prom, promtool_accepts_realistic_scrape)
{
	struct strbuf sb = { 0 };
	char out[4096];
	int rc;

	if (!promtool_path())
		cr_skip_test("promtool not installed (Debian: prometheus package); exposition not checked by promtool");
	struct xm_scrape *sc = scrape_new();

	cr_assert_not_null(sc);
	metrics_collect_build_info(sc);
	collect_realistic(sc, NULL);
	scrape_render(sc, &sb);
	scrape_free(sc);
	cr_assert(!sb.oom);
	rc = promtool_check(sb.buf, out, sizeof(out));
	cr_expect_eq(rc, 0, "promtool check metrics exited %d:\n%s\n--- scrape ---\n%s", rc, out, sb.buf);
	cr_expect_str_eq(out, "", "promtool said: %s", out);
	sb_free(&sb);
}

/* The check must be able to fail, or the test above proves nothing. */
Test(metrics_prom, promtool_rejects_broken_scrape)
{
	char out[4096];

	if (!promtool_path())
		cr_skip_test("promtool not installed (Debian: prometheus package)");
	cr_expect_neq(promtool_check("# TYPE x_total counter\nx_total{a=\"unterminated} 1\n", out, sizeof(out)), 0);
	cr_expect_neq(promtool_check("# HELP x_total h\n# TYPE x_total counter\nx_total 1\n"
				     "# HELP x_total h\n# TYPE x_total counter\nx_total 2\n",
				     out, sizeof(out)),
		      0, "a family twice must be an error");
}
