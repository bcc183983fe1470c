// SPDX-License-Identifier: Apache-2.0
#include "metrics/registry.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "metrics/prom.h"

/* Samples (and families) left out of a scrape since the start: see scrape_rejected_total. */
static _Atomic uint64_t rejected_total;
static atomic_flag rejected_logged = ATOMIC_FLAG_INIT;

/* A sample or family that will not be in the scrape: counted, and the first one logged. Returns err. */
static int reject(const char *family, int err)
{
	atomic_fetch_add_explicit(&rejected_total, 1, memory_order_relaxed);
	if (!atomic_flag_test_and_set(&rejected_logged))
		log_warn("metrics: %s left out of a scrape: %s (counted in xmesh_metrics_samples_rejected_total, "
			 "logged once)",
			 family ? family : "(no name)", strerror(-err));
	return err;
}

uint64_t scrape_rejected_total(void)
{
	return atomic_load_explicit(&rejected_total, memory_order_relaxed);
}

struct scrape_sample {
	char *series; /* name{labels}, as the exposition writes it: the sort and merge key */
	uint64_t v;
	char *lines; /* a sample rendered whole (a double, a histogram): written as is, never merged */
};

struct xm_scrape_family {
	char *name, *type, *help;
	struct scrape_sample *samples;
	size_t n, cap;
};

struct xm_scrape {
	struct xm_scrape_family **families;
	size_t n, cap;
};

struct xm_scrape *scrape_new(void)
{
	return calloc(1, sizeof(struct xm_scrape));
}

static void family_free(struct xm_scrape_family *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->samples[i].series);
		free(f->samples[i].lines);
	}
	free(f->samples);
	free(f->name);
	free(f->type);
	free(f->help);
	free(f);
}

void scrape_free(struct xm_scrape *sc)
{
	if (!sc)
		return;
	for (size_t i = 0; i < sc->n; i++)
		family_free(sc->families[i]);
	free(sc->families);
	free(sc);
}

struct xm_scrape_family *scrape_family(struct xm_scrape *sc, const char *name, const char *type, const char *help)
{
	struct xm_scrape_family *f;

	if (!sc || !prom_metric_name_valid(name) || !type ||
	    (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram"))) {
		reject(name, -EINVAL);
		return NULL;
	}
	for (size_t i = 0; i < sc->n; i++)
		if (!strcmp(sc->families[i]->name, name)) {
			if (!strcmp(sc->families[i]->type, type))
				return sc->families[i];
			reject(name, -EINVAL);
			return NULL;
		}
	if (xm_grow((void **)&sc->families, &sc->cap, sc->n + 1, sizeof(*sc->families))) {
		reject(name, -ENOMEM);
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		reject(name, -ENOMEM);
		return NULL;
	}
	f->name = strdup(name);
	f->type = strdup(type);
	f->help = strdup(help ? help : "");
	if (!f->name || !f->type || !f->help) {
		family_free(f);
		reject(name, -ENOMEM);
		return NULL;
	}
	sc->families[sc->n++] = f;
	return f;
}

/* Keeps a sample: series (the key) and, for whole-rendered ones, its lines. Takes both buffers. */
static int add_sample(struct xm_scrape_family *f, struct strbuf *series, struct strbuf *lines, uint64_t v)
{
	int err = 0;

	if (series->oom || !series->buf || (lines && (lines->oom || !lines->buf)))
		err = -ENOMEM;
	if (!err)
		err = xm_grow((void **)&f->samples, &f->cap, f->n + 1, sizeof(*f->samples));
	if (err) {
		sb_free(series);
		if (lines)
			sb_free(lines);
		return reject(f->name, err);
	}
	f->samples[f->n++] = (struct scrape_sample){ series->buf, v, lines ? lines->buf : NULL };
	return 0;
}

int scrape_u64(struct xm_scrape_family *f, const char *const *label_names, const char *const *label_values, size_t n,
	       uint64_t v)
{
	struct strbuf series = { 0 };
	int err;

	if (!f)
		return 0;
	if (!strcmp(f->type, "histogram"))
		return reject(f->name, -EINVAL);
	err = prom_series(&series, f->name, label_names, label_values, n);
	if (err) {
		sb_free(&series);
		return reject(f->name, err);
	}
	return add_sample(f, &series, NULL, v);
}

int scrape_double(struct xm_scrape_family *f, const char *const *label_names, const char *const *label_values, size_t n,
		  double v)
{
	struct strbuf series = { 0 }, lines = { 0 };
	int err;

	if (!f)
		return 0;
	if (!strcmp(f->type, "histogram"))
		return reject(f->name, -EINVAL);
	err = prom_series(&series, f->name, label_names, label_values, n);
	if (!err)
		err = prom_sample(&lines, f->name, label_names, label_values, n, v);
	if (err) {
		sb_free(&series);
		sb_free(&lines);
		return reject(f->name, err);
	}
	return add_sample(f, &series, &lines, 0);
}

int scrape_histogram(struct xm_scrape_family *f, const char *const *label_names, const char *const *label_values,
		     size_t n, const double *bounds, const uint64_t *counts, size_t n_bounds, double sum,
		     uint64_t count)
{
	struct strbuf series = { 0 }, lines = { 0 };
	int err;

	if (!f)
		return 0;
	if (strcmp(f->type, "histogram"))
		return reject(f->name, -EINVAL);
	err = prom_series(&series, f->name, label_names, label_values, n);
	if (!err)
		err =
		    prom_histogram(&lines, f->name, label_names, label_values, n, bounds, counts, n_bounds, sum, count);
	if (err) {
		sb_free(&series);
		sb_free(&lines);
		return reject(f->name, err);
	}
	return add_sample(f, &series, &lines, 0);
}

static int sample_cmp(const void *a, const void *b)
{
	return strcmp(((const struct scrape_sample *)a)->series, ((const struct scrape_sample *)b)->series);
}

void scrape_render(struct xm_scrape *sc, struct strbuf *out)
{
	for (size_t i = 0; i < sc->n; i++) {
		struct xm_scrape_family *f = sc->families[i];
		size_t j = 0;

		prom_family(out, f->name, f->type, f->help);
		if (f->n > 1)
			qsort(f->samples, f->n, sizeof(*f->samples), sample_cmp);
		while (j < f->n) {
			uint64_t sum = f->samples[j].v;
			size_t k = j + 1;

			if (f->samples[j].lines) {
				sb_puts(out, f->samples[j].lines);
				j++;
				continue;
			}
			/* Equal labels: one series, the sum of its parts. */
			for (; k < f->n && !f->samples[k].lines && !strcmp(f->samples[k].series, f->samples[j].series);
			     k++)
				sum += f->samples[k].v;
			sb_printf(out, "%s %llu\n", f->samples[j].series, (unsigned long long)sum);
			j = k;
		}
	}
}
