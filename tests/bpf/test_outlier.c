// SPDX-License-Identifier: Apache-2.0
/*
 * In-kernel outlier detection: real refused connects through sockops, and crafted events through the
 * xm_outlier_report program (the path the L7 proxy uses): thresholds, the max-ejection cap, min-health
 * suspension, growth of the ejection time, return, and concurrent reports from several CPUs.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "outlier/outlier.h"
#include "sock_lb_fixture.h"

#define VIP4  "10.96.0.20"
#define VPORT 80

TestSuite(outlier, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

static struct xm_outlier_detection policy(uint32_t c5xx, uint32_t base_ms, uint32_t max_pct)
{
	struct xm_outlier_detection od;

	memset(&od, 0, sizeof(od));
	config_outlier_defaults(&od);
	od.set = true;
	od.consecutive_5xx_errors = c5xx;
	od.base_ejection_time_ms = base_ms;
	od.max_ejection_percent = max_pct;
	return od;
}

static int report(uint32_t svc, int backend, enum xm_outlier_report_kind kind, uint32_t status)
{
	int rc = outlier_report(fx.fds.outlier_report_prog, svc, fx_backend_id(backend), kind, status);

	cr_assert(rc >= 0, "outlier_report: %s", strerror(-rc));
	return rc;
}

static bool ejected(uint32_t svc, int backend)
{
	return report(svc, backend, XM_REPORT_PROBE, 0) == 1;
}

static int svc_ejected_count(uint32_t svc)
{
	struct xm_outlier_svc s = { 0 };

	bpf_map_lookup_elem(fx.fds.outlier_svc, &svc, &s);
	return s.ejected;
}

Test(outlier, dead_backend_costs_at_most_threshold_failed_connects)
{
	struct xm_outlier_detection od = policy(3, 30000, 10);
	int failures = 0, i;

	fx_listeners(3, SOCK_STREAM, false);
	fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_ROUND_ROBIN, 3, &od);
	close(fx.listen_fd[2]); /* backend 2 dies: its port now answers SYN with RST */
	fx.n_backends = 2;
	for (i = 0; i < 60; i++) {
		int fd = fx_connect(VIP4, VPORT);

		if (fd < 0) {
			cr_assert_eq(fd, -ECONNREFUSED, "connect %d: %s", i, strerror(-fd));
			failures++;
			continue;
		}
		cr_assert(fx_accept_which() >= 0);
		close(fd);
	}
	cr_assert_leq(failures, 3, "%d connects failed; consecutive5xxErrors is 3", failures);
	cr_assert_eq(failures, 3, "the dead backend was never tried (%d failures)", failures);
	/* 1,000 rather than the 300: a selection that re-picks the ejected endpoint shows up here. */
	for (i = 0; i < 1000; i++) {
		int fd = fx_connect(VIP4, VPORT);

		cr_assert(fd >= 0, "connect %d after ejection: %s", i, strerror(-fd));
		cr_assert(fx_accept_which() >= 0);
		close(fd);
	}
}

Test(outlier, http_5xx_and_gateway_thresholds_and_success_resets)
{
	struct xm_outlier_detection od = policy(5, 30000, 100);
	uint32_t svc;
	int i;

	od.consecutive_gateway_errors = 3;
	fx_listeners(4, SOCK_STREAM, false);
	svc = fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 4, &od);
	for (i = 0; i < 4; i++)
		report(svc, 0, XM_REPORT_HTTP, 500);
	report(svc, 0, XM_REPORT_HTTP, 200); /* a good answer ends the run */
	for (i = 0; i < 4; i++)
		report(svc, 0, XM_REPORT_HTTP, 500);
	cr_assert_not(ejected(svc, 0), "ejected after runs of 4 with consecutive5xxErrors 5");
	report(svc, 0, XM_REPORT_HTTP, 500);
	cr_assert(ejected(svc, 0), "not ejected after 5 consecutive 5xx");
	for (i = 0; i < 3; i++)
		report(svc, 1, XM_REPORT_HTTP, 503);
	cr_assert(ejected(svc, 1), "not ejected after 3 consecutive gateway errors");
	cr_assert_eq(svc_ejected_count(svc), 2);
}

Test(outlier, split_local_origin_counts_separately)
{
	struct xm_outlier_detection od = policy(2, 30000, 100);
	uint32_t svc;
	int i;

	od.split_external_local_origin_errors = true;
	od.consecutive_local_origin_failures = 4;
	fx_listeners(3, SOCK_STREAM, false);
	svc = fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 3, &od);
	for (i = 0; i < 3; i++)
		report(svc, 0, XM_REPORT_LOCAL_FAILURE, 0);
	cr_assert_not(ejected(svc, 0), "split: local failures counted toward consecutive5xxErrors (2)");
	report(svc, 0, XM_REPORT_LOCAL_FAILURE, 0);
	cr_assert(ejected(svc, 0), "split: not ejected after consecutiveLocalOriginFailures (4)");
}

Test(outlier, max_ejection_percent_caps_ejections)
{
	struct xm_outlier_detection od = policy(1, 30000, 50);
	uint32_t svc;
	int b, n = 0;

	fx_listeners(4, SOCK_STREAM, false);
	svc = fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 4, &od);
	for (b = 0; b < 3; b++)
		report(svc, b, XM_REPORT_LOCAL_FAILURE, 0);
	for (b = 0; b < 4; b++)
		n += ejected(svc, b);
	cr_assert_eq(n, 2, "%d of 4 ejected with maxEjectionPercent 50, want 2", n);
	cr_assert_eq(svc_ejected_count(svc), 2);
}

Test(outlier, one_ejection_allowed_under_a_small_percent)
{
	struct xm_outlier_detection od = policy(1, 30000, 10); /* Istio's default 10% of 3 rounds to 0 */
	uint32_t svc;

	fx_listeners(3, SOCK_STREAM, false);
	svc = fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 3, &od);
	report(svc, 0, XM_REPORT_LOCAL_FAILURE, 0);
	report(svc, 1, XM_REPORT_LOCAL_FAILURE, 0);
	cr_assert(ejected(svc, 0), "the first ejection is always allowed (Envoy)");
	cr_assert_not(ejected(svc, 1), "a second one exceeds 10%%");
}

Test(outlier, min_health_percent_suspends_ejection)
{
	struct xm_outlier_detection od = policy(1, 30000, 100);
	uint32_t svc;

	od.min_health_percent = 60;
	fx_listeners(4, SOCK_STREAM, false);
	svc = fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 4, &od);
	report(svc, 0, XM_REPORT_LOCAL_FAILURE, 0); /* 3 of 4 healthy = 75% */
	report(svc, 1, XM_REPORT_LOCAL_FAILURE, 0); /* would leave 50% < 60% */
	cr_assert(ejected(svc, 0));
	cr_assert_not(ejected(svc, 1), "ejected below minHealthPercent");
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Backend 0 was ejected for want_ms at some moment after since (CLOCK_MONOTONIC ms, as the BPF clock): what
 * remains is want_ms less the time that passed since, however long the machine made this test wait.
 */
static void assert_ejected_for(uint32_t svc, uint64_t want_ms, uint64_t since)
{
	struct xm_endpoint_health h;
	uint64_t passed;

	cr_assert_eq(outlier_read(fx.fds.outlier, svc, fx_backend_id(0), &h), 0);
	passed = mono_ms() - since;
	cr_assert(h.ejected && h.ejected_for_ms <= want_ms && h.ejected_for_ms + passed + 1 >= want_ms,
		  "ejected for %llu ms more, %llu ms after the report: want %llu ms in all",
		  (unsigned long long)h.ejected_for_ms, (unsigned long long)passed, (unsigned long long)want_ms);
}

Test(outlier, ejection_ends_after_its_time_and_grows_with_repeats)
{
	struct xm_outlier_detection od = policy(1, 300, 100);
	struct xm_endpoint_health h;
	uint64_t t0;
	uint32_t svc;

	od.interval_ms = 60000; /* no decay during the test */
	fx_listeners(2, SOCK_STREAM, false);
	svc = fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 2, &od);
	t0 = mono_ms();
	report(svc, 0, XM_REPORT_LOCAL_FAILURE, 0);
	cr_assert(ejected(svc, 0));
	assert_ejected_for(svc, 300, t0);
	usleep(350 * 1000);
	cr_assert_not(ejected(svc, 0), "still ejected after baseEjectionTime");
	cr_assert_eq(svc_ejected_count(svc), 0, "the return was not counted");
	t0 = mono_ms();
	report(svc, 0, XM_REPORT_LOCAL_FAILURE, 0);
	assert_ejected_for(svc, 600, t0); /* 2 x 300 */
	cr_assert_eq(outlier_read(fx.fds.outlier, svc, fx_backend_id(0), &h), 0);
	cr_assert_eq(h.times_ejected, 2);
}

Test(outlier, backoff_decays_while_healthy)
{
	struct xm_outlier_detection od = policy(1, 200, 100);
	struct xm_endpoint_health h;
	uint32_t svc;

	od.interval_ms = 100;
	fx_listeners(2, SOCK_STREAM, false);
	svc = fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 2, &od);
	report(svc, 0, XM_REPORT_LOCAL_FAILURE, 0);
	usleep(250 * 1000);
	cr_assert_not(ejected(svc, 0));
	usleep(300 * 1000); /* healthy for 3 intervals: the multiplier is back to 0 */
	report(svc, 0, XM_REPORT_LOCAL_FAILURE, 0);
	cr_assert_eq(outlier_read(fx.fds.outlier, svc, fx_backend_id(0), &h), 0);
	cr_assert(h.ejected && h.ejected_for_ms <= 200, "ejection after decay lasts %llu ms, want 200",
		  (unsigned long long)h.ejected_for_ms);
}

struct hammer {
	uint32_t svc;
	int cpu;
	int n_backends;
};

static void *hammer_reports(void *arg)
{
	const struct hammer *hm = arg;
	int round, b;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(hm->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);

	for (round = 0; round < 200; round++) {
		for (b = 0; b < hm->n_backends; b++) {
			unsigned char pkt[XM_REPORT_PAD + sizeof(struct xm_outlier_report_msg)] = { 0 };
			struct xm_outlier_report_msg msg = { hm->svc, fx_backend_id(b), XM_REPORT_LOCAL_FAILURE, 0 };
			LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt));

			/* XDP test runs do not take a CPU: the threads are pinned instead. */
			memcpy(pkt + XM_REPORT_PAD, &msg, sizeof(msg));
			bpf_prog_test_run_opts(fx.fds.outlier_report_prog, &opts);
		}
	}
	return NULL;
}

Test(outlier, concurrent_failures_from_several_cpus_respect_the_cap)
{
	struct xm_outlier_detection od = policy(3, 30000, 50);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct hammer hm[4];
	pthread_t th[4];
	int i, n = 0;
	uint32_t svc;

	fx_listeners(8, SOCK_STREAM, false);
	svc = fx_publish_od(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 8, &od);
	for (i = 0; i < 4; i++) {
		hm[i] = (struct hammer){ .svc = svc, .cpu = (int)(i % (ncpu > 0 ? ncpu : 1)), .n_backends = 8 };
		cr_assert_eq(pthread_create(&th[i], NULL, hammer_reports, &hm[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 8; i++)
		n += ejected(svc, i);
	cr_assert_eq(n, 4, "%d of 8 ejected under concurrent failures with maxEjectionPercent 50, want 4", n);
	cr_assert_eq(svc_ejected_count(svc), 4, "service count %d disagrees with the endpoints",
		     svc_ejected_count(svc));
}
