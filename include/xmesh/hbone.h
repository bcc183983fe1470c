/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ABI of the HBONE tunnel's client-side capture (docs/mtls.md "The client side"): which remote pod
 * addresses are tunnelled (written by the agent from PeerAuthentication), where the agent's outbound
 * tunnel listener is (written by the agent, read at connect), and the real destination of each captured
 * connection (written by sockops before the SYN leaves, read once by the agent at accept).
 */
#ifndef XMESH_HBONE_ABI_H
#define XMESH_HBONE_ABI_H

#include "l7.h"
#include "mtls.h"

/* The agent's outbound tunnel listener on a node address (15001 is the L7 proxy's, 15008 inbound HBONE). */
#define XM_HBONE_OUTBOUND_PORT 15002
#define XM_HBONE_INBOUND_PORT  15008 /* HBONE itself (agent/hbone/hbone.h HBONE_PORT): never captured */
#define XM_MAX_HBONE_DSTS      65536 /* (remote pod IP, port) entries */
#define XM_MAX_HBONE_ORIGDST   65536 /* captured connections the agent has not accepted yet (LRU) */

/*
 * xm_hbone_proxy[0]: the outbound listener, the same layout as xm_l7_proxy (include/xmesh/l7.h): addr4/addr6,
 * port in network order, XM_L7_PROXY_F_V4/V6 in flags: a family whose flag is set is captured (IPv4 and
 * v4-mapped dials to addr4, IPv6 to addr6, the node's InternalIPs). Zero (a fresh map) captures nothing.
 */

/*
 * xm_hbone_dsts: key struct xm_mtls_key (a pod address of ANOTHER node, port 0 for the workload's mode, a
 * portLevelMtls port for its own), value struct xm_mtls_policy. A TCP connect from a mesh pod whose final
 * destination (after the socket LB) has an entry whose mode is not XM_MTLS_MODE_DISABLE goes through the
 * tunnel; no entry (no pod of another node: external hosts, same-node pods, node addresses) stays plaintext.
 * The program looks up (addr, port), then (addr, 0). Destination port 15008 is never captured.
 */

/* xm_hbone_origdst key: struct xm_l7_origdst_key (the captured socket's 4-tuple: client, listener). */

/* xm_hbone_origdst value: what the application dialed and where it really goes. */
struct xm_hbone_origdst {
	union xm_addr target; /* the destination pod: the backend the socket LB chose, or the pod IP dialed */
	union xm_addr vip;    /* what the application dialed (a Service VIP, or the pod IP itself) */
	__u16 tport;	      /* target port, network order */
	__u16 vport;	      /* dialed port, network order */
	__u8 family;	      /* XM_FAMILY_*: of target, vip and the key's 4-tuple */
	__u8 pad[3];
	__u32 svc_id; /* the service port balanced for, 0 for a pod dialed directly */
	__u32 pad2;   /* netns is 8-byte aligned */
	__u64 netns;  /* network-namespace cookie of the client socket */
};
XM_STATIC_ASSERT(sizeof(struct xm_hbone_origdst) == 56, "xm_hbone_origdst size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_hbone_origdst, vip) == 16, "xm_hbone_origdst.vip offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_hbone_origdst, tport) == 32, "xm_hbone_origdst.tport offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_hbone_origdst, family) == 36, "xm_hbone_origdst.family offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_hbone_origdst, svc_id) == 40, "xm_hbone_origdst.svc_id offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_hbone_origdst, netns) == 48, "xm_hbone_origdst.netns offset");

#endif
