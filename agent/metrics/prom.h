/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus text exposition (format 0.0.4): families, samples and histograms appended to a strbuf, with
 * name validation and escaping, so every module renders its own figures and the scrape stays parseable.
 */
#ifndef XMESH_PROM_H
#define XMESH_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf;

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define PROM_MAX_LABELS	  32 /* Istio's request metrics carry 25, a histogram bucket one more (le) */

/*
 * Usage, once per scrape and per family (a family must not appear twice in one scrape, and its samples
 * must follow its header without another family in between):
 *
 *	prom_family(sb, "xmesh_config_applies_total", "counter", "Config applies, by result.");
 *	prom_sample_u64(sb, "xmesh_config_applies_total", names, values, 1, ok);
 *
 * Counters are named `*_total` (the sample name equals the family name). A call with an invalid metric or
 * label name, a duplicate label name or an unknown type appends nothing and returns -EINVAL: a programming
 * error that unit tests catch, never a broken scrape. Label values may hold any bytes: `\`, `"` and newline
 * are escaped and invalid UTF-8 is replaced by U+FFFD.
 */

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
bool prom_metric_name_valid(const char *name);
/* [a-zA-Z_][a-zA-Z0-9_]*, and not `__`-prefixed (reserved for Prometheus itself). */
bool prom_label_name_valid(const char *name);

/* `# HELP name help` and `# TYPE name type`; type is "counter", "gauge" or "histogram". */
int prom_family(struct strbuf *sb, const char *name, const char *type, const char *help);

/* One sample line: name{l1="v1",…} value. n_labels may be 0 (then both arrays may be NULL). */
int prom_sample_u64(struct strbuf *sb, const char *name, const char *const *label_names,
		    const char *const *label_values, size_t n_labels, uint64_t value);
/* The series part of a sample line, name{l1="v1",…}, without the value (the metrics registry keys on it). */
int prom_series(struct strbuf *sb, const char *name, const char *const *label_names, const char *const *label_values,
		size_t n_labels);
/* As prom_sample_u64; NaN and ±Inf are written as Prometheus spells them. */
int prom_sample(struct strbuf *sb, const char *name, const char *const *label_names, const char *const *label_values,
		size_t n_labels, double value);

/*
 * The samples of one histogram series (after prom_family(…, "histogram", …)): name_bucket{…,le="b"} for
 * each upper bound (ascending, cumulative counts), le="+Inf" = count, name_sum and name_count.
 * counts[i] is the number of observations <= bounds[i] (cumulative).
 */
int prom_histogram(struct strbuf *sb, const char *name, const char *const *label_names, const char *const *label_values,
		   size_t n_labels, const double *bounds, const uint64_t *counts, size_t n_bounds, double sum,
		   uint64_t count);

/* The escapes on their own (tests, and renderers that build lines by hand). */
void prom_escape_label_value(struct strbuf *sb, const char *value);
void prom_escape_help(struct strbuf *sb, const char *help);
/* A float as the exposition format spells it: shortest round-trip form, NaN, +Inf, -Inf. */
void prom_format_double(char *buf, size_t len, double v);

#endif
