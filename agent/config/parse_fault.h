/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VirtualService http[].fault: parsed into xm_http_fault, errors reported at their file:line:col.
 */
#ifndef XMESH_CONFIG_PARSE_FAULT_H
#define XMESH_CONFIG_PARSE_FAULT_H

#include "config/model.h"

struct obj_ctx;
struct ynode;

void parse_http_fault(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_fault *f);

#endif
