// SPDX-License-Identifier: Apache-2.0
#include "metrics/prom.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"

static bool is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool prom_metric_name_valid(const char *name)
{
	const char *p;

	if (!name || !(is_alpha_(*name) || *name == ':'))
		return false;
	for (p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p) && *p != ':')
			return false;
	return true;
}

bool prom_label_name_valid(const char *name)
{
	const char *p;

	if (!name || !is_alpha_(*name) || !strncmp(name, "__", 2))
		return false;
	for (p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p))
			return false;
	return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* Length of the valid UTF-8 sequence at s (1–4), or 0 if the bytes there are not one. */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n, i;
	unsigned int cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/* Appends s with `\` and newline escaped (and `"` when quotes is set); invalid UTF-8 becomes U+FFFD. */
static void escape(struct strbuf *sb, const char *s, bool quotes)
{
	const unsigned char *p = (const unsigned char *)s, *run = p;

	while (*p) {
		const char *esc = NULL;
		size_t n = utf8_seq_len(p);

		if (*p == '\\')
			esc = "\\\\";
		else if (*p == '\n')
			esc = "\\n";
		else if (*p == '"' && quotes)
			esc = "\\\"";
		else if (!n)
			esc = "\xef\xbf\xbd";
		if (!esc) {
			p += n;
			continue;
		}
		if (p > run)
			sb_printf(sb, "%.*s", (int)(p - run), (const char *)run);
		sb_puts(sb, esc);
		p++;
		run = p;
	}
	if (p > run)
		sb_puts(sb, (const char *)run);
}

void prom_escape_label_value(struct strbuf *sb, const char *value)
{
	escape(sb, value ? value : "", true);
}

void prom_escape_help(struct strbuf *sb, const char *help)
{
	escape(sb, help ? help : "", false);
}

void prom_format_double(char *buf, size_t len, double v)
{
	int prec;

	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* Whole numbers as Go's clients write them: a bucket bound 1000 is le="1000", never "1e+03". */
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, len, "%.0f", v);
		return;
	}
	/* The shortest form that reads back as the same double: 0.1 stays "0.1", not 0.10000000000000001. */
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
	snprintf(buf, len, "%.17g", v);
}

int prom_family(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	if (!prom_metric_name_valid(name) || !type)
		return -EINVAL;
	if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram"))
		return -EINVAL;
	/* Prometheus' own lint: counters end in _total, nothing else does. */
	if (!strcmp(type, "counter") != has_suffix(name, "_total"))
		return -EINVAL;
	sb_printf(sb, "# HELP %s ", name);
	prom_escape_help(sb, help);
	sb_printf(sb, "\n# TYPE %s %s\n", name, type);
	return 0;
}

static int check_labels(const char *const *names, const char *const *values, size_t n, const char *extra)
{
	size_t i, j;

	if (n > PROM_MAX_LABELS || (n && (!names || !values)))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!prom_label_name_valid(names[i]) || !values[i])
			return -EINVAL;
		if (extra && !strcmp(names[i], extra))
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (!strcmp(names[i], names[j]))
				return -EINVAL;
	}
	return 0;
}

/* name{l="v",…,extra="extra_value"} — the braces only when there is a label. */
static void write_series(struct strbuf *sb, const char *name, const char *suffix, const char *const *names,
			 const char *const *values, size_t n, const char *extra, const char *extra_value)
{
	size_t i;

	sb_printf(sb, "%s%s", name, suffix);
	if (!n && !extra)
		return;
	sb_puts(sb, "{");
	for (i = 0; i < n; i++) {
		sb_printf(sb, "%s%s=\"", i ? "," : "", names[i]);
		prom_escape_label_value(sb, values[i]);
		sb_puts(sb, "\"");
	}
	if (extra) {
		sb_printf(sb, "%s%s=\"", n ? "," : "", extra);
		prom_escape_label_value(sb, extra_value);
		sb_puts(sb, "\"");
	}
	sb_puts(sb, "}");
}

int prom_series(struct strbuf *sb, const char *name, const char *const *label_names, const char *const *label_values,
		size_t n_labels)
{
	if (!prom_metric_name_valid(name) || check_labels(label_names, label_values, n_labels, NULL))
		return -EINVAL;
	write_series(sb, name, "", label_names, label_values, n_labels, NULL, NULL);
	return 0;
}

int prom_sample_u64(struct strbuf *sb, const char *name, const char *const *label_names,
		    const char *const *label_values, size_t n_labels, uint64_t value)
{
	if (!prom_metric_name_valid(name) || check_labels(label_names, label_values, n_labels, NULL))
		return -EINVAL;
	write_series(sb, name, "", label_names, label_values, n_labels, NULL, NULL);
	sb_printf(sb, " %llu\n", (unsigned long long)value);
	return 0;
}

int prom_sample(struct strbuf *sb, const char *name, const char *const *label_names, const char *const *label_values,
		size_t n_labels, double value)
{
	char num[40];

	if (!prom_metric_name_valid(name) || check_labels(label_names, label_values, n_labels, NULL))
		return -EINVAL;
	prom_format_double(num, sizeof(num), value);
	write_series(sb, name, "", label_names, label_values, n_labels, NULL, NULL);
	sb_printf(sb, " %s\n", num);
	return 0;
}

int prom_histogram(struct strbuf *sb, const char *name, const char *const *label_names, const char *const *label_values,
		   size_t n_labels, const double *bounds, const uint64_t *counts, size_t n_bounds, double sum,
		   uint64_t count)
{
	char num[40];
	size_t i;

	if (!prom_metric_name_valid(name) || check_labels(label_names, label_values, n_labels, "le"))
		return -EINVAL;
	if (n_bounds && (!bounds || !counts))
		return -EINVAL;
	for (i = 0; i < n_bounds; i++) {
		/* Buckets are cumulative: bounds ascend, counts never fall and never pass the total. */
		if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
			return -EINVAL;
		if ((i && counts[i] < counts[i - 1]) || counts[i] > count)
			return -EINVAL;
	}
	for (i = 0; i < n_bounds; i++) {
		prom_format_double(num, sizeof(num), bounds[i]);
		write_series(sb, name, "_bucket", label_names, label_values, n_labels, "le", num);
		sb_printf(sb, " %llu\n", (unsigned long long)counts[i]);
	}
	write_series(sb, name, "_bucket", label_names, label_values, n_labels, "le", "+Inf");
	sb_printf(sb, " %llu\n", (unsigned long long)count);
	prom_format_double(num, sizeof(num), sum);
	write_series(sb, name, "_sum", label_names, label_values, n_labels, NULL, NULL);
	sb_printf(sb, " %s\n", num);
	write_series(sb, name, "_count", label_names, label_values, n_labels, NULL, NULL);
	sb_printf(sb, " %llu\n", (unsigned long long)count);
	return 0;
}
