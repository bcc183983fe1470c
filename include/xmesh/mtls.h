/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ABI of PeerAuthentication in the kernel: the effective mTLS mode of each (local pod IP, port), the mark
 * that recognises the agent's own connections to local pods, and the plaintext rejections counted per pod
 * port. Fixed-size types only; layouts pinned by _Static_assert below. See docs/mtls.md.
 */
#ifndef XMESH_MTLS_H
#define XMESH_MTLS_H

#include "lb.h"

#define XM_MAX_MTLS_POLICIES 65536 /* (pod IP, port) entries of local pods */
#define XM_MAX_MTLS_REJECTED 16384 /* (pod IP, port) pairs with rejection counts */

/*
 * SO_MARK of every socket the agent opens to a local pod on behalf of a verified peer (the HBONE tunnel's
 * termination): the whole 32-bit value is compared. Marks do not survive a network-namespace crossing
 * (skb_scrub_packet), so a packet that carries it at the pod's host-side veth was sent by a socket of the
 * node's own namespace whose owner holds CAP_NET_ADMIN there. 0x584d = "XM".
 */
#define XM_MTLS_AGENT_MARK 0x584d0015u

/* Effective modes, as the agent resolves them (never UNSET). */
#define XM_MTLS_MODE_PERMISSIVE 0 /* plaintext accepted (also the default when no entry exists) */
#define XM_MTLS_MODE_DISABLE	1 /* plaintext accepted */
#define XM_MTLS_MODE_STRICT	2 /* plaintext TCP refused unless it carries XM_MTLS_AGENT_MARK */

/*
 * xm_mtls_policy key: a local pod address and a port. Port 0 holds the workload's mode; a port listed in
 * portLevelMtls has an entry of its own. The program looks up (addr, dport), then (addr, 0).
 */
struct xm_mtls_key {
	union xm_addr addr;
	__u16 port;  /* host order; 0: every port without an entry of its own */
	__u8 family; /* XM_FAMILY_* */
	__u8 pad;
};
XM_STATIC_ASSERT(sizeof(struct xm_mtls_key) == 20, "xm_mtls_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_mtls_key, port) == 16, "xm_mtls_key.port offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_mtls_key, family) == 18, "xm_mtls_key.family offset");

/* Set on the (addr, 0) entry when any port of the pod is STRICT: TCP fragments that hide the header are refused. */
#define XM_MTLS_F_ANY_STRICT 0x1

struct xm_mtls_policy {
	__u8 mode;  /* XM_MTLS_MODE_* */
	__u8 flags; /* XM_MTLS_F_*, on port 0 entries */
	__u8 pad[2];
};
XM_STATIC_ASSERT(sizeof(struct xm_mtls_policy) == 4, "xm_mtls_policy size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_mtls_policy, flags) == 1, "xm_mtls_policy.flags offset");

/*
 * xm_mtls_local_pods: addresses of this node's mesh pods (key xm_mtls_key with port 0, value 1). A SYN from
 * one of them that entered the node through a veth the program guards (xm_mtls_ifaces) is same-node mesh
 * traffic and passes: see docs/mtls.md for why, and what it trusts.
 */
#define XM_MAX_MTLS_LOCAL_PODS 65536

/* xm_mtls_rejected: per-CPU counts of refused connection attempts, key xm_mtls_key (the attempted port). */
struct xm_mtls_rejected {
	__u64 syns;	 /* SYNs answered with a reset */
	__u64 fragments; /* TCP fragments or IPv6 extension chains to a STRICT pod, dropped */
};
XM_STATIC_ASSERT(sizeof(struct xm_mtls_rejected) == 16, "xm_mtls_rejected size");

/*
 * AuthorizationPolicy for plaintext connections to local pods (docs/mtls.md "Plaintext: the kernel"): what
 * ztunnel's inbound passthrough decides for a connection without a peer identity, compiled by the agent per
 * (local pod address, port class, client prefix) and looked up by the TC program on a plaintext SYN (not the
 * agent's mark, not sent by the node itself). xm_authz_plain is an LPM trie: the first
 * XM_AUTHZ_PLAIN_FIXED_BITS of the key (family, port, pod address) always match in full, the client's address
 * by prefix. Port 0 is every port that no applying policy names; a (pod, port) without entries of its own
 * falls back to it, a pod without entries is allowed (no policy applies, or none can deny plaintext).
 */
#define XM_MAX_AUTHZ_PLAIN	  65536
#define XM_MAX_AUTHZ_PLAIN_DENIED 16384
#define XM_AUTHZ_PLAIN_FIXED_BITS 160 /* family 8, pad 8, port 16, dst 128 */
#define XM_AUTHZ_POLICY_NO_ALLOW  0   /* policy id of "ALLOW policies applied and none matched" */

struct xm_authz_plain_key {
	__u32 prefixlen; /* XM_AUTHZ_PLAIN_FIXED_BITS + the client prefix's length */
	__u8 family;	 /* XM_FAMILY_* of both addresses */
	__u8 pad;
	__u16 port;	   /* host order; 0: a port no applying policy names */
	union xm_addr dst; /* the local pod's address */
	union xm_addr src; /* the client's address (prefix) */
};
XM_STATIC_ASSERT(sizeof(struct xm_authz_plain_key) == 40, "xm_authz_plain_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_authz_plain_key, port) == 6, "xm_authz_plain_key.port offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_authz_plain_key, src) == 24, "xm_authz_plain_key.src offset");

/*
 * The decision for clients in the key's prefix: deny/policy for a client without an identity; deny_local/
 * policy_local when the SYN came from a mesh pod of this node through its own veth (xm_mtls_local_pods and
 * xm_mtls_ifaces), whose identity the node knows (such a pod has a /32 or /128 entry of its own where its
 * identity changes the decision; elsewhere equal to deny/policy). policy: the id of the DENY policy that matched
 * (authz_policy_id), or XM_AUTHZ_POLICY_NO_ALLOW.
 */
struct xm_authz_plain_verdict {
	__u8 deny;
	__u8 deny_local;
	__u8 pad[2];
	__u32 policy;
	__u32 policy_local;
};
XM_STATIC_ASSERT(sizeof(struct xm_authz_plain_verdict) == 12, "xm_authz_plain_verdict size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_authz_plain_verdict, policy) == 4, "xm_authz_plain_verdict.policy");

/* xm_authz_plain_denied: per-CPU count of refused SYNs (__u64) by pod address, attempted port and policy. */
struct xm_authz_plain_count_key {
	union xm_addr addr;
	__u8 family;
	__u8 pad;
	__u16 port; /* host order, the attempted port */
	__u32 policy;
};
XM_STATIC_ASSERT(sizeof(struct xm_authz_plain_count_key) == 24, "xm_authz_plain_count_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_authz_plain_count_key, policy) == 20, "xm_authz_plain_count_key.policy");

#endif
