#!/usr/bin/env bash
# The XDP load balancer with IPv6 everywhere: external VIPs, pods, nodes' InternalIPs, uplinks (ULA, no DAD).
#
# One node: `ext` makes 600 TCP connections to an IPv6 VIP, spread over 3 local backends (each 20-47%), every
# reply from the VIP (getpeername, and the client's socket would accept nothing else); TC reverse-NATed them.
#
#   ext fd00:199::100 ── eth0 ═ up0 ── node fd00:199::1 (XDP + TC on up0), br0 fd00:200:1::1 ── b1..b3 ::11-::13
#
# Two nodes on one L2 segment, the VIP routed to node A, its backends on node B: A encapsulates IP6IP6 to B's
# InternalIP (XDP_TX), B decapsulates and DNATs, and B's replies go straight to the client (direct server
# return): A's kernel forwards nothing, B's TC gives the replies the VIP as their source.
#
#               l2: br0 (a bridge in its own namespace)
#        a0 │              b0 │                e0 │
#   nodea up0 fd00:198::1   nodeb up0 fd00:198::2   ext2 eth0 fd00:198::100 (fd00:97::/64 via fd00:198::1)
#                           br0 fd00:200:2::1 ── bb1 ::11, bb2 ::12
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

VIP_LOCAL=fd00:97::10  # served by node1's own pods
VIP_REMOTE=fd00:97::20 # routed to nodea, served by nodeb's pods
N=200

# ip6_forwarded NS: IPv6 packets the namespace's kernel forwarded so far.
ip6_forwarded() {
	xmt_nsrun "$1" nstat -az Ip6OutForwDatagrams | awk '$1 == "Ip6OutForwDatagrams" { print $2 }'
}

# One node.
xmx_node6 node fd00:200:1
for i in 1 2 3; do xmx_pod6 node "b$i" "fd00:200:1::1$i" fd00:200:1::1; done
xmt_netns_add ext
xmx_link node up0 ext eth0
xmx_addr6 node up0 fd00:199::1
xmx_addr6 ext eth0 fd00:199::100
ip -n "${XMT_P}ext" -6 route add fd00:97::/64 via fd00:199::1

# Two nodes.
xmt_netns_add l2
ip -n "${XMT_P}l2" link add br0 type bridge
ip -n "${XMT_P}l2" link set br0 up
xmt_netns_add nodea
xmx_sysctl nodea net.ipv6.conf.all.forwarding=1
xmx_node6 nodeb fd00:200:2
xmt_netns_add ext2
xmx_link nodea up0 l2 a0
xmx_link nodeb up0 l2 b0
xmx_link ext2 eth0 l2 e0
for p in a0 b0 e0; do ip -n "${XMT_P}l2" link set "$p" master br0; done
xmx_addr6 nodea up0 fd00:198::1
xmx_addr6 nodeb up0 fd00:198::2
xmx_addr6 ext2 eth0 fd00:198::100
ip -n "${XMT_P}ext2" -6 route add fd00:97::/64 via fd00:198::1
# As in test_xdp_two_nodes.sh: native XDP on the port that receives node A's XDP_TX frames, and full
# checksums in the client's frames, which leave node A as bytes on the "wire".
xmx_xdp_pass l2 a0
xmx_tx_csum_off ext2 eth0
xmx_pod6 nodeb bb1 fd00:200:2::11 fd00:200:2::1
xmx_pod6 nodeb bb2 fd00:200:2::12 fd00:200:2::1

# One config for every agent (they share the directory): both services, IPv6 only.
{
	xmx_yaml_ext_service local "$VIP_LOCAL" fd00:96::50
	xmx_yaml_slice local node1 fd00:200:1::11 fd00:200:1::12 fd00:200:1::13
	xmx_yaml_ext_service remote "$VIP_REMOTE" fd00:96::51
	xmx_yaml_slice remote nodeb fd00:200:2::11 fd00:200:2::12
	xmx_yaml_node node1 fd00:199::1
	xmx_yaml_node nodea fd00:198::1
	xmx_yaml_node nodeb fd00:198::2
} | xmt_config_write web.yaml
xmx_agent n node node1 up0
xmx_agent a nodea nodea up0
xmx_agent b nodeb nodeb up0

XMT_SUBTEST="one node: spread"
out="$XMT_TMP/out"
xmx_ext_client ext "$out" spread --addr "[$VIP_LOCAL]:80" -n 600 || true
xmt_assert_spread "$out" 600 20 47 b1 b2 b3
local_spread=$(xmt_ids "$out")
revnat=$(xmx_verdict n tc_rev_nat)
dnat=$(xmx_verdict n dnat_local)
[ "$revnat" -gt 600 ] || xmt_fail "TC reverse-NATed only $revnat replies"
[ "$dnat" -ge 600 ] || xmt_fail "XDP DNATed only $dnat new flows"
vipline=$(xmx_status n | grep -F "xdp: vip [$VIP_LOCAL]:80/TCP" || true)
grep -qE 'local=[1-9][0-9]* .*new_flows=[1-9]' <<<"$vipline" || xmt_fail "status lacks IPv6 per-VIP counters: '$vipline'"

XMT_SUBTEST="two nodes: through node A"
fwd_before=$(ip6_forwarded nodea)
xmx_ext_client ext2 "$out" spread --addr "[$VIP_REMOTE]:80" -n "$N" || true
xmt_assert_spread "$out" "$N" 15 85 bb1 bb2
remote_spread=$(xmt_ids "$out")

XMT_SUBTEST="two nodes: direct server return"
for ag in a b; do xmt_log "agent $ag: $(xmx_status "$ag" | grep 'xdp: verdicts')"; done
encap=$(xmx_verdict a tx_encap)
decap=$(xmx_verdict b decap)
revnat_b=$(xmx_verdict b tc_rev_nat)
fwd_after=$(ip6_forwarded nodea)
[ "$encap" -ge $((N * 3)) ] || xmt_fail "node A encapsulated $encap packets for $N connections"
[ "$decap" -ge $((N * 3)) ] || xmt_fail "node B decapsulated $decap packets for $N connections"
[ "$revnat_b" -ge $((N * 2)) ] || xmt_fail "node B reverse-NATed only $revnat_b replies"
# Node A's kernel forwarded nothing: requests left through XDP_TX, replies never came through A.
[ "$fwd_after" = "$fwd_before" ] || xmt_fail "node A's kernel forwarded $((fwd_after - fwd_before)) IPv6 packets"
ip -n "${XMT_P}nodea" -6 neigh show fd00:198::2 dev up0 | grep -w managed >/dev/null ||
	xmt_fail "node A has no managed neighbour entry for node B: $(ip -n "${XMT_P}nodea" -6 neigh show dev up0)"
[ "$(xmx_verdict a tc_rev_nat)" = 0 ] || xmt_fail "node A reverse-NATed replies: they went through A"
[ "$(xmx_verdict b ct_new)" -ge "$N" ] || xmt_fail "node B pinned only $(xmx_verdict b ct_new) flows"
[ "$(xmx_verdict b drop_no_local)" = 0 ] || xmt_fail "node B found no local backend for some flows"

XMT_SUBTEST=""
xmt_note "one node, 600 connections to [$VIP_LOCAL]: $local_spread, tc_rev_nat=$revnat;" \
	"two nodes, $N via IP6IP6: $remote_spread, node A tx_encap=$encap, node B decap=$decap" \
	"tc_rev_nat=$revnat_b, node A forwarded 0"
xmt_pass "IPv6 VIPs: DNAT to local pods with TC reverse NAT, IP6IP6 to the backend's node with DSR"
