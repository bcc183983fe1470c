/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xmesh_authz_denied_total{namespace,pod,policy}: HBONE CONNECTs answered 401 by AuthorizationPolicy, by
 * destination pod and by the policy that denied ("NS/NAME" of a DENY policy, or "allow-not-matched" when ALLOW
 * policies applied and none matched: no k8s name holds a '/', so the two never clash). Written by the hbone
 * thread, read by the scrape; a mutex, since a denial is rare next to what it costs the client anyway.
 *
 * The same table, collected as xmesh_authz_closed_total{namespace,pod,policy}, counts the streams that were open
 * (or connecting to their pod) when an AuthorizationPolicy change denied them, and that were closed for it
 * (hbone_server_recheck): a CONNECT is counted in one family or the other, never both.
 */
#ifndef XMESH_METRICS_AUTHZ_DENIED_H
#define XMESH_METRICS_AUTHZ_DENIED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTHZ_DENIED_MAX_SERIES 4096
#define AUTHZ_DENIED_NO_ALLOW	"allow-not-matched"

struct xm_scrape;
struct denied_series;

/* Zeroed, with its lock initialised, is an empty table: nothing to free until the first denial. */
struct authz_denied {
	pthread_mutex_t lock;
	struct denied_series *items;
	size_t n, cap;
	uint64_t overflow, total;
};

/* After the last add and collect: frees the series, destroys the lock. */
void authz_denied_fini(struct authz_denied *d);
/*
 * One denial. Returns true when the series is new (the caller logs the first denial of each). Beyond
 * AUTHZ_DENIED_MAX_SERIES series, counted under namespace="", pod="", policy="overflow".
 */
bool authz_denied_add(struct authz_denied *d, const char *ns, const char *pod, const char *policy);
uint64_t authz_denied_total(struct authz_denied *d);
/* As xmesh_authz_denied_total. */
void authz_denied_collect(struct authz_denied *d, struct xm_scrape *sc);
/* As xmesh_authz_closed_total. */
void authz_closed_collect(struct authz_denied *d, struct xm_scrape *sc);

#endif
