/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ABI of the socket-level load balancer: keys and values of the maps that the agent writes and the
 * cgroup/sockops programs read. Fixed-size types only; layouts are pinned by _Static_assert below.
 */
#ifndef XMESH_LB_H
#define XMESH_LB_H

#include "types.h"

#define XM_FAMILY_V4 4
#define XM_FAMILY_V6 6

#define XM_PROTO_TCP 6
#define XM_PROTO_UDP 17

#define XM_MAX_SERVICES 65536 /* service ports (VIP:port:proto) */
#define XM_MAX_SVC_IDS	65536 /* stable per-service-port ids, index of per-service arrays */
/* External VIP ports (XDP) take ids in [1, XM_MAX_EXT_SVC_IDS), the others above: the per-VIP XDP counters
 * (per CPU) are indexed by id and need only this many entries. */
#define XM_MAX_EXT_SVC_IDS     4096
#define XM_MAX_BACKENDS	       65536  /* backend ids are 1..XM_MAX_BACKENDS-1; 0 means "none" */
#define XM_MAX_SLOTS	       262144 /* backend-list slots over all services, two generations */
#define XM_MAX_MAGLEV_TABLES   4096   /* consistent-hash services, two generations */
#define XM_MAX_SLOTS_PER_SVC   65535  /* ready backends one service port can list */
#define XM_MAX_SOCKS	       262144 /* live sockets connected through a VIP (xm_sock_state) */
#define XM_MAGLEV_DEFAULT_SIZE 65537  /* the one default of the agent and the tests; why, below */
#define XM_MAGLEV_MAX_SIZE     1048573
/*
 * The default Maglev table size is Envoy's, so a DestinationRule without tableSize spreads as it would under
 * Istio; at 65537 slots, removing one of up to 100 backends moves at most 1/N + 1% of the flows
 * (tests/unit/test_maglev.c, disruption_on_removal_default_size).
 */

/* Load-balancing algorithm of a service port (DestinationRule trafficPolicy.loadBalancer). */
enum xm_lb_algo {
	XM_LB_LEAST_REQUEST = 0, /* Istio's default */
	XM_LB_ROUND_ROBIN = 1,
	XM_LB_RANDOM = 2,
	XM_LB_MAGLEV = 3, /* consistentHash.useSourceIp, sessionAffinity: ClientIP */
};

/* An IPv4 address lives in v4 (network order) with the other 12 bytes zero. */
union xm_addr {
	__u32 v4;
	__u32 v6[4];
	__u8 bytes[16];
};
XM_STATIC_ASSERT(sizeof(union xm_addr) == 16, "xm_addr size");

/* xm_services key: a service VIP and port as the application dials it. */
struct xm_svc_key {
	union xm_addr vip;
	__u16 port;  /* network order */
	__u8 proto;  /* XM_PROTO_* */
	__u8 family; /* XM_FAMILY_* */
};
XM_STATIC_ASSERT(sizeof(struct xm_svc_key) == 20, "xm_svc_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_svc_key, port) == 16, "xm_svc_key.port offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_svc_key, proto) == 18, "xm_svc_key.proto offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_svc_key, family) == 19, "xm_svc_key.family offset");

/*
 * xm_services value. A service's backend list is immutable once published: the agent writes a new list
 * under a fresh table_id, then replaces this value in one map update, so a reader sees either the old
 * (table_id, count) pair or the new one, never a mix.
 */
struct xm_svc_value {
	__u32 table_id; /* key into xm_slots (list) or xm_maglev (table) */
	__u32 count;	/* ready backends in the list, or the Maglev table size; 0 = refuse */
	__u32 svc_id;	/* stable id of this service port, index of per-service arrays */
	__u8 algo;	/* enum xm_lb_algo */
	__u8 flags;	/* XM_SVC_F_* */
	__u16 pad;
};
XM_STATIC_ASSERT(sizeof(struct xm_svc_value) == 16, "xm_svc_value size");

/* An external VIP (spec.externalIPs, status.loadBalancer.ingress): XDP balances it, always by Maglev. */
#define XM_SVC_F_EXTERNAL 0x1
/* Outlier detection is on for this service port: selection skips ejected endpoints. */
#define XM_SVC_F_OUTLIER 0x2
/* HTTP (Istio protocol selection or a VirtualService http route): the connect hook sends it to the agent's L7
 * proxy; when no proxy is configured it is balanced at L4 like any other port. */
#define XM_SVC_F_L7 0x4

/* xm_slots key: slot'th backend of the list published under table_id. */
struct xm_slot_key {
	__u32 table_id;
	__u32 slot;
};
XM_STATIC_ASSERT(sizeof(struct xm_slot_key) == 8, "xm_slot_key size");

struct xm_slot_value {
	__u32 backend_id;
};
XM_STATIC_ASSERT(sizeof(struct xm_slot_value) == 4, "xm_slot_value size");

/* xm_backends value, keyed by __u32 backend id. A backend id's address never changes while it is in use. */
struct xm_backend {
	union xm_addr addr;
	__u16 port; /* network order (the Service's targetPort resolved) */
	__u8 family;
	__u8 flags;		 /* XM_BACKEND_F_* */
	union xm_addr node_addr; /* InternalIP of the backend's node (same family), for IPIP; zero if unknown */
};
XM_STATIC_ASSERT(sizeof(struct xm_backend) == 36, "xm_backend size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_backend, port) == 16, "xm_backend.port offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_backend, flags) == 19, "xm_backend.flags offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_backend, node_addr) == 20, "xm_backend.node_addr offset");

#define XM_BACKEND_F_LOCAL 0x1 /* runs on this node */

/* xm_backend_conns value, indexed by backend id: connections open to it from this node. */
struct xm_backend_conns {
	__s64 active;
};
XM_STATIC_ASSERT(sizeof(struct xm_backend_conns) == 8, "xm_backend_conns size");

/* xm_sock_state value, keyed by socket cookie: written at connect, read by getpeername and sockops. */
struct xm_sock_state {
	union xm_addr vip;
	__u32 backend_id;
	__u16 vport; /* network order */
	__u8 family;
	__u8 flags;   /* XM_SOCK_F_* */
	__u32 svc_id; /* the service port it was balanced for (outlier state is per service and endpoint) */
};
XM_STATIC_ASSERT(sizeof(struct xm_sock_state) == 28, "xm_sock_state size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_sock_state, svc_id) == 24, "xm_sock_state.svc_id offset");

#define XM_SOCK_F_NATTED  0x1  /* connected through a VIP: getpeername answers the VIP */
#define XM_SOCK_F_COUNTED 0x2  /* counted in xm_backend_conns, uncount on close */
#define XM_SOCK_F_FAILED  0x4  /* its failed open was already reported to outlier detection */
#define XM_SOCK_F_OPENED  0x8  /* established: counted as opened in xm_conn_metrics */
#define XM_SOCK_F_L7	  0x10 /* sent to the agent's L7 proxy (include/xmesh/l7.h): no backend, the proxy counts */
#define XM_SOCK_F_HBONE	  0x20 /* sent to the HBONE tunnel listener (xmesh/hbone.h): backend counted, no metrics */

/*
 * xm_conn_metrics: Istio's TCP metrics counted in the kernel, per (client address, service port,
 * backend), a shared LRU hash updated with atomic adds at establishment and close (a long-gone client's
 * counters may be evicted under pressure).
 */
struct xm_conn_metrics_key {
	union xm_addr client; /* the connecting socket's source address */
	__u32 svc_id;
	__u32 backend_id;
	__u8 family;
	__u8 pad[7];
};
XM_STATIC_ASSERT(sizeof(struct xm_conn_metrics_key) == 32, "xm_conn_metrics_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_conn_metrics_key, svc_id) == 16, "conn_metrics.svc_id offset");

struct xm_conn_metrics {
	__u64 opened;
	__u64 closed;
	__u64 sent_bytes;     /* acknowledged bytes the client sent */
	__u64 received_bytes; /* bytes the client received */
};
XM_STATIC_ASSERT(sizeof(struct xm_conn_metrics) == 32, "xm_conn_metrics size");

/* xm_udp_revnat: (socket, backend) → VIP, so recvmsg shows replies coming from the VIP. */
struct xm_udp_revnat_key {
	__u64 cookie;
	union xm_addr backend;
	__u16 port; /* backend port, network order */
	__u8 family;
	__u8 pad[5];
};
XM_STATIC_ASSERT(sizeof(struct xm_udp_revnat_key) == 32, "xm_udp_revnat_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_udp_revnat_key, backend) == 8, "revnat.backend offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_udp_revnat_key, port) == 24, "revnat.port offset");

struct xm_udp_revnat_value {
	union xm_addr vip;
	__u16 vport;
	__u8 pad[2];
};
XM_STATIC_ASSERT(sizeof(struct xm_udp_revnat_value) == 20, "xm_udp_revnat_value size");

/* xm_sock_stats: per-CPU counters of the socket LB, indexed by enum xm_sock_stat. */
enum xm_sock_stat {
	XM_STAT_SOCK_LB_TCP = 0,    /* connects rewritten */
	XM_STAT_SOCK_LB_UDP,	    /* UDP connects/sendmsgs rewritten */
	XM_STAT_SOCK_NO_BACKEND,    /* refused: VIP with no ready backend */
	XM_STAT_SOCK_LOOKUP_MISS,   /* slot or backend missing (a race with an apply) */
	XM_STAT_SOCK_REVNAT,	    /* getpeername/recvmsg answered with the VIP */
	XM_STAT_SOCK_L7_CAPTURE,    /* TCP connects to an HTTP service port sent to the agent's L7 proxy */
	XM_STAT_SOCK_L7_NO_PROXY,   /* ... balanced at L4 instead: no proxy configured for the family */
	XM_STAT_SOCK_HBONE_CAPTURE, /* TCP connects to a pod of another node sent to the HBONE tunnel listener */
	XM_STAT_SOCK_MAX,
};

struct xm_counter {
	__u64 value;
};
XM_STATIC_ASSERT(sizeof(struct xm_counter) == 8, "xm_counter size");

/*
 * xm_map_errors: per-CPU counts of map updates that a BPF program could not make, by map (Cilium counts
 * its datapath's map errors the same way). Each is a degradation the program otherwise hides: the call
 * goes ahead without the entry.
 */
enum xm_map_error {
	XM_MAPERR_UDP_REVNAT = 0, /* a UDP socket's (backend → VIP) entry: its replies show the backend address */
	XM_MAPERR_SOCK_STATE,	  /* a connected socket's state: getpeername shows the backend, no metrics or
				     outlier reports for it */
	XM_MAPERR_L7_ORIGDST,	  /* a captured connection's original destination: the proxy refuses it */
	XM_MAPERR_HBONE_ORIGDST,  /* a tunnelled connection's destination: the tunnel listener refuses it */
	XM_MAPERR_MAX,
};

#endif
