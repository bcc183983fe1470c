// SPDX-License-Identifier: Apache-2.0
/*
 * The XDP load balancer and TC reverse NAT through BPF_PROG_TEST_RUN: a golden-packet table (input,
 * verdict, expected output bytes built independently, checksums recomputed), then the behaviours that need
 * several packets: connection-table stickiness across backend changes, Maglev spread, decapsulation with
 * local fallback, reverse NAT of replies, and BTF-named fields in `bpftool map dump`.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datapath/pins.h"
#include "lb/hash.h"
#include "sandbox.h"
#include "skel/xdp_lb.skel.h"
#include "xdp_fixture.h"

#define CLIENT4	    "198.51.100.7"
#define CLIENT6	    "2001:db8::7"
#define VIP4	    "10.97.0.10"
#define VIP6	    "fd00:97::10"
#define VIP4_REMOTE "10.97.0.20"
#define VIP6_REMOTE "fd00:97::20"
#define VIP4_EMPTY  "10.97.0.30"
#define POD4	    "10.200.1.11"
#define POD6	    "fd00:200::11"
#define POD4_B	    "10.200.2.21"
#define POD6_B	    "fd00:200:2::21"
/* Behind node C, reached over a route with a small locked MTU: what does not fit gets an ICMP reply. */
#define VIP4_SMALL "10.97.0.40"
#define VIP6_SMALL "fd00:97::40"
#define VIP6_TINY  "fd00:97::50" /* node D: route MTU 1300, too small to report to IPv6 clients */
#define POD4_C	   "10.200.3.31"
#define POD6_C	   "fd00:200:3::31"
#define NODE_C4	   "10.199.0.3"
#define NODE_C6	   "fd00:199::3"
#define NODE_D6	   "fd00:199::4"
#define FOREIGN4   "10.199.0.66" /* on the uplink's subnet, but no Node has it */
#define FOREIGN6   "fd00:199::66"
#define MTU4_C	   576
#define MTU6_C	   1400
#define MTU6_D	   1300

static void setup(void)
{
	xfx_setup();
}

TestSuite(xdp_lb, .init = setup, .fini = xfx_teardown, .timeout = XFX_SUITE_TIMEOUT);

static void publish_golden_services(void)
{
	const struct xfx_backend l4 = { POD4, 8080, true, true, NULL }, l4u = { POD4, 5353, true, true, NULL };
	const struct xfx_backend l6 = { POD6, 8080, true, true, NULL }, l6u = { POD6, 5353, true, true, NULL };
	const struct xfx_backend r4 = { POD4_B, 8080, false, true, XFX_NODE_B4 };
	const struct xfx_backend r6 = { POD6_B, 8080, false, true, XFX_NODE_B6 };
	const struct xfx_backend none = { "10.200.1.99", 8080, true, false, NULL };

	xfx_publish(VIP4, 80, 6, &l4, 1);
	xfx_publish(VIP4, 53, 17, &l4u, 1);
	xfx_publish(VIP6, 80, 6, &l6, 1);
	xfx_publish(VIP6, 53, 17, &l6u, 1);
	xfx_publish(VIP4_REMOTE, 80, 6, &r4, 1);
	xfx_publish(VIP6_REMOTE, 80, 6, &r6, 1);
	xfx_publish(VIP4_EMPTY, 80, 6, &none, 1);
}

static const uint8_t node_c_mac[6] = { 0x02, 0x00, 0, 0, 0, 0x03 };

/* Nodes C and D, each behind a host route with a locked MTU (bpf_fib_lookup reports it), and their VIPs. */
static void publish_small_mtu_services(void)
{
	const struct xfx_backend c4 = { POD4_C, 8080, false, true, NODE_C4 },
				 c6 = { POD6_C, 8080, false, true, NODE_C6 };
	const struct xfx_backend c4u = { POD4_C, 5353, false, true, NODE_C4 };
	const struct xfx_backend c6u = { POD6_C, 5353, false, true, NODE_C6 };
	const struct xfx_backend d6 = { "fd00:200:4::41", 8080, false, true, NODE_D6 };
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "route add " NODE_C4 "/32 dev xmx0 mtu lock %d", MTU4_C);
	xfx_ip(cmd);
	snprintf(cmd, sizeof(cmd), "-6 route add " NODE_C6 "/128 dev xmx0 mtu lock %d", MTU6_C);
	xfx_ip(cmd);
	snprintf(cmd, sizeof(cmd), "-6 route add " NODE_D6 "/128 dev xmx0 mtu lock %d", MTU6_D);
	xfx_ip(cmd);
	xfx_ip("neigh add " NODE_C4 " lladdr 02:00:00:00:00:03 dev xmx0 nud permanent");
	xfx_ip("-6 neigh add " NODE_C6 " lladdr 02:00:00:00:00:03 dev xmx0 nud permanent");
	xfx_ip("-6 neigh add " NODE_D6 " lladdr 02:00:00:00:00:04 dev xmx0 nud permanent");
	xfx_publish(VIP4_SMALL, 80, 6, &c4, 1);
	xfx_publish(VIP4_SMALL, 53, 17, &c4u, 1);
	xfx_publish(VIP6_SMALL, 80, 6, &c6, 1);
	xfx_publish(VIP6_SMALL, 53, 17, &c6u, 1);
	xfx_publish(VIP6_TINY, 80, 6, &d6, 1);
}

/* The flow hash of bpf/lib/conntrack.h, recomputed: the IP6IP6 flow label carries its low 20 bits. */
static uint32_t flow_hash(const struct xp_spec *s)
{
	union xm_addr sa, da;
	uint16_t sp = htons(s->sport), dp = htons(s->dport);
	uint64_t h;

	memset(&sa, 0, sizeof(sa));
	memset(&da, 0, sizeof(da));
	inet_pton(s->family == 4 ? AF_INET : AF_INET6, s->src, sa.bytes);
	inet_pton(s->family == 4 ? AF_INET : AF_INET6, s->dst, da.bytes);
	h = xm_mix64(((uint64_t)da.v6[2] << 32 | da.v6[3]) ^
		     ((uint64_t)sp << 48 | (uint64_t)dp << 32 | (uint32_t)s->proto << 8 | (uint32_t)s->family));
	h = xm_mix64(h ^ ((uint64_t)da.v6[0] << 32 | da.v6[1]));
	h = xm_mix64(h ^ ((uint64_t)sa.v6[2] << 32 | sa.v6[3]));
	h = xm_mix64(h ^ ((uint64_t)sa.v6[0] << 32 | sa.v6[1]));
	return (uint32_t)(h ^ (h >> 32));
}

enum want_kind {
	SAME,	  /* output = input, byte for byte */
	FRAME,	  /* output = xp_build(want) */
	TUNNEL,	  /* output = want inside outer XFX_IF_ADDR → XFX_NODE_B, MACs from the neighbour table */
	TUNNEL_C, /* the same towards node C */
	ICMP,	  /* output = ICMP frag. needed / ICMPv6 too big for `in`, built by icmp_too_big(), MTU of node C */
	DECAP,	  /* input = `in` inside outer XFX_NODE_B → XFX_IF_ADDR; output = xp_build(want) */
	ANY,	  /* verdict only (XDP_DROP) */
};

enum mutation {
	M_NONE,
	M_SHORT_ETH,   /* 16 bytes: a VLAN tag cut after its TCI (test_run refuses frames under 14 bytes) */
	M_ETH_ONLY,    /* 14 bytes: Ethernet header saying IPv4, nothing after it */
	M_ARP,	       /* ethertype 0x0806 */
	M_QINQ,	       /* a second VLAN tag */
	M_BAD_IHL,     /* IHL 4 */
	M_BAD_VERSION, /* IPv4 ethertype, version 5 */
	M_IP_TRUNC,    /* frame 10 bytes shorter than the IP total length */
	M_TCP_TRUNC,   /* IP total length and frame end 10 bytes into the TCP header */
	M_TCP_DOFF,    /* TCP data offset 4 */
	M_UDP_LEN,     /* UDP length beyond the IP payload */
	M_NOT_OURS,    /* tunnel to an address that is not this uplink's */
	M_FOREIGN,     /* tunnel to this uplink from an outer source that is no node (FOREIGN4/6) */
	M_ETH_BCAST,   /* Ethernet destination ff:ff:ff:ff:ff:ff */
};

struct golden {
	const char *name;
	struct xp_spec in;
	enum mutation mutate;
	int verdict;
	enum want_kind kind;
	struct xp_spec want;
	enum xm_xdp_stat stat; /* the counter this packet must bump (XM_XDP_STAT_MAX: none) */
};

#define TCP4(sp, d, dp) .family = 4, .proto = 6, .src = CLIENT4, .dst = d, .sport = sp, .dport = dp
#define UDP4(sp, d, dp) .family = 4, .proto = 17, .src = CLIENT4, .dst = d, .sport = sp, .dport = dp, .payload = 12
#define TCP6(sp, d, dp) .family = 6, .proto = 6, .src = CLIENT6, .dst = d, .sport = sp, .dport = dp
#define UDP6(sp, d, dp) .family = 6, .proto = 17, .src = CLIENT6, .dst = d, .sport = sp, .dport = dp, .payload = 12
/* UDP with the payload size left to the row. */
#define UDP_ANY(fam, s, sp, d, dp) .family = fam, .proto = 17, .src = s, .dst = d, .sport = sp, .dport = dp
#define NONE			   XM_XDP_STAT_MAX

static const struct golden golden[] = {
	/* DNAT to a local backend: destination and both checksums rewritten, XDP_PASS. */
	{ "dnat v4 tcp syn",
	  { TCP4(40001, VIP4, 80), .payload = 7 },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { TCP4(40001, POD4, 8080), .payload = 7 },
	  XM_XDP_DNAT_LOCAL },
	{ "dnat v4 udp",
	  { UDP4(40002, VIP4, 53) },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { UDP4(40002, POD4, 5353) },
	  XM_XDP_DNAT_LOCAL },
	{ "dnat v4 udp without checksum stays without",
	  { UDP4(40003, VIP4, 53), .udp_no_csum = true },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { UDP4(40003, POD4, 5353), .udp_no_csum = true },
	  XM_XDP_DNAT_LOCAL },
	{ "dnat v6 tcp syn",
	  { TCP6(40004, VIP6, 80), .payload = 3 },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { TCP6(40004, POD6, 8080), .payload = 3 },
	  XM_XDP_DNAT_LOCAL },
	{ "dnat v6 udp",
	  { UDP6(40005, VIP6, 53) },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { UDP6(40005, POD6, 5353) },
	  XM_XDP_DNAT_LOCAL },
	{ "dnat v4 tcp with IP options",
	  { TCP4(40006, VIP4, 80), .ip_opts = 8 },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { TCP4(40006, POD4, 8080), .ip_opts = 8 },
	  XM_XDP_DNAT_LOCAL },
	{ "dnat v4 tcp, VLAN tag kept",
	  { TCP4(40007, VIP4, 80), .vlan = true },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { TCP4(40007, POD4, 8080), .vlan = true },
	  XM_XDP_DNAT_LOCAL },
	{ "dnat v6 udp, VLAN tag kept",
	  { UDP6(40008, VIP6, 53), .vlan = true },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { UDP6(40008, POD6, 5353), .vlan = true },
	  XM_XDP_DNAT_LOCAL },
	{ "unknown flow, ACK without SYN: balanced by Maglev",
	  { TCP4(40009, VIP4, 80), .tcp_flags = 0x10 },
	  M_NONE,
	  XDP_PASS,
	  FRAME,
	  { TCP4(40009, POD4, 8080), .tcp_flags = 0x10 },
	  XM_XDP_CT_NEW_NON_SYN },

	/* Remote backend: the original packet inside IPIP/IP6IP6 to the backend's node, XDP_TX. */
	{ "ipip v4 tcp, tos copied",
	  { TCP4(40010, VIP4_REMOTE, 80), .tos = 0x28, .payload = 5 },
	  M_NONE,
	  XDP_TX,
	  TUNNEL,
	  { TCP4(40010, VIP4_REMOTE, 80), .tos = 0x28, .payload = 5 },
	  XM_XDP_TX_ENCAP },
	{ "ip6ip6 v6 tcp, traffic class copied",
	  { TCP6(40011, VIP6_REMOTE, 80), .tos = 0xb8 },
	  M_NONE,
	  XDP_TX,
	  TUNNEL,
	  { TCP6(40011, VIP6_REMOTE, 80), .tos = 0xb8 },
	  XM_XDP_TX_ENCAP },

	/* Decapsulation on the backend's node: outer header stripped, inner DNATed to the local backend. */
	{ "ipip to this node: decap + dnat",
	  { TCP4(40012, VIP4, 80), .payload = 9 },
	  M_NONE,
	  XDP_PASS,
	  DECAP,
	  { TCP4(40012, POD4, 8080), .payload = 9 },
	  XM_XDP_DECAP },
	{ "ip6ip6 to this node: decap + dnat",
	  { UDP6(40013, VIP6, 53) },
	  M_NONE,
	  XDP_PASS,
	  DECAP,
	  { UDP6(40013, POD6, 5353) },
	  XM_XDP_DECAP },
	{ "ipip to another address: untouched", { TCP4(40014, VIP4, 80) }, M_NOT_OURS, XDP_PASS, SAME, {}, NONE },
	/* From an outer source that is no node: dropped before the connection table, counted; bytes untouched. */
	{ "ipip from an unknown source: dropped",
	  { TCP4(40015, VIP4, 80), .payload = 9 },
	  M_FOREIGN,
	  XDP_DROP,
	  SAME,
	  {},
	  XM_XDP_DROP_TUNNEL_SOURCE },
	{ "ip6ip6 from an unknown source: dropped",
	  { UDP6(40016, VIP6, 53) },
	  M_FOREIGN,
	  XDP_DROP,
	  SAME,
	  {},
	  XM_XDP_DROP_TUNNEL_SOURCE },
	{ "ipip from an unknown source, not for a VIP: untouched",
	  { TCP4(40017, "10.97.0.99", 80) },
	  M_FOREIGN,
	  XDP_PASS,
	  SAME,
	  {},
	  NONE },
	{ "ip6ip6 from an unknown source, to the VIP's other port: untouched",
	  { TCP6(40018, VIP6, 81) },
	  M_FOREIGN,
	  XDP_PASS,
	  SAME,
	  {},
	  NONE },

	/* Not for a VIP: untouched. */
	{ "v4 tcp to another address", { TCP4(40020, "10.97.0.99", 80) }, M_NONE, XDP_PASS, SAME, {}, NONE },
	{ "v4 tcp to the VIP, other port", { TCP4(40021, VIP4, 81) }, M_NONE, XDP_PASS, SAME, {}, NONE },
	{ "v4 udp to the VIP's TCP port", { UDP4(40022, VIP4, 80) }, M_NONE, XDP_PASS, SAME, {}, NONE },
	{ "v6 udp to another address", { UDP6(40023, "fd00:97::99", 53) }, M_NONE, XDP_PASS, SAME, {}, NONE },
	/* Past the fixed-offset pre-filter (bpf/lib/xdp_balance.h), through the full parse: still untouched. */
	{ "v6 tcp to another address", { TCP6(40025, "fd00:97::99", 80) }, M_NONE, XDP_PASS, SAME, {}, NONE },
	{ "v4 tcp with IP options to another address",
	  { TCP4(40026, "10.97.0.99", 80), .ip_opts = 8 },
	  M_NONE,
	  XDP_PASS,
	  SAME,
	  {},
	  NONE },
	{ "v4 tcp with a VLAN tag to another address",
	  { TCP4(40027, "10.97.0.99", 80), .vlan = true },
	  M_NONE,
	  XDP_PASS,
	  SAME,
	  {},
	  NONE },
	/* The pre-filter judges by headers only: a frame for no VIP is passed untouched, bad length or not. */
	{ "v4 total length beyond the frame, to another address",
	  { TCP4(40028, "10.97.0.99", 80), .payload = 20 },
	  M_IP_TRUNC,
	  XDP_PASS,
	  SAME,
	  {},
	  NONE },
	{ "icmp to the VIP",
	  { .family = 4, .proto = 1, .src = CLIENT4, .dst = VIP4, .payload = 16 },
	  M_NONE,
	  XDP_PASS,
	  SAME,
	  {},
	  NONE },
	{ "arp", { TCP4(40024, VIP4, 80) }, M_ARP, XDP_PASS, SAME, {}, XM_XDP_PASS_NOT_IP },

	/* Truncated and malformed: never rewritten; the kernel's own checks drop them. */
	{ "short ethernet: VLAN header cut (16 bytes)",
	  { TCP4(40030, VIP4, 80) },
	  M_SHORT_ETH,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_NOT_IP },
	{ "ethernet header only (14 bytes)",
	  { TCP4(40029, VIP4, 80) },
	  M_ETH_ONLY,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_MALFORMED },
	{ "two VLAN tags", { TCP4(40031, VIP4, 80), .vlan = true }, M_QINQ, XDP_PASS, SAME, {}, XM_XDP_PASS_NOT_IP },
	{ "ipv4 IHL 4", { TCP4(40032, VIP4, 80) }, M_BAD_IHL, XDP_PASS, SAME, {}, XM_XDP_PASS_MALFORMED },
	{ "ipv4 version 5", { TCP4(40033, VIP4, 80) }, M_BAD_VERSION, XDP_PASS, SAME, {}, XM_XDP_PASS_MALFORMED },
	{ "ipv4 total length beyond the frame",
	  { TCP4(40034, VIP4, 80), .payload = 20 },
	  M_IP_TRUNC,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_MALFORMED },
	{ "tcp header truncated", { TCP4(40035, VIP4, 80) }, M_TCP_TRUNC, XDP_PASS, SAME, {}, XM_XDP_PASS_MALFORMED },
	{ "tcp data offset 4", { TCP4(40036, VIP4, 80) }, M_TCP_DOFF, XDP_PASS, SAME, {}, XM_XDP_PASS_MALFORMED },
	{ "udp length beyond the IP payload",
	  { UDP4(40037, VIP4, 53) },
	  M_UDP_LEN,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_MALFORMED },
	{ "ipv4 first fragment (MF)",
	  { TCP4(40038, VIP4, 80), .frag_off = 0x2000 },
	  M_NONE,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_FRAGMENT },
	{ "ipv4 later fragment",
	  { .family = 4, .proto = 6, .src = CLIENT4, .dst = VIP4, .frag_off = 100, .payload = 24 },
	  M_NONE,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_FRAGMENT },
	{ "ipv6 fragment header",
	  { TCP6(40039, VIP6, 80), .v6_frag = true },
	  M_NONE,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_FRAGMENT },
	{ "ipv6 hop-by-hop header",
	  { TCP6(40040, VIP6, 80), .v6_ext = 0 + 60 },
	  M_NONE,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_IPV6_EXT },
	{ "ipv6 routing header",
	  { UDP6(40041, VIP6, 53), .v6_ext = 43 },
	  M_NONE,
	  XDP_PASS,
	  SAME,
	  {},
	  XM_XDP_PASS_IPV6_EXT },

	/*
	 * Remote backend behind node C's small route MTU: what fits is encapsulated, what does not gets
	 * ICMP "fragmentation needed" (IPv4 with DF) or ICMPv6 "packet too big" from the VIP, XDP_TX.
	 */
	{ "ipip exactly at the route MTU: encapsulated",
	  { TCP4(40060, VIP4_SMALL, 80), .frag_off = 0x4000, .payload = MTU4_C - 20 - 40 },
	  M_NONE,
	  XDP_TX,
	  TUNNEL_C,
	  { TCP4(40060, VIP4_SMALL, 80), .frag_off = 0x4000, .payload = MTU4_C - 20 - 40 },
	  XM_XDP_TX_ENCAP },
	{ "ipip one byte over the route MTU, DF: icmp fragmentation needed",
	  { TCP4(40061, VIP4_SMALL, 80), .frag_off = 0x4000, .payload = MTU4_C - 20 - 40 + 1 },
	  M_NONE,
	  XDP_TX,
	  ICMP,
	  {},
	  XM_XDP_TX_ICMP_TOO_BIG },
	{ "ipip too big, DF, IP options: quoted with the options",
	  { TCP4(40062, VIP4_SMALL, 80), .frag_off = 0x4000, .ip_opts = 40, .payload = 700 },
	  M_NONE,
	  XDP_TX,
	  ICMP,
	  {},
	  XM_XDP_TX_ICMP_TOO_BIG },
	{ "ipip too big, DF, udp, VLAN tag kept",
	  { UDP_ANY(4, CLIENT4, 40063, VIP4_SMALL, 53), .frag_off = 0x4000, .vlan = true, .tos = 0x28,
	    .payload = 1200 },
	  M_NONE,
	  XDP_TX,
	  ICMP,
	  {},
	  XM_XDP_TX_ICMP_TOO_BIG },
	{ "ipip too big without DF: dropped",
	  { TCP4(40064, VIP4_SMALL, 80), .payload = 600 },
	  M_NONE,
	  XDP_DROP,
	  ANY,
	  {},
	  XM_XDP_DROP_TOO_BIG },
	{ "ipip too big, DF, multicast source: dropped",
	  { .family = 4,
	    .proto = 17,
	    .src = "224.1.2.3",
	    .dst = VIP4_SMALL,
	    .sport = 40065,
	    .dport = 53,
	    .frag_off = 0x4000,
	    .payload = 600 },
	  M_NONE,
	  XDP_DROP,
	  ANY,
	  {},
	  XM_XDP_DROP_TOO_BIG },
	{ "ipip too big, DF, Ethernet broadcast: dropped",
	  { TCP4(40066, VIP4_SMALL, 80), .frag_off = 0x4000, .payload = 600 },
	  M_ETH_BCAST,
	  XDP_DROP,
	  ANY,
	  {},
	  XM_XDP_DROP_TOO_BIG },
	{ "ip6ip6 exactly at the route MTU: encapsulated",
	  { TCP6(40070, VIP6_SMALL, 80), .payload = MTU6_C - 40 - 60 },
	  M_NONE,
	  XDP_TX,
	  TUNNEL_C,
	  { TCP6(40070, VIP6_SMALL, 80), .payload = MTU6_C - 40 - 60 },
	  XM_XDP_TX_ENCAP },
	{ "ip6ip6 one byte over the route MTU: icmpv6 packet too big",
	  { TCP6(40071, VIP6_SMALL, 80), .payload = MTU6_C - 40 - 60 + 1 },
	  M_NONE,
	  XDP_TX,
	  ICMP,
	  {},
	  XM_XDP_TX_ICMP_TOO_BIG },
	{ "ip6ip6 too big, udp, VLAN tag kept",
	  { UDP_ANY(6, CLIENT6, 40072, VIP6_SMALL, 53), .vlan = true, .tos = 0xb8, .payload = 1500 },
	  M_NONE,
	  XDP_TX,
	  ICMP,
	  {},
	  XM_XDP_TX_ICMP_TOO_BIG },
	{ "ip6ip6 too big, multicast source: dropped",
	  { .family = 6,
	    .proto = 6,
	    .src = "ff0e::7",
	    .dst = VIP6_SMALL,
	    .sport = 40073,
	    .dport = 80,
	    .payload = 1400 },
	  M_NONE,
	  XDP_DROP,
	  ANY,
	  {},
	  XM_XDP_DROP_TOO_BIG },
	{ "ip6ip6 too big for a route MTU below 1280 + 40: dropped",
	  { TCP6(40074, VIP6_TINY, 80), .payload = MTU6_D },
	  M_NONE,
	  XDP_DROP,
	  ANY,
	  {},
	  XM_XDP_DROP_TOO_BIG },

	/* A VIP without a ready backend. */
	{ "vip without ready backend",
	  { TCP4(40050, VIP4_EMPTY, 80) },
	  M_NONE,
	  XDP_DROP,
	  ANY,
	  {},
	  XM_XDP_DROP_NO_BACKEND },
};

static size_t apply_mutation(enum mutation m, uint8_t *f, size_t len)
{
	size_t ip = f[12] == 0x81 ? 18 : 14, hl = (size_t)(f[ip] & 15) * 4;

	switch (m) {
	case M_SHORT_ETH:
		f[12] = 0x81;
		f[13] = 0x00;
		return 16;
	case M_ETH_ONLY:
		return 14;
	case M_ARP:
		f[12] = 0x08;
		f[13] = 0x06;
		break;
	case M_QINQ:
		memmove(f + 16, f + 12, len - 12);
		f[12] = 0x88;
		f[13] = 0xa8;
		f[14] = 0;
		f[15] = 7;
		return len + 4;
	case M_BAD_IHL:
		f[ip] = 0x44;
		break;
	case M_BAD_VERSION:
		f[ip] = 0x55;
		break;
	case M_IP_TRUNC:
		return len - 10;
	case M_TCP_TRUNC:
		f[ip + 2] = 0;
		f[ip + 3] = (uint8_t)(hl + 10);
		return ip + hl + 10;
	case M_TCP_DOFF:
		f[ip + hl + 12] = 4 << 4;
		break;
	case M_UDP_LEN:
		f[ip + hl + 4] = 0x01;
		break;
	case M_ETH_BCAST:
		memset(f, 0xff, 6);
		break;
	default:
		break;
	}
	return len;
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ICMPv6 checksum: over the pseudo-header (addresses of ip6, length, next header 58) and the message. */
static uint16_t icmp6_csum(const uint8_t *ip6, const uint8_t *msg, size_t len)
{
	uint8_t buf[XP_MAX + 40];

	memcpy(buf, ip6 + 8, 32);
	memset(buf + 32, 0, 8);
	put16(buf + 34, (uint32_t)len);
	buf[39] = 58;
	memcpy(buf + 40, msg, len);
	return xp_csum(buf, 40 + len, 0);
}

/*
 * The reply the balancer owes the client for `in` (which does not fit node C's route), written from the RFCs
 * independently of the program: MACs swapped, VLAN tag kept, IP header from the VIP to the client (TTL 64,
 * IPv4 DF and id 0), ICMP 3/4 with MTU - 20 quoting the IP header + 8 bytes (RFC 792), or ICMPv6 2/0 with
 * MTU - 40 quoting as much as fits 1280 bytes (RFC 4443).
 */
static size_t icmp_too_big(const uint8_t *in, size_t in_len, uint8_t *out)
{
	size_t l2 = in[12] == 0x81 ? 18 : 14, quote;
	const uint8_t *ip = in + l2;
	uint8_t *o = out + l2, *icmp;

	memset(out, 0, XP_MAX);
	memcpy(out, in + 6, 6);
	memcpy(out + 6, in, 6);
	memcpy(out + 12, in + 12, l2 - 12);
	if ((ip[0] >> 4) == 4) {
		quote = (size_t)(ip[0] & 15) * 4 + 8;
		icmp = o + 20;
		o[0] = 0x45;
		put16(o + 2, (uint32_t)(20 + 8 + quote));
		o[6] = 0x40; /* DF */
		o[8] = 64;
		o[9] = 1;
		memcpy(o + 12, ip + 16, 4);
		memcpy(o + 16, ip + 12, 4);
		put16(o + 10, xp_csum(o, 20, 0));
		icmp[0] = 3;
		icmp[1] = 4;
		put16(icmp + 6, MTU4_C - 20);
		memcpy(icmp + 8, ip, quote);
		put16(icmp + 2, xp_csum(icmp, 8 + quote, 0));
		return l2 + 20 + 8 + quote;
	}
	quote = 1280 - 40 - 8;
	cr_assert(in_len >= l2 + quote, "IPv6 input shorter than the quote");
	icmp = o + 40;
	o[0] = 0x60;
	put16(o + 4, (uint32_t)(8 + quote));
	o[6] = 58;
	o[7] = 64;
	memcpy(o + 8, ip + 24, 16);
	memcpy(o + 24, ip + 8, 16);
	icmp[0] = 2;
	put16(icmp + 6, MTU6_C - 40); /* a 32-bit field: the upper half stays 0 */
	memcpy(icmp + 8, ip, quote);
	put16(icmp + 2, icmp6_csum(o, icmp, 8 + quote));
	return l2 + 40 + 8 + quote;
}

/* Recomputes the checksums of an ICMP reply frame; false (and why) if any is wrong. */
static bool icmp_csums_ok(const uint8_t *f, size_t len, char *why, size_t why_len)
{
	size_t l2 = f[12] == 0x81 ? 18 : 14;
	const uint8_t *ip = f + l2;

	if ((ip[0] >> 4) == 4) {
		size_t tot = (size_t)(ip[2] << 8 | ip[3]);

		if (l2 + tot != len || xp_csum(ip, 20, 0) || xp_csum(ip + 20, tot - 20, 0)) {
			snprintf(why, why_len, "IPv4 length %zu or checksums (ip 0x%02x%02x, icmp 0x%02x%02x) wrong",
				 tot, ip[10], ip[11], ip[22], ip[23]);
			return false;
		}
		return true;
	}
	if (l2 + 40 + (size_t)(ip[4] << 8 | ip[5]) != len || icmp6_csum(ip, ip + 40, len - l2 - 40)) {
		snprintf(why, why_len, "IPv6 payload length or ICMPv6 checksum 0x%02x%02x wrong", ip[42], ip[43]);
		return false;
	}
	return true;
}

/* The sum of every XDP verdict counter: a row without a counter must leave it as it was. */
static uint64_t all_stats(void)
{
	uint64_t sum = 0;

	for (int i = 0; i < XM_XDP_STAT_MAX; i++)
		sum += xfx_stat((enum xm_xdp_stat)i);
	return sum;
}

/*
 * A row's check: reported without stopping the test (cr_expect), then the row ends, so that one mismatch
 * neither hides the other rows nor cascades within its own. Every row has its own flow (client port).
 */
#define ROW_EXPECT(cond, ...)                                                                                          \
	do {                                                                                                           \
		bool row_ok_ = (cond);                                                                                 \
		cr_expect(row_ok_, __VA_ARGS__);                                                                       \
		if (!row_ok_)                                                                                          \
			return false;                                                                                  \
	} while (0)

static bool run_golden(const struct golden *g)
{
	uint8_t in[XP_MAX], want[XP_MAX], out[XP_MAX];
	size_t in_len, want_len = 0, out_len;
	uint64_t before = g->stat != NONE ? xfx_stat(g->stat) : all_stats();
	char diff[160], why[120];
	int verdict;

	if (g->kind == DECAP)
		in_len = xp_build_tunnel(&g->in, g->in.family == 4 ? XFX_NODE_B4 : XFX_NODE_B6,
					 g->in.family == 4 ? XFX_IF_ADDR4 : XFX_IF_ADDR6, 0, in);
	else if (g->mutate == M_NOT_OURS)
		in_len = xp_build_tunnel(&g->in, XFX_NODE_B4, "10.199.0.77", 0, in);
	else if (g->mutate == M_FOREIGN)
		in_len = xp_build_tunnel(&g->in, g->in.family == 4 ? FOREIGN4 : FOREIGN6,
					 g->in.family == 4 ? XFX_IF_ADDR4 : XFX_IF_ADDR6, 0, in);
	else
		in_len = apply_mutation(g->mutate, in, xp_build(&g->in, in));

	verdict = xfx_run_xdp(in, in_len, out, &out_len);
	ROW_EXPECT(verdict == g->verdict, "[%s] verdict %d, want %d", g->name, verdict, g->verdict);
	switch (g->kind) {
	case SAME:
		memcpy(want, in, in_len);
		want_len = in_len;
		break;
	case FRAME:
	case DECAP:
		want_len = xp_build(&g->want, want);
		break;
	case TUNNEL:
	case TUNNEL_C: {
		bool c = g->kind == TUNNEL_C;

		want_len =
		    xp_build_tunnel(&g->want, g->want.family == 4 ? XFX_IF_ADDR4 : XFX_IF_ADDR6,
				    g->want.family == 4 ? (c ? NODE_C4 : XFX_NODE_B4) : (c ? NODE_C6 : XFX_NODE_B6),
				    flow_hash(&g->want) & 0xfffff, want);
		memcpy(want, c ? node_c_mac : xfx_node_b_mac, 6);
		memcpy(want + 6, xp_node_mac, 6);
		break;
	}
	case ICMP:
		want_len = icmp_too_big(in, in_len, want);
		break;
	case ANY:
		break;
	}
	if (g->kind != ANY) {
		xp_diff(out, out_len, want, want_len, diff, sizeof(diff));
		if (out_len != want_len || memcmp(out, want, want_len)) {
			for (size_t j = 0; j < out_len && j < 80; j++)
				fprintf(stderr, "%02x%s", out[j], j % 16 == 15 ? "\n" : " ");
			fprintf(stderr, "\n");
			for (size_t j = 0; j < want_len && j < 80; j++)
				fprintf(stderr, "%02x%s", want[j], j % 16 == 15 ? "\n" : " ");
			fprintf(stderr, "\n");
		}
		ROW_EXPECT(out_len == want_len && !memcmp(out, want, want_len), "[%s] output differs: %s", g->name,
			   diff);
	}
	if (g->kind == FRAME || g->kind == DECAP)
		ROW_EXPECT(xp_csums_ok(out, out_len, why, sizeof(why)), "[%s] %s", g->name, why);
	if (g->kind == ICMP)
		ROW_EXPECT(icmp_csums_ok(out, out_len, why, sizeof(why)), "[%s] %s", g->name, why);
	if (g->kind == TUNNEL || g->kind == TUNNEL_C) {
		size_t l2 = 14, oh = g->want.family == 4 ? 20 : 0;

		if (oh)
			ROW_EXPECT(xp_csum(out + l2, 20, 0) == 0, "[%s] outer IPv4 header checksum wrong", g->name);
	}
	if (g->stat != NONE)
		ROW_EXPECT(xfx_stat(g->stat) == before + 1, "[%s] counter %d: %llu, want %llu", g->name, g->stat,
			   (unsigned long long)xfx_stat(g->stat), (unsigned long long)before + 1);
	else
		ROW_EXPECT(all_stats() == before, "[%s] a verdict counter moved", g->name);
	return true;
}

/*
 * Every row runs and reports its own mismatch. (Not a criterion ParameterizedTest: each of its instances
 * is a process that loads and verifies xdp_lb again, about 1.8 s per row on the CI machine.)
 */
Test(xdp_lb, golden_packets)
{
	size_t i, n = sizeof(golden) / sizeof(golden[0]), failed = 0;

	publish_golden_services();
	publish_small_mtu_services();
	for (i = 0; i < n; i++)
		failed += !run_golden(&golden[i]);
	cr_expect_eq(failed, 0, "%zu of %zu golden rows failed (each reported above)", failed, n);
}

/* The per-VIP counters of an IPv4 VIP:port/TCP, summed over CPUs. */
static struct xm_xdp_vip_counters vip_counters(const char *vip, uint16_t port)
{
	int ncpu = libbpf_num_possible_cpus(), i, v;
	struct xm_xdp_vip_counters per_cpu[ncpu], sum;
	struct xm_svc_value svc;
	struct xm_svc_key key;

	memset(&key, 0, sizeof(key));
	memset(&sum, 0, sizeof(sum));
	cr_assert_eq(inet_pton(AF_INET, vip, key.vip.bytes), 1);
	key.port = htons(port);
	key.proto = 6;
	key.family = XM_FAMILY_V4;
	cr_assert_eq(bpf_map_lookup_elem(xfx.fds.services, &key, &svc), 0, "service %s:%u not published", vip, port);
	cr_assert_eq(bpf_map__lookup_elem(xfx.skel->maps.xm_xdp_vip_stats, &svc.svc_id, sizeof(svc.svc_id), per_cpu,
					  sizeof(per_cpu), 0),
		     0);
	for (i = 0; i < ncpu; i++) {
		for (v = 0; v < XM_VIP_VERDICT_MAX; v++)
			sum.packets[v] += per_cpu[i].packets[v];
		sum.bytes += per_cpu[i].bytes;
	}
	return sum;
}

/*
 * PMTU discovery end to end: the client's oversized packet is answered with the route's MTU minus the
 * outer header, the same flow resent at exactly that size is encapsulated, and the per-VIP counters show
 * the first as a drop (it never reached a backend) and the second as remote.
 */
Test(xdp_lb, too_big_answer_then_resend_at_reported_mtu_is_encapsulated)
{
	struct xp_spec big = { TCP4(40080, VIP4_SMALL, 80), .frag_off = 0x4000, .payload = 1000 };
	uint8_t in[XP_MAX], out[XP_MAX];
	struct xm_xdp_vip_counters c;
	size_t len, out_len;
	unsigned int mtu;

	publish_golden_services();
	publish_small_mtu_services();
	len = xp_build(&big, in);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_TX);
	cr_assert(out[14 + 9] == 1 && out[34] == 3 && out[35] == 4, "not an ICMP fragmentation needed");
	mtu = (unsigned int)(out[40] << 8 | out[41]);
	cr_assert_eq(mtu, MTU4_C - 20, "reported MTU %u", mtu);

	big.payload = (int)mtu - 40; /* the client's new segment size: IP + TCP headers + payload = mtu */
	big.tcp_flags = 0x10;
	len = xp_build(&big, in);
	cr_assert_eq(len, 14 + mtu);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_TX);
	cr_assert_eq(out_len, len + 20, "not encapsulated");
	cr_assert(out[14 + 9] == 4 && !memcmp(out, node_c_mac, 6), "not IPIP to node C");
	cr_assert(!memcmp(out + 34, in + 14, len - 14), "inner packet changed");

	c = vip_counters(VIP4_SMALL, 80);
	cr_assert_eq(c.packets[XM_VIP_DROP], 1);
	cr_assert_eq(c.packets[XM_VIP_REMOTE], 1);
	cr_assert_eq(c.packets[XM_VIP_NEW_FLOW], 1, "the answered packet pinned the flow");
	cr_assert_eq(xfx_stat(XM_XDP_TX_ICMP_TOO_BIG), 1);
	cr_assert_eq(xfx_stat(XM_XDP_TX_ENCAP), 1);
}

/* Sends a SYN (or ACK) of CLIENT4:sport → vip:80 and returns the host part of the backend it was DNATed to. */
static int backend_of(const char *vip, uint16_t sport, uint8_t flags)
{
	struct xp_spec s = { TCP4(sport, vip, 80), .tcp_flags = flags };
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len, out_len;

	len = xp_build(&s, in);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_PASS, "sport %u: not DNATed", sport);
	cr_assert(out[36] == 0x1f && out[37] == 0x90, "sport %u: dport not 8080", sport);
	return out[14 + 19]; /* last byte of the destination address */
}

static void publish_n(const char *vip, int first, int n)
{
	static char addrs[64][32];
	struct xfx_backend b[64];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "10.200.1.%d", first + i);
		b[i] = (struct xfx_backend){ addrs[i], 8080, true, true, NULL };
	}
	xfx_publish(vip, 80, 6, b, n);
}

Test(xdp_lb, conntrack_hit_keeps_backend_after_backend_set_changes)
{
	int before[256], after, moved = 0, i;

	publish_n(VIP4, 11, 3);
	for (i = 0; i < 200; i++)
		before[i] = backend_of(VIP4, (uint16_t)(20000 + i), 0x02);
	/* Four more backends: Maglev now sends ~4/7 of these flows elsewhere, but the table pins them. */
	publish_n(VIP4, 11, 7);
	for (i = 0; i < 200; i++) {
		after = backend_of(VIP4, (uint16_t)(20000 + i), 0x10);
		cr_assert_eq(after, before[i], "flow %d moved from .%d to .%d after the backend set changed", i,
			     before[i], after);
	}
	/* Without their entries the same flows are balanced over the new set: the table is what held them. */
	for (i = 0; i < 200; i++) {
		struct xm_ct_key k;

		memset(&k, 0, sizeof(k));
		inet_pton(AF_INET, CLIENT4, &k.saddr.v4);
		inet_pton(AF_INET, VIP4, &k.daddr.v4);
		k.sport = htons((uint16_t)(20000 + i));
		k.dport = htons(80);
		k.proto = 6;
		k.family = XM_FAMILY_V4;
		cr_assert_eq(bpf_map_delete_elem(bpf_map__fd(xfx.skel->maps.xm_ct), &k), 0, "flow %d not in xm_ct", i);
		after = backend_of(VIP4, (uint16_t)(20000 + i), 0x10);
		moved += after != before[i];
		before[i] = after; /* pinned anew */
	}
	cr_assert(moved > 50, "only %d of 200 flows move to new backends without the connection table", moved);
	/*
	 * Backends removed (and deleted after the lbmap grace period): established packets keep going to the
	 * pinned address (a terminating pod drains), a SYN re-validates and is balanced over what is left.
	 */
	publish_n(VIP4, 11, 1);
	publish_n(VIP4, 11, 1);
	for (i = 0; i < 200; i++) {
		after = backend_of(VIP4, (uint16_t)(20000 + i), 0x10);
		cr_assert_eq(after, before[i], "flow %d left its removed backend .%d mid-connection", i, before[i]);
		cr_assert_eq(backend_of(VIP4, (uint16_t)(20000 + i), 0x02), 11, "flow %d: SYN not re-balanced", i);
		cr_assert_eq(backend_of(VIP4, (uint16_t)(20000 + i), 0x10), 11, "flow %d: not pinned anew", i);
	}
}

Test(xdp_lb, maglev_spreads_new_flows)
{
	int counts[256] = { 0 }, i;

	publish_n(VIP4, 11, 3);
	for (i = 0; i < 600; i++)
		counts[backend_of(VIP4, (uint16_t)(30000 + i), 0x02)]++;
	for (i = 11; i <= 13; i++)
		cr_assert(counts[i] >= 120 && counts[i] <= 282, "backend .%d got %d of 600 flows", i, counts[i]);
	cr_assert_eq(counts[11] + counts[12] + counts[13], 600);
	cr_assert_eq(xfx_ct_entries(), 600);
}

Test(xdp_lb, decap_serves_only_local_backends)
{
	struct xfx_backend b[5] = {
		{ "10.200.2.21", 8080, false, true, XFX_NODE_B4 }, { "10.200.2.22", 8080, false, true, XFX_NODE_B4 },
		{ "10.200.1.11", 8080, true, true, NULL },	   { "10.200.2.23", 8080, false, true, XFX_NODE_B4 },
		{ "10.200.2.24", 8080, false, true, XFX_NODE_B4 },
	};
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len, out_len;
	int i, rc, fallback = 0;

	xfx_publish(VIP4, 80, 6, b, 5);
	for (i = 0; i < 100; i++) {
		struct xp_spec s = { TCP4((uint16_t)(50000 + i), VIP4, 80) };
		struct xp_spec w = { TCP4((uint16_t)(50000 + i), "10.200.1.11", 8080) };
		uint8_t want[XP_MAX];
		size_t want_len;
		char d[160];

		len = xp_build_tunnel(&s, XFX_NODE_B4, XFX_IF_ADDR4, 0, in);
		rc = xfx_run_xdp(in, len, out, &out_len);
		cr_assert_eq(rc, XDP_PASS, "flow %d: verdict %d (no local %llu)", i, rc,
			     (unsigned long long)xfx_stat(XM_XDP_DROP_NO_LOCAL));
		want_len = xp_build(&w, want);
		xp_diff(out, out_len, want, want_len, d, sizeof(d));
		cr_assert(out_len == want_len && !memcmp(out, want, want_len), "flow %d: %s", i, d);
	}
	fallback = (int)xfx_stat(XM_XDP_DECAP);
	cr_assert_eq(fallback, 100);
	/* Without any local backend, a decapsulated flow is dropped, never sent back out. */
	xfx_publish(VIP4, 80, 6, b, 2);
	{
		struct xp_spec s = { TCP4(50500, VIP4, 80) };

		len = xp_build_tunnel(&s, XFX_NODE_B4, XFX_IF_ADDR4, 0, in);
		cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_DROP);
		cr_assert_eq(xfx_stat(XM_XDP_DROP_NO_LOCAL), 1);
	}
}

static void check_rev_nat(int family, int proto)
{
	const char *vip = family == 4 ? VIP4 : VIP6, *pod = family == 4 ? POD4 : POD6;
	const char *client = family == 4 ? CLIENT4 : CLIENT6;
	uint16_t vport = proto == 6 ? 80 : 53, tport = proto == 6 ? 8080 : 5353;
	struct xp_spec req = { .family = family,
			       .proto = proto,
			       .src = client,
			       .dst = vip,
			       .sport = 41000,
			       .dport = vport,
			       .payload = 4 };
	struct xp_spec reply = { .family = family,
				 .proto = proto,
				 .src = pod,
				 .dst = client,
				 .sport = tport,
				 .dport = 41000,
				 .tcp_flags = 0x12,
				 .payload = 6 };
	struct xp_spec want = reply;
	uint8_t in[XP_MAX], out[XP_MAX], w[XP_MAX];
	size_t len, out_len, wl;
	char d[160], why[120];

	publish_golden_services();
	len = xp_build(&req, in);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_PASS);
	len = xp_build(&reply, in);
	cr_assert_eq(xfx_run_tc(in, len, out, &out_len), 0, "TC verdict");
	want.src = vip;
	want.sport = vport;
	wl = xp_build(&want, w);
	xp_diff(out, out_len, w, wl, d, sizeof(d));
	cr_assert(out_len == wl && !memcmp(out, w, wl), "v%d/%d reply not reverse-NATed: %s", family, proto, d);
	cr_assert(xp_csums_ok(out, out_len, why, sizeof(why)), "%s", why);
	/* Another flow from the same pod is not touched. */
	reply.dport = 41001;
	len = xp_build(&reply, in);
	cr_assert_eq(xfx_run_tc(in, len, out, &out_len), 0);
	cr_assert(out_len == len && !memcmp(out, in, len), "unrelated reply was modified");
}

Test(xdp_lb, tc_reverse_nat_v4_tcp)
{
	check_rev_nat(4, 6);
}

Test(xdp_lb, tc_reverse_nat_v4_udp)
{
	check_rev_nat(4, 17);
}

Test(xdp_lb, tc_reverse_nat_v6_tcp)
{
	check_rev_nat(6, 6);
}

Test(xdp_lb, tc_reverse_nat_v6_udp)
{
	check_rev_nat(6, 17);
}

/* The connection table carries BTF: bpftool prints its fields by name. */
Test(xdp_lb, bpftool_dump_of_conntrack_has_named_fields)
{
	char dir[128], pin[160], cmd[400], buf[8192];
	size_t n;
	FILE *f;

	if (system("command -v bpftool >/dev/null"))
		sandbox_cannot_run("bpftool not installed");
	publish_golden_services();
	backend_of(VIP4, 42000, 0x02);
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/xmx-bpftest-%d", getpid());
	/* pins_prepare mounts bpffs first: on a freshly booted machine nothing has mounted it yet. */
	cr_assert_eq(pins_prepare(dir), 0, "pins_prepare %s", dir);
	snprintf(pin, sizeof(pin), "%s/xm_ct", dir);
	cr_assert_eq(bpf_obj_pin(bpf_map__fd(xfx.skel->maps.xm_ct), pin), 0, "pin: %s", strerror(errno));
	snprintf(cmd, sizeof(cmd), "bpftool map dump pinned %s 2>&1", pin);
	f = popen(cmd, "r");
	n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		pclose(f);
	buf[n] = '\0';
	unlink(pin);
	snprintf(pin, sizeof(pin), "%s/%s", dir, XM_LINKS_SUBDIR);
	rmdir(pin);
	rmdir(dir);
	cr_assert(strstr(buf, "\"saddr\"") && strstr(buf, "\"sport\"") && strstr(buf, "\"backend_id\"") &&
		      strstr(buf, "\"node_addr\""),
		  "bpftool output lacks named fields:\n%s", buf);
}

static struct xm_svc_value published(const char *vip, uint16_t port)
{
	struct xm_svc_value v;
	struct xm_svc_key key;

	memset(&key, 0, sizeof(key));
	inet_pton(AF_INET, vip, key.vip.bytes);
	key.port = htons(port);
	key.proto = 6;
	key.family = XM_FAMILY_V4;
	cr_assert_eq(bpf_map_lookup_elem(xfx.fds.services, &key, &v), 0, "service %s:%u not published", vip, port);
	return v;
}

/*
 * External VIP ports take ids below XM_MAX_EXT_SVC_IDS (the per-VIP counters have only that many
 * entries). A service pinned with an id outside its range by an earlier version is adopted, then moved
 * into the range by the next apply, and counts from there.
 */
Test(xdp_lb, external_ports_take_low_ids_and_old_ids_move)
{
	const struct xfx_backend b = { POD4, 8080, true, true, NULL };
	struct xm_svc_value v;
	struct xm_svc_key key;
	uint32_t moved;

	xfx_publish(VIP4, 80, 6, &b, 1);
	v = published(VIP4, 80);
	cr_assert(v.svc_id > 0 && v.svc_id < XM_MAX_EXT_SVC_IDS, "external port got id %u", v.svc_id);

	/* What an earlier version left: the same service under a high id. The agent restarts (adopts). */
	memset(&key, 0, sizeof(key));
	inet_pton(AF_INET, VIP4, key.vip.bytes);
	key.port = htons(80);
	key.proto = 6;
	key.family = XM_FAMILY_V4;
	v.svc_id = 5000;
	cr_assert_eq(bpf_map_update_elem(xfx.fds.services, &key, &v, BPF_ANY), 0);
	lbmap_free(xfx.lbmap);
	xfx.lbmap = lbmap_open(&xfx.fds);
	cr_assert(xfx.lbmap);
	cr_assert_eq(published(VIP4, 80).svc_id, 5000, "adoption changed the id");

	xfx_publish(VIP4, 80, 6, &b, 1); /* the next apply, same config */
	moved = published(VIP4, 80).svc_id;
	cr_assert(moved > 0 && moved < XM_MAX_EXT_SVC_IDS, "id %u not moved into the external range", moved);
	cr_assert_eq(backend_of(VIP4, 30000, 0x02), 11);
	cr_assert_eq(vip_counters(VIP4, 80).packets[XM_VIP_NEW_FLOW], 1, "the moved id does not count");
}
