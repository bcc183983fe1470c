// SPDX-License-Identifier: Apache-2.0
/*
 * A worker's upstream connect outcomes into the kernel's outlier detection: every failure, and the first success
 * after one (remembered per worker), so the healthy path makes no report and no system call.
 */
#include "l7/worker.h"

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
	w->proxy->opts.report(w->proxy->opts.report_ctx, x->cluster->svc->svc_id, x->endpoint->id, L7_CONNECT_FAILED);
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
	w->failed[i] = w->failed[--w->n_failed];
	if (w->failed_next >= w->n_failed)
		w->failed_next = 0;
	w->proxy->opts.report(w->proxy->opts.report_ctx, x->cluster->svc->svc_id, x->endpoint->id,
			      L7_CONNECT_SUCCEEDED);
}
