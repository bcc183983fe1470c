// SPDX-License-Identifier: Apache-2.0
/* Label values of the HBONE counters, as the metrics collector will print them. */
#include "hbone/hbone.h"

const char *hbone_side_name(enum hbone_side side)
{
	return side == HBONE_SIDE_SERVER ? "server" : "client";
}

const char *hbone_hs_result_name(enum hbone_hs_result r)
{
	return r == HBONE_HS_SUCCESS ? "success" : "failure";
}

const char *hbone_refusal_name(enum hbone_refusal r)
{
	static const char *const names[HBONE_REFUSALS] = {
		[HBONE_REFUSED_BAD_REQUEST] = "bad_request",
		[HBONE_REFUSED_NOT_LOCAL] = "not_local",
		[HBONE_REFUSED_DENIED] = "denied",
		[HBONE_REFUSED_TARGET] = "target_unreachable",
		[HBONE_REFUSED_STREAM_LIMIT] = "stream_limit",
		[HBONE_REFUSED_HEADERS] = "headers_too_large",
		[HBONE_REFUSED_CONNECT_FAILED] = "connect_failed",
		[HBONE_REFUSED_STATUS] = "status",
	};

	return (unsigned)r < HBONE_REFUSALS ? names[r] : "unknown";
}

const char *hbone_retire_reason_name(enum hbone_retire_reason r)
{
	static const char *const names[HBONE_RETIRE_REASONS] = {
		[HBONE_RETIRED_OWN_CERT] = "own_certificate_replaced",
		[HBONE_RETIRED_PEER_UNTRUSTED] = "peer_untrusted",
	};

	return (unsigned)r < HBONE_RETIRE_REASONS ? names[r] : "unknown";
}
