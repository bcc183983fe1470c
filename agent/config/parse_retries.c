// SPDX-License-Identifier: Apache-2.0
/*
 * VirtualService http[].retries (Istio's HTTPRetry): attempts, perTryTimeout, retryOn (Envoy's policy names and
 * bare status codes), retryRemoteLocalities, retryIgnorePreviousHosts and backoff, validated as Istio's
 * validateHTTPRetry does (pkg/config/validation/validation.go): negative attempts, a policy given with attempts
 * 0, a retryOn token that is neither a policy nor a known status code, durations under 1 ms.
 */
#include <stdio.h>
#include <string.h>

#include "config/objects.h"
#include "config/parse_retries.h"

static const struct {
	const char *name;
	uint32_t bit;
} policies[] = {
	{ "5xx", XM_RETRY_ON_5XX },
	{ "gateway-error", XM_RETRY_ON_GATEWAY_ERROR },
	{ "reset", XM_RETRY_ON_RESET },
	{ "reset-before-request", XM_RETRY_ON_RESET_BEFORE_REQUEST },
	{ "connect-failure", XM_RETRY_ON_CONNECT_FAILURE },
	{ "retriable-4xx", XM_RETRY_ON_RETRIABLE_4XX },
	{ "refused-stream", XM_RETRY_ON_REFUSED_STREAM },
	{ "retriable-status-codes", XM_RETRY_ON_RETRIABLE_STATUS },
	{ "retriable-headers", XM_RETRY_ON_RETRIABLE_HEADERS },
	{ "envoy-ratelimited", XM_RETRY_ON_ENVOY_RATELIMITED },
	{ "http3-post-connect-failure", XM_RETRY_ON_HTTP3_POST_CONNECT },
	{ "cancelled", XM_RETRY_ON_CANCELLED },
	{ "deadline-exceeded", XM_RETRY_ON_DEADLINE_EXCEEDED },
	{ "internal", XM_RETRY_ON_INTERNAL },
	{ "resource-exhausted", XM_RETRY_ON_RESOURCE_EXHAUSTED },
	{ "unavailable", XM_RETRY_ON_UNAVAILABLE },
};

/* The codes Go's http.StatusText names (net/http/status.go): what Istio accepts as a bare retryOn code. */
static bool go_status_known(long v)
{
	static const uint16_t known[] = {
		100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307,
		308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421,
		422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i] == v)
			return true;
	return false;
}

int config_retry_on_token(const char *s, size_t len, uint16_t *status)
{
	size_t i = 0;
	long v = 0;

	*status = 0;
	for (size_t k = 0; k < sizeof(policies) / sizeof(policies[0]); k++)
		if (strlen(policies[k].name) == len && !memcmp(policies[k].name, s, len))
			return (int)policies[k].bit;
	/* strconv.Atoi: an optional sign, then decimal digits only (no spaces). */
	if (len && (s[0] == '+' || s[0] == '-'))
		i = 1;
	if (i == len || len - i > 6)
		return -1;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (s[0] == '-' || !go_status_known(v))
		return -1;
	*status = (uint16_t)v;
	return 0;
}

static void parse_retry_on(struct obj_ctx *c, const struct ynode *v, const char *field, struct xm_http_retry *r)
{
	char text[1024], q[QUOTE_BUF];
	const char *p, *end, *comma;

	if (node_str(c, v, field, text, sizeof(text)) != FIELD_SET || !text[0])
		return;
	r->retry_on_set = true;
	p = text;
	end = text + strlen(text);
	for (;;) {
		size_t len;
		uint16_t status;
		int bit;
		char tok[64];

		comma = memchr(p, ',', (size_t)(end - p));
		len = (size_t)((comma ? comma : end) - p);
		bit = config_retry_on_token(p, len, &status);
		if (bit < 0) {
			snprintf(tok, sizeof(tok), "%.*s", (int)(len < sizeof(tok) - 1 ? len : sizeof(tok) - 1), p);
			obj_error(c, v, "%s: %s is not a valid retryOn policy", field, quoted(q, tok));
		} else if (status) {
			bool dup = false;

			for (uint8_t i = 0; i < r->n_statuses; i++)
				dup |= r->statuses[i] == status;
			if (!dup && r->n_statuses == XM_RETRY_STATUSES_MAX)
				obj_error(c, v, "%s: at most %d status codes are supported", field,
					  XM_RETRY_STATUSES_MAX);
			else if (!dup)
				r->statuses[r->n_statuses++] = status;
		} else {
			r->retry_on |= (uint32_t)bit;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
}

void parse_http_retries(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_retry *r)
{
	const struct ynode *v;
	char name[300];
	long long attempts = 0;

	if (!n || n->kind != YNODE_MAP) {
		obj_error(c, n, "%s: expected a mapping", field);
		return;
	}
	r->set = true;
	r->loc = obj_loc_of(c, n);
	v = map_value(c, n, "attempts");
	if (v && node_int(c, v, field_name(name, sizeof(name), field, "attempts"), -2147483648LL, 2147483647LL,
			  &attempts) == FIELD_SET) {
		if (attempts < 0)
			obj_error(c, v, "%s: attempts cannot be negative", field);
		else
			r->attempts = (uint32_t)attempts;
	}
	get_duration(c, n, "perTryTimeout", field_name(name, sizeof(name), field, "perTryTimeout"), 1,
		     &r->per_try_timeout_ms);
	v = map_value(c, n, "retryOn");
	if (v)
		parse_retry_on(c, v, field_name(name, sizeof(name), field, "retryOn"), r);
	get_bool(c, n, "retryRemoteLocalities", field_name(name, sizeof(name), field, "retryRemoteLocalities"),
		 &r->retry_remote_localities);
	if (get_bool(c, n, "retryIgnorePreviousHosts",
		     field_name(name, sizeof(name), field, "retryIgnorePreviousHosts"),
		     &r->ignore_previous_hosts) == FIELD_SET)
		r->ignore_previous_hosts_set = true;
	get_duration(c, n, "backoff", field_name(name, sizeof(name), field, "backoff"), 1, &r->backoff_ms);
	/* Istio: "http retry policy configured when attempts are set to 0 (disabled)". */
	if (!attempts && (r->per_try_timeout_ms || r->retry_on_set || map_value(c, n, "retryRemoteLocalities")))
		obj_error(c, n, "%s: a retry policy is configured while attempts is 0 (retries disabled)", field);
}
