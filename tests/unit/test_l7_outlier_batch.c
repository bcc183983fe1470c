// SPDX-License-Identifier: Apache-2.0
/*
 * Tests of the batching of upstream HTTP statuses into the kernel's outlier state: the reports it makes, and that
 * a model of the kernel fed the batched reports ends where it would have ended fed every status.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "l7/outlier_batch.h"

/* The kernel's per-endpoint state (bpf/lib/outlier.h), ejection permanent: enough to compare runs and ejections. */
struct model {
	uint32_t c5xx, cgw, clocal;
	uint32_t reason; /* 0 while not ejected: 1 local origin, 2 5xx, 3 gateway */
	uint32_t reports;
	struct l7_ob_policy p;
	bool split; /* splitExternalLocalOriginErrors */
};

static void model_http(struct model *m, uint16_t status)
{
	enum l7_ob_kind k = l7_ob_classify(status);

	m->reports++;
	if (k == L7_OB_OK) {
		m->c5xx = m->cgw = 0;
		return;
	}
	if (m->reason)
		return;
	m->c5xx++;
	m->cgw = k == L7_OB_GATEWAY ? m->cgw + 1 : 0;
	if (m->p.consecutive_gateway && m->cgw >= m->p.consecutive_gateway)
		m->reason = 3;
	else if (m->p.consecutive_5xx && m->c5xx >= m->p.consecutive_5xx)
		m->reason = 2;
	if (m->reason)
		m->c5xx = m->cgw = m->clocal = 0;
}

static void model_connect(struct model *m, bool failed)
{
	if (!failed) {
		m->clocal = 0;
		if (!m->split)
			m->c5xx = m->cgw = 0;
		return;
	}
	if (m->reason)
		return;
	m->clocal++;
	if (!m->split) {
		m->c5xx++;
		m->cgw++;
		if ((m->p.consecutive_5xx && m->c5xx >= m->p.consecutive_5xx) ||
		    (m->p.consecutive_gateway && m->cgw >= m->p.consecutive_gateway))
			m->reason = 1;
	}
	if (m->reason)
		m->c5xx = m->cgw = m->clocal = 0;
}

static uint16_t emitted[4096];
static size_t n_emitted;

static void emit_to_model(void *ctx, uint32_t svc_id, uint32_t backend_id, uint16_t status)
{
	cr_assert_eq(svc_id, 7);
	cr_assert_eq(backend_id, 3);
	if (n_emitted < 4096)
		emitted[n_emitted++] = status;
	if (ctx)
		model_http(ctx, status);
}

static struct l7_outlier_batch b;
static const struct l7_ob_policy five = { .consecutive_5xx = 5 };

static void setup(void)
{
	n_emitted = 0;
	l7_ob_init(&b, emit_to_model, NULL);
}

TestSuite(l7_outlier_batch, .init = setup);

static void note_all(const uint16_t *st, size_t n, const struct l7_ob_policy *p)
{
	for (size_t i = 0; i < n; i++)
		l7_ob_note(&b, 7, 3, p, st[i]);
}

Test(l7_outlier_batch, a_healthy_endpoint_costs_no_report)
{
	for (int i = 0; i < 1000; i++)
		cr_assert_not(l7_ob_note(&b, 7, 3, &five, i % 2 ? 200 : 404), "nothing waits for a flush");
	l7_ob_flush(&b);
	cr_expect_eq(n_emitted, 0);
	cr_expect_eq(b.n, 0, "no entry kept for it");
}

Test(l7_outlier_batch, errors_wait_for_the_flush_then_a_success_is_reported_once)
{
	static const uint16_t run[] = { 500, 500 };
	static const uint16_t after[] = { 200, 200, 200, 503, 500, 500 };

	note_all(run, 2, &five);
	cr_expect_eq(n_emitted, 0, "below the threshold: batched");
	cr_expect_eq(b.pending, 1);
	l7_ob_flush(&b);
	cr_assert_eq(n_emitted, 2);
	n_emitted = 0;
	/* A success then three errors: one success report, then the three. */
	note_all(after, 6, &five);
	l7_ob_flush(&b);
	cr_assert_eq(n_emitted, 4);
	cr_expect_eq(emitted[0], 200);
	cr_expect_eq(emitted[1], 503);
	cr_expect_eq(emitted[2], 500);
	cr_expect_eq(emitted[3], 500);
}

Test(l7_outlier_batch, a_run_reaching_the_threshold_is_reported_at_once)
{
	static const uint16_t st[] = { 500, 502, 500, 504, 500 };

	note_all(st, 4, &five);
	cr_expect_eq(n_emitted, 0);
	l7_ob_note(&b, 7, 3, &five, st[4]);
	cr_assert_eq(n_emitted, 5, "the fifth 5xx flushes without waiting for the timer");
	cr_expect_eq(b.pending, 0);
}

Test(l7_outlier_batch, a_gateway_run_reaching_its_threshold_is_reported_at_once)
{
	static const struct l7_ob_policy gw = { .consecutive_5xx = 0, .consecutive_gateway = 3 };
	static const uint16_t st[] = { 200, 500, 503, 502 };

	note_all(st, 4, &gw);
	cr_expect_eq(n_emitted, 0);
	l7_ob_note(&b, 7, 3, &gw, 503);
	cr_assert_eq(n_emitted, 4, "500 then three gateway errors (the leading 200 of a clean endpoint is dropped)");
	cr_expect_eq(emitted[0], 500);
	cr_expect_eq(emitted[3], 503);
}

Test(l7_outlier_batch, errors_between_successes_below_the_threshold_cost_nothing)
{
	static const uint16_t st[] = { 500, 200, 500, 500, 200, 503, 200 };

	note_all(st, 7, &five);
	l7_ob_flush(&b);
	cr_assert_eq(n_emitted, 2, "the first 500 (its prior is unknown), then one 200 ending every run");
	cr_expect_eq(emitted[0], 500);
	cr_expect_eq(emitted[1], 200);
}

Test(l7_outlier_batch, unsplit_connect_failures_make_the_next_success_count)
{
	static const struct l7_ob_policy p = { .consecutive_5xx = 5 };

	l7_ob_note(&b, 7, 3, &p, 500);
	l7_ob_connect_outcome(&b, 7, 3, false, true);
	cr_assert_eq(n_emitted, 1, "the batched 500 goes before the connect failure");
	l7_ob_connect_outcome(&b, 7, 3, false, false); /* the success ends the runs in the kernel */
	l7_ob_note(&b, 7, 3, &p, 200);
	l7_ob_flush(&b);
	cr_expect_eq(n_emitted, 1, "nothing left for the 200 to end");
	l7_ob_connect_outcome(&b, 7, 3, false, true);
	l7_ob_note(&b, 7, 3, &p, 200);
	l7_ob_flush(&b);
	cr_expect_eq(n_emitted, 2, "after a failure, the 200 ends the 5xx run it extended");
	cr_expect_eq(emitted[1], 200);
}

Test(l7_outlier_batch, split_connect_outcomes_leave_the_http_runs_alone)
{
	static const struct l7_ob_policy p = { .consecutive_5xx = 5 };

	l7_ob_connect_outcome(&b, 7, 3, true, true);
	l7_ob_note(&b, 7, 3, &p, 200);
	l7_ob_flush(&b);
	cr_expect_eq(n_emitted, 0, "split: a connect failure is not in the 5xx run");
	l7_ob_note(&b, 7, 3, &p, 500);
	l7_ob_flush(&b);
	l7_ob_connect_outcome(&b, 7, 3, true, false);
	l7_ob_note(&b, 7, 3, &p, 200);
	l7_ob_flush(&b);
	cr_assert_eq(n_emitted, 2, "split: a connect success does not end the 5xx run, the 200 must");
	cr_expect_eq(emitted[1], 200);
}

/* Whether pending errors extend a run the batch does not know (the kernel's from earlier reports): only their
 * ejection may wait for the flush. */
static bool n_runs_unknown(const struct l7_outlier_batch *ob)
{
	return ob->n && ob->e[0].n_seg && ob->e[0].seg[0].kind != L7_OB_OK;
}

/* Random statuses and connect outcomes, random flushes: the batched kernel ends like the one that saw everything. */
static void random_equivalence(bool split, unsigned seed)
{
	static const uint16_t statuses[] = { 200, 200, 200, 404, 500, 501, 502, 503, 504 };
	struct model direct = { 0 }, batched = { 0 };

	srand(seed);
	for (int round = 0; round < 200; round++) {
		struct l7_ob_policy p = {
			.consecutive_5xx = (uint32_t)(rand() % 6),
			.consecutive_gateway = (uint32_t)(rand() % 4),
		};
		uint32_t events = 0;

		memset(&direct, 0, sizeof(direct));
		memset(&batched, 0, sizeof(batched));
		direct.p = batched.p = p;
		direct.split = batched.split = split;
		l7_ob_init(&b, emit_to_model, &batched);
		for (int i = 0; i < 60; i++) {
			int r = rand() % 40;

			if (r < 2) {
				l7_ob_connect_outcome(&b, 7, 3, split, r == 0);
				model_connect(&batched, r == 0);
				model_connect(&direct, r == 0);
			} else if (r < 5) {
				l7_ob_flush(&b);
				cr_assert_eq(batched.reason, direct.reason,
					     "seed %u round %d step %d: reason %u, want %u", seed, round, i,
					     batched.reason, direct.reason);
			} else {
				uint16_t st = statuses[rand() % 9];

				l7_ob_note(&b, 7, 3, &p, st);
				model_http(&direct, st);
				events++;
			}
			/* Ejected by the batch's own run: never delayed past the status that causes it. */
			if (direct.reason && !batched.reason)
				cr_assert(n_runs_unknown(&b), "seed %u round %d step %d: ejection delayed", seed, round,
					  i);
		}
		l7_ob_flush(&b);
		cr_assert_eq(batched.reason, direct.reason, "seed %u round %d: reason %u, want %u", seed, round,
			     batched.reason, direct.reason);
		cr_assert_eq(batched.c5xx, direct.c5xx, "seed %u round %d: 5xx run %u, want %u", seed, round,
			     batched.c5xx, direct.c5xx);
		cr_assert_eq(batched.cgw, direct.cgw, "seed %u round %d: gateway run", seed, round);
		cr_assert_eq(batched.clocal, direct.clocal, "seed %u round %d: local run", seed, round);
		cr_assert_leq(batched.reports, events, "never more reports than statuses");
	}
}

Test(l7_outlier_batch, batched_reports_match_the_kernel_model)
{
	random_equivalence(false, 1);
	random_equivalence(false, 2);
}

Test(l7_outlier_batch, batched_reports_match_the_kernel_model_split)
{
	random_equivalence(true, 3);
	random_equivalence(true, 4);
}
