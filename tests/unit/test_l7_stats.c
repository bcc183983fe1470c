// SPDX-License-Identifier: Apache-2.0
/* Istio's request metrics from per-worker shards: exact values and buckets, labels, the series bound, scrapes
 * racing a recording worker. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/strbuf.h"
#include "l7/stats.h"
#include "metrics/registry.h"
#include "test_metrics.h"
#include "bookinfo_fixture.h"

static struct l7_cluster ratings = {
	.name = "outbound|9080||ratings.default.svc.cluster.local",
	.host_fqdn = "ratings.default.svc.cluster.local",
	.svc_name = "ratings",
	.svc_ns = "default",
	.port = 9080,
};

/* The full label set of productpage → reviews-v2, with response_code and response_flags to fill in. */
#define PP_TO_REVIEWS(code, flags)                                                                                     \
	"{reporter=\"source\",source_workload=\"productpage-v1\",source_workload_namespace=\"default\","               \
	"source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-productpage\",source_app=\"productpage\","   \
	"source_version=\"v1\",source_canonical_service=\"productpage\",source_canonical_revision=\"v1\","             \
	"source_cluster=\"Kubernetes\",destination_workload=\"reviews-v2\","                                           \
	"destination_workload_namespace=\"default\","                                                                  \
	"destination_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-reviews\","                             \
	"destination_app=\"reviews\",destination_version=\"v2\",destination_canonical_service=\"reviews\","            \
	"destination_canonical_revision=\"v2\",destination_cluster=\"Kubernetes\","                                    \
	"destination_service=\"reviews.default.svc.cluster.local\",destination_service_name=\"reviews\","              \
	"destination_service_namespace=\"default\",request_protocol=\"http\",response_flags=\"" flags "\","            \
	"connection_security_policy=\"unknown\",response_code=\"" code "\",grpc_response_status=\"\""

static struct l7_record request(uint16_t status, uint64_t duration_ns, uint64_t req_body, uint64_t resp_body)
{
	return (struct l7_record){
		.status = status,
		.duration_ns = duration_ns,
		.request_bytes = req_body,
		.response_bytes = resp_body,
		.request_head_bytes = 100,
		.response_head_bytes = 150,
		.method = "GET",
		.path = "/reviews/0",
		.authority = "reviews:9080",
		.protocol = "HTTP/1.1",
		.source = &bookinfo_productpage,
		.cluster = &bookinfo_reviews,
		.upstream_wl = &bookinfo_reviews_v2,
	};
}

static void scrape_text(struct l7_stats_shard *const *shards, size_t n, struct strbuf *out)
{
	struct xm_scrape *sc = scrape_new();

	cr_assert_not_null(sc);
	l7_stats_collect(shards, n, sc);
	scrape_render(sc, out);
	scrape_free(sc);
	cr_assert(!out->oom);
	cr_assert_not_null(out->buf);
}

/* The value of the sample whose whole series (name{labels}) is series, or -1 when absent. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, series, n) && line[n] == ' ')
			return strtod(line + n + 1, NULL);
	return -1;
}

static unsigned long long requests_with(const char *text, const char *a, const char *b);

/* Σ of every istio_requests_total sample. */
static unsigned long long requests_sum(const char *text)
{
	return requests_with(text, "", "");
}

/*
 * promtool accepts the scrape. Its one lint that cannot be helped: Istio names the duration histogram in
 * milliseconds where Prometheus' convention is seconds, and dashboards query that name.
 */
static void expect_promtool_clean(const char *text)
{
	static const char istio_unit[] =
	    "istio_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\"";
	char out[8192];
	int rc;

	if (!promtool_path())
		return;
	rc = promtool_check(text, out, sizeof(out));
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
		cr_expect_str_eq(line, istio_unit, "promtool: %s", line);
	cr_expect(rc == 0 || rc == 3, "promtool check metrics exited %d (3: lint findings, listed above)", rc);
}

Test(l7_stats, shards_sum_to_exact_values_and_buckets)
{
	struct l7_stats_shard *shards[2] = { l7_stats_shard_new(), l7_stats_shard_new() };
	struct strbuf out = { 0 };
	struct l7_record r;

	cr_assert(shards[0] && shards[1]);
	/* The registry writes whole bounds as integers, as Go's clients do ("1000", "3600000"). */
	/* 0.3 ms, 0.5 ms (on the bound: le is ≤), 7 ms on worker 0; 2 s and 1 h+ on worker 1. */
	l7_stats_record(shards[0], (r = request(200, 300000, 0, 0), &r));
	l7_stats_record(shards[0], (r = request(200, 500000, 0, 1000), &r));
	l7_stats_record(shards[0], (r = request(200, 7000000, 20, 4000), &r));
	l7_stats_record(shards[1], (r = request(200, 2000000000ULL, 0, 0), &r));
	l7_stats_record(shards[1], (r = request(200, 3700000000000ULL, 0, 0), &r));
	r = request(503, 1000000, 0, 19);
	r.flags = L7_RF_UH;
	r.upstream_wl = &bookinfo_reviews_v2;
	l7_stats_record(shards[1], &r);
	scrape_text(shards, 2, &out);

	cr_expect_eq(sample(out.buf, "istio_requests_total" PP_TO_REVIEWS("200", "-") "}"), 5, "%s", out.buf);
	cr_expect_eq(sample(out.buf, "istio_requests_total" PP_TO_REVIEWS("503", "UH") "}"), 1);
#define DURATION(le) "istio_request_duration_milliseconds_bucket" PP_TO_REVIEWS("200", "-") ",le=\"" le "\"}"
	cr_expect_eq(sample(out.buf, DURATION("0.5")), 2);
	cr_expect_eq(sample(out.buf, DURATION("1")), 2);
	cr_expect_eq(sample(out.buf, DURATION("5")), 2);
	cr_expect_eq(sample(out.buf, DURATION("10")), 3);
	cr_expect_eq(sample(out.buf, DURATION("1000")), 3);
	cr_expect_eq(sample(out.buf, DURATION("2500")), 4);
	cr_expect_eq(sample(out.buf, DURATION("3600000")), 4);
	cr_expect_eq(sample(out.buf, DURATION("+Inf")), 5);
	cr_expect_eq(sample(out.buf, "istio_request_duration_milliseconds_count" PP_TO_REVIEWS("200", "-") "}"), 5);
	cr_expect_not_null(strstr(out.buf,
				  "istio_request_duration_milliseconds_sum" PP_TO_REVIEWS("200", "-") "} "
												      "3702007.8\n"),
			   "the sum is in milliseconds, exact: %s", out.buf);
	/* Sizes are head + body: 100 on every request, 120 on one; 150, 1150, 4150 responses. */
#define REQ_BYTES(le)  "istio_request_bytes_bucket" PP_TO_REVIEWS("200", "-") ",le=\"" le "\"}"
#define RESP_BYTES(le) "istio_response_bytes_bucket" PP_TO_REVIEWS("200", "-") ",le=\"" le "\"}"
	cr_expect_eq(sample(out.buf, REQ_BYTES("50")), 0);
	cr_expect_eq(sample(out.buf, REQ_BYTES("100")), 4);
	cr_expect_eq(sample(out.buf, REQ_BYTES("250")), 5);
	cr_expect_eq(sample(out.buf, "istio_request_bytes_sum" PP_TO_REVIEWS("200", "-") "}"), 520);
	cr_expect_eq(sample(out.buf, RESP_BYTES("250")), 3);
	cr_expect_eq(sample(out.buf, RESP_BYTES("1000")), 3);
	cr_expect_eq(sample(out.buf, RESP_BYTES("2500")), 4);
	cr_expect_eq(sample(out.buf, RESP_BYTES("5000")), 5);
	cr_expect_eq(sample(out.buf, "istio_response_bytes_sum" PP_TO_REVIEWS("200", "-") "}"), 5 * 150 + 5000);
	cr_expect_eq(sample(out.buf, "istio_response_bytes_count" PP_TO_REVIEWS("503", "UH") "}"), 1);
	cr_expect_eq(sample(out.buf, "xmesh_l7_series_overflow_total"), 0);
	cr_expect_eq(sample(out.buf, "xmesh_l7_series"), 2, "two label sets, each once though two shards hold one");
	expect_promtool_clean(out.buf);
	sb_free(&out);
	l7_stats_shard_free(shards[0]);
	l7_stats_shard_free(shards[1]);
}

Test(l7_stats, unknown_peers_and_no_route)
{
	struct l7_stats_shard *sh = l7_stats_shard_new();
	struct strbuf out = { 0 };
	struct l7_record r = request(404, 100000, 0, 0);

	cr_assert_not_null(sh);
	r.flags = L7_RF_NR;
	r.source = NULL;
	r.cluster = NULL;
	r.upstream_wl = NULL;
	r.authority = "shop.example:8080";
	l7_stats_record(sh, &r);
	scrape_text(&sh, 1, &out);
	cr_expect_eq(sample(out.buf, "istio_requests_total{reporter=\"source\",source_workload=\"unknown\","
				     "source_workload_namespace=\"unknown\",source_principal=\"unknown\","
				     "source_app=\"unknown\",source_version=\"unknown\","
				     "source_canonical_service=\"unknown\",source_canonical_revision=\"unknown\","
				     "source_cluster=\"unknown\",destination_workload=\"unknown\","
				     "destination_workload_namespace=\"unknown\",destination_principal=\"unknown\","
				     "destination_app=\"unknown\",destination_version=\"unknown\","
				     "destination_canonical_service=\"unknown\","
				     "destination_canonical_revision=\"latest\",destination_cluster=\"unknown\","
				     "destination_service=\"shop.example:8080\","
				     "destination_service_name=\"shop.example:8080\","
				     "destination_service_namespace=\"unknown\",request_protocol=\"http\","
				     "response_flags=\"NR\",connection_security_policy=\"unknown\","
				     "response_code=\"404\",grpc_response_status=\"\"}"),
		     1, "%s", out.buf);
	/* No Host either, and a request that got no response at all. */
	r.authority = NULL;
	r.status = 0;
	r.flags = L7_RF_DC;
	l7_stats_record(sh, &r);
	sb_free(&out);
	scrape_text(&sh, 1, &out);
	cr_expect_not_null(strstr(out.buf, "destination_service=\"unknown\",destination_service_name=\"unknown\","),
			   "%s", out.buf);
	cr_expect_not_null(strstr(out.buf, "response_flags=\"DC\",connection_security_policy=\"unknown\","
					   "response_code=\"0\""));
	sb_free(&out);
	l7_stats_shard_free(sh);
}

Test(l7_stats, labels_outlive_the_snapshot)
{
	struct l7_stats_shard *sh = l7_stats_shard_new();
	struct xm_workload *wl = calloc(1, sizeof(*wl));
	struct l7_cluster *c = calloc(1, sizeof(*c));
	struct strbuf out = { 0 };
	struct l7_record r = request(200, 1, 0, 0);

	cr_assert(sh && wl && c);
	*wl = bookinfo_reviews_v2;
	*c = ratings;
	r.upstream_wl = wl;
	r.cluster = c;
	l7_stats_record(sh, &r);
	/* The snapshot goes away (and its memory is reused) before the scrape. */
	memset(wl, 'x', sizeof(*wl));
	memset(c, 'y', sizeof(*c));
	free(wl);
	free(c);
	scrape_text(&sh, 1, &out);
	cr_expect_not_null(strstr(out.buf, "destination_workload=\"reviews-v2\""), "%s", out.buf);
	cr_expect_not_null(strstr(out.buf, "destination_service=\"ratings.default.svc.cluster.local\""));
	sb_free(&out);
	l7_stats_shard_free(sh);
}

Test(l7_stats, a_new_snapshot_is_new_labels_at_the_same_addresses)
{
	struct l7_stats_shard *sh = l7_stats_shard_new();
	struct xm_workload wl = bookinfo_reviews_v2;
	struct strbuf out = { 0 };
	struct l7_record r = request(200, 1, 0, 0);

	cr_assert_not_null(sh);
	r.upstream_wl = &wl;
	r.snapshot_generation = 7;
	l7_stats_record(sh, &r);
	l7_stats_record(sh, &r);
	/* Generation 8 put another pod's workload where reviews-v2's was. */
	snprintf(wl.name, sizeof(wl.name), "reviews-v3");
	r.snapshot_generation = 8;
	l7_stats_record(sh, &r);
	/* Without a generation the strings decide, every time. */
	r.snapshot_generation = 0;
	snprintf(wl.name, sizeof(wl.name), "reviews-v4");
	l7_stats_record(sh, &r);
	scrape_text(&sh, 1, &out);
	cr_expect_not_null(strstr(out.buf, "destination_workload=\"reviews-v2\""), "%s", out.buf);
	cr_expect_not_null(strstr(out.buf, "destination_workload=\"reviews-v3\""));
	cr_expect_not_null(strstr(out.buf, "destination_workload=\"reviews-v4\""));
	cr_expect_eq(requests_sum(out.buf), 4);
	cr_expect_eq(sample(out.buf, "xmesh_l7_series"), 3);
	sb_free(&out);
	l7_stats_shard_free(sh);
}

/* An upstream through the node's tunnel: connection_security_policy mutual_tls (ztunnel's source reporter), a
 * series apart from the same request in plaintext, also on the fast path (same snapshot and pointers). */
Test(l7_stats, a_tunnelled_upstream_is_mutual_tls)
{
	struct l7_stats_shard *sh = l7_stats_shard_new();
	struct strbuf out = { 0 };
	struct l7_record r = request(200, 1, 0, 0);

	cr_assert_not_null(sh);
	r.snapshot_generation = 3;
	l7_stats_record(sh, &r);
	r.tunnelled = true;
	l7_stats_record(sh, &r);
	l7_stats_record(sh, &r);
	scrape_text(&sh, 1, &out);
	cr_expect_eq(sample(out.buf, "istio_requests_total" PP_TO_REVIEWS("200", "-") "}"), 1, "%s", out.buf);
	{
		char want[4096];
		const char *plain = "istio_requests_total" PP_TO_REVIEWS("200", "-") "}";
		const char *at = strstr(plain, "connection_security_policy=\"unknown\"");

		cr_assert_not_null(at);
		snprintf(want, sizeof(want), "%.*sconnection_security_policy=\"mutual_tls\"%s", (int)(at - plain),
			 plain, at + strlen("connection_security_policy=\"unknown\""));
		cr_expect_eq(sample(out.buf, want), 2, "%s", out.buf);
	}
	cr_expect_eq(sample(out.buf, "xmesh_l7_series"), 2);
	sb_free(&out);
	l7_stats_shard_free(sh);
}

/* A client inventing Host headers on a port with no route: one series each, until the bound. */
static void record_hosts(struct l7_stats_shard *sh, unsigned n)
{
	struct l7_record r = request(404, 1, 0, 0);
	char host[64];

	r.cluster = NULL;
	r.flags = L7_RF_NR;
	for (unsigned i = 0; i < n; i++) {
		snprintf(host, sizeof(host), "h%u.example", i);
		r.authority = host;
		l7_stats_record(sh, &r);
	}
}

Test(l7_stats, series_are_bounded_per_shard)
{
	struct l7_stats_shard *sh = l7_stats_shard_new_bounded(64);
	struct strbuf out = { 0 };
	const unsigned extra = 10;

	cr_assert_not_null(sh);
	record_hosts(sh, 64 + extra);
	/* Known series keep counting once the shard is full. */
	record_hosts(sh, 1);
	scrape_text(&sh, 1, &out);
	cr_expect_eq(sample(out.buf, "xmesh_l7_series_overflow_total"), extra);
	cr_expect_eq(sample(out.buf, "xmesh_l7_series"), 64 + 1, "the bound plus the overflow series");
	cr_expect_eq(requests_sum(out.buf), 64 + extra + 1, "every request is counted somewhere");
	cr_expect_not_null(strstr(out.buf, "destination_service=\"h0.example\""));
	cr_expect_not_null(strstr(out.buf, "destination_service=\"h63.example\""));
	cr_expect_null(strstr(out.buf, "destination_service=\"h64.example\""));
	cr_expect_eq(sample(out.buf, "istio_requests_total{reporter=\"source\",source_workload=\"overflow\","
				     "source_workload_namespace=\"overflow\",source_principal=\"overflow\","
				     "source_app=\"overflow\",source_version=\"overflow\","
				     "source_canonical_service=\"overflow\",source_canonical_revision=\"overflow\","
				     "source_cluster=\"overflow\",destination_workload=\"overflow\","
				     "destination_workload_namespace=\"overflow\",destination_principal=\"overflow\","
				     "destination_app=\"overflow\",destination_version=\"overflow\","
				     "destination_canonical_service=\"overflow\","
				     "destination_canonical_revision=\"overflow\",destination_cluster=\"overflow\","
				     "destination_service=\"overflow\",destination_service_name=\"overflow\","
				     "destination_service_namespace=\"overflow\",request_protocol=\"http\","
				     "response_flags=\"overflow\",connection_security_policy=\"unknown\","
				     "response_code=\"overflow\",grpc_response_status=\"\"}"),
		     extra, "%s", out.buf);
	expect_promtool_clean(out.buf);
	sb_free(&out);
	l7_stats_shard_free(sh);
}

static void count_services(void *ctx, const char *service, uint64_t requests)
{
	uint64_t *counts = ctx;

	counts[0]++;
	counts[1] += requests;
	if (!strcmp(service, "overflow"))
		counts[2] = requests;
}

Test(l7_stats, the_default_bound_is_4096)
{
	struct l7_stats_shard *sh = l7_stats_shard_new();
	uint64_t counts[3] = { 0 }; /* services, requests, overflowed */

	cr_assert_not_null(sh);
	record_hosts(sh, L7_STATS_SERIES_MAX + 3);
	l7_stats_per_service(&sh, 1, count_services, counts);
	cr_expect_eq(counts[0], L7_STATS_SERIES_MAX + 1);
	cr_expect_eq(counts[1], L7_STATS_SERIES_MAX + 3);
	cr_expect_eq(counts[2], 3);
	l7_stats_shard_free(sh);
}

struct per_service {
	char names[4][64];
	uint64_t requests[4];
	int n;
};

static void count_service(void *ctx, const char *service, uint64_t requests)
{
	struct per_service *ps = ctx;

	cr_assert_lt(ps->n, 4);
	snprintf(ps->names[ps->n], sizeof(ps->names[0]), "%s", service);
	ps->requests[ps->n++] = requests;
}

Test(l7_stats, requests_per_service)
{
	struct l7_stats_shard *shards[2] = { l7_stats_shard_new(), l7_stats_shard_new() };
	struct per_service ps = { 0 };
	struct l7_record r = request(200, 1, 0, 0);

	cr_assert(shards[0] && shards[1]);
	for (int i = 0; i < 3; i++)
		l7_stats_record(shards[i % 2], &r);
	r.status = 500;
	l7_stats_record(shards[1], &r);
	r.cluster = &ratings;
	l7_stats_record(shards[0], &r);
	l7_stats_per_service(shards, 2, count_service, &ps);
	cr_assert_eq(ps.n, 2);
	cr_expect_str_eq(ps.names[0], "ratings.default.svc.cluster.local");
	cr_expect_eq(ps.requests[0], 1);
	cr_expect_str_eq(ps.names[1], "reviews.default.svc.cluster.local");
	cr_expect_eq(ps.requests[1], 4);
	l7_stats_shard_free(shards[0]);
	l7_stats_shard_free(shards[1]);
}

/* A worker recording while the metrics thread scrapes in a loop. */
#define RACE_LABEL_SETS 100
#define RACE_SCRAPES	8

struct race {
	struct l7_stats_shard *shard;
	atomic_uint scrapes;
	unsigned records;
	uint64_t max_ns;
	unsigned slow;		 /* records that took more than 5 ms */
	long slept;		 /* the worker's voluntary context switches: it waited for something */
	long preempted;		 /* its involuntary ones: the host ran something else */
	uint64_t min_collect_ns; /* the shortest l7_stats_collect the scraper saw */
	bool went_back;		 /* a scrape saw fewer requests than the one before */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *record_loop(void *arg)
{
	struct race *rc = arg;
	struct l7_record r = request(200, 0, 0, 0);
	char host[32];

	struct rusage before, after;

	r.cluster = NULL;
	r.authority = "s0";
	l7_stats_record(rc->shard, &r); /* the code and the first series paged in before counting */
	rc->records++;
	getrusage(RUSAGE_THREAD, &before);
	/* Until the scraper has done its scrapes: the worker records through every one of them. */
	for (unsigned i = 0; atomic_load(&rc->scrapes) < RACE_SCRAPES; i++) {
		uint64_t t0, dt;

		snprintf(host, sizeof(host), "s%u", i % RACE_LABEL_SETS);
		r.authority = host;
		r.duration_ns = i;
		t0 = now_ns();
		l7_stats_record(rc->shard, &r);
		dt = now_ns() - t0;
		rc->records++;
		if (dt > rc->max_ns)
			rc->max_ns = dt;
		if (dt > 5000000)
			rc->slow++;
	}
	getrusage(RUSAGE_THREAD, &after);
	rc->slept = after.ru_nvcsw - before.ru_nvcsw;
	rc->preempted = after.ru_nivcsw - before.ru_nivcsw;
	return NULL;
}

static void *scrape_loop(void *arg)
{
	struct race *rc = arg;
	unsigned long long last = 0;

	rc->min_collect_ns = UINT64_MAX;
	while (atomic_load(&rc->scrapes) < RACE_SCRAPES) {
		struct xm_scrape *sc = scrape_new();
		struct strbuf out = { 0 };
		unsigned long long sum;
		uint64_t t0 = now_ns(), dt;

		cr_assert_not_null(sc);
		l7_stats_collect(&rc->shard, 1, sc);
		dt = now_ns() - t0;
		scrape_render(sc, &out);
		scrape_free(sc);
		sum = requests_sum(out.buf ? out.buf : "");
		/* The first scrapes may come before the worker made every series: those do not count. */
		if (sum >= RACE_LABEL_SETS && strstr(out.buf, "destination_service=\"s99\"")) {
			if (dt < rc->min_collect_ns)
				rc->min_collect_ns = dt;
			atomic_fetch_add(&rc->scrapes, 1);
		}
		if (sum < last)
			rc->went_back = true;
		last = sum;
		sb_free(&out);
	}
	return NULL;
}

Test(l7_stats, scrapes_never_stall_the_worker, .timeout = 300)
{
	struct race rc = { .shard = l7_stats_shard_new() };
	struct strbuf out = { 0 };
	pthread_t writer, scraper;

	cr_assert_not_null(rc.shard);
	cr_assert_eq(pthread_create(&scraper, NULL, scrape_loop, &rc), 0);
	cr_assert_eq(pthread_create(&writer, NULL, record_loop, &rc), 0);
	pthread_join(writer, NULL);
	pthread_join(scraper, NULL);
	scrape_text(&rc.shard, 1, &out);
	cr_expect_eq(requests_sum(out.buf), rc.records, "totals are exact once the worker stopped");
	cr_expect_eq(sample(out.buf, "xmesh_l7_series"), RACE_LABEL_SETS);
	cr_expect(!rc.went_back, "a counter went backwards between scrapes");
	/*
	 * The worker never waits for a scrape: a lock the scrape held (a mutex, a futex-based anything) would put
	 * it to sleep at least once per scrape, RACE_SCRAPES times. A loaded host can still make it sleep once or
	 * twice on its own (a page fault waiting for the disk or for the address-space lock the scraper's mmap
	 * holds, seen under ASan with other tests running). Records slower than 5 ms are the host preempting the
	 * worker (this machine is shared), which its involuntary switches count.
	 */
	cr_expect_lt(rc.slept, RACE_SCRAPES / 2, "the worker slept %ld times while recording during %d scrapes",
		     rc.slept, RACE_SCRAPES);
	cr_expect_leq(rc.slow, rc.preempted, "%u records over 5 ms, %ld preemptions", rc.slow, rc.preempted);
	cr_log_info("max record latency %.3f ms (%u over 5 ms, %ld preemptions) over %u records during %d scrapes "
		    "(each collect >= %.1f ms)",
		    (double)rc.max_ns / 1e6, rc.slow, rc.preempted, rc.records, RACE_SCRAPES,
		    (double)rc.min_collect_ns / 1e6);
	sb_free(&out);
	l7_stats_shard_free(rc.shard);
}

/*
 * Σ of the istio_requests_total samples whose line holds both a and b. Linear: each line is searched alone, with
 * lengths (ASan's strstr takes strlen of what is left of a 3 MB scrape on every call).
 */
static unsigned long long requests_with(const char *text, const char *a, const char *b)
{
	static const char name[] = "istio_requests_total{";
	const char *p = text, *stop = text + strlen(text);
	size_t la = strlen(a), lb = strlen(b);
	unsigned long long sum = 0;

	while (p < stop) {
		const char *end = memchr(p, '\n', (size_t)(stop - p)), *sp;
		size_t n;

		if (!end)
			end = stop;
		n = (size_t)(end - p);
		if (n > sizeof(name) - 1 && !memcmp(p, name, sizeof(name) - 1)) {
			sp = memrchr(p, ' ', n); /* the value follows the line's last space */
			if (sp && memmem(p, n, a, la) && memmem(p, n, b, lb))
				sum += strtoull(sp + 1, NULL, 10);
		}
		p = end + 1;
	}
	return sum;
}

/*
 * l7_edges' sequence (NR, UH, UF, then many 200s on other clusters), spread over two workers and two snapshot
 * generations: every series is in the scrape with its own count, however the memo and the merge meet them.
 */
Test(l7_stats, every_series_of_several_workers_and_snapshots_is_scraped)
{
	struct l7_stats_shard *shards[2] = { l7_stats_shard_new(), l7_stats_shard_new() };
	struct l7_cluster uh = ratings, uf = ratings, many[64];
	struct strbuf out = { 0 };
	struct l7_record r;
	cr_assert(shards[0] && shards[1]);
	snprintf(uh.host_fqdn, sizeof(uh.host_fqdn), "uh.default.svc.cluster.local");
	snprintf(uf.host_fqdn, sizeof(uf.host_fqdn), "uf.default.svc.cluster.local");
	for (int c = 0; c < 64; c++) {
		many[c] = ratings;
		snprintf(many[c].host_fqdn, sizeof(many[c].host_fqdn), "s%d.default.svc.cluster.local", c);
	}
	for (uint64_t gen = 1; gen <= 2; gen++) {
		for (int w = 0; w < 2; w++) {
			r = request(404, 1, 0, 0);
			r.flags = L7_RF_NR;
			r.cluster = NULL;
			r.upstream_wl = NULL;
			r.snapshot_generation = gen;
			l7_stats_record(shards[w], &r);
			r = request(503, 1, 0, 0);
			r.flags = L7_RF_UH;
			r.cluster = &uh;
			r.upstream_wl = NULL;
			r.snapshot_generation = gen;
			l7_stats_record(shards[w], &r);
			r.flags = L7_RF_UF;
			r.cluster = &uf;
			l7_stats_record(shards[w], &r);
			/* The newest: many requests through the memo, on both clusters a flag was seen on. */
			for (int i = 0; i < 50; i++) {
				r = request(200, 1, 0, 0);
				r.snapshot_generation = gen;
				r.cluster = i % 2 ? &bookinfo_reviews : &ratings;
				l7_stats_record(shards[(w + i) % 2], &r);
			}
		}
	}
	/* Enough keys that the memo's slots collide: 63 flag sets on one cluster, 64 clusters, each twice. */
	for (int k = 0; k < 2; k++) {
		for (uint32_t f = 1; f < 64; f++) {
			r = request(599, 1, 0, 0);
			r.flags = f;
			r.snapshot_generation = 2;
			l7_stats_record(shards[0], &r);
		}
		for (int c = 0; c < 64; c++) {
			r = request(201, 1, 0, 0);
			r.cluster = &many[c];
			r.snapshot_generation = 2;
			l7_stats_record(shards[1], &r);
		}
	}
	scrape_text(shards, 2, &out);
	cr_expect_eq(sample(out.buf, "istio_requests_total" PP_TO_REVIEWS("200", "-") "}"), 100, "%s", out.buf);
	cr_expect_eq(sample(out.buf, "xmesh_l7_series"), 5 + 63 + 64, "NR, UH, UF, 200 to reviews and to ratings");
	cr_expect_eq(requests_sum(out.buf), 4 * 53 + 2 * (63 + 64));
	for (uint32_t f = 1; f < 64; f++) {
		char flags[L7_FLAGS_MAX], want[128];

		l7_flags_format(f, flags, sizeof(flags));
		snprintf(want, sizeof(want),
			 "response_flags=\"%s\",connection_security_policy=\"unknown\","
			 "response_code=\"599\"",
			 flags);
		cr_expect_eq(requests_with(out.buf, "destination_service=\"reviews.", want), 2, "%s", want);
	}
	for (int c = 0; c < 64; c++) {
		char want[128];

		snprintf(want, sizeof(want), "destination_service=\"%s\"", many[c].host_fqdn);
		cr_expect_eq(requests_with(out.buf, want, "response_code=\"201\""), 2, "%s", want);
	}
#define FLAGS_CODE(f, c) "response_flags=\"" f "\",connection_security_policy=\"unknown\",response_code=\"" c "\""
	cr_expect_eq(requests_with(out.buf, "destination_service=\"reviews:9080\"", FLAGS_CODE("NR", "404")), 4,
		     "NR: the Host is the service");
	cr_expect_eq(
	    requests_with(out.buf, "destination_service=\"uh.default.svc.cluster.local\"", FLAGS_CODE("UH", "503")), 4);
	cr_expect_eq(
	    requests_with(out.buf, "destination_service=\"uf.default.svc.cluster.local\"", FLAGS_CODE("UF", "503")), 4);
	cr_expect_eq(
	    requests_with(out.buf, "destination_service=\"ratings.default.svc.cluster.local\"", FLAGS_CODE("-", "200")),
	    100);
	sb_free(&out);
	l7_stats_shard_free(shards[0]);
	l7_stats_shard_free(shards[1]);
}
