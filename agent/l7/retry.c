// SPDX-License-Identifier: Apache-2.0
/*
 * Retries of a forwarded request, as Envoy's router makes them for Istio (docs/l7.md "Retries"): a try that
 * failed in a way the route's retryOn names is abandoned (its upstream closed, never reused half-read), and after
 * a fully jittered exponential backoff on the exchange's timer the next try goes to an endpoint not tried yet
 * (Envoy's previous_hosts predicate, 5 selections), with the head (x-envoy-attempt-count: N) and the body kept so
 * far. Retries in flight per destination are bounded by connectionPool.http.maxRetries through the cluster's
 * shared L7_LOAD_RETRIES count: a slot is taken when a retry is scheduled and given back when that try's outcome
 * is known (Envoy's RetryStateImpl: retries().inc() in shouldRetry, dec() in resetRetry).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "l7/record.h"
#include "l7/worker.h"

/* Could the policy retry once body bytes have left (a retry needs them again)? Connect failures happen before. */
static bool retries_after_sending(const struct l7_retry_policy *p)
{
	return p->attempts &&
	       (p->per_try_timeout_ms ||
		(p->retry_on & (L7_RETRY_5XX | L7_RETRY_GATEWAY_ERROR | L7_RETRY_RESET | L7_RETRY_RETRIABLE_4XX)) ||
		((p->retry_on & L7_RETRY_RETRIABLE_STATUS) && p->n_statuses));
}

void l7_retry_begin(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;

	x->attempt = 1;
	x->keep_body = retries_after_sending(&x->route->retry) && !x->req_done;
}

static void slot_release(struct l7_exchange *x)
{
	if (!x->retry_slot)
		return;
	atomic_fetch_sub_explicit(&x->cluster->load->v[L7_LOAD_RETRIES], 1, memory_order_relaxed);
	x->retry_slot = false;
}

void l7_retry_end(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;

	slot_release(x);
	free(x->body);
	x->body = NULL;
	x->body_len = x->body_cap = x->body_resent = 0;
	x->backing_off = false;
	x->try_deadline_ms = 0;
}

void l7_retry_body_sent(struct l7_exchange *x, const char *p, uint32_t n)
{
	uint32_t cap;
	char *grown;

	if (!x->keep_body || !n)
		return;
	if ((uint64_t)x->body_len + n > L7_RETRY_BODY_MAX) {
		/* Envoy abandons the retry (retry_or_shadow_abandoned) when the body passes its buffer limit. */
		x->keep_body = false;
		x->body_too_big = true;
		free(x->body);
		x->body = NULL;
		x->body_len = x->body_cap = 0;
		return;
	}
	if (x->body_len + n > x->body_cap) {
		cap = x->body_cap ? x->body_cap : 4096;
		while (cap < x->body_len + n)
			cap *= 2;
		if (cap > L7_RETRY_BODY_MAX)
			cap = L7_RETRY_BODY_MAX;
		grown = realloc(x->body, cap);
		if (!grown) { /* out of memory: as if too big, without the blame */
			x->keep_body = false;
			x->body_too_big = true;
			return;
		}
		x->body = grown;
		x->body_cap = cap;
	}
	memcpy(x->body + x->body_len, p, n);
	x->body_len += n;
}

bool l7_retry_body_resend(struct l7_down *d, bool *pending)
{
	struct l7_exchange *x = &d->x;
	uint32_t n = x->body_len - x->body_resent, room = l7_buf_room(&x->up->out);

	if (!n) {
		*pending = false;
		return false;
	}
	n = n < room ? n : room;
	if (n) {
		memcpy(l7_buf_end(&x->up->out), x->body + x->body_resent, n);
		l7_buf_commit(&x->up->out, n);
		x->body_resent += n;
	}
	*pending = x->body_resent < x->body_len;
	return n > 0;
}

bool l7_retry_queue_head(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_up *up = x->up;
	static const char tail[] = "1\r\n\r\n"; /* "x-envoy-attempt-count: 1" ends the head (l7_rewrite_request) */
	char num[24];
	int k;

	if (x->attempt <= 1 || x->head_len < sizeof(tail) - 1 ||
	    memcmp(x->head + x->head_len - (sizeof(tail) - 1), tail, sizeof(tail) - 1))
		return l7_buf_append(&up->out, x->head, x->head_len);
	k = snprintf(num, sizeof(num), "%u\r\n\r\n", x->attempt);
	if (l7_buf_room(&up->out) < x->head_len - (sizeof(tail) - 1) + (uint32_t)k)
		return false;
	l7_buf_append(&up->out, x->head, x->head_len - (uint32_t)(sizeof(tail) - 1));
	l7_buf_append(&up->out, num, (uint32_t)k);
	return true;
}

void l7_retry_try_timer_start(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	uint64_t ms = x->route ? x->route->retry.per_try_timeout_ms : 0;

	if (!ms || x->try_deadline_ms || !x->req_done || !x->attempt || x->backing_off || x->resp_head_done)
		return;
	x->try_deadline_ms = loop_now_ms() + ms;
	if (!l7_exchange_timer_arm(d))
		x->try_deadline_ms = 0;
}

bool l7_retry_failed(struct l7_down *d, enum l7_retry_cause cause, uint16_t status)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	const struct l7_retry_policy *p;
	uint64_t max;

	if (!x->route || !x->cluster || !x->attempt || x->resp_head_done)
		return false;
	p = &x->route->retry;
	if (!l7_retry_wanted(p, cause, status))
		return false;
	slot_release(x); /* this retry's outcome is known (RetryStateImpl::resetRetry) */
	if (x->body_too_big) {
		atomic_fetch_add_explicit(&w->c.retry_body_too_big, 1, memory_order_relaxed);
		x->details = "retry_abandoned{request_body_too_large}";
		return false;
	}
	if (x->req_body_sent && !x->keep_body)
		return false; /* body bytes left that were not kept (the policy could not retry then) */
	if (x->attempt > p->attempts) {
		atomic_fetch_add_explicit(&w->c.retries_exhausted, 1, memory_order_relaxed);
		x->flags |= L7_RF_URX;
		return false;
	}
	max = x->cluster->policy.pool.http_max_retries ? x->cluster->policy.pool.http_max_retries : UINT32_MAX;
	if ((uint64_t)atomic_fetch_add_explicit(&x->cluster->load->v[L7_LOAD_RETRIES], 1, memory_order_relaxed) >=
	    max) {
		atomic_fetch_sub_explicit(&x->cluster->load->v[L7_LOAD_RETRIES], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->c.retry_overflows, 1, memory_order_relaxed);
		x->flags |= L7_RF_UO;
		return false;
	}
	x->retry_slot = true;
	x->backing_off = true;
	x->retry_due_ms = loop_now_ms() + l7_retry_backoff_ms(p->backoff_base_ms, x->attempt,
							      (uint64_t)l7_rng_below(&w->rng, UINT32_MAX));
	x->try_deadline_ms = 0;
	if (!l7_exchange_timer_arm(d)) {
		x->backing_off = false;
		slot_release(x);
		return false;
	}
	atomic_fetch_add_explicit(&w->c.retries, 1, memory_order_relaxed);
	/* The try is over: its connection closed (never pooled half-read), its endpoint remembered. */
	if (x->counted_active)
		l7_active_add(x->endpoint->id, -1);
	x->counted_active = false;
	if (x->up) {
		l7_up_close(x->up);
		x->up = NULL;
	}
	l7_admit_done(d); /* no upstream request while backing off: its connectionPool counts go back */
	if (x->n_tried < L7_RETRY_TRIED_MAX)
		x->tried[x->n_tried++] = x->endpoint->id;
	x->head_sent = false;
	x->resent = false;
	x->resp_started = false;
	x->status = 0;
	x->body_resent = 0;
	return true;
}

static bool tried(const struct l7_exchange *x, uint32_t id)
{
	for (uint8_t i = 0; i < x->n_tried; i++)
		if (x->tried[i] == id)
			return true;
	return false;
}

void l7_retry_fire(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;
	struct l7_worker *w = d->w;
	const struct l7_cluster *c = x->cluster;
	const struct l7_retry_policy *p = &x->route->retry;
	bool hashed = c->policy.lb.simple == XM_DR_LB_CONSISTENT_HASH;
	struct l7_pick pick = { .index = -1 };
	int chosen = -1;

	x->backing_off = false;
	x->attempt++;
	/*
	 * Istio drops the previous_hosts predicate for a hashed destination (DefaultConsistentHashPolicy) unless
	 * retryIgnorePreviousHosts says otherwise: the hash picks the same endpoint again, so it is kept.
	 */
	if ((hashed && !p->previous_hosts_set) || !p->previous_hosts) {
		if (hashed) {
			chosen = -2; /* keep x->endpoint */
		} else {
			l7_balance_pick(w->balancer, c, NULL, &d->peer, d->family, &pick);
			chosen = pick.index;
		}
	} else {
		for (int i = 0; i < L7_RETRY_HOST_SELECTION_ATTEMPTS; i++) {
			l7_balance_pick(w->balancer, c, NULL, &d->peer, d->family, &pick);
			if (pick.index < 0)
				break;
			chosen = pick.index; /* after the last selection, its host is taken even if tried */
			if (!tried(x, c->endpoints[pick.index]->id))
				break;
		}
	}
	if (chosen == -1) {
		l7_exchange_local_reply(d, 503, L7_RF_UH, NULL, "no healthy upstream", 19);
		return;
	}
	if (chosen >= 0) {
		x->endpoint = c->endpoints[chosen];
		x->endpoint_wl = c->endpoint_wl ? c->endpoint_wl[chosen] : NULL;
	}
	l7_exchange_connect(d);
}

void l7_retry_try_timeout(struct l7_down *d)
{
	struct l7_exchange *x = &d->x;

	x->try_deadline_ms = 0;
	if (x->resp_head_done || !x->up)
		return; /* the response started downstream: only the route timeout applies now (Envoy) */
	/* Envoy's LocalOriginTimeout: a local-origin failure when splitExternalLocalOriginErrors, else a 504. */
	if (x->cluster && x->cluster->svc && x->cluster->svc->outlier_on) {
		if (x->cluster->svc->outlier.split_external_local_origin_errors) {
			l7_report_connect_failed(d->w, x);
		} else {
			x->status = 504;
			l7_report_response(d->w, x);
			x->status = 0;
		}
	}
	if (l7_retry_failed(d, L7_RETRY_CAUSE_PER_TRY_TIMEOUT, 0))
		return;
	x->details = "upstream_per_try_timeout"; /* Envoy's %RESPONSE_CODE_DETAILS% */
	l7_exchange_local_reply(d, 504, L7_RF_UT, NULL, "upstream request timeout", 24);
}
