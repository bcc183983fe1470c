// SPDX-License-Identifier: Apache-2.0
/*
 * A VIP packet for a remote backend whose node's next hop is not resolved yet: XDP cannot queue it and the
 * kernel cannot route a VIP (passed, a SYN came back as ICMP unreachable and failed the client's connect).
 * It is dropped and counted; the client's retransmission, once the neighbour is resolved, is encapsulated.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "xdp_fixture.h"

#define CLIENT4	    "198.51.100.7"
#define CLIENT6	    "2001:db8::7"
#define VIP4_REMOTE "10.97.0.20"
#define VIP6_REMOTE "fd00:97::20"
#define POD4_B	    "10.200.2.21"
#define POD6_B	    "fd00:200:2::21"

TestSuite(xdp_no_neigh, .init = xfx_setup, .fini = xfx_teardown, .timeout = XFX_SUITE_TIMEOUT);

static void syn_waits_for_neighbour(const struct xp_spec *syn, const char *del_neigh, const char *add_neigh)
{
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len = xp_build(syn, in), out_len;

	xfx_ip(del_neigh);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_DROP, "SYN with node B's neighbour unresolved");
	cr_assert_eq(xfx_stat(XM_XDP_DROP_NO_NEIGH), 1);
	cr_assert_eq(xfx_stat(XM_XDP_TX_ENCAP), 0);

	/* The kernel resolved it meanwhile: the client's retransmitted SYN goes to node B. */
	xfx_ip(add_neigh);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_TX, "retransmitted SYN once resolved");
	cr_assert(!memcmp(out, xfx_node_b_mac, 6), "not sent to node B's MAC");
	cr_assert_eq(xfx_stat(XM_XDP_TX_ENCAP), 1);
	cr_assert_eq(xfx_stat(XM_XDP_DROP_NO_NEIGH), 1);
}

Test(xdp_no_neigh, v4_syn_dropped_until_resolved)
{
	const struct xfx_backend b = { POD4_B, 8080, false, true, XFX_NODE_B4 };
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = VIP4_REMOTE, .sport = 41000, .dport = 80
	};

	xfx_publish(VIP4_REMOTE, 80, 6, &b, 1);
	syn_waits_for_neighbour(&syn, "neigh del " XFX_NODE_B4 " dev xmx0",
				"neigh add " XFX_NODE_B4 " lladdr 02:00:00:00:00:02 dev xmx0 nud permanent");
}

Test(xdp_no_neigh, v6_syn_dropped_until_resolved)
{
	const struct xfx_backend b = { POD6_B, 8080, false, true, XFX_NODE_B6 };
	const struct xp_spec syn = {
		.family = 6, .proto = 6, .src = CLIENT6, .dst = VIP6_REMOTE, .sport = 41000, .dport = 80
	};

	xfx_publish(VIP6_REMOTE, 80, 6, &b, 1);
	syn_waits_for_neighbour(&syn, "-6 neigh del " XFX_NODE_B6 " dev xmx0",
				"-6 neigh add " XFX_NODE_B6 " lladdr 02:00:00:00:00:02 dev xmx0 nud permanent");
}
