/* SPDX-License-Identifier: Apache-2.0 */
/*
 * security.istio.io/v1 and v1beta1 PeerAuthentication: selector.matchLabels, mtls.mode, portLevelMtls and
 * metadata.creationTimestamp (the oldest of conflicting policies wins). Validation follows Istio's
 * (pkg/config/validation: ValidatePeerAuthentication): portLevelMtls needs a non-empty selector, must not be
 * empty when given, and no port is 0; selector keys and values carry no wildcard.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/fields.h"
#include "config/objects.h"

static const char *const mode_names[] = { "UNSET", "DISABLE", "PERMISSIVE", "STRICT" };

/* "2024-05-01T10:20:30Z", with optional fractional seconds and a "+hh:mm"/"-hh:mm" offset (RFC 3339). */
static int parse_rfc3339(const char *s, int64_t *out)
{
	struct tm tm;
	const char *p;
	int64_t t, off = 0;

	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if ((*p == 'Z' || *p == 'z') && !p[1]) {
		off = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int h = (p[1] - '0') * 10 + (p[2] - '0'), m = (p[4] - '0') * 10 + (p[5] - '0');

		if (p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' || p[4] < '0' || p[4] > '9' || p[5] < '0' ||
		    p[5] > '9' || h > 23 || m > 59)
			return -1;
		off = (int64_t)(h * 3600 + m * 60) * (*p == '+' ? 1 : -1);
	} else {
		return -1;
	}
	t = (int64_t)timegm(&tm);
	*out = t - off;
	return 0;
}

static void parse_created(struct obj_ctx *c, const struct ynode *metadata, struct xm_peer_authentication *pa)
{
	const struct ynode *n = map_value(c, metadata, "creationTimestamp");
	char buf[64], q[QUOTE_BUF];

	if (node_str(c, n, "metadata.creationTimestamp", buf, sizeof(buf)) != FIELD_SET)
		return;
	if (parse_rfc3339(buf, &pa->created))
		obj_error(c, n, "metadata.creationTimestamp %s is not an RFC 3339 time (2006-01-02T15:04:05Z)",
			  quoted(q, buf));
}

static void parse_selector(struct obj_ctx *c, const struct ynode *spec, struct xm_peer_authentication *pa)
{
	const struct ynode *sel = get_map(c, spec, "selector", "spec.selector");
	const struct ynode *labels = map_value(c, sel, "matchLabels");
	char q[QUOTE_BUF];

	get_labels(c, sel, "matchLabels", "spec.selector.matchLabels", &pa->selector, &pa->n_selector);
	for (size_t i = 0; i < pa->n_selector; i++) {
		const struct xm_label *l = &pa->selector[i];

		/* Istio's validateWorkloadSelector: a selector names labels exactly, never by wildcard. */
		if (strchr(l->key, '*') || strchr(l->value, '*'))
			obj_error(c, labels, "spec.selector.matchLabels[%s]: wildcard is not supported in selector",
				  quoted(q, l->key));
	}
}

static int port_cmp(const void *a, const void *b)
{
	const struct xm_port_mtls *x = a, *y = b;

	return (int)x->port - (int)y->port;
}

/* A decimal port number without sign or leading zero; -1 otherwise; values above 65535 as they are (to 999999). */
static long parse_port_key(const char *s)
{
	long v = 0;
	size_t n = strlen(s);

	if (!n || n > 6 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static void parse_port_level(struct obj_ctx *c, const struct ynode *spec, struct xm_peer_authentication *pa)
{
	const struct ynode *plm = get_map(c, spec, "portLevelMtls", "spec.portLevelMtls");
	char field[96];

	if (!plm)
		return;
	if (plm->n == 0) {
		obj_error(c, plm, "spec.portLevelMtls, if defined, must have at least one element");
		return;
	}
	if (!pa->n_selector)
		obj_error(
		    c, plm,
		    "spec.portLevelMtls: a mesh-wide or namespace-wide policy (no selector.matchLabels) cannot have "
		    "port-level mTLS");
	for (size_t i = 0; i + 1 < plm->n; i += 2) {
		const struct ynode *k = plm->kids[i], *v = plm->kids[i + 1];
		struct xm_port_mtls pm = { .loc = obj_loc_of(c, k) };
		struct xm_port_mtls *slot;
		char text[32], q[QUOTE_BUF];
		size_t idx = 0;
		long port;
		int r;

		/* kubectl prints the keys quoted ("8080":): JSON map keys are strings. Either spelling is a port. */
		r = node_str(c, k, "spec.portLevelMtls key", text, sizeof(text));
		if (r != FIELD_SET)
			continue;
		port = parse_port_key(text);
		if (port < 0) {
			obj_error(c, k, "spec.portLevelMtls: key %s is not a port number", quoted(q, text));
			continue;
		}
		if (port == 0) {
			obj_error(c, k, "spec.portLevelMtls: port cannot be 0");
			continue;
		}
		if (port > 65535) {
			obj_error(c, k, "spec.portLevelMtls: port %ld out of range 1-65535", port);
			continue;
		}
		pm.port = (uint16_t)port;
		snprintf(field, sizeof(field), "spec.portLevelMtls[%u]", pm.port);
		if (!v || v->kind != YNODE_MAP) {
			char got[QUOTE_BUF + 16];

			if (v && !ynode_is_null(v)) {
				obj_error(c, v, "%s: expected a mapping, got %s", field,
					  ynode_describe(v, got, sizeof(got)));
				continue;
			}
		} else {
			snprintf(field, sizeof(field), "spec.portLevelMtls[%u].mode", pm.port);
			if (get_enum(c, v, "mode", field, mode_names, 4, &idx) == FIELD_ERR)
				continue;
		}
		pm.mode = (enum xm_mtls_mode)idx;
		for (size_t j = 0; j < pa->n_ports; j++) {
			if (pa->ports[j].port == pm.port) {
				obj_error(c, k, "spec.portLevelMtls: port %u given twice (first at line %d)", pm.port,
					  pa->ports[j].loc.line);
				goto next;
			}
		}
		slot = array_push(&pa->ports, &pa->n_ports, sizeof(*pa->ports));
		if (!slot) {
			obj_error(c, k, "out of memory");
			return;
		}
		*slot = pm;
	next:;
	}
	if (pa->n_ports > 1)
		qsort(pa->ports, pa->n_ports, sizeof(*pa->ports), port_cmp);
}

void parse_peer_authentication(struct obj_ctx *c, const struct ynode *obj, const struct ynode *metadata)
{
	const struct ynode *spec = get_map(c, obj, "spec", NULL);
	const struct ynode *mtls = get_map(c, spec, "mtls", "spec.mtls");
	struct xm_peer_authentication pa = { .loc = c->loc };
	struct xm_peer_authentication *slot;
	size_t idx = 0;

	snprintf(pa.ns, sizeof(pa.ns), "%s", c->ns);
	snprintf(pa.name, sizeof(pa.name), "%s", c->name);
	parse_created(c, metadata, &pa);
	parse_selector(c, spec, &pa);
	if (get_enum(c, mtls, "mode", "spec.mtls.mode", mode_names, 4, &idx) == FIELD_SET)
		pa.mode = (enum xm_mtls_mode)idx;
	parse_port_level(c, spec, &pa);

	slot = array_push(&c->cfg->peer_auths, &c->cfg->n_peer_auths, sizeof(*c->cfg->peer_auths));
	if (!slot) {
		obj_error(c, NULL, "out of memory");
		peer_authentication_free(&pa);
		return;
	}
	*slot = pa;
}
