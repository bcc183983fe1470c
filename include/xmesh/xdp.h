/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ABI of the north-south load balancer (XDP on the uplinks, TC reverse NAT): keys and values of its maps,
 * its counters, and the VIP pre-filter hash that the agent and the program must compute identically.
 * Fixed-size types only; layouts are pinned by _Static_assert below.
 */
#ifndef XMESH_XDP_H
#define XMESH_XDP_H

#include "lb.h"

#define XM_CT_MAX	    262144 /* connection-table entries (LRU, BPF_F_NO_COMMON_LRU) */
#define XM_NAT_BACKENDS_MAX 65536
#define XM_XDP_MAX_IFACES   64
#define XM_VIP_FILTER_BITS  65536 /* 8 KiB bitmap in the program's .bss */

/*
 * xm_ct key: a flow as the client sent it (source side first). One entry per direction-less client flow
 * towards a VIP; the value pins its backend.
 */
struct xm_ct_key {
	union xm_addr saddr; /* client */
	union xm_addr daddr; /* VIP */
	__u16 sport;	     /* network order */
	__u16 dport;	     /* network order */
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};
XM_STATIC_ASSERT(sizeof(struct xm_ct_key) == 40, "xm_ct_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_key, daddr) == 16, "xm_ct_key.daddr offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_key, sport) == 32, "xm_ct_key.sport offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_key, proto) == 36, "xm_ct_key.proto offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_key, family) == 37, "xm_ct_key.family offset");

/*
 * The backend as it was when the flow was pinned: packets of a known flow are forwarded from this snapshot
 * alone, without the service or backend lookups (a TCP SYN re-validates it against xm_backends).
 */
struct xm_ct_value {
	union xm_addr addr;	 /* backend address */
	union xm_addr node_addr; /* the backend's node (remote backends: IPIP/IP6IP6 destination) */
	__u32 backend_id;	 /* key of xm_backends */
	__u32 svc_id;		 /* the service port the flow was balanced for (per-VIP counters) */
	__u16 port;		 /* backend port, network order */
	__u8 family;
	__u8 flags;  /* XM_BACKEND_F_* at pinning time */
	__u32 state; /* enum xm_ct_state; 32 bits for compare-and-swap between XDP and TC */
};
XM_STATIC_ASSERT(sizeof(struct xm_ct_value) == 48, "xm_ct_value size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_value, node_addr) == 16, "xm_ct_value.node_addr offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_value, backend_id) == 32, "xm_ct_value.backend_id offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_value, port) == 40, "xm_ct_value.port offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_value, flags) == 43, "xm_ct_value.flags offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_ct_value, state) == 44, "xm_ct_value.state offset");

/*
 * Where a TCP flow's handshake is, as far as this node sees it: what makes each connection report one
 * outcome to outlier detection and count once as opened and once as closed. Every transition out of a
 * state is a compare-and-swap, so XDP (client packets) and TC (local backends' replies) racing on two
 * CPUs cannot both take it.
 */
enum xm_ct_state {
	XM_CT_NONE = 0,	      /* nothing to watch: UDP, a TCP flow first seen mid-stream, or closed */
	XM_CT_OPEN = 1,	      /* established and counted as opened; its first FIN or RST counts it closed */
	XM_CT_SYN_SENT = 2,   /* SYN forwarded to the backend, no answer seen yet */
	XM_CT_SYN_FAILED = 3, /* the same, with its failure already reported (a retransmitted SYN) */
};

/*
 * xm_xdp_tcp_counters: Istio's TCP metrics of the flows XDP balances to local backends, per (service port,
 * backend); the client is an external address, so it is not part of the key (cardinality). A per-CPU
 * array, so that the lookup on every request packet is inlined by the verifier (no hashing, no helper
 * call: a hash lookup there cost the hit path ~50 ns, a fifth of it). The agent places each pair at the
 * first free of XM_XDP_TCP_PROBES positions from xm_xdp_tcp_slot() and writes the pair, as the owner, into
 * every CPU's copy; BPF probes the same positions and counts where the owner is the flow's pair, so a
 * position that the agent freed or gave to another pair never collects a stale flow's bytes.
 */
#define XM_XDP_TCP_SLOTS  2048
#define XM_XDP_TCP_PROBES 4

/* Istio's meanings: received = request bytes (client → service), sent = response bytes (service → client). */
struct xm_xdp_tcp_metrics {
	__u64 opened;	      /* handshakes completed (the client's ACK or a local backend's SYN-ACK) */
	__u64 closed;	      /* opened connections whose first FIN or RST this node saw */
	__u64 sent_bytes;     /* TCP payload of local backends' replies (TC egress) */
	__u64 received_bytes; /* TCP payload of the client's packets (XDP) */
	__u32 svc_id;	      /* owner, written by the agent (the same in every CPU's copy); 0: free */
	__u32 backend_id;
};
XM_STATIC_ASSERT(sizeof(struct xm_xdp_tcp_metrics) == 40, "xm_xdp_tcp_metrics size");
#define XM_XDP_TCP_COUNTERS_LEN 32 /* the per-CPU counters: the leading bytes, summed over CPUs */
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_xdp_tcp_metrics, svc_id) == XM_XDP_TCP_COUNTERS_LEN,
		 "xm_xdp_tcp_metrics: the counters lead, the owner follows");

/* First probe position of a (service port, backend) pair in xm_xdp_tcp_counters. */
static inline __u32 xm_xdp_tcp_slot(__u32 svc_id, __u32 backend_id)
{
	__u32 h = (svc_id * 0x9E3779B1u) ^ (backend_id * 0x85EBCA77u);

	return (h ^ (h >> 15)) & (XM_XDP_TCP_SLOTS - 1);
}

/*
 * xm_nat_backends: for each local backend of an external VIP (written by the agent), the VIP:ports it
 * serves. TC turns a reply backend:port -> client:cport into the connection-table key (client, cport, VIP,
 * vport) for each candidate, and rewrites the source only when that flow is pinned to this backend: no
 * per-flow reverse-NAT state has to be written on the XDP path.
 */
#define XM_NAT_MAX_VIPS 4

struct xm_nat_backend_key {
	union xm_addr addr;
	__u16 port; /* network order */
	__u8 proto;
	__u8 family;
};
XM_STATIC_ASSERT(sizeof(struct xm_nat_backend_key) == 20, "xm_nat_backend_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_nat_backend_key, port) == 16, "xm_nat_backend_key.port offset");

struct xm_nat_vip {
	union xm_addr vip;
	__u16 vport; /* network order */
	__u8 pad[2];
};
XM_STATIC_ASSERT(sizeof(struct xm_nat_vip) == 20, "xm_nat_vip size");

struct xm_nat_backend_value {
	__u32 count; /* used entries of vips */
	struct xm_nat_vip vips[XM_NAT_MAX_VIPS];
};
XM_STATIC_ASSERT(sizeof(struct xm_nat_backend_value) == 84, "xm_nat_backend_value size");

/*
 * xm_xdp_ifaces, keyed by ifindex: the uplink's own addresses. They are the outer source of IPIP/IP6IP6
 * packets this node sends, and the outer destination it decapsulates. Zero: that family is not served.
 */
struct xm_xdp_iface {
	union xm_addr addr4;
	union xm_addr addr6;
};
XM_STATIC_ASSERT(sizeof(struct xm_xdp_iface) == 32, "xm_xdp_iface size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_xdp_iface, addr6) == 16, "xm_xdp_iface.addr6 offset");

/*
 * xm_node_addrs: the InternalIPs of the cluster's nodes (the config's Node objects), written by the agent.
 * XDP decapsulates IPIP/IP6IP6 towards a VIP only from these outer sources: anyone else who reaches the
 * uplink could otherwise hand local pods packets with any inner source. Value: 1.
 */
#define XM_NODE_ADDRS_MAX 16384

struct xm_node_addr_key {
	union xm_addr addr;
	__u8 family;
	__u8 pad[3];
};
XM_STATIC_ASSERT(sizeof(struct xm_node_addr_key) == 20, "xm_node_addr_key size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_node_addr_key, family) == 16, "xm_node_addr_key.family offset");

/*
 * xm_nexthops: the resolved next hop of each remote node, so that a packet encapsulated towards a node needs
 * no bpf_fib_lookup (docs/xdp.md, "Next hops"). An array (the verifier inlines its lookup) used as a
 * direct-mapped table with two probes: a node lives in slot xm_nexthop_slot() or the one next to it, and
 * the entry names its node, so a node that found no room, or whose entry is missing or no longer valid, takes
 * the FIB path. The agent writes the entries from the kernel's route and neighbour tables at every neighbour
 * sync (after each apply and every 30 s) and clears those no node needs.
 */
#define XM_NEXTHOP_SLOTS   32768 /* a power of 2; at least twice XM_NODE_ADDRS_MAX */
#define XM_NEXTHOP_F_VALID 1

struct xm_nexthop {
	union xm_addr node; /* the node this slot holds */
	union xm_addr src;  /* outer source: the address of the egress uplink (xm_xdp_ifaces) */
	__u32 ifindex;	    /* egress uplink; the entry serves only packets received on it (XDP_TX) */
	__u16 mtu;	    /* route MTU: a larger outer packet takes the FIB path (which answers "too big") */
	__u8 family;
	__u8 flags; /* XM_NEXTHOP_F_VALID */
	__u8 dmac[6];
	__u8 smac[6];
	__u8 pad[12];
};
XM_STATIC_ASSERT(sizeof(struct xm_nexthop) == 64, "xm_nexthop size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_nexthop, ifindex) == 32, "xm_nexthop.ifindex offset");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_nexthop, dmac) == 40, "xm_nexthop.dmac offset");

/* The node's first slot (the second is this one ^ 1). */
static inline __u32 xm_nexthop_slot(const union xm_addr *a, __u8 family)
{
	__u32 fold = family == XM_FAMILY_V4 ? a->v4 : a->v6[0] ^ a->v6[1] ^ a->v6[2] ^ a->v6[3];

	return ((fold ^ family) * 0x9E3779B1u) >> 17 & (XM_NEXTHOP_SLOTS - 1);
}

/* xm_xdp_stats: per-CPU counters of the XDP/TC programs, indexed by enum xm_xdp_stat. */
enum xm_xdp_stat {
	XM_XDP_PASS_NOT_IP = 0, /* not IPv4/IPv6 (ARP, LLDP, ...), or shorter than an Ethernet header */
	XM_XDP_PASS_NOT_VIP,	/* IP, not for an external VIP (not counted on the fast path: derive it) */
	XM_XDP_PASS_MALFORMED,	/* bad or truncated IP/L4 header: passed untouched, the kernel drops it */
	XM_XDP_PASS_FRAGMENT,	/* IPv4 fragment or IPv6 fragment header: passed untouched */
	XM_XDP_PASS_IPV6_EXT,	/* IPv6 extension header before L4: passed untouched */
	XM_XDP_DROP_NO_NEIGH,	/* remote backend, next hop unresolved: dropped, the client retransmits */
	XM_XDP_DNAT_LOCAL,	/* DNAT to a local backend, XDP_PASS (new or re-validated flows) */
	XM_XDP_TX_ENCAP,	/* IPIP/IP6IP6 to the backend's node, XDP_TX (or XDP_REDIRECT) */
	XM_XDP_CT_HIT,		/* known flow forwarded from its connection-table snapshot */
	XM_XDP_DECAP,		/* IPIP/IP6IP6 from another node, stripped, then served locally */
	XM_XDP_DROP_NO_BACKEND, /* VIP with no ready backend */
	XM_XDP_DROP_NO_LOCAL,	/* decapsulated flow but no local ready backend (never re-encapsulated) */
	XM_XDP_DROP_NO_ROUTE,	/* no route to the backend's node, or its node address is unknown */
	XM_XDP_DROP_TOO_BIG,	/* encapsulated packet would exceed the route MTU */
	XM_XDP_DROP_ERROR,	/* a helper failed (adjust_head) */
	XM_XDP_CT_NEW,		/* connection-table insert (a new flow, or an unknown mid-flow packet) */
	XM_XDP_CT_NEW_NON_SYN,	/* ... of which a TCP packet without SYN: balanced by Maglev like a SYN */
	XM_TC_REV_NAT,		/* TC egress: reply source rewritten back to VIP:port */
	XM_XDP_TX_ICMP_TOO_BIG, /* would exceed the route MTU: ICMP frag. needed / ICMPv6 too big sent back, XDP_TX */
	XM_XDP_DROP_TUNNEL_SOURCE, /* IPIP/IP6IP6 to a VIP from an outer source that is no node (xm_node_addrs) */
	XM_XDP_STAT_MAX,
};

/* xm_xdp_vip_stats: per-CPU counters per service port (index = svc_id). */
enum xm_xdp_vip_verdict {
	XM_VIP_LOCAL = 0, /* DNATed to a local backend */
	XM_VIP_REMOTE,	  /* encapsulated to the backend's node */
	XM_VIP_DROP,	  /* dropped: no (local) backend, no route, too big */
	XM_VIP_PASS,	  /* passed to the kernel (unresolved neighbour) */
	XM_VIP_NEW_FLOW,  /* of the above, connection-table misses */
	XM_VIP_VERDICT_MAX,
};

struct xm_xdp_vip_counters {
	__u64 packets[XM_VIP_VERDICT_MAX];
	__u64 bytes; /* frame bytes of balanced packets (LOCAL + REMOTE) */
};
XM_STATIC_ASSERT(sizeof(struct xm_xdp_vip_counters) == 48, "xm_xdp_vip_counters size");

/*
 * The VIP pre-filter: one bit per hash of (destination address, port, protocol), set by the agent for every
 * external VIP. A packet whose bit is clear is not for a VIP and passes after a few instructions, without
 * a hash-map lookup; a set bit only means "look it up". addr_fold is the XOR of the address's 32-bit words
 * as loaded from the packet (an IPv4 address is its one word), port in network order.
 */
static inline __u32 xm_vip_filter_bit(__u32 addr_fold, __u16 port_be, __u8 proto)
{
	__u32 h = (addr_fold ^ ((__u32)port_be << 16 | proto)) * 0x9E3779B1u;

	return h >> 16; /* 0 .. XM_VIP_FILTER_BITS-1 */
}
XM_STATIC_ASSERT(XM_VIP_FILTER_BITS == 65536, "xm_vip_filter_bit returns 16 bits");

#endif
