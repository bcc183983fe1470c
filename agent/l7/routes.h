/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compiled L7 route table: what VirtualServices and DestinationRules mean for HTTP traffic on this node,
 * built once per config on the config thread, immutable afterwards and read by the proxy workers through the
 * snapshot (snapshot->routes). What `xmesh routes` prints. Semantics follow Istio's networking API
 * (VirtualService http[], DestinationRule subsets/trafficPolicy); docs/l7.md lists where they differ.
 */
#ifndef XMESH_L7_ROUTES_H
#define XMESH_L7_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/lb.h>

#include "compile/compile.h"
#include "compile/identity.h"
#include "config/model.h"
#include "http/h1.h"
#include "l7/shared_state.h"

struct strbuf;
struct l7_ratelimit;
struct l7_rl_client;

/* A destination: a service port, optionally narrowed to a DestinationRule subset (Envoy's cluster). */
struct l7_cluster {
	char name[XM_NAME_MAX + 160];	  /* Envoy's "outbound|9080|v1|reviews.default.svc.cluster.local" */
	char host_fqdn[XM_NAME_MAX + 64]; /* "reviews.default.svc.cluster.local": destination_service */
	char svc_name[XM_NAME_MAX];	  /* destination_service_name */
	char svc_ns[64];		  /* destination_service_namespace */
	char subset[64];		  /* "" for the whole service */
	uint16_t port;			  /* service port (host order) */
	const struct xm_lb_service *svc;  /* in the same snapshot; svc->svc_id is set once published */
	/* Ready endpoints of the subset, pointers into svc->backends (their ids are set once published). */
	const struct xm_lb_backend **endpoints;
	const struct xm_workload **endpoint_wl; /* the pod of each endpoint, or NULL (destination_* labels) */
	size_t n_endpoints;
	struct xm_traffic_policy policy; /* the DestinationRule's, with the subset's fields laid over it */
	/*
	 * Circuit-breaker counts shared by every worker (Envoy's per-cluster resource manager), slots
	 * L7_LOAD_*; never NULL in a built table. The one mutable thing the table points at: l7_proxy_apply
	 * swaps it for the registry's object of the same name (l7/shared_state.h) before the workers see it.
	 */
	struct l7_shared *load;
	/* The destination pod's local rate limit of each endpoint (l7/ratelimit.h), or NULL; the array is NULL
	 * when none of the endpoints has one. */
	const struct l7_ratelimit **endpoint_rl;
};

/* The slots of l7_cluster.load: what is in use now, for connectionPool's limits. */
enum l7_load_slot {
	L7_LOAD_CONNECTIONS = 0, /* upstream connections open or opening (tcp.maxConnections) */
	L7_LOAD_PENDING,	 /* requests waiting for a connection (http.http1MaxPendingRequests) */
	L7_LOAD_REQUESTS,	 /* requests in flight (http.http2MaxRequests) */
	L7_LOAD_RETRIES,	 /* retries in flight (http.maxRetries) */
};

/* retryOn conditions (Envoy's x-envoy-retry-on names, as Istio passes them through; config/model.h). */
#define L7_RETRY_5XX		      XM_RETRY_ON_5XX
#define L7_RETRY_GATEWAY_ERROR	      XM_RETRY_ON_GATEWAY_ERROR /* 502, 503, 504 */
#define L7_RETRY_RESET		      XM_RETRY_ON_RESET		/* disconnect/reset/timeout before a response head */
#define L7_RETRY_CONNECT_FAILURE      XM_RETRY_ON_CONNECT_FAILURE
#define L7_RETRY_RETRIABLE_4XX	      XM_RETRY_ON_RETRIABLE_4XX	       /* 409 */
#define L7_RETRY_REFUSED_STREAM	      XM_RETRY_ON_REFUSED_STREAM       /* HTTP/2 REFUSED_STREAM: never on HTTP/1.1 */
#define L7_RETRY_RETRIABLE_STATUS     XM_RETRY_ON_RETRIABLE_STATUS     /* statuses[] (bare codes turn it on) */
#define L7_RETRY_UNAVAILABLE	      XM_RETRY_ON_UNAVAILABLE	       /* gRPC status 14 */
#define L7_RETRY_CANCELLED	      XM_RETRY_ON_CANCELLED	       /* gRPC status 1 */
#define L7_RETRY_DEADLINE_EXCEEDED    XM_RETRY_ON_DEADLINE_EXCEEDED    /* gRPC status 4 */
#define L7_RETRY_RESOURCE_EXHAUSTED   XM_RETRY_ON_RESOURCE_EXHAUSTED   /* gRPC status 8 */
#define L7_RETRY_INTERNAL	      XM_RETRY_ON_INTERNAL	       /* gRPC status 13 */
#define L7_RETRY_RESET_BEFORE_REQUEST XM_RETRY_ON_RESET_BEFORE_REQUEST /* a reset before the request was sent */

#define L7_RETRY_STATUSES_MAX XM_RETRY_STATUSES_MAX

/* A route's retry policy (VirtualService retries, or Istio's default when absent; docs/l7.md "Retries"). */
struct l7_retry_policy {
	uint32_t attempts;	     /* retries after the first try (Envoy's num_retries); 0: none */
	uint64_t per_try_timeout_ms; /* 0: none (the route timeout still covers all tries) */
	uint32_t retry_on;	     /* L7_RETRY_* */
	uint16_t statuses[L7_RETRY_STATUSES_MAX];
	uint8_t n_statuses;
	bool retry_remote_localities;
	/* Envoy's previous_hosts predicate (5 host selections): on unless retryIgnorePreviousHosts: false, or the
	 * destination hashes (Istio's DefaultConsistentHashPolicy) and the field is absent. */
	bool previous_hosts, previous_hosts_set;
	uint32_t backoff_base_ms; /* retry backoff base interval (25 ms unless backoff is given); cap 10x */
};

/* Istio's default policy (retry.DefaultPolicy) and Envoy's backoff base (router filter, 25 ms; cap 10x). */
#define L7_RETRY_DEFAULT_ATTEMPTS 2
#define L7_RETRY_DEFAULT_ON                                                                                            \
	(L7_RETRY_CONNECT_FAILURE | L7_RETRY_REFUSED_STREAM | L7_RETRY_UNAVAILABLE | L7_RETRY_CANCELLED |              \
	 L7_RETRY_RETRIABLE_STATUS)
#define L7_RETRY_BACKOFF_BASE_MS	 25
#define L7_RETRY_HOST_SELECTION_ATTEMPTS 5

/* A route's policy from its VirtualService retries (all zero: no retries block), as Istio converts it. */
void l7_retry_policy_from(const struct xm_http_retry *in, struct l7_retry_policy *out);

enum l7_str_match_kind {
	L7_MATCH_ANY = 0, /* the field was absent */
	L7_MATCH_EXACT,
	L7_MATCH_PREFIX,
	L7_MATCH_REGEX, /* RE2 syntax, full match (Istio); compiled once per apply */
};

struct l7_str_match {
	enum l7_str_match_kind kind;
	char *value; /* exact/prefix text, or the pattern */
	void *regex; /* compiled pattern (struct l7_regex, l7/regex.h) */
};

struct l7_kv_match {
	char *name; /* header name (lowercase) or query parameter */
	struct l7_str_match m;
};

/* One HTTPMatchRequest: every field present must match (AND). */
struct l7_match {
	char *name;
	struct l7_str_match uri, scheme, method, authority;
	struct l7_kv_match *headers; /* must match */
	size_t n_headers;
	struct l7_kv_match *without_headers; /* must not match (absent counts as not matching) */
	size_t n_without_headers;
	struct l7_kv_match *query_params;
	size_t n_query_params;
	uint16_t port;			/* 0: any */
	struct xm_label *source_labels; /* the client pod must carry all of them */
	size_t n_source_labels;
	char *source_namespace; /* NULL: any */
	bool ignore_uri_case;
};

struct l7_header_op {
	char *name;
	char *value; /* NULL for remove */
};

/* HTTPRoute headers: request and response, each set (replace), add (append), remove. */
struct l7_headers {
	struct l7_header_op *req_set, *req_add, *resp_set, *resp_add;
	size_t n_req_set, n_req_add, n_resp_set, n_resp_add;
	char **req_remove, **resp_remove;
	size_t n_req_remove, n_resp_remove;
};

struct l7_destination {
	const struct l7_cluster *cluster;
	uint32_t weight; /* 0..100; all of a route's sum to 100 (validated), a single one is 100 */
	struct l7_headers headers;
};

enum l7_action {
	L7_ACTION_ROUTE = 0,
	L7_ACTION_REDIRECT,
	L7_ACTION_DIRECT_RESPONSE,
};

struct l7_route {
	char *name;	/* HTTPRoute.name, or "" */
	char vs_ns[64]; /* the VirtualService it came from ("" for a service's default route) */
	char vs_name[XM_NAME_MAX];
	struct l7_match *matches; /* OR; none means match everything */
	size_t n_matches;
	enum l7_action action;
	struct l7_destination *dests;
	size_t n_dests;
	struct l7_headers headers;
	char *rewrite_uri; /* replaces the matched prefix (prefix match) or the whole path; NULL: none */
	char *rewrite_authority; /* NULL: none */ /* redirect */
	char *redirect_uri, *redirect_authority;
	uint16_t redirect_code; /* 301 default */
	char *redirect_scheme;	/* NULL: the request's ("http") */
	uint16_t redirect_port; /* 0: keep the request's */
	/* directResponse */
	uint16_t direct_status;
	char *direct_body; /* NULL: empty */
	size_t direct_body_len;
	/* mirror (fire-and-forget shadow copy) */
	const struct l7_cluster *mirror;
	double mirror_percent; /* 0..100; 100 when mirror is set without mirrorPercentage */
	/* VirtualService timeout: from the complete request (after a fault delay) to the complete response,
	 * all retries included. */
	uint64_t timeout_ms; /* 0: none */
	/* fault injection (Envoy's fault filter): the delay first, then the abort, each sampled per request */
	uint64_t fault_delay_ms;     /* 0: no delay */
	double fault_delay_percent;  /* 0..100 */
	uint16_t fault_abort_status; /* 0: no abort */
	double fault_abort_percent;  /* 0..100 */
	struct l7_retry_policy retry;
	struct xm_loc loc; /* loc.file points into the table's files */
};

/*
 * The routes of one VirtualService (or a Service's default route) for one set of domains on one service
 * port, as Envoy's per-port route configurations have them.
 */
struct l7_vhost {
	char name[XM_NAME_MAX + 16]; /* "reviews.default.svc.cluster.local:9080" (Envoy's vhost name) */
	uint16_t port;		     /* the service port its domains are reached on */
	char **domains; /* "reviews", "reviews.default", "reviews.default.svc.cluster.local", "*.example.com", VIP */
	size_t n_domains;
	struct l7_route *routes; /* in order: the first match wins */
	size_t n_routes;
};

/* A captured HTTP service port: where connections to key land. */
struct l7_service {
	struct xm_svc_key key;		 /* the VIP:port the client dialed */
	const struct xm_lb_service *svc; /* in the same snapshot */
	const struct l7_vhost *vhost;	 /* the vhost serving this VIP when Host names nothing else */
};

/* A domain of a vhost on a port: the Host lookup's index. */
struct l7_domain {
	uint16_t port;
	const char *name; /* lowercase; for a wildcard the suffix after '*' (".example.com", "" for "*") */
	const struct l7_vhost *vhost;
};

struct l7_route_table {
	struct l7_service *services; /* sorted by key */
	size_t n_services;
	struct l7_vhost *vhosts;
	size_t n_vhosts;
	struct l7_cluster *clusters;
	size_t n_clusters;
	char **files; /* the config file names route locations point at */
	size_t n_files;
	struct l7_domain *exact; /* sorted by (port, name); a domain on a port belongs to the first vhost */
	size_t n_exact;
	struct l7_domain *wildcards; /* by port, longest suffix first */
	size_t n_wildcards;
	/* EnvoyFilter local rate limits (l7/ratelimit.h): every limit, and the client pods' by pod (sorted) */
	struct l7_ratelimit **ratelimits;
	size_t n_ratelimits;
	struct l7_rl_client *rl_clients;
	size_t n_rl_clients;
};

/* What the router looks at in a request. */
struct l7_request_view {
	struct h1_str method, path, query, host;
	const struct h1_header *headers;
	uint32_t n_headers;
	uint16_t port;			  /* the service port dialed */
	const struct xm_workload *source; /* the client pod, or NULL when unknown */
};

/*
 * Builds the table for cfg over lb (the snapshot's compiled services). Returns 0 or -ENOMEM; everything a
 * user can get wrong was reported by validation already.
 */
int l7_routes_build(const struct xm_config *cfg, const struct xm_lb_state *lb, const struct xm_identities *ids,
		    struct l7_route_table *out);
void l7_routes_free(struct l7_route_table *t);

/* The captured service for a dialed VIP:port, or NULL (not HTTP). */
const struct l7_service *l7_service_find(const struct l7_route_table *t, const struct xm_svc_key *key);

/*
 * The first route of the vhost that rq's Host selects (else the dialed service's) whose matches rq
 * satisfies, or NULL (404, response flag NR).
 */
const struct l7_route *l7_route_select(const struct l7_route_table *t, const struct l7_service *svc,
				       const struct l7_request_view *rq);

/* Picks one of route's destinations by weight; r is uniform in [0, 100). */
const struct l7_destination *l7_route_pick_destination(const struct l7_route *route, uint32_t r);

/*
 * The Host header's vhost among those of port: exact domain (case-insensitive, the port and a trailing dot
 * stripped; Kubernetes short forms expanded in source_ns), else the longest wildcard suffix, else "*".
 */
const struct l7_vhost *l7_vhost_for_host(const struct l7_route_table *t, uint16_t port, struct h1_str host,
					 const char *source_ns);

/* Whether rq satisfies m (every field given). */
bool l7_match_request(const struct l7_match *m, const struct l7_request_view *rq);

/* `xmesh routes`: the table per service, as text or as a JSON document. */
void l7_routes_render(const struct l7_route_table *t, bool json, struct strbuf *out);

#endif
