// SPDX-License-Identifier: Apache-2.0
/*
 * VirtualService http[].fault (Istio's HTTPFaultInjection): delay.fixedDelay and abort.httpStatus, each applied
 * to percentage.value percent of requests (the deprecated integer percent too; 100 when neither is given).
 */
#include <stdio.h>
#include <stdlib.h>

#include "config/objects.h"
#include "config/parse_fault.h"

/* percentage.value (a double) or the deprecated integer percent, in 0..100; 100 when both are absent. */
static void parse_percentage(struct obj_ctx *c, const struct ynode *n, const char *field, double *out)
{
	const struct ynode *pct = get_map(c, n, "percentage", NULL);
	const struct ynode *legacy = map_value(c, n, "percent");
	char name[300];

	*out = 100;
	if (pct) {
		const struct ynode *v = map_value(c, pct, "value");
		char *end = NULL;
		double d;

		field_name(name, sizeof(name), field, "percentage.value");
		if (!v || v->kind != YNODE_SCALAR || !v->plain || !v->len || ((d = strtod(v->str, &end)), *end) ||
		    !(d >= 0 && d <= 100))
			obj_error(c, v ? v : pct, "%s: expected a number from 0 to 100", name);
		else
			*out = d;
	} else if (legacy) {
		long long v;

		if (node_int(c, legacy, field_name(name, sizeof(name), field, "percent"), 0, 100, &v) == FIELD_SET)
			*out = (double)v;
	}
}

void parse_http_fault(struct obj_ctx *c, const struct ynode *n, const char *field, struct xm_http_fault *f)
{
	const struct ynode *delay, *abort_;
	char name[300];

	if (!n || n->kind != YNODE_MAP) {
		obj_error(c, n, "%s: expected a mapping", field);
		return;
	}
	delay = get_map(c, n, "delay", field_name(name, sizeof(name), field, "delay"));
	abort_ = get_map(c, n, "abort", field_name(name, sizeof(name), field, "abort"));
	if (!delay && !abort_) {
		obj_error(c, n, "%s: one of delay or abort is required", field);
		return;
	}
	if (delay) {
		field_name(name, sizeof(name), field, "delay");
		if (!map_value(c, delay, "fixedDelay"))
			obj_error(c, delay, "%s.fixedDelay is required", name);
		else if (get_duration(c, delay, "fixedDelay", field_name(name, sizeof(name), field, "delay.fixedDelay"),
				      1, &f->delay_ms) == FIELD_SET)
			f->has_delay = true;
		parse_percentage(c, delay, field_name(name, sizeof(name), field, "delay"), &f->delay_percent);
	}
	if (abort_) {
		long long status;

		field_name(name, sizeof(name), field, "abort");
		if (!map_value(c, abort_, "httpStatus"))
			obj_error(c, abort_, "%s.httpStatus is required", name);
		else if (get_int(c, abort_, "httpStatus", field_name(name, sizeof(name), field, "abort.httpStatus"),
				 200, 599, &status) == FIELD_SET) {
			f->abort_status = (uint16_t)status;
			f->has_abort = true;
		}
		parse_percentage(c, abort_, field_name(name, sizeof(name), field, "abort"), &f->abort_percent);
	}
}
