/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Retry decisions as Envoy's router makes them (router/retry_state_impl.cc, common/backoff_strategy.cc), pure
 * functions of a route's policy: what an attempt's outcome asks for, and the jittered backoff before a retry.
 * The exchange side (attempts, timers, counts) is l7/retry.c; docs/l7.md "Retries".
 */
#ifndef XMESH_L7_RETRY_H
#define XMESH_L7_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "l7/routes.h"

/* Request body bytes kept for a retry: one buffer's worth (Envoy keeps up to its per-request buffer limit). */
#define L7_RETRY_BODY_MAX (64 * 1024)

/* How an attempt ended. */
enum l7_retry_cause {
	L7_RETRY_CAUSE_CONNECT_FAILURE = 0, /* refused, unreachable, connectTimeout */
	L7_RETRY_CAUSE_RESET,		    /* the upstream closed or failed before a whole response head */
	L7_RETRY_CAUSE_PER_TRY_TIMEOUT,	    /* perTryTimeout fired before a response head */
	L7_RETRY_CAUSE_STATUS,		    /* a response head with this status */
};

/* Does the policy ask for a retry of this outcome (retries left and limits aside)? */
bool l7_retry_wanted(const struct l7_retry_policy *p, enum l7_retry_cause cause, uint16_t status);

/*
 * The backoff before retry number n (1: the first retry): uniform in [0, min(base * 2^(n-1), 10 * base)) ms,
 * Envoy's JitteredExponentialBackOffStrategy (25 ms base: 0-24, 0-49, 0-99, 0-199, then 0-249). rnd: a uniform
 * 64-bit draw.
 */
uint64_t l7_retry_backoff_ms(uint32_t base_ms, uint32_t n, uint64_t rnd);

/* retryOn as names and codes ("5xx,retriable-status-codes,503"), "" when none; truncated to cap. */
void l7_retry_on_format(const struct l7_retry_policy *p, char *buf, size_t cap);

#endif
