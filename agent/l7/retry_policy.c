// SPDX-License-Identifier: Apache-2.0
/*
 * The pure side of retries (l7/retry.h): Envoy's retry conditions for an HTTP/1.1 upstream and its fully
 * jittered exponential backoff.
 */
#include <stdio.h>
#include <string.h>

#include "l7/retry.h"

static bool status_listed(const struct l7_retry_policy *p, uint16_t status)
{
	for (uint8_t i = 0; i < p->n_statuses; i++)
		if (p->statuses[i] == status)
			return true;
	return false;
}

bool l7_retry_wanted(const struct l7_retry_policy *p, enum l7_retry_cause cause, uint16_t status)
{
	uint32_t on = p->retry_on;

	if (!p->attempts)
		return false;
	switch (cause) {
	case L7_RETRY_CAUSE_CONNECT_FAILURE:
		/* wouldRetryFromReset: reset, 5xx and gateway-error count a failed connect as well. Nothing was sent:
		 * reset-before-request too. */
		return on & (L7_RETRY_CONNECT_FAILURE | L7_RETRY_RESET | L7_RETRY_5XX | L7_RETRY_GATEWAY_ERROR |
			     L7_RETRY_RESET_BEFORE_REQUEST);
	case L7_RETRY_CAUSE_RESET:
		return on & (L7_RETRY_RESET | L7_RETRY_5XX | L7_RETRY_GATEWAY_ERROR);
	case L7_RETRY_CAUSE_PER_TRY_TIMEOUT:
		/* onPerTryTimeout resets the stream (LocalReset): retried under reset, 5xx and gateway-error. */
		return on & (L7_RETRY_RESET | L7_RETRY_5XX | L7_RETRY_GATEWAY_ERROR);
	case L7_RETRY_CAUSE_STATUS:
		if ((on & L7_RETRY_5XX) && status >= 500 && status <= 599)
			return true;
		if ((on & L7_RETRY_GATEWAY_ERROR) && (status == 502 || status == 503 || status == 504))
			return true;
		if ((on & L7_RETRY_RETRIABLE_4XX) && status == 409)
			return true;
		return (on & L7_RETRY_RETRIABLE_STATUS) && status_listed(p, status);
	}
	return false;
}

uint64_t l7_retry_backoff_ms(uint32_t base_ms, uint32_t n, uint64_t rnd)
{
	uint64_t base = base_ms ? base_ms : L7_RETRY_BACKOFF_BASE_MS;
	uint64_t cap = base * 10, interval = base;

	for (uint32_t i = 1; i < n && interval < cap; i++)
		interval *= 2;
	if (interval > cap)
		interval = cap;
	return rnd % interval;
}

void l7_retry_on_format(const struct l7_retry_policy *p, char *buf, size_t cap)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{ L7_RETRY_5XX, "5xx" },
		{ L7_RETRY_GATEWAY_ERROR, "gateway-error" },
		{ L7_RETRY_RESET, "reset" },
		{ L7_RETRY_RESET_BEFORE_REQUEST, "reset-before-request" },
		{ L7_RETRY_CONNECT_FAILURE, "connect-failure" },
		{ L7_RETRY_RETRIABLE_4XX, "retriable-4xx" },
		{ L7_RETRY_REFUSED_STREAM, "refused-stream" },
		{ XM_RETRY_ON_RETRIABLE_HEADERS, "retriable-headers" },
		{ XM_RETRY_ON_ENVOY_RATELIMITED, "envoy-ratelimited" },
		{ XM_RETRY_ON_HTTP3_POST_CONNECT, "http3-post-connect-failure" },
		{ L7_RETRY_UNAVAILABLE, "unavailable" },
		{ L7_RETRY_CANCELLED, "cancelled" },
		{ L7_RETRY_DEADLINE_EXCEEDED, "deadline-exceeded" },
		{ L7_RETRY_RESOURCE_EXHAUSTED, "resource-exhausted" },
		{ L7_RETRY_INTERNAL, "internal" },
		{ L7_RETRY_RETRIABLE_STATUS, "retriable-status-codes" },
	};
	size_t n = 0;
	int k;

	if (!cap)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < cap; i++) {
		if (!(p->retry_on & names[i].bit))
			continue;
		k = snprintf(buf + n, cap - n, "%s%s", n ? "," : "", names[i].name);
		n += k > 0 ? (size_t)k : 0;
	}
	for (uint8_t i = 0; i < p->n_statuses && n < cap; i++) {
		k = snprintf(buf + n, cap - n, "%s%u", n ? "," : "", p->statuses[i]);
		n += k > 0 ? (size_t)k : 0;
	}
}
