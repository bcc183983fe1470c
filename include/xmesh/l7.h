/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ABI of L7 capture: where the agent's HTTP proxy listens (written by the agent, read at connect) and the
 * original destination of each captured connection (written by sockops, read once by the proxy).
 */
#ifndef XMESH_L7_H
#define XMESH_L7_H

#include "lb.h"

#define XM_L7_DEFAULT_PORT 15001
#define XM_MAX_L7_ORIGDST  65536 /* captured connections the proxy has not accepted yet (LRU) */

/* xm_l7_proxy[0]: the proxy's listener, on a node address every pod can reach (its InternalIP). */
struct xm_l7_proxy {
	union xm_addr addr4; /* .v4, network order */
	union xm_addr addr6;
	__u16 port; /* network order, the same for both families */
	__u8 flags; /* XM_L7_PROXY_F_*: zero (a fresh map) captures nothing */
	__u8 pad;
};
XM_STATIC_ASSERT(sizeof(struct xm_l7_proxy) == 36, "xm_l7_proxy size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_l7_proxy, addr6) == 16, "xm_l7_proxy.addr6 offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_l7_proxy, port) == 32, "xm_l7_proxy.port offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_l7_proxy, flags) == 34, "xm_l7_proxy.flags offset");

#define XM_L7_PROXY_F_V4 0x1 /* capture IPv4 services (and v4-mapped dials of them) to addr4:port */
#define XM_L7_PROXY_F_V6 0x2 /* capture IPv6 services to addr6:port */

/*
 * xm_l7_origdst key: a captured connection as the kernel assigned it (the client's address and port, the
 * proxy's). Only the socket that owns this 4-tuple can write it, at its own connect, so a pod cannot
 * claim another's destination. IPv4 (also a v4-mapped IPv6 socket's) in .v4, ports in network order.
 */
struct xm_l7_origdst_key {
	union xm_addr client;
	union xm_addr proxy;
	__u16 client_port;
	__u16 proxy_port;
	__u8 family; /* XM_FAMILY_* */
	__u8 pad[3];
};
XM_STATIC_ASSERT(sizeof(struct xm_l7_origdst_key) == 40, "xm_l7_origdst_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_l7_origdst_key, proxy) == 16, "xm_l7_origdst_key.proxy offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_l7_origdst_key, client_port) == 32, "origdst_key.client_port");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_l7_origdst_key, family) == 36, "xm_l7_origdst_key.family offset");

/* xm_l7_origdst value: the service port the application dialed. */
struct xm_l7_origdst {
	union xm_addr vip;
	__u16 vport; /* network order */
	__u8 family; /* of the VIP: XM_FAMILY_* */
	__u8 pad;
	__u32 svc_id;
	__u64 netns; /* network-namespace cookie of the client socket */
};
XM_STATIC_ASSERT(sizeof(struct xm_l7_origdst) == 32, "xm_l7_origdst size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_l7_origdst, svc_id) == 20, "xm_l7_origdst.svc_id offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_l7_origdst, netns) == 24, "xm_l7_origdst.netns offset");

#endif
