/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The config model: the Kubernetes and Istio objects xmesh uses (DESIGN.md §4), as parsed from YAML.
 * Produced by config_load(), consumed by compile/. Every object remembers where it came from (file:line:col).
 */
#ifndef XMESH_CONFIG_MODEL_H
#define XMESH_CONFIG_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XM_NAME_MAX	   254 /* DNS subdomain names are at most 253 characters */
#define XM_COOKIE_PATH_MAX 160 /* httpCookie.path: a Set-Cookie with name, value, Max-Age and Path fits 512 bytes */
#define XM_LABEL_MAX	   320 /* label keys (prefix/name) and values */

struct xm_loc {
	const char *file; /* owned by the config (interned) */
	int line;	  /* 1-based */
	int col;	  /* 1-based */
};

struct xm_ip {
	uint8_t family;	   /* 4 or 6 */
	uint8_t bytes[16]; /* network order; IPv4 in bytes[0..3] */
};

struct xm_label {
	char key[XM_LABEL_MAX];
	char value[XM_LABEL_MAX];
};

struct xm_service_port {
	char name[64]; /* "" when the Service has a single unnamed port */
	uint16_t port;
	uint16_t target_port;	   /* 0 when the targetPort is a name */
	char target_port_name[64]; /* a named targetPort (resolved through EndpointSlice ports) */
	uint8_t proto;		   /* 6 TCP, 17 UDP, 132 SCTP */
	char app_protocol[64];	   /* spec.ports[].appProtocol, "" when absent */
	struct xm_loc loc;
	struct xm_loc app_protocol_loc; /* the appProtocol value (loc when absent) */
	/* Set by validation: served by the L7 proxy (Istio's protocol selection, config_port_protocol). */
	bool http;
};

struct xm_service {
	char ns[64];
	char name[XM_NAME_MAX];
	struct xm_ip *cluster_ips; /* spec.clusterIPs (or spec.clusterIP); "None" is headless: none here */
	size_t n_cluster_ips;
	bool headless;
	struct xm_ip *external_ips; /* spec.externalIPs + status.loadBalancer.ingress[].ip */
	size_t n_external_ips;
	struct xm_service_port *ports;
	size_t n_ports;
	bool session_affinity_client_ip;
	struct xm_loc loc;
	/* Set by validation: the first DestinationRule (namespace/name order) whose host is this Service, and
	 * where its EndpointSlices are (cfg->slices[slices_first .. slices_first + n_slices)). */
	const struct xm_destination_rule *rule;
	size_t slices_first, n_slices;
};

struct xm_endpoint {
	struct xm_ip *addrs;
	size_t n_addrs;
	bool ready; /* conditions.ready; absent means ready (Kubernetes' rule) */
	char node_name[XM_NAME_MAX];
	char target_ns[64]; /* targetRef of kind Pod, "" when absent */
	char target_name[XM_NAME_MAX];
	struct xm_loc loc;
};

struct xm_endpoint_port {
	char name[64];
	uint16_t port;
	uint8_t proto;
	struct xm_loc loc;
};

struct xm_endpoint_slice {
	char ns[64];
	char name[XM_NAME_MAX];
	char service_name[XM_NAME_MAX]; /* label kubernetes.io/service-name */
	uint8_t address_family;		/* 4, 6, or 0 for FQDN (ignored) */
	struct xm_endpoint *endpoints;
	size_t n_endpoints;
	struct xm_endpoint_port *ports;
	size_t n_ports;
	struct xm_loc loc;
};

struct xm_pod {
	char ns[64];
	char name[XM_NAME_MAX];
	struct xm_label *labels;
	size_t n_labels;
	char service_account[XM_NAME_MAX]; /* "default" when absent */
	char node_name[XM_NAME_MAX];
	struct xm_ip *ips; /* status.podIPs (or status.podIP) */
	size_t n_ips;
	struct xm_loc loc;
};

struct xm_node {
	char name[XM_NAME_MAX];
	struct xm_ip *internal_ips; /* status.addresses[type=InternalIP] */
	size_t n_internal_ips;
	/* Locality, as istiod reads it: labels topology.kubernetes.io/region and /zone; "" when absent. */
	char region[XM_LABEL_MAX];
	char zone[XM_LABEL_MAX];
	struct xm_loc loc;
};

enum xm_dr_lb {
	XM_DR_LB_UNSET = 0, /* no loadBalancer: Istio's default, LEAST_REQUEST */
	XM_DR_LB_ROUND_ROBIN,
	XM_DR_LB_LEAST_REQUEST,
	XM_DR_LB_RANDOM,
	XM_DR_LB_PASSTHROUGH,
	XM_DR_LB_CONSISTENT_HASH,
};

enum xm_dr_hash_key {
	XM_DR_HASH_NONE = 0,
	XM_DR_HASH_SOURCE_IP,	    /* useSourceIp: true */
	XM_DR_HASH_HTTP_HEADER,	    /* httpHeaderName (L7 only) */
	XM_DR_HASH_HTTP_COOKIE,	    /* httpCookie (L7 only) */
	XM_DR_HASH_QUERY_PARAMETER, /* httpQueryParameterName (L7 only) */
};

struct xm_load_balancer {
	enum xm_dr_lb simple; /* or XM_DR_LB_CONSISTENT_HASH */
	enum xm_dr_hash_key hash_key;
	char hash_param[XM_NAME_MAX]; /* header/cookie/parameter name */
	uint32_t maglev_table_size;   /* consistentHash.maglev.tableSize, 0 = unset */
	/* httpCookie.path and .ttl: with a ttl, the proxy issues the cookie to a request that lacks it (a ttl of
	 * 0 makes it a session cookie); without one, such a request is balanced at random (Envoy). */
	char cookie_path[XM_COOKIE_PATH_MAX]; /* "" when absent */
	uint64_t cookie_ttl_ms;
	bool cookie_ttl_set;
	bool set;
};

/* Istio's defaults are filled in when the field is absent (see config_outlier_defaults). */
struct xm_outlier_detection {
	uint32_t consecutive_5xx_errors;	    /* default 5 */
	uint32_t consecutive_gateway_errors;	    /* default 0 (off) */
	uint32_t consecutive_local_origin_failures; /* default 5 */
	bool split_external_local_origin_errors;    /* default false */
	uint64_t interval_ms;			    /* default 10s */
	uint64_t base_ejection_time_ms;		    /* default 30s */
	uint32_t max_ejection_percent;		    /* default 10 */
	uint32_t min_health_percent;		    /* default 0 */
	bool set;
};

struct xm_connection_pool {
	uint32_t tcp_max_connections;		 /* 0 = unset */
	uint64_t tcp_connect_timeout_ms;	 /* 0 = unset */
	uint32_t http1_max_pending_requests;	 /* 0 = unset */
	uint32_t http2_max_requests;		 /* 0 = unset */
	uint32_t http_max_requests_per_conn;	 /* 0 = unset */
	uint32_t http_max_retries;		 /* 0 = unset */
	uint64_t http_idle_timeout_ms;		 /* 0 = unset */
	uint64_t tcp_max_connection_duration_ms; /* 0 = unset (no limit) */
	uint64_t tcp_idle_timeout_ms;		 /* 0 = unset; http.idleTimeout wins when both are set (Istio) */
	bool set;
};

enum xm_tls_mode {
	XM_TLS_UNSET = 0,
	XM_TLS_DISABLE,
	XM_TLS_SIMPLE,
	XM_TLS_MUTUAL,
	XM_TLS_ISTIO_MUTUAL,
};

struct xm_port_policy;

struct xm_traffic_policy {
	struct xm_load_balancer lb;
	struct xm_outlier_detection outlier;
	struct xm_connection_pool pool;
	enum xm_tls_mode tls_mode;
	/* portLevelSettings: owned by the DestinationRule (or subset) that parsed them; a merged copy has none. */
	struct xm_port_policy *ports;
	size_t n_ports;
};

/* One portLevelSettings entry: the parts it sets override the policy it belongs to, for that port. */
struct xm_port_policy {
	uint16_t port;			 /* port.number */
	struct xm_traffic_policy policy; /* set parts only (lb.set, outlier.set, pool.set, tls_mode); no ports */
	struct xm_loc loc;
};

struct xm_subset {
	char name[64];
	struct xm_label *labels;
	size_t n_labels;
	struct xm_traffic_policy policy; /* subset-level override, fields unset when absent */
	struct xm_loc loc;
};

struct xm_destination_rule {
	char ns[64];
	char name[XM_NAME_MAX];
	char host[XM_NAME_MAX]; /* as written */
	char host_ns[64];	/* resolved: the Service it names */
	char host_name[XM_NAME_MAX];
	struct xm_traffic_policy policy;
	struct xm_subset *subsets;
	size_t n_subsets;
	struct xm_loc loc;
	struct xm_loc host_loc;
};

/* Istio's StringMatch (exact, prefix, regex); value is NULL when kind is NONE. */
enum xm_match_kind {
	XM_MATCH_NONE = 0, /* absent, or {} (a header's presence) */
	XM_MATCH_EXACT,
	XM_MATCH_PREFIX,
	XM_MATCH_REGEX,
};

struct xm_string_match {
	enum xm_match_kind kind;
	char *value;
	struct xm_loc loc; /* the value (the match's mapping when none) */
};

/* headers, withoutHeaders, queryParams: a name and its StringMatch. */
struct xm_kv_match {
	char *name; /* header names are lowercased */
	struct xm_string_match m;
	struct xm_loc loc;
};

/* One HTTPMatchRequest: every field given must match. */
struct xm_http_match {
	char *name;
	struct xm_string_match uri, scheme, method, authority;
	struct xm_kv_match *headers, *without_headers, *query_params;
	size_t n_headers, n_without_headers, n_query_params;
	uint16_t port; /* 0: any */
	struct xm_label *source_labels;
	size_t n_source_labels;
	char *source_namespace; /* NULL: any */
	bool ignore_uri_case;
	struct xm_loc loc;
};

struct xm_header_op {
	char *name;
	char *value; /* NULL for remove */
};

/* Headers: request and response, each set/add/remove. */
struct xm_http_headers {
	struct xm_header_op *req_set, *req_add, *resp_set, *resp_add;
	size_t n_req_set, n_req_add, n_resp_set, n_resp_add;
	char **req_remove, **resp_remove;
	size_t n_req_remove, n_resp_remove;
};

/* Destination: host (as written), subset, port.number. */
struct xm_http_destination {
	char host[XM_NAME_MAX];
	char subset[64];
	uint16_t port; /* 0: the Service's only port, or the port the client dialed */
	struct xm_loc loc, host_loc, subset_loc;
};

struct xm_http_route_dest {
	struct xm_http_destination dest;
	int32_t weight; /* 0 when absent */
	bool weight_set;
	struct xm_http_headers headers;
	struct xm_loc loc, weight_loc;
};

/* HTTPFaultInjection: a delay and/or an abort, each on a percentage of requests (100 when absent). */
struct xm_http_fault {
	bool has_delay, has_abort;
	uint64_t delay_ms;     /* delay.fixedDelay */
	double delay_percent;  /* delay.percentage.value, or the deprecated integer delay.percent */
	uint16_t abort_status; /* abort.httpStatus, 200..599 */
	double abort_percent;  /* abort.percentage.value, or the deprecated integer abort.percent */
};

/*
 * retryOn conditions (Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on names, as Istio passes them through);
 * l7/routes.h names them L7_RETRY_*.
 */
#define XM_RETRY_ON_5XX			 0x0001
#define XM_RETRY_ON_GATEWAY_ERROR	 0x0002
#define XM_RETRY_ON_RESET		 0x0004
#define XM_RETRY_ON_CONNECT_FAILURE	 0x0008
#define XM_RETRY_ON_RETRIABLE_4XX	 0x0010
#define XM_RETRY_ON_REFUSED_STREAM	 0x0020
#define XM_RETRY_ON_RETRIABLE_STATUS	 0x0040
#define XM_RETRY_ON_UNAVAILABLE		 0x0080
#define XM_RETRY_ON_CANCELLED		 0x0100
#define XM_RETRY_ON_DEADLINE_EXCEEDED	 0x0200
#define XM_RETRY_ON_RESOURCE_EXHAUSTED	 0x0400
#define XM_RETRY_ON_INTERNAL		 0x0800
#define XM_RETRY_ON_RESET_BEFORE_REQUEST 0x1000
#define XM_RETRY_ON_RETRIABLE_HEADERS	 0x2000 /* accepted; Istio cannot give the headers: never fires */
#define XM_RETRY_ON_ENVOY_RATELIMITED	 0x4000 /* accepted; only Envoy's rate-limit service sets its header */
#define XM_RETRY_ON_HTTP3_POST_CONNECT	 0x8000 /* accepted; no HTTP/3 here */
#define XM_RETRY_STATUSES_MAX		 16

/* VirtualService http[].retries (Istio's HTTPRetry) as written; Istio's conversion is l7/routes_build.c's. */
struct xm_http_retry {
	bool set;				  /* a retries block was given */
	uint32_t attempts;			  /* 0: retries off */
	uint64_t per_try_timeout_ms;		  /* 0: absent */
	bool retry_on_set;			  /* a non-empty retryOn */
	uint32_t retry_on;			  /* XM_RETRY_ON_* of its policy names */
	uint16_t statuses[XM_RETRY_STATUSES_MAX]; /* its bare status codes */
	uint8_t n_statuses;
	bool retry_remote_localities;
	bool ignore_previous_hosts_set, ignore_previous_hosts; /* retryIgnorePreviousHosts */
	uint64_t backoff_ms;				       /* backoff (the base interval), 0: absent */
	struct xm_loc loc;
};

struct xm_http_route {
	char *name;
	struct xm_http_match *matches; /* OR; none matches everything */
	size_t n_matches;
	struct xm_http_route_dest *route;
	size_t n_route;
	bool has_redirect;
	char *redirect_uri, *redirect_authority, *redirect_scheme; /* NULL: keep the request's */
	uint16_t redirect_port;					   /* 0: keep */
	uint16_t redirect_code;					   /* 301 when absent */
	struct xm_loc redirect_loc, redirect_code_loc;
	bool has_direct_response;
	uint16_t direct_status;
	char *direct_body; /* body.string, NULL: empty */
	struct xm_loc direct_loc, direct_status_loc;
	char *rewrite_uri, *rewrite_authority;
	bool has_mirror;
	struct xm_http_destination mirror;
	double mirror_percent; /* 100 when mirror is set without mirrorPercentage/mirror_percent */
	struct xm_http_headers headers;
	uint64_t timeout_ms; /* 0: none */
	struct xm_http_fault fault;
	struct xm_http_retry retries;
	struct xm_loc loc;
};

/* networking.istio.io VirtualService. */
struct xm_virtual_service {
	char ns[64];
	char name[XM_NAME_MAX];
	char **hosts; /* as written */
	struct xm_loc *host_locs;
	size_t n_hosts;
	bool mesh; /* gateways absent or naming "mesh": the routes apply to sidecar (our) traffic */
	struct xm_http_route *http;
	size_t n_http;
	struct xm_loc loc;
};

struct xm_envoy_filter;
struct xm_authz_policy;
/* security.istio.io PeerAuthentication: mtls.mode of the policy and of its listed ports. */
enum xm_mtls_mode {
	XM_MTLS_UNSET = 0, /* absent or UNSET: inherit from the parent scope */
	XM_MTLS_DISABLE,
	XM_MTLS_PERMISSIVE,
	XM_MTLS_STRICT,
};

struct xm_port_mtls {
	uint16_t port; /* a container port of the selected workloads, 1-65535 */
	enum xm_mtls_mode mode;
	struct xm_loc loc;
};

struct xm_peer_authentication {
	char ns[64];
	char name[XM_NAME_MAX];
	struct xm_label *selector; /* selector.matchLabels; none: namespace-wide (mesh-wide in the root ns) */
	size_t n_selector;
	enum xm_mtls_mode mode;	    /* mtls.mode */
	struct xm_port_mtls *ports; /* portLevelMtls, sorted by port */
	size_t n_ports;
	int64_t created; /* metadata.creationTimestamp, Unix seconds; 0 when absent (sorts first, as Go's zero time) */
	struct xm_loc loc;
};

struct xm_config {
	struct xm_service *services;
	size_t n_services;
	struct xm_endpoint_slice *slices;
	size_t n_slices;
	struct xm_pod *pods;
	size_t n_pods;
	struct xm_node *nodes;
	size_t n_nodes;
	struct xm_destination_rule *rules;
	size_t n_rules;
	struct xm_virtual_service *virtual_services;
	size_t n_virtual_services;
	struct xm_envoy_filter *envoy_filters; /* config/envoy_filter.h */
	size_t n_envoy_filters;
	struct xm_peer_authentication *peer_auths;
	size_t n_peer_auths;
	struct xm_authz_policy *authz_policies; /* config/authz_policy.h */
	size_t n_authz_policies;
	char **files; /* interned file names that xm_loc.file points into */
	size_t n_files;
	/*
	 * Set by validation: slices are sorted by namespace, service name, name (config_slices_of finds a
	 * Service's in O(log n)) and every Service's rule is resolved. Configs built by hand are scanned.
	 */
	bool indexed;
	/* The objects' own arrays and the file names belong to a config cache: config_free leaves them. */
	bool borrowed;
};

struct xm_diag {
	struct xm_loc loc;
	bool warning;  /* printed as "warning: ..." and not counted as an error */
	char msg[512]; /* "service default/reviews: port 9080: targetPort missing" */
};

struct xm_diags {
	struct xm_diag *items;
	size_t n;
};

/*
 * Read every path (a YAML file, or a directory whose .yaml and .yml files are read in name order), parse
 * the objects, validate them and their references. Returns 0 when there is no error, -EINVAL when diags
 * holds at least one, another negative errno on I/O failure (also reported in diags).
 */
int config_load(const char *const *paths, size_t n_paths, struct xm_config *cfg, struct xm_diags *diags);

/*
 * The same, reusing the objects of files that did not change since the last call with this cache (same
 * path, device, inode, size, modification and change times; a file modified within the second before it
 * was read is read again): a reload parses only what changed. The
 * result borrows those objects from the cache: free it (config_free) before the cache's next load.
 */
struct xm_config_cache;
struct xm_config_cache *config_cache_new(void);
void config_cache_free(struct xm_config_cache *cache);
int config_load_cached(struct xm_config_cache *cache, const char *const *paths, size_t n_paths, struct xm_config *cfg,
		       struct xm_diags *diags);

/*
 * One object from the Kubernetes API (a list's item or a watch event's object) parsed into cfg (zeroed first)
 * as a file named `name` would be: kind and apiVersion default to the given ones (list items carry neither).
 * Its errors go to diags and are counted in *n_errors; no cross-object validation. 0 or -ENOMEM.
 */
struct ynode;
int config_parse_object(const struct ynode *obj, const char *kind, const char *api_version, const char *name,
			struct xm_config *cfg, struct xm_diags *diags, int *n_errors);

/* Free everything config_load allocated; both may be passed zeroed. */
void config_free(struct xm_config *cfg);
void diags_free(struct xm_diags *diags);

/* Print each diagnostic as "file:line:col: message" (a warning: "file:line:col: warning: message"). */
void diags_print(const struct xm_diags *diags, void *stdio_file);

/* Lookups used by compile/ and validation. NULL when absent. */
const struct xm_service *config_find_service(const struct xm_config *cfg, const char *ns, const char *name);
const struct xm_destination_rule *config_find_rule(const struct xm_config *cfg, const char *ns, const char *name);
const struct xm_node *config_find_node(const struct xm_config *cfg, const char *name);
const struct xm_pod *config_find_pod(const struct xm_config *cfg, const char *ns, const char *name);

/*
 * The EndpointSlices that may belong to svc: [*first, *first + return value). Of an indexed config exactly
 * those; otherwise every slice (callers check ns and service_name anyway).
 */
size_t config_slices_of(const struct xm_config *cfg, const struct xm_service *svc, size_t *first);

/* The DestinationRule whose host is svc, NULL when none. */
const struct xm_destination_rule *config_rule_of(const struct xm_config *cfg, const struct xm_service *svc);

/*
 * The Service a VirtualService/DestinationRule host names when read in namespace ns: "name" (in ns),
 * "name.ns2", "name.ns2.svc", "name.ns2.svc.cluster.local". NULL for wildcards, other names, unknown Services.
 */
const struct xm_service *config_host_service(const struct xm_config *cfg, const char *host, const char *ns);

/* Istio's protocol selection of a Service port from its appProtocol, else its name. */
enum xm_port_protocol {
	XM_PORT_PROTO_UNKNOWN = 0, /* neither says: TCP unless a VirtualService routes it as HTTP */
	XM_PORT_PROTO_HTTP,	   /* http, http-* */
	XM_PORT_PROTO_HTTP2,	   /* http2, grpc, grpc-web, kubernetes.io/h2c: served at L4 for now */
	XM_PORT_PROTO_OTHER,	   /* tcp, https, tls, mongo, mysql, redis, udp, ...: never L7 */
};
enum xm_port_protocol config_port_protocol(const struct xm_service_port *sp);

/* Istio's default outlier-detection values. */
void config_outlier_defaults(struct xm_outlier_detection *od);

/*
 * The policy in force on a service port, as Istio merges it (GetPortLevelTrafficPolicy, MergeSubsetTrafficPolicy):
 * the DestinationRule's portLevelSettings entry for port when it has one (alone: the rule's top-level parts are not
 * inherited), else its trafficPolicy; then the subset's entry for port (replacing all four parts) or else the parts
 * its trafficPolicy sets (loadBalancer, outlierDetection, connectionPool, tls, each whole). dr and ss may be NULL;
 * out has no portLevelSettings of its own.
 */
void config_policy_merge(struct xm_traffic_policy *out, const struct xm_traffic_policy *dr,
			 const struct xm_traffic_policy *ss, uint16_t port);

/* "10s", "1m", "500ms", "1h", "1.5s", "100us" → milliseconds. Returns 0 or -EINVAL. */
int config_parse_duration_ms(const char *s, uint64_t *ms);

#endif
