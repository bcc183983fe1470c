/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ABI of same-node socket acceleration (sockops + sk_msg): the sockhash key, the local-peer map, the
 * runtime switch and the counters. Fixed-size types only; layouts pinned by _Static_assert below.
 */
#ifndef XMESH_SOCKMAP_H
#define XMESH_SOCKMAP_H

#include "lb.h"

#define XM_MAX_SOCK_PAIRS     131072 /* sockets (two per accelerated connection) */
#define XM_MAX_LOCAL_IPS      65536
#define XM_MAX_EXCLUDED_PORTS 64 /* --sockmap-exclude-ports */

/*
 * xm_sock_pairs key: one established socket as it sees itself. A sender finds its peer by swapping
 * local and remote. Ports are in host order (sockops and sk_msg expose them differently; both are
 * normalised). An IPv4-mapped IPv6 socket is keyed as IPv4, so a v4 client meets a dual-stack server.
 * netns is the socket's network-namespace cookie when the peer is a loopback address (every pod has its
 * own 127.0.0.1), and 0 for node-unique addresses (pod IPs), whose two ends live in different netns.
 */
struct xm_sock_pair_key {
	union xm_addr local;
	union xm_addr remote;
	__u64 netns;
	__u16 local_port;
	__u16 remote_port;
	__u8 family; /* XM_FAMILY_* */
	__u8 pad[3];
};
XM_STATIC_ASSERT(sizeof(struct xm_sock_pair_key) == 48, "xm_sock_pair_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_sock_pair_key, remote) == 16, "xm_sock_pair_key.remote offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_sock_pair_key, netns) == 32, "xm_sock_pair_key.netns offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_sock_pair_key, local_port) == 40, "xm_sock_pair_key.local_port");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_sock_pair_key, family) == 44, "xm_sock_pair_key.family offset");

/* xm_local_ips key: an address of a pod (or this node) that lives on this node. */
struct xm_local_ip_key {
	union xm_addr addr;
	__u8 family; /* XM_FAMILY_* */
	__u8 pad[3];
};
XM_STATIC_ASSERT(sizeof(struct xm_local_ip_key) == 20, "xm_local_ip_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_local_ip_key, family) == 16, "xm_local_ip_key.family offset");

#define XM_LOCAL_IP_POD	     0x1 /* status.podIPs of a Pod with spec.nodeName == --node */
#define XM_LOCAL_IP_ENDPOINT 0x2 /* EndpointSlice endpoint with nodeName == --node */
#define XM_LOCAL_IP_NODE     0x4 /* InternalIP of this Node */

struct xm_local_ip {
	__u32 flags; /* XM_LOCAL_IP_* */
};
XM_STATIC_ASSERT(sizeof(struct xm_local_ip) == 4, "xm_local_ip size");

/*
 * xm_sockmap_config[0]: the runtime switch. Zero (the state of a fresh map) is "off", so nothing is
 * accelerated until an agent has decided to. Off: sockops inserts no new socket and sk_msg passes every
 * message to TCP; sockets already in the map keep working (see docs/sockmap.md, "switching off").
 */
struct xm_sockmap_config {
	__u32 enabled;
	__u32 flags; /* reserved, 0 */
};
XM_STATIC_ASSERT(sizeof(struct xm_sockmap_config) == 8, "xm_sockmap_config size");

/*
 * xm_sockmap_excl_ports: TCP ports (host order, key __u32) whose connections are never put into the
 * sockhash, on either end: an escape hatch for applications that need what redirected sockets lack
 * (recv(MSG_WAITALL) returning the full length, see docs/sockmap.md). Value: 1.
 */
struct xm_sockmap_excl_port {
	__u32 excluded;
};
XM_STATIC_ASSERT(sizeof(struct xm_sockmap_excl_port) == 4, "xm_sockmap_excl_port size");

/* xm_sockmap_sk: per-socket storage, created by sk_msg at the first send (or by the agent) and written on each. */
struct xm_sockmap_sk {
	__u64 redir_bytes; /* sent to the peer through the sockhash */
	__u64 redir_msgs;
	__u64 fallback_msgs; /* sent through TCP while the socket was in the sockhash */
	__u32 seq0;	     /* write_seq at the first send: TCP payload sent since = seq0 != write_seq */
	__u32 flags;	     /* XM_SMSK_F_* */
};
XM_STATIC_ASSERT(sizeof(struct xm_sockmap_sk) == 32, "xm_sockmap_sk size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_sockmap_sk, seq0) == 24, "xm_sockmap_sk.seq0 offset");

#define XM_SMSK_F_INSERTED 0x1 /* put into xm_sock_pairs */
#define XM_SMSK_F_TCP_USED 0x2 /* this direction carried TCP payload: never redirect it again (ordering) */
/*
 * Inserted by userspace (the L7 proxy's accepted sockets live in a cgroup without sockops), before the socket
 * sent anything: sk_msg takes seq0 at the first message.
 */
#define XM_SMSK_F_SEQ_AT_FIRST_MSG 0x4

/* xm_sockmap_stats: per-CPU counters, indexed by enum xm_sockmap_stat. */
enum xm_sockmap_stat {
	XM_SMSTAT_REDIR_MSGS = 0,	 /* sk_msg: messages redirected to the peer's receive queue */
	XM_SMSTAT_REDIR_BYTES,		 /* ... and their bytes */
	XM_SMSTAT_FALLBACK_NO_PEER,	 /* sk_msg: peer not in the sockhash (closed, not local, not yet in) */
	XM_SMSTAT_FALLBACK_ORDER,	 /* sk_msg: direction already used TCP, redirecting could reorder */
	XM_SMSTAT_FALLBACK_OFF,		 /* sk_msg: switch off */
	XM_SMSTAT_FALLBACK_BYTES,	 /* bytes of all fallbacks */
	XM_SMSTAT_FALLBACK_NO_STATE,	 /* sk_msg: socket without storage or not a TCP socket */
	XM_SMSTAT_INSERTED,		 /* sockops: sockets put into the sockhash */
	XM_SMSTAT_INSERT_FAILED,	 /* sockops: sockhash update refused (full, duplicate key) */
	XM_SMSTAT_NOT_LOCAL,		 /* sockops: established with a peer that is not on this node */
	XM_SMSTAT_SKIPPED_OFF,		 /* sockops: established while the switch was off */
	XM_SMSTAT_CLOSED,		 /* sockops: sockets seen by sockmap that reached CLOSE */
	XM_SMSTAT_CLOSED_TX_BYTES,	 /* ... their payload bytes sent, TCP (acked) + redirected */
	XM_SMSTAT_CLOSED_RX_BYTES,	 /* ... their payload bytes received through TCP */
	XM_SMSTAT_FALLBACK_MEM_PRESSURE, /* sk_msg: TCP memory at pressure (tcp_mem[1]): TCP waits, a redirect fails */
	XM_SMSTAT_SKIPPED_PORT,		 /* sockops: a local or remote port is in xm_sockmap_excl_ports */
	XM_SMSTAT_MAX,
};

#endif
