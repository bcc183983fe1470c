/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The request key consistentHash balances on, as Envoy's hash policies read it: a header's values, a cookie,
 * the client address or a query parameter; and the Set-Cookie header that issues a missing hash cookie.
 */
#ifndef XMESH_L7_BALANCE_KEY_H
#define XMESH_L7_BALANCE_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

#include "config/model.h"
#include "l7/routes.h"
#include "lb/hash.h"

/* Fixed, so that a key lands on the same endpoint on every worker, node and restart. */
#define L7_KEY_HASH_SEED 0x6c37u

static inline uint64_t l7_key_hash(const void *bytes, size_t len)
{
	return xm_hash64(bytes, len, L7_KEY_HASH_SEED);
}

/*
 * Hashes rq's key under lb's hash_key into *hash. Returns false when the request does not carry it (no such
 * header, cookie or parameter, an empty cookie, no client address): Envoy then balances at random.
 */
bool l7_balance_key_hash(const struct xm_load_balancer *lb, const struct l7_request_view *rq,
			 const union xm_addr *client, uint8_t family, uint64_t *hash);

/*
 * The Set-Cookie value that issues cookie `value` under lb's httpCookie, as Envoy writes it:
 * `name="value"; Max-Age=<ttl in seconds, left out when 0>; Path=<path, when set>; HttpOnly`.
 * Returns its length, or -ENOSPC when it does not fit in size bytes (out is then "").
 */
int l7_balance_set_cookie(const struct xm_load_balancer *lb, const char *value, char *out, size_t size);

#endif
