/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio trafficPolicy (DestinationRule and subsets): loadBalancer, outlierDetection with Istio's defaults,
 * connectionPool, tls.mode. Ranges and rules follow Istio's own validation.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/fields.h"
#include "config/objects.h"
#include <xmesh/lb.h>

#define UINT32_FIELD_MAX 4294967295LL
#define INT32_FIELD_MAX	 2147483647LL
#define MAGLEV_TABLE_MAX ((long long)XM_MAGLEV_MAX_SIZE) /* the datapath's bound (Envoy allows 5000011) */

void config_outlier_defaults(struct xm_outlier_detection *od)
{
	bool set = od->set;

	memset(od, 0, sizeof(*od));
	od->consecutive_5xx_errors = 5;
	od->consecutive_local_origin_failures = 5;
	od->interval_ms = 10 * 1000;
	od->base_ejection_time_ms = 30 * 1000;
	od->max_ejection_percent = 10;
	od->min_health_percent = 0;
	od->set = set;
}

static bool is_prime(long long n)
{
	if (n < 2)
		return false;
	for (long long d = 2; d * d <= n; d++) {
		if (n % d == 0)
			return false;
	}
	return true;
}

/* RFC 6265 cookie-name: an RFC 9110 token, since the proxy writes it into Set-Cookie. */
static bool cookie_name_ok(const char *s)
{
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	}
	return true;
}

/* RFC 6265 path-value: any CHAR except CTLs or ';'. */
static bool cookie_path_ok(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == ';')
			return false;
	}
	return true;
}

static void parse_hash_key(struct obj_ctx *c, const struct ynode *ch, const char *prefix, struct xm_load_balancer *lb)
{
	const struct ynode *cookie, *maglev;
	char field[256];
	unsigned keys = 0;
	bool source_ip = false;
	long long size;

	char param[XM_NAME_MAX], path[XM_COOKIE_PATH_MAX], q[QUOTE_BUF];

	/* Each getter clears its buffer first: read into param, copy on success. */
	if (get_str(c, ch, "httpHeaderName", field_name(field, sizeof(field), prefix, "httpHeaderName"), param,
		    sizeof(param)) == FIELD_SET) {
		lb->hash_key = XM_DR_HASH_HTTP_HEADER;
		memcpy(lb->hash_param, param, sizeof(param));
		keys++;
	}
	cookie = get_map(c, ch, "httpCookie", field_name(field, sizeof(field), prefix, "httpCookie"));
	if (cookie) {
		char cookie_prefix[256];
		uint64_t ttl;

		field_name(cookie_prefix, sizeof(cookie_prefix), prefix, "httpCookie");
		keys++;
		lb->hash_key = XM_DR_HASH_HTTP_COOKIE;
		field_name(field, sizeof(field), cookie_prefix, "name");
		if (get_str(c, cookie, "name", field, param, sizeof(param)) == FIELD_SET && param[0]) {
			if (cookie_name_ok(param))
				memcpy(lb->hash_param, param, sizeof(param));
			else
				obj_error(c, ymap_get(cookie, "name", NULL),
					  "%s %s is not a cookie name (an HTTP token)", field, quoted(q, param));
		} else {
			obj_error(c, cookie, "%s.name is required", cookie_prefix);
		}
		field_name(field, sizeof(field), cookie_prefix, "path");
		if (get_str(c, cookie, "path", field, path, sizeof(path)) == FIELD_SET) {
			if (cookie_path_ok(path))
				memcpy(lb->cookie_path, path, sizeof(path));
			else
				obj_error(c, ymap_get(cookie, "path", NULL),
					  "%s %s may not hold control characters or ';' (RFC 6265 path-value)", field,
					  quoted(q, path));
		}
		if (get_duration(c, cookie, "ttl", field_name(field, sizeof(field), cookie_prefix, "ttl"), 0, &ttl) ==
		    FIELD_SET) {
			lb->cookie_ttl_ms = ttl;
			lb->cookie_ttl_set = true;
		}
	}
	if (get_bool(c, ch, "useSourceIp", field_name(field, sizeof(field), prefix, "useSourceIp"), &source_ip) ==
		FIELD_SET &&
	    source_ip) {
		lb->hash_key = XM_DR_HASH_SOURCE_IP;
		keys++;
	}
	if (get_str(c, ch, "httpQueryParameterName", field_name(field, sizeof(field), prefix, "httpQueryParameterName"),
		    param, sizeof(param)) == FIELD_SET) {
		lb->hash_key = XM_DR_HASH_QUERY_PARAMETER;
		memcpy(lb->hash_param, param, sizeof(param));
		keys++;
	}
	if (keys == 0)
		obj_error(c, ch,
			  "%s needs a hash key: useSourceIp, httpHeaderName, httpCookie or httpQueryParameterName",
			  prefix);
	else if (keys > 1)
		obj_error(c, ch, "%s: set only one of useSourceIp, httpHeaderName, httpCookie, httpQueryParameterName",
			  prefix);

	maglev = get_map(c, ch, "maglev", field_name(field, sizeof(field), prefix, "maglev"));
	field_name(field, sizeof(field), prefix, "maglev.tableSize");
	if (get_int(c, maglev, "tableSize", field, 1, MAGLEV_TABLE_MAX, &size) == FIELD_SET) {
		if (!is_prime(size))
			obj_error(c, ymap_get(maglev, "tableSize", NULL), "%s %lld must be a prime number", field,
				  size);
		else
			lb->maglev_table_size = (uint32_t)size;
	}
}

static void parse_load_balancer(struct obj_ctx *c, const struct ynode *lbn, const char *prefix,
				struct xm_load_balancer *lb)
{
	static const char *const names[] = { "UNSPECIFIED", "ROUND_ROBIN", "LEAST_REQUEST",
					     "LEAST_CONN",  "RANDOM",	   "PASSTHROUGH" };
	/* LEAST_CONN is Istio's deprecated alias of LEAST_REQUEST. */
	static const enum xm_dr_lb values[] = { XM_DR_LB_UNSET,		XM_DR_LB_ROUND_ROBIN, XM_DR_LB_LEAST_REQUEST,
						XM_DR_LB_LEAST_REQUEST, XM_DR_LB_RANDOM,      XM_DR_LB_PASSTHROUGH };
	char field[256], ch_prefix[256];
	const struct ynode *ch;
	size_t idx = 0;
	int r;

	lb->set = true;
	r = get_enum(c, lbn, "simple", field_name(field, sizeof(field), prefix, "simple"), names, 6, &idx);
	if (r == FIELD_SET)
		lb->simple = values[idx];
	field_name(ch_prefix, sizeof(ch_prefix), prefix, "consistentHash");
	ch = get_map(c, lbn, "consistentHash", ch_prefix);
	if (!ch)
		return;
	if (r != FIELD_ABSENT)
		obj_error(c, ch, "%s: set either simple or consistentHash, not both", prefix);
	lb->simple = XM_DR_LB_CONSISTENT_HASH;
	parse_hash_key(c, ch, ch_prefix, lb);
}

static void parse_outlier(struct obj_ctx *c, const struct ynode *odn, const char *prefix,
			  struct xm_outlier_detection *od)
{
	char field[256];
	long long v;

	od->set = true;
	if (get_int(c, odn, "consecutive5xxErrors", field_name(field, sizeof(field), prefix, "consecutive5xxErrors"), 0,
		    UINT32_FIELD_MAX, &v) == FIELD_SET)
		od->consecutive_5xx_errors = (uint32_t)v;
	if (get_int(c, odn, "consecutiveGatewayErrors",
		    field_name(field, sizeof(field), prefix, "consecutiveGatewayErrors"), 0, UINT32_FIELD_MAX,
		    &v) == FIELD_SET)
		od->consecutive_gateway_errors = (uint32_t)v;
	if (get_int(c, odn, "consecutiveLocalOriginFailures",
		    field_name(field, sizeof(field), prefix, "consecutiveLocalOriginFailures"), 0, UINT32_FIELD_MAX,
		    &v) == FIELD_SET)
		od->consecutive_local_origin_failures = (uint32_t)v;
	get_bool(c, odn, "splitExternalLocalOriginErrors",
		 field_name(field, sizeof(field), prefix, "splitExternalLocalOriginErrors"),
		 &od->split_external_local_origin_errors);
	get_duration(c, odn, "interval", field_name(field, sizeof(field), prefix, "interval"), 1, &od->interval_ms);
	get_duration(c, odn, "baseEjectionTime", field_name(field, sizeof(field), prefix, "baseEjectionTime"), 1,
		     &od->base_ejection_time_ms);
	if (get_int(c, odn, "maxEjectionPercent", field_name(field, sizeof(field), prefix, "maxEjectionPercent"), 0,
		    100, &v) == FIELD_SET)
		od->max_ejection_percent = (uint32_t)v;
	if (get_int(c, odn, "minHealthPercent", field_name(field, sizeof(field), prefix, "minHealthPercent"), 0, 100,
		    &v) == FIELD_SET)
		od->min_health_percent = (uint32_t)v;
}

static void pool_int(struct obj_ctx *c, const struct ynode *map, const char *prefix, const char *key, uint32_t *out)
{
	char field[256];
	long long v;

	if (get_int(c, map, key, field_name(field, sizeof(field), prefix, key), 0, INT32_FIELD_MAX, &v) == FIELD_SET)
		*out = (uint32_t)v;
}

static void unsupported(struct obj_ctx *c, const struct ynode *map, const char *prefix, const char *key,
			const char *why)
{
	const struct ynode *v = map ? ymap_get(map, key, NULL) : NULL;

	if (v && !ynode_is_null(v))
		obj_warn(c, v, "%s.%s %s: ignored", prefix, key, why);
}

static void parse_pool(struct obj_ctx *c, const struct ynode *pool, const char *prefix, struct xm_connection_pool *p)
{
	char tcp_prefix[256], http_prefix[256], field[256];
	const struct ynode *tcp, *http;

	p->set = true;
	field_name(tcp_prefix, sizeof(tcp_prefix), prefix, "tcp");
	field_name(http_prefix, sizeof(http_prefix), prefix, "http");
	tcp = get_map(c, pool, "tcp", tcp_prefix);
	http = get_map(c, pool, "http", http_prefix);
	pool_int(c, tcp, tcp_prefix, "maxConnections", &p->tcp_max_connections);
	get_duration(c, tcp, "connectTimeout", field_name(field, sizeof(field), tcp_prefix, "connectTimeout"), 1,
		     &p->tcp_connect_timeout_ms);
	pool_int(c, http, http_prefix, "http1MaxPendingRequests", &p->http1_max_pending_requests);
	pool_int(c, http, http_prefix, "http2MaxRequests", &p->http2_max_requests);
	pool_int(c, http, http_prefix, "maxRequestsPerConnection", &p->http_max_requests_per_conn);
	pool_int(c, http, http_prefix, "maxRetries", &p->http_max_retries);
	get_duration(c, http, "idleTimeout", field_name(field, sizeof(field), http_prefix, "idleTimeout"), 0,
		     &p->http_idle_timeout_ms);
	/* Istio requires at least 1 ms (a connection's age since it was established; Envoy's
	 * common_http_protocol_options.max_connection_duration). */
	/* Parsed by Istio, not honoured here: said so rather than silently ignored. */
	unsupported(c, tcp, tcp_prefix, "tcpKeepalive", "is not supported yet");
	unsupported(c, http, http_prefix, "maxConcurrentStreams", "is not supported (no HTTP/2 upstreams)");
	unsupported(c, http, http_prefix, "useClientProtocol", "is not supported (upstreams are HTTP/1.1)");
	get_duration(c, tcp, "idleTimeout", field_name(field, sizeof(field), tcp_prefix, "idleTimeout"), 0,
		     &p->tcp_idle_timeout_ms);
	get_duration(c, tcp, "maxConnectionDuration",
		     field_name(field, sizeof(field), tcp_prefix, "maxConnectionDuration"), 1,
		     &p->tcp_max_connection_duration_ms);
}

/* loadBalancer, outlierDetection, connectionPool and tls of tp into out (set parts only); how many were present. */
static int parse_policy_parts(struct obj_ctx *c, const struct ynode *tp, const char *prefix,
			      struct xm_traffic_policy *out)
{
	static const char *const tls_modes[] = { "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL" };
	static const enum xm_tls_mode tls_values[] = { XM_TLS_DISABLE, XM_TLS_SIMPLE, XM_TLS_MUTUAL,
						       XM_TLS_ISTIO_MUTUAL };
	char sub[256], field[256];
	const struct ynode *n;
	size_t idx;
	int parts = 0;

	n = get_map(c, tp, "loadBalancer", field_name(sub, sizeof(sub), prefix, "loadBalancer"));
	if (n) {
		parse_load_balancer(c, n, sub, &out->lb);
		parts++;
	}
	n = get_map(c, tp, "outlierDetection", field_name(sub, sizeof(sub), prefix, "outlierDetection"));
	if (n) {
		parse_outlier(c, n, sub, &out->outlier);
		parts++;
	}
	n = get_map(c, tp, "connectionPool", field_name(sub, sizeof(sub), prefix, "connectionPool"));
	if (n) {
		parse_pool(c, n, sub, &out->pool);
		parts++;
	}
	n = get_map(c, tp, "tls", field_name(sub, sizeof(sub), prefix, "tls"));
	if (n) {
		if (get_enum(c, n, "mode", field_name(field, sizeof(field), sub, "mode"), tls_modes, 4, &idx) ==
		    FIELD_SET)
			out->tls_mode = tls_values[idx];
		parts++;
	}
	return parts;
}

/* portLevelSettings: port.number required (1-65535), once per port, and at least one setting (Istio's rules). */
static void parse_port_level(struct obj_ctx *c, const struct ynode *tp, const char *prefix,
			     struct xm_traffic_policy *out)
{
	char seq_prefix[256], item_prefix[280], field[320];
	const struct ynode *seq = get_seq(c, tp, "portLevelSettings",
					  field_name(seq_prefix, sizeof(seq_prefix), prefix, "portLevelSettings"));

	for (size_t i = 0; seq && i < seq->n; i++) {
		const struct ynode *item = seq->kids[i], *port;
		struct xm_port_policy *pp;
		long long number = 0;
		char got[QUOTE_BUF + 16];

		snprintf(item_prefix, sizeof(item_prefix), "%s[%zu]", seq_prefix, i);
		if (!item || item->kind != YNODE_MAP) {
			obj_error(c, item, "%s: expected a mapping, got %s", item_prefix,
				  ynode_describe(item, got, sizeof(got)));
			continue;
		}
		pp = array_push(&out->ports, &out->n_ports, sizeof(*out->ports));
		if (!pp) {
			obj_error(c, seq, "out of memory");
			return;
		}
		pp->loc = obj_loc_of(c, item);
		config_outlier_defaults(&pp->policy.outlier);
		port = get_map(c, item, "port", field_name(field, sizeof(field), item_prefix, "port"));
		if (!port || get_int(c, port, "number", field_name(field, sizeof(field), item_prefix, "port.number"), 1,
				     65535, &number) == FIELD_ABSENT)
			obj_error(c, port ? port : item, "%s.port.number is required", item_prefix);
		pp->port = (uint16_t)number;
		if (!parse_policy_parts(c, item, item_prefix, &pp->policy))
			obj_error(c, item,
				  "%s needs at least one of loadBalancer, connectionPool, outlierDetection, tls",
				  item_prefix);
		for (size_t j = 0; pp->port && j + 1 < out->n_ports; j++)
			if (out->ports[j].port == pp->port) {
				obj_error(c, ymap_get(port, "number", NULL),
					  "%s: port %u has settings already (%s[%zu])", item_prefix, pp->port,
					  seq_prefix, j);
				break;
			}
	}
}

void parse_traffic_policy(struct obj_ctx *c, const struct ynode *tp, const char *prefix, struct xm_traffic_policy *out)
{
	memset(out, 0, sizeof(*out));
	config_outlier_defaults(&out->outlier);
	if (!tp)
		return;
	parse_policy_parts(c, tp, prefix, out);
	parse_port_level(c, tp, prefix, out);
}

/* tp's portLevelSettings entry for port, or NULL. */
static const struct xm_traffic_policy *port_entry(const struct xm_traffic_policy *tp, uint16_t port)
{
	for (size_t i = 0; tp && i < tp->n_ports; i++)
		if (tp->ports[i].port == port)
			return &tp->ports[i].policy;
	return NULL;
}

/* The parts of over that are set replace out's, whole (Istio replaces each message, never merges fields). */
static void lay_over(struct xm_traffic_policy *out, const struct xm_traffic_policy *over)
{
	if (over->lb.set)
		out->lb = over->lb;
	if (over->outlier.set)
		out->outlier = over->outlier;
	if (over->pool.set)
		out->pool = over->pool;
	if (over->tls_mode != XM_TLS_UNSET)
		out->tls_mode = over->tls_mode;
}

/* All four parts of over replace out's, the unset ones by Istio's defaults (a port entry inherits nothing). */
static void replace_all(struct xm_traffic_policy *out, const struct xm_traffic_policy *over)
{
	out->lb = over->lb;
	out->outlier = over->outlier; /* unset: Istio's defaults, set false (parse_port_level) */
	out->pool = over->pool;
	out->tls_mode = over->tls_mode;
}

/*
 * Istio's GetPortLevelTrafficPolicy and MergeSubsetTrafficPolicy: a portLevelSettings entry for the port stands
 * for its whole policy ("Traffic settings specified at the destination-level will not be inherited when
 * overridden by port-level settings, i.e. default values will be applied to fields omitted in port-level traffic
 * policies"); the subset's policy for the port then replaces the parts it sets, or all of them when it comes
 * from the subset's own port entry.
 */
void config_policy_merge(struct xm_traffic_policy *out, const struct xm_traffic_policy *dr,
			 const struct xm_traffic_policy *ss, uint16_t port)
{
	const struct xm_traffic_policy *entry;

	memset(out, 0, sizeof(*out));
	config_outlier_defaults(&out->outlier);
	if (dr) {
		entry = port_entry(dr, port);
		lay_over(out, entry ? entry : dr);
	}
	if (ss) {
		entry = port_entry(ss, port);
		if (entry)
			replace_all(out, entry);
		else
			lay_over(out, ss);
	}
	out->ports = NULL;
	out->n_ports = 0;
}
