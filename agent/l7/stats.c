// SPDX-License-Identifier: Apache-2.0
#include "l7/stats.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "metrics/registry.h"

/*
 * How a scrape reads a shard while its worker writes it, without a lock:
 * - The worker is the only writer of its shard. A series, once created, never moves and is freed only with
 *   the shard; its label strings are copied into it at creation, so they outlive the snapshot the request
 *   ran on.
 * - A new series is filled first, then stored at series[n], then n_series is raised with a release store.
 *   The metrics thread loads n_series with acquire and reads series[0..n): each one it sees is complete.
 * - Counters are single-writer: the worker adds with a relaxed load and store (no locked instruction), the
 *   reader loads them relaxed. A scrape may miss the request being recorded at that instant, never more.
 *   A histogram's count is the sum of the buckets as read, so the buckets the scrape renders always agree
 *   with their count.
 * - The lookup index (label hash → series) is the worker's alone; the reader never touches it.
 */

#define N_BOUNDS  19
#define N_BUCKETS (N_BOUNDS + 1) /* the last one is +Inf */

/* Envoy's default histogram buckets, which Istio's request histograms use. */
static const double bucket_bounds[N_BOUNDS] = { 0.5,  1,    5,	   10,	  25,	 50,	 100,	 250,	  500,	  1000,
						2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000 };

enum label {
	L_REPORTER,
	L_SRC_WORKLOAD,
	L_SRC_NS,
	L_SRC_PRINCIPAL,
	L_SRC_APP,
	L_SRC_VERSION,
	L_SRC_CANONICAL_SERVICE,
	L_SRC_CANONICAL_REVISION,
	L_SRC_CLUSTER,
	L_DST_WORKLOAD,
	L_DST_NS,
	L_DST_PRINCIPAL,
	L_DST_APP,
	L_DST_VERSION,
	L_DST_CANONICAL_SERVICE,
	L_DST_CANONICAL_REVISION,
	L_DST_CLUSTER,
	L_DST_SERVICE,
	L_DST_SERVICE_NAME,
	L_DST_SERVICE_NS,
	L_PROTOCOL,
	L_FLAGS,
	L_SECURITY,
	L_CODE,
	L_GRPC,
	N_LABELS
};

static const char *const label_names[N_LABELS] = {
	"reporter",
	"source_workload",
	"source_workload_namespace",
	"source_principal",
	"source_app",
	"source_version",
	"source_canonical_service",
	"source_canonical_revision",
	"source_cluster",
	"destination_workload",
	"destination_workload_namespace",
	"destination_principal",
	"destination_app",
	"destination_version",
	"destination_canonical_service",
	"destination_canonical_revision",
	"destination_cluster",
	"destination_service",
	"destination_service_name",
	"destination_service_namespace",
	"request_protocol",
	"response_flags",
	"connection_security_policy",
	"response_code",
	"grpc_response_status",
};

enum hist_kind {
	H_DURATION,
	H_REQUEST_BYTES,
	H_RESPONSE_BYTES,
	N_HIST
};

static const char *const hist_names[N_HIST] = {
	"istio_request_duration_milliseconds",
	"istio_request_bytes",
	"istio_response_bytes",
};

static const char *const hist_help[N_HIST] = {
	"Time from the complete request head to the last response byte, in milliseconds.",
	"HTTP request sizes on the wire (request line, headers and body), in bytes.",
	"HTTP response sizes on the wire (status line, headers and body), in bytes.",
};

/* What the clusters of Istio's default install are called (the multicluster label is "Kubernetes"). */
#define CLUSTER_NAME   "Kubernetes"
#define UNKNOWN	       "unknown"
#define HOST_LABEL_MAX 256 /* a Host header used as destination_service is cut here */

struct hist {
	_Atomic uint64_t buckets[N_BUCKETS]; /* not cumulative: one per bucket, +Inf last */
	_Atomic uint64_t sum;		     /* nanoseconds for durations, bytes for sizes */
};

struct l7_series {
	uint64_t hash;
	const char *labels[N_LABELS]; /* into text */
	_Atomic uint64_t requests;
	struct hist hist[N_HIST];
	char text[]; /* the label values, NUL-separated */
};

/*
 * The last series of a (snapshot generation, source, destination workload, cluster, flags, status): within
 * one generation those pointers name immutable workloads and clusters, so equal pointers are equal labels
 * and a request skips building, hashing and comparing 25 strings. Worker only.
 */
#define FAST_SLOTS 256
struct fast_entry {
	uint64_t generation;
	const void *source, *upstream_wl, *cluster;
	uint32_t flags;
	uint16_t status;
	bool tunnelled;
	struct l7_series *series;
};

struct l7_stats_shard {
	struct l7_series **series; /* max_series slots: [0, n_series) are published, immutable but counters */
	uint32_t max_series;
	_Atomic uint32_t n_series;
	struct l7_series *overflow; /* where requests go once series[] is full */
	_Atomic uint64_t overflowed;
	uint64_t seed; /* hash seed: a client cannot aim its Host headers at one index chain */
	/* Worker only: series position + 1, 0 when empty; a power of two ≥ 2 × max_series, so that a probe
	 * always ends on an empty slot. */
	uint32_t *index;
	size_t index_mask;
	struct fast_entry fast[FAST_SLOTS];
};

/* The label values of one request, pointing into the record or into the buffers here. */
struct label_set {
	const char *v[N_LABELS];
	char code[8];
	char flags[L7_FLAGS_MAX];
	char host[HOST_LABEL_MAX];
};

/* The bounds in the unit each histogram records: ms in ns; bytes rounded down (v ≤ 0.5 ⇔ v = 0). */
#define MS_NS 1000000ULL
static const uint64_t duration_limits[N_BOUNDS] = {
	MS_NS / 2,     MS_NS,	       5 * MS_NS,      10 * MS_NS,	25 * MS_NS,	 50 * MS_NS,	100 * MS_NS,
	250 * MS_NS,   500 * MS_NS,    1000 * MS_NS,   2500 * MS_NS,	5000 * MS_NS,	 10000 * MS_NS, 30000 * MS_NS,
	60000 * MS_NS, 300000 * MS_NS, 600000 * MS_NS, 1800000 * MS_NS, 3600000 * MS_NS,
};
static const uint64_t byte_limits[N_BOUNDS] = { 0,    1,    5,	   10,	  25,	 50,	 100,	 250,	  500,	  1000,
						2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000 };

/* Only the shard's worker writes a counter: a plain read-modify-write, atomic only so the reader's load is. */
static inline void counter_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}

static inline uint64_t counter_read(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

static void hist_add(struct hist *h, const uint64_t *limits, uint64_t v)
{
	int i = 0;

	while (i < N_BOUNDS && v > limits[i])
		i++;
	counter_add(&h->buckets[i], 1);
	counter_add(&h->sum, v);
}

static const char *or_unknown(const char *s)
{
	return s && *s ? s : UNKNOWN;
}

static void set_workload(struct label_set *ls, int first, const struct xm_workload *w, const char *unknown_revision)
{
	ls->v[first] = or_unknown(w ? w->name : NULL);
	ls->v[first + 1] = or_unknown(w ? w->ns : NULL);
	ls->v[first + 2] = or_unknown(w ? w->principal : NULL);
	ls->v[first + 3] = or_unknown(w ? w->app : NULL);
	ls->v[first + 4] = or_unknown(w ? w->version : NULL);
	ls->v[first + 5] = or_unknown(w ? w->canonical_service : NULL);
	ls->v[first + 6] = w && w->canonical_revision[0] ? w->canonical_revision : unknown_revision;
	ls->v[first + 7] = w ? CLUSTER_NAME : UNKNOWN;
}

static void format_code(char *buf, unsigned code)
{
	char tmp[8];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + code % 10);
		code /= 10;
	} while (code && n < 7);
	for (int i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
}

/*
 * Istio's labels for the source reporter (istio/proxy istio_stats.cc, ClientSidecar). The destination
 * service is the cluster's; without one (no route) it falls back to the request's Host, as Istio does.
 * Principals are the workloads' SPIFFE ids, as xmesh's TCP metrics label them.
 */
static void labels_of(const struct l7_record *r, struct label_set *ls)
{
	const struct l7_cluster *c = r->cluster;

	ls->v[L_REPORTER] = "source";
	set_workload(ls, L_SRC_WORKLOAD, r->source, UNKNOWN);
	/* Istio reports an unknown destination's canonical revision as "latest". */
	set_workload(ls, L_DST_WORKLOAD, r->upstream_wl, "latest");
	if (c) {
		ls->v[L_DST_SERVICE] = or_unknown(c->host_fqdn);
		ls->v[L_DST_SERVICE_NAME] = or_unknown(c->svc_name);
		ls->v[L_DST_SERVICE_NS] = or_unknown(c->svc_ns);
	} else {
		size_t n = r->authority ? strnlen(r->authority, HOST_LABEL_MAX - 1) : 0;

		memcpy(ls->host, r->authority ? r->authority : "", n);
		ls->host[n] = '\0';
		ls->v[L_DST_SERVICE] = or_unknown(ls->host);
		ls->v[L_DST_SERVICE_NAME] = ls->v[L_DST_SERVICE];
		ls->v[L_DST_SERVICE_NS] = or_unknown(r->upstream_wl ? r->upstream_wl->ns : NULL);
	}
	ls->v[L_PROTOCOL] = "http";
	l7_flags_format(r->flags, ls->flags, sizeof(ls->flags));
	ls->v[L_FLAGS] = ls->flags;
	/* ztunnel's source reporter: mutual_tls when the connection went through HBONE, else unknown
	 * (istio/ztunnel src/proxy/outbound.rs, conn_metrics_from_request). */
	ls->v[L_SECURITY] = r->tunnelled ? "mutual_tls" : UNKNOWN;
	format_code(ls->code, r->status);
	ls->v[L_CODE] = ls->code;
	ls->v[L_GRPC] = "";
}

static inline uint64_t mix(uint64_t h)
{
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 32);
}

/* Eight bytes at a time; every string ends with its length mixed in, so boundaries count. */
static uint64_t labels_hash(uint64_t seed, const char *const *v)
{
	uint64_t h = seed;

	for (int l = 0; l < N_LABELS; l++) {
		const char *s = v[l];
		size_t n = strlen(s), left = n;
		uint64_t w = 0;

		for (; left >= 8; left -= 8, s += 8) {
			memcpy(&w, s, 8);
			h = mix(h ^ w);
		}
		w = 0;
		memcpy(&w, s, left);
		h = mix(h ^ w ^ ((uint64_t)n << 48) ^ (uint64_t)l);
	}
	return h;
}

static bool labels_equal(const char *const *a, const char *const *b)
{
	for (int l = 0; l < N_LABELS; l++)
		if (a[l] != b[l] && strcmp(a[l], b[l]))
			return false;
	return true;
}

static struct l7_series *series_new(const char *const *v, uint64_t hash)
{
	size_t len[N_LABELS], total = 0;
	struct l7_series *s;
	char *p;

	for (int l = 0; l < N_LABELS; l++)
		total += (len[l] = strlen(v[l])) + 1;
	s = calloc(1, sizeof(*s) + total);
	if (!s)
		return NULL;
	s->hash = hash;
	p = s->text;
	for (int l = 0; l < N_LABELS; l++) {
		memcpy(p, v[l], len[l] + 1);
		s->labels[l] = p;
		p += len[l] + 1;
	}
	return s;
}

struct l7_stats_shard *l7_stats_shard_new_bounded(uint32_t max_series)
{
	struct l7_stats_shard *sh = calloc(1, sizeof(*sh));
	const char *v[N_LABELS];
	size_t slots = 2;

	if (!sh)
		return NULL;
	while (slots < 2 * (size_t)max_series)
		slots <<= 1;
	sh->max_series = max_series;
	sh->index_mask = slots - 1;
	sh->series = calloc(max_series ? max_series : 1, sizeof(*sh->series));
	sh->index = calloc(slots, sizeof(*sh->index));
	for (int l = 0; l < N_LABELS; l++)
		v[l] = "overflow";
	v[L_REPORTER] = "source";
	v[L_PROTOCOL] = "http";
	v[L_SECURITY] = UNKNOWN;
	v[L_GRPC] = "";
	sh->overflow = series_new(v, 0);
	if (!sh->series || !sh->index || !sh->overflow) {
		l7_stats_shard_free(sh);
		return NULL;
	}
	if (getrandom(&sh->seed, sizeof(sh->seed), GRND_NONBLOCK) != sizeof(sh->seed))
		sh->seed = (uint64_t)(uintptr_t)sh * 0x9e3779b97f4a7c15ULL; /* early boot: ASLR's entropy at least */
	return sh;
}

struct l7_stats_shard *l7_stats_shard_new(void)
{
	return l7_stats_shard_new_bounded(L7_STATS_SERIES_MAX);
}

void l7_stats_shard_free(struct l7_stats_shard *sh)
{
	if (!sh)
		return;
	for (uint32_t i = 0; i < atomic_load(&sh->n_series); i++)
		free(sh->series[i]);
	free(sh->series);
	free(sh->index);
	free(sh->overflow);
	free(sh);
}

/* The series for these labels, created if there is room; NULL when the shard is full (or out of memory). */
static struct l7_series *series_get(struct l7_stats_shard *sh, const struct label_set *ls)
{
	uint64_t hash = labels_hash(sh->seed, ls->v);
	uint32_t n = atomic_load_explicit(&sh->n_series, memory_order_relaxed);
	struct l7_series *s;
	size_t i;

	for (i = hash & sh->index_mask; sh->index[i]; i = (i + 1) & sh->index_mask) {
		s = sh->series[sh->index[i] - 1];
		if (s->hash == hash && labels_equal(s->labels, ls->v))
			return s;
	}
	if (n >= sh->max_series)
		return NULL;
	s = series_new(ls->v, hash);
	if (!s)
		return NULL;
	sh->series[n] = s;
	/* Publish: the reader that sees n + 1 sees the series whole. */
	atomic_store_explicit(&sh->n_series, n + 1, memory_order_release);
	sh->index[i] = n + 1;
	return s;
}

static struct fast_entry *fast_slot(struct l7_stats_shard *sh, const struct l7_record *r)
{
	uint64_t h = r->snapshot_generation;

	h = mix(h ^ (uintptr_t)r->source);
	h = mix(h ^ (uintptr_t)r->upstream_wl);
	h = mix(h ^ (uintptr_t)r->cluster);
	h = mix(h ^ ((uint64_t)r->tunnelled << 48 | (uint64_t)r->flags << 16 | r->status));
	return &sh->fast[h & (FAST_SLOTS - 1)];
}

void l7_stats_record(struct l7_stats_shard *sh, const struct l7_record *r)
{
	/* Without a cluster, destination_service is the request's Host: only the strings tell. */
	struct fast_entry *fe = r->snapshot_generation && r->cluster ? fast_slot(sh, r) : NULL;
	struct label_set ls;
	struct l7_series *s = NULL;

	if (fe && fe->series && fe->generation == r->snapshot_generation && fe->source == r->source &&
	    fe->upstream_wl == r->upstream_wl && fe->cluster == r->cluster && fe->flags == r->flags &&
	    fe->status == r->status && fe->tunnelled == r->tunnelled)
		s = fe->series;
	if (!s) {
		labels_of(r, &ls);
		s = series_get(sh, &ls);
		if (s && fe)
			*fe = (struct fast_entry){
				r->snapshot_generation, r->source, r->upstream_wl, r->cluster, r->flags, r->status,
				r->tunnelled,		s
			};
	}
	if (!s) {
		s = sh->overflow;
		counter_add(&sh->overflowed, 1);
	}
	counter_add(&s->requests, 1);
	hist_add(&s->hist[H_DURATION], duration_limits, r->duration_ns);
	hist_add(&s->hist[H_REQUEST_BYTES], byte_limits, r->request_head_bytes + r->request_bytes);
	hist_add(&s->hist[H_RESPONSE_BYTES], byte_limits, r->response_head_bytes + r->response_bytes);
}

/* Every published series of every shard (the overflow series when it counted something). */
static const struct l7_series **gather(struct l7_stats_shard *const *shards, size_t n_shards, size_t *n_out)
{
	const struct l7_series **all;
	size_t total = 0, n = 0;
	uint32_t *counts = calloc(n_shards ? n_shards : 1, sizeof(*counts));

	*n_out = 0;
	if (!counts)
		return NULL;
	/* Each shard's count is read once: series published after it wait for the next scrape. */
	for (size_t i = 0; i < n_shards; i++) {
		counts[i] = atomic_load_explicit(&shards[i]->n_series, memory_order_acquire);
		total += counts[i] + 1;
	}
	all = calloc(total ? total : 1, sizeof(*all));
	if (all) {
		for (size_t i = 0; i < n_shards; i++) {
			for (uint32_t j = 0; j < counts[i]; j++)
				all[n++] = shards[i]->series[j];
			if (counter_read(&shards[i]->overflow->requests))
				all[n++] = shards[i]->overflow;
		}
	}
	free(counts);
	*n_out = n;
	return all;
}

static int series_cmp(const void *a, const void *b)
{
	const struct l7_series *x = *(const struct l7_series *const *)a, *y = *(const struct l7_series *const *)b;

	for (int l = 0; l < N_LABELS; l++) {
		int c = strcmp(x->labels[l], y->labels[l]);

		if (c)
			return c;
	}
	return 0;
}

static int service_cmp(const void *a, const void *b)
{
	const struct l7_series *x = *(const struct l7_series *const *)a, *y = *(const struct l7_series *const *)b;

	return strcmp(x->labels[L_DST_SERVICE], y->labels[L_DST_SERVICE]);
}

/* One label set's values summed over the shards that have it. */
struct series_sum {
	uint64_t requests;
	uint64_t buckets[N_HIST][N_BUCKETS];
	uint64_t sum[N_HIST];
};

static void sum_add(struct series_sum *t, const struct l7_series *s)
{
	t->requests += counter_read(&s->requests);
	for (int h = 0; h < N_HIST; h++) {
		for (int b = 0; b < N_BUCKETS; b++)
			t->buckets[h][b] += counter_read(&s->hist[h].buckets[b]);
		t->sum[h] += counter_read(&s->hist[h].sum);
	}
}

static void emit(struct xm_scrape *sc, const char *const *labels, const struct series_sum *t)
{
	for (int h = 0; h < N_HIST; h++) {
		uint64_t cumulative[N_BOUNDS], count = 0;

		for (int b = 0; b < N_BUCKETS; b++) {
			count += t->buckets[h][b];
			if (b < N_BOUNDS)
				cumulative[b] = count;
		}
		scrape_histogram(scrape_family(sc, hist_names[h], "histogram", hist_help[h]), label_names, labels,
				 N_LABELS, bucket_bounds, cumulative, N_BOUNDS,
				 h == H_DURATION ? (double)t->sum[h] / 1e6 : (double)t->sum[h], count);
	}
	scrape_u64(scrape_family(sc, "istio_requests_total", "counter", "HTTP requests, counted when they end."),
		   label_names, labels, N_LABELS, t->requests);
}

void l7_stats_collect(struct l7_stats_shard *const *shards, size_t n, struct xm_scrape *sc)
{
	size_t count, i = 0, distinct = 0;
	const struct l7_series **all = gather(shards, n, &count);
	uint64_t overflowed = 0;

	/* Declared even when empty, in a stable order: a scrape always has the families. */
	scrape_family(sc, "istio_requests_total", "counter", "HTTP requests, counted when they end.");
	for (int h = 0; h < N_HIST; h++)
		scrape_family(sc, hist_names[h], "histogram", hist_help[h]);
	if (count > 1)
		qsort(all, count, sizeof(*all), series_cmp);
	while (i < count) {
		struct series_sum t = { 0 };
		size_t j = i;

		for (; j < count && !series_cmp(&all[i], &all[j]); j++)
			sum_add(&t, all[j]);
		emit(sc, all[i]->labels, &t);
		distinct++;
		i = j;
	}
	for (size_t k = 0; k < n; k++)
		overflowed += counter_read(&shards[k]->overflowed);
	scrape_u64(scrape_family(sc, "xmesh_l7_series_overflow_total", "counter",
				 "HTTP requests counted in the overflow series because their worker already held "
				 "the most request-metric series it may (4096 per worker by default)."),
		   NULL, NULL, 0, overflowed);
	scrape_u64(scrape_family(sc, "xmesh_l7_series", "gauge",
				 "Distinct label sets of the Istio request metrics in this scrape."),
		   NULL, NULL, 0, distinct);
	free(all);
}

void l7_stats_per_service(struct l7_stats_shard *const *shards, size_t n,
			  void (*fn)(void *ctx, const char *service, uint64_t requests), void *ctx)
{
	size_t count, i = 0;
	const struct l7_series **all = gather(shards, n, &count);

	if (count > 1)
		qsort(all, count, sizeof(*all), service_cmp);
	while (i < count) {
		uint64_t requests = 0;
		size_t j = i;

		for (; j < count && !service_cmp(&all[i], &all[j]); j++)
			requests += counter_read(&all[j]->requests);
		fn(ctx, all[i]->labels[L_DST_SERVICE], requests);
		i = j;
	}
	free(all);
}
