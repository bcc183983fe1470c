/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-request load balancing over an L7 cluster's endpoints with the DestinationRule's algorithm (Envoy's
 * semantics): ROUND_ROBIN, RANDOM, LEAST_REQUEST (power of two choices over active requests), and
 * consistentHash on a header, a cookie (issued when absent), the source IP or a query parameter (a Maglev
 * table, as the kernel's; Istio's default would be a ring hash). Each worker owns one l7_balancer: no locks on
 * the request path. docs/l7.md ("Per-request load balancing") lists the choices and where they differ from Envoy.
 */
#ifndef XMESH_L7_BALANCE_H
#define XMESH_L7_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

#include "l7/routes.h"

/* Active requests per backend id, shared by every worker (atomic adds): LEAST_REQUEST's view. */
void l7_active_add(uint32_t backend_id, int delta);
uint32_t l7_active_get(uint32_t backend_id);
/* Whether picks in c read the active counts (LEAST_REQUEST, Istio's default): only then are they kept. */
bool l7_balance_counts_active(const struct l7_cluster *c);

/*
 * Is this endpoint ejected right now (the kernel's outlier state)? Set by the proxy; NULL: never. Asked only
 * for a cluster whose service has outlier detection on (svc->outlier_on: nothing else is ever ejected), and
 * at most once per endpoint and pick.
 */
typedef bool (*l7_ejected_fn)(void *ctx, uint32_t svc_id, uint32_t backend_id);

struct l7_balancer; /* per worker: round-robin cursors, random state, cached Maglev tables */

/* seed: the worker's random sequence (RANDOM, LEAST_REQUEST draws, issued cookies). NULL when out of memory. */
struct l7_balancer *l7_balancer_new(uint64_t seed, l7_ejected_fn ejected, void *ejected_ctx);
void l7_balancer_free(struct l7_balancer *b);
/*
 * A new snapshot is in force: drop state keyed by the old one's clusters (call it before the first pick on
 * the new snapshot). A cluster's Maglev table is rebuilt by its first hashed pick afterwards (a few ms at
 * 65537 slots).
 */
void l7_balancer_reset(struct l7_balancer *b);

struct l7_pick {
	int index;	      /* into cluster->endpoints; -1: no endpoint, or all ejected (503 UH) */
	char set_cookie[512]; /* a Set-Cookie header value to add to the response, "" when none */
};

/*
 * Picks an endpoint for rq from c (client, family: the downstream address, for useSourceIp; rq and client may
 * be NULL, and a missing hash key balances at random, as in Envoy). Never an ejected endpoint while a healthy
 * one exists, unless fewer than outlierDetection.minHealthPercent are healthy (Envoy's panic routing; Istio's
 * default 0 turns it off).
 */
void l7_balance_pick(struct l7_balancer *b, const struct l7_cluster *c, const struct l7_request_view *rq,
		     const union xm_addr *client, uint8_t family, struct l7_pick *out);

#endif
