/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One scrape's metric families, filled by every module's collector and rendered once. A family is declared
 * by name; a second declaration (another module's) returns the same family, so the socket path and XDP both
 * add to istio_tcp_*. Samples with equal labels are one series: their values are summed (connections from
 * several addresses of one workload). Families render in the order they were first declared, their series
 * sorted by labels, so a scrape is stable between calls.
 */
#ifndef XMESH_METRICS_REGISTRY_H
#define XMESH_METRICS_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;
struct xm_scrape;
struct xm_scrape_family;

struct xm_scrape *scrape_new(void);
void scrape_free(struct xm_scrape *sc);

/*
 * The family called name (type "counter", "gauge" or "histogram"), declared now or earlier in this scrape. NULL on an
 * invalid name or type, a redeclaration with another type, or no memory: the collector skips it (adding to
 * NULL is a no-op), the scrape stays valid.
 */
struct xm_scrape_family *scrape_family(struct xm_scrape *sc, const char *name, const char *type, const char *help);

/* Adds v to the series with these labels (n may be 0). -EINVAL on bad labels, -ENOMEM; 0 otherwise. */
int scrape_u64(struct xm_scrape_family *f, const char *const *label_names, const char *const *label_values, size_t n,
	       uint64_t v);

/* One sample with a float value (NaN, ±Inf allowed), not merged with others. Not for histograms. */
int scrape_double(struct xm_scrape_family *f, const char *const *label_names, const char *const *label_values, size_t n,
		  double v);

/* One histogram series (cumulative counts, as prom_histogram takes them), in a "histogram" family. */
int scrape_histogram(struct xm_scrape_family *f, const char *const *label_names, const char *const *label_values,
		     size_t n, const double *bounds, const uint64_t *counts, size_t n_bounds, double sum,
		     uint64_t count);

/*
 * Samples and family declarations refused since the agent started (the calls above that return an error or NULL:
 * bad names or labels, a type clash, no memory). None is ever dropped unseen: each is counted here, the first
 * one is logged, and metrics_render exposes the count as xmesh_metrics_samples_rejected_total. There is no
 * length limit: a series with long label values is kept whole.
 */
uint64_t scrape_rejected_total(void);

/* Appends the Prometheus text of every family. */
void scrape_render(struct xm_scrape *sc, struct strbuf *out);

#endif
