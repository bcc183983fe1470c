// SPDX-License-Identifier: Apache-2.0
/*
 * A worker's upstream outcomes into the kernel's outlier detection: every connect failure and the first success
 * after one, and the response statuses batched (outlier_batch.h), so the healthy path makes no system call.
 */
#include <stdlib.h>

#include "core/loop.h"
#include "l7/worker.h"

#define OUTLIER_FLUSH_MS 10 /* how long a batched status may wait (a run reaching a threshold waits for none) */

static uint64_t endpoint_key(const struct l7_exchange *x)
{
	return (uint64_t)x->cluster->svc->svc_id << 32 | x->endpoint->id;
}

/* Only where the socket LB would report: a published endpoint of a service with outlier detection on. */
static bool reportable(const struct l7_worker *w, const struct l7_exchange *x)
{
	return w->proxy->opts.report && x->cluster && x->endpoint && x->cluster->svc && x->cluster->svc->outlier_on &&
	       x->cluster->svc->svc_id && x->endpoint->id;
}

static int failed_find(const struct l7_worker *w, uint64_t key)
{
	for (uint32_t i = 0; i < w->n_failed; i++)
		if (w->failed[i] == key)
			return (int)i;
	return -1;
}

void l7_report_connect_failed(struct l7_worker *w, const struct l7_exchange *x)
{
	uint64_t key;

	if (!reportable(w, x))
		return;
	key = endpoint_key(x);
	if (w->outlier_batch)
		l7_ob_connect_outcome(w->outlier_batch, x->cluster->svc->svc_id, x->endpoint->id,
				      x->cluster->svc->outlier.split_external_local_origin_errors, true);
	w->proxy->opts.report(w->proxy->opts.report_ctx, x->cluster->svc->svc_id, x->endpoint->id, L7_CONNECT_FAILED,
			      0);
	if (failed_find(w, key) >= 0)
		return;
	if (w->n_failed < L7_FAILED_SET) {
		w->failed[w->n_failed++] = key;
		return;
	}
	/* Full: the oldest is forgotten (its next success goes unreported, as when another worker connects). */
	w->failed[w->failed_next] = key;
	w->failed_next = (w->failed_next + 1) % L7_FAILED_SET;
}

void l7_report_connected(struct l7_worker *w, const struct l7_exchange *x)
{
	int i;

	if (!w->n_failed || !reportable(w, x))
		return;
	i = failed_find(w, endpoint_key(x));
	if (i < 0)
		return;
	if (w->outlier_batch)
		l7_ob_connect_outcome(w->outlier_batch, x->cluster->svc->svc_id, x->endpoint->id,
				      x->cluster->svc->outlier.split_external_local_origin_errors, false);
	w->failed[i] = w->failed[--w->n_failed];
	if (w->failed_next >= w->n_failed)
		w->failed_next = 0;
	w->proxy->opts.report(w->proxy->opts.report_ctx, x->cluster->svc->svc_id, x->endpoint->id, L7_CONNECT_SUCCEEDED,
			      0);
}

static void emit_status(void *ctx, uint32_t svc_id, uint32_t backend_id, uint16_t status)
{
	struct l7_worker *w = ctx;

	w->proxy->opts.report(w->proxy->opts.report_ctx, svc_id, backend_id, L7_HTTP_STATUS, status);
}

static void on_outlier_flush(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct l7_worker *w = ctx;

	(void)loop;
	(void)timer;
	l7_ob_flush(w->outlier_batch);
}

void l7_report_response(struct l7_worker *w, const struct l7_exchange *x)
{
	const struct xm_lb_service *svc = x->cluster->svc;
	struct l7_ob_policy policy;

	if (!reportable(w, x))
		return;
	if (!w->outlier_batch) {
		w->outlier_batch = malloc(sizeof(*w->outlier_batch));
		if (!w->outlier_batch)
			return;
		l7_ob_init(w->outlier_batch, emit_status, w);
	}
	if (!w->outlier_timer) {
		w->outlier_timer = loop_timer_add(w->loop, OUTLIER_FLUSH_MS, 0, on_outlier_flush, w);
		if (!w->outlier_timer)
			return;
		loop_timer_disarm(w->loop, w->outlier_timer);
	}
	policy = (struct l7_ob_policy){
		.consecutive_5xx = svc->outlier.consecutive_5xx_errors,
		.consecutive_gateway = svc->outlier.consecutive_gateway_errors,
	};
	if (l7_ob_note(w->outlier_batch, svc->svc_id, x->endpoint->id, &policy, x->status) &&
	    !loop_timer_armed(w->outlier_timer))
		loop_timer_arm(w->loop, w->outlier_timer, OUTLIER_FLUSH_MS);
}

void l7_report_free(struct l7_worker *w)
{
	if (!w->outlier_batch)
		return;
	l7_ob_flush(w->outlier_batch);
	free(w->outlier_batch);
	w->outlier_batch = NULL;
	loop_timer_cancel(w->loop, w->outlier_timer);
	w->outlier_timer = NULL;
}
