// SPDX-License-Identifier: Apache-2.0
/*
 * The next-hop table (xm_nexthops): the agent reads each remote node's resolved next hop from the kernel at a
 * neighbour sync (agent/datapath/neigh.c) and hands it to XDP (agent/datapath/xdp_nodes.c), which then
 * encapsulates without bpf_fib_lookup. What the table holds is what the kernel had at the last sync: a
 * neighbour that changes is picked up at the next one. Without an entry, or when the entry cannot carry
 * the packet (too big for the route MTU), the FIB path decides, as before.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <string.h>

#include "datapath/neigh.h"
#include "datapath/xdp_nodes.h"
#include "skel/xdp_lb.skel.h"
#include "xdp_fixture.h"

#define CLIENT4	    "198.51.100.7"
#define CLIENT6	    "2001:db8::7"
#define VIP4_REMOTE "10.97.0.20"
#define VIP6_REMOTE "fd00:97::20"
#define VIP4_SMALL  "10.97.0.40"
#define POD4_B	    "10.200.2.21"
#define POD6_B	    "fd00:200:2::21"
#define POD4_C	    "10.200.3.31"
#define NODE_C4	    "10.199.0.3"
#define MTU4_C	    576

static struct xm_nexthop_table table;

static void fini(void)
{
	xdp_nexthops_free(&table);
	xfx_teardown();
}

TestSuite(xdp_nexthop, .init = xfx_setup, .fini = fini, .timeout = XFX_SUITE_TIMEOUT);

static const uint8_t mac_new[6] = { 0x02, 0x00, 0, 0, 0, 0x09 };
static const uint8_t uplink_mac[6] = { 0x02, 0x00, 0, 0, 0, 0x01 };

static struct xm_neigh_node node(const char *addr)
{
	struct xm_neigh_node n = { .family = strchr(addr, ':') ? XM_FAMILY_V6 : XM_FAMILY_V4 };

	cr_assert_eq(inet_pton(n.family == XM_FAMILY_V4 ? AF_INET : AF_INET6, addr, n.addr.bytes), 1);
	return n;
}

/* One neighbour sync as the agent runs it: neighbour entries, then the table. Returns the entries placed. */
static int sync_nodes(struct xm_neigh_node *nodes, size_t n)
{
	cr_assert_eq(neigh_sync(nodes, n), 0);
	return xdp_nexthops_sync(&table, bpf_map__fd(xfx.skel->maps.xm_nexthops),
				 bpf_map__fd(xfx.skel->maps.xm_xdp_ifaces), nodes, n);
}

/* Sends one packet of the flow and checks it leaves encapsulated towards dmac. */
static void sent_to(const struct xp_spec *s, const uint8_t dmac[6], const char *what)
{
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len = xp_build(s, in), out_len;

	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_TX, "%s: not transmitted", what);
	cr_assert(!memcmp(out, dmac, 6), "%s: destination MAC %02x:..:%02x", what, out[4], out[5]);
	cr_assert(!memcmp(out + 6, uplink_mac, 6), "%s: source MAC is not the uplink's", what);
	cr_assert_eq(out_len, len + (s->family == 4 ? 20 : 40), "%s: not encapsulated", what);
}

static void neighbour_change_is_picked_up_at_next_sync(const char *node_addr, const char *vip, const char *pod,
						       const struct xp_spec *s, const char *ip)
{
	const struct xfx_backend b = { pod, 8080, false, true, node_addr };
	struct xm_neigh_node n = node(node_addr);
	char cmd[160];

	xfx_publish(vip, 80, 6, &b, 1);
	cr_assert_eq(sync_nodes(&n, 1), 1);
	cr_assert(n.resolved && n.ifindex == xfx.ifindex && n.mtu == 1500);
	cr_assert(!memcmp(n.dmac, xfx_node_b_mac, 6) && !memcmp(n.smac, uplink_mac, 6));
	sent_to(s, xfx_node_b_mac, "after the first sync");

	/* Node B's MAC changes (a new NIC, a gratuitous ARP): the table keeps the old one until the next sync. */
	snprintf(cmd, sizeof(cmd), "%s neigh replace %s lladdr 02:00:00:00:00:09 dev xmx0 nud permanent", ip,
		 node_addr);
	xfx_ip(cmd);
	sent_to(s, xfx_node_b_mac, "before the next sync: the table, not the FIB");
	cr_assert_eq(sync_nodes(&n, 1), 1);
	sent_to(s, mac_new, "after the next sync");
	cr_assert_eq(xfx_stat(XM_XDP_TX_ENCAP), 3);

	/* The node serves nothing any more: its entry goes, and the FIB path (the kernel's entry) serves it. */
	cr_assert_eq(sync_nodes(NULL, 0), 0);
	snprintf(cmd, sizeof(cmd), "%s neigh replace %s lladdr 02:00:00:00:00:02 dev xmx0 nud permanent", ip,
		 node_addr);
	xfx_ip(cmd);
	sent_to(s, xfx_node_b_mac, "without an entry");
}

Test(xdp_nexthop, v4_neighbour_change_is_picked_up_at_next_sync)
{
	const struct xp_spec s = { .family = 4,
				   .proto = 6,
				   .src = CLIENT4,
				   .dst = VIP4_REMOTE,
				   .sport = 41000,
				   .dport = 80,
				   .tcp_flags = 0x10 };

	neighbour_change_is_picked_up_at_next_sync(XFX_NODE_B4, VIP4_REMOTE, POD4_B, &s, "");
}

Test(xdp_nexthop, v6_neighbour_change_is_picked_up_at_next_sync)
{
	const struct xp_spec s = { .family = 6,
				   .proto = 6,
				   .src = CLIENT6,
				   .dst = VIP6_REMOTE,
				   .sport = 41000,
				   .dport = 80,
				   .tcp_flags = 0x10 };

	neighbour_change_is_picked_up_at_next_sync(XFX_NODE_B6, VIP6_REMOTE, POD6_B, &s, "-6");
}

/* A route change (here: a locked MTU) is picked up too, and a packet above it takes the FIB path's answer. */
Test(xdp_nexthop, route_mtu_from_sync_and_too_big_takes_the_fib_path)
{
	const struct xfx_backend c = { POD4_C, 8080, false, true, NODE_C4 };
	struct xp_spec s = { .family = 4,
			     .proto = 6,
			     .src = CLIENT4,
			     .dst = VIP4_SMALL,
			     .sport = 41001,
			     .dport = 80,
			     .tcp_flags = 0x10,
			     .frag_off = 0x4000 };
	struct xm_neigh_node n = node(NODE_C4);
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len, out_len;
	char cmd[160];

	xfx_ip("neigh add " NODE_C4 " lladdr 02:00:00:00:00:03 dev xmx0 nud permanent");
	xfx_publish(VIP4_SMALL, 80, 6, &c, 1);
	cr_assert_eq(sync_nodes(&n, 1), 1);
	cr_assert_eq(n.mtu, 1500);

	snprintf(cmd, sizeof(cmd), "route add " NODE_C4 "/32 dev xmx0 mtu lock %d", MTU4_C);
	xfx_ip(cmd);
	xfx_ip("neigh replace " NODE_C4 " lladdr 02:00:00:00:00:03 dev xmx0 nud permanent");
	cr_assert_eq(sync_nodes(&n, 1), 1);
	cr_assert_eq(n.mtu, MTU4_C, "route MTU %u", n.mtu);

	s.payload = MTU4_C - 20 - 40; /* outer packet exactly the route MTU: the table carries it */
	len = xp_build(&s, in);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_TX);
	cr_assert_eq(out_len, len + 20);
	s.payload++; /* one byte more: the FIB path answers "fragmentation needed" */
	len = xp_build(&s, in);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_TX);
	cr_assert(out[14 + 9] == 1 && out[34] == 3 && out[35] == 4, "not an ICMP fragmentation needed");
	cr_assert_eq(out[40] << 8 | out[41], MTU4_C - 20);
	cr_assert_eq(xfx_stat(XM_XDP_TX_ICMP_TOO_BIG), 1);
	cr_assert_eq(xfx_stat(XM_XDP_TX_ENCAP), 1);
}

/* Two probes: a node whose slot is taken uses the next one; a third colliding node gets no entry. */
Test(xdp_nexthop, colliding_nodes_take_the_second_slot_then_the_fib)
{
	struct xm_neigh_node n[3];
	struct xm_nexthop e;
	char addr[32];
	__u32 slot, s;
	int found = 0, i;

	memset(n, 0, sizeof(n));
	for (i = 2; found < 3 && i < 1 << 20; i++) {
		union xm_addr a = { .v4 = htonl(0x0ac70000u | (uint32_t)i) }; /* 10.199.x.y */

		if (!found)
			slot = xm_nexthop_slot(&a, XM_FAMILY_V4) & ~1u;
		else if ((xm_nexthop_slot(&a, XM_FAMILY_V4) & ~1u) != slot)
			continue;
		n[found].family = XM_FAMILY_V4;
		n[found].addr = a;
		n[found].resolved = true;
		n[found].ifindex = xfx.ifindex;
		n[found].mtu = 1500;
		memcpy(n[found].dmac, xfx_node_b_mac, 6);
		n[found].dmac[5] = (uint8_t)(0x10 + found);
		memcpy(n[found].smac, uplink_mac, 6);
		found++;
	}
	cr_assert_eq(found, 3);
	cr_assert_eq(xdp_nexthops_sync(&table, bpf_map__fd(xfx.skel->maps.xm_nexthops),
				       bpf_map__fd(xfx.skel->maps.xm_xdp_ifaces), n, 3),
		     2, "the third has no room");
	for (i = 0; i < 2; i++) {
		s = xm_nexthop_slot(&n[0].addr, XM_FAMILY_V4) ^
		    (__u32)i; /* the first in its slot, the second next to it */
		cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(xfx.skel->maps.xm_nexthops), &s, &e), 0);
		inet_ntop(AF_INET, &e.node, addr, sizeof(addr));
		cr_assert(!memcmp(&e.node, &n[i].addr, 16), "slot %u holds %s", s, addr);
		cr_assert_eq(e.dmac[5], 0x10 + i);
	}
	/* The first goes: the second keeps its slot (no move while XDP may read it), the third takes the free one. */
	cr_assert_eq(xdp_nexthops_sync(&table, bpf_map__fd(xfx.skel->maps.xm_nexthops),
				       bpf_map__fd(xfx.skel->maps.xm_xdp_ifaces), n + 1, 2),
		     2);
	s = xm_nexthop_slot(&n[0].addr, XM_FAMILY_V4);
	cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(xfx.skel->maps.xm_nexthops), &s, &e), 0);
	cr_assert(!memcmp(&e.node, &n[2].addr, 16));
	s ^= 1;
	cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(xfx.skel->maps.xm_nexthops), &s, &e), 0);
	cr_assert(!memcmp(&e.node, &n[1].addr, 16));
}
