// SPDX-License-Identifier: Apache-2.0
/*
 * Fault injection and the route timeout of an exchange, as Envoy's fault filter and router do them: a delay
 * holds the request on the worker's timer heap (flag DI), an abort answers locally (FI), and the route timeout,
 * counted from the end of the downstream request (after any delay), answers 504 UT before any response byte went
 * downstream, else resets the client's connection. The same timer runs the retries' per-try timeout and backoff
 * (retry.c).
 */
#include "core/loop.h"
#include "l7/record.h"
#include "l7/worker.h"

/* Whether a sample of percent (0..100, to a millionth) fires. */
static bool sample(struct l7_worker *w, double percent)
{
	if (percent >= 100.0)
		return true;
	if (percent <= 0.0)
		return false;
	return (double)l7_rng_below(&w->rng, 1000000) < percent * 10000.0;
}

static void route_timeout(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;

	x->details = "upstream_response_timeout"; /* Envoy's %RESPONSE_CODE_DETAILS% */
	if (!x->resp_head_done && !x->resp_bytes) {
		/* Nothing went downstream: Envoy's local 504; the upstream is closed, never pooled half-read. */
		l7_exchange_local_reply(d, 504, L7_RF_UT, NULL, "upstream request timeout", 24);
		return;
	}
	l7_exchange_abort(d, L7_RF_UT); /* the response started: the client sees its connection reset */
	l7_down_close(d);
}

static void arm(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	uint64_t due = x->deadline_ms;
	uint64_t now = loop_now_ms();

	if (x->delayed && (!due || x->delay_due_ms < due))
		due = x->delay_due_ms;
	if (x->try_deadline_ms && (!due || x->try_deadline_ms < due))
		due = x->try_deadline_ms;
	if (x->backing_off && (!due || x->retry_due_ms < due))
		due = x->retry_due_ms;
	if (!due)
		return;
	loop_timer_arm(d->w->loop, x->timer, due > now ? due - now : 0);
}

static void on_exchange_timer(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct l7_down *d = ctx;
	struct l7_exchange *x = &d->x;
	uint64_t now = loop_now_ms();

	(void)loop;
	if (d->dead || d->state != L7_DOWN_EXCHANGE || x->timer != timer)
		return;
	if (x->deadline_ms && now >= x->deadline_ms) {
		route_timeout(d);
	} else if (x->try_deadline_ms && now >= x->try_deadline_ms) {
		l7_retry_try_timeout(d);
		if (!d->dead && d->state == L7_DOWN_EXCHANGE && x->timer == timer)
			arm(d);
	} else if (x->backing_off && now >= x->retry_due_ms) {
		l7_retry_fire(d);
		if (!d->dead && d->state == L7_DOWN_EXCHANGE && x->timer == timer)
			arm(d);
	} else if (x->delayed && now >= x->delay_due_ms) {
		x->delayed = false;
		x->flags |= L7_RF_DI;
		l7_exchange_resume(d);
		if (!d->dead && x->timer == timer) /* still running: the timeout goes on */
			arm(d);
	} else {
		arm(d);
		return;
	}
	if (!d->dead)
		l7_down_progress(d);
}

/* The exchange's timer, made on first use; false when out of memory. */
static bool ensure_timer(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;

	if (!x->timer)
		x->timer = loop_timer_add(d->w->loop, 0, 0, on_exchange_timer, d);
	if (x->timer)
		loop_timer_disarm(d->w->loop, x->timer);
	return x->timer != NULL;
}

bool l7_exchange_timer_arm(struct l7_down *d)
{
	if (!ensure_timer(d))
		return false;
	arm(d);
	return true;
}

void l7_exchange_timeout_start(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;

	if (x->deadline_ms || x->delayed || !x->req_done || !x->route || !x->route->timeout_ms || !ensure_timer(d))
		return;
	x->deadline_ms = loop_now_ms() + x->route->timeout_ms;
	arm(d);
}

bool l7_fault_delay(struct l7_down *d, uint32_t head_len)
{
	struct l7_exchange *x = &d->x;

	if (!x->route->fault_delay_ms || !sample(d->w, x->route->fault_delay_percent) || !ensure_timer(d))
		return false;
	x->delayed = true;
	x->delay_due_ms = loop_now_ms() + x->route->fault_delay_ms;
	x->delay_head_len = head_len;
	arm(d);
	return true;
}

uint16_t l7_fault_abort(struct l7_down *d)
{
	const struct l7_route *route = d->x.route;

	if (!route->fault_abort_status || !sample(d->w, route->fault_abort_percent))
		return 0;
	return route->fault_abort_status;
}

bool l7_fault_delay_step(struct l7_down *d)
{
	if (d->eof) {
		l7_exchange_abort(d, L7_RF_DC);
		l7_down_close(d);
	}
	return false;
}

void l7_exchange_timer_stop(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;

	loop_timer_cancel(d->w->loop, x->timer);
	x->timer = NULL;
	x->delayed = false;
	x->deadline_ms = 0;
	x->try_deadline_ms = 0;
	x->backing_off = false;
}
