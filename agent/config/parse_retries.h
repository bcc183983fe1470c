/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VirtualService http[].retries: parsed into xm_http_retry, with Istio's validation (validateHTTPRetry), errors
 * at their file:line:col.
 */
#ifndef XMESH_CONFIG_PARSE_RETRIES_H
#define XMESH_CONFIG_PARSE_RETRIES_H

#include <stddef.h>

#include "config/model.h"

struct obj_ctx;
struct ynode;

void parse_http_retries(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_retry *r);

/*
 * One retryOn token as Istio reads it (no trimming): a policy name (its XM_RETRY_ON_* bit, *status 0) or an HTTP
 * status code Go's net/http knows (bit 0, *status set). -1: neither, which Istio's validation rejects.
 */
int config_retry_on_token(const char *s, size_t len, uint16_t *status);

#endif
