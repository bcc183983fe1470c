#!/usr/bin/env bash
# Two nodes on one L2 segment, the VIP routed to node A, its backends on node B: A's XDP encapsulates each
# packet (IPIP to B's InternalIP, XDP_TX), B's XDP decapsulates and DNATs to its pod, and B's TC gives the
# pod's reply the VIP as its source, so it goes from B straight to the client (direct server return).
#
#               l2: br0 (a bridge in its own namespace)
#        a0 │            b0 │               e0 │
#   nodea up0 10.199.0.1   nodeb up0 10.199.0.2   ext eth0 10.199.0.100 (10.97.0.0/16 via 10.199.0.1)
#                          br0 10.200.2.1 ── bb1 .11, bb2 .12
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

VIP=10.97.0.10
N=200
xmx_two_nodes
# Node A sends XDP_TX frames into a0, which delivers them only with native XDP of its own; and the
# client's frames leave as bytes on this "wire", so with full checksums (no CHECKSUM_PARTIAL).
xmx_xdp_pass l2 a0
xmx_tx_csum_off ext eth0
xmx_pod nodeb bb1 10.200.2.11 10.200.2.1
xmx_pod nodeb bb2 10.200.2.12 10.200.2.1

{
	xmx_yaml_ext_service web "$VIP"
	xmx_yaml_slice web nodeb 10.200.2.11 10.200.2.12
	xmx_yaml_node nodea 10.199.0.1
	xmx_yaml_node nodeb 10.199.0.2
} | xmt_config_write web.yaml
xmx_agent a nodea nodea up0
xmx_agent b nodeb nodeb up0

XMT_SUBTEST="through node A"
fwd_before=$(xmt_nsrun nodea nstat -az IpForwDatagrams | awk '$1 == "IpForwDatagrams" { print $2 }')
out="$XMT_TMP/out"
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n "$N" || true
xmt_assert_spread "$out" "$N" 15 85 bb1 bb2
spread=$(xmt_ids "$out")

XMT_SUBTEST="direct server return"
encap=$(xmx_verdict a tx_encap)
decap=$(xmx_verdict b decap)
revnat=$(xmx_verdict b tc_rev_nat)
fwd_after=$(xmt_nsrun nodea nstat -az IpForwDatagrams | awk '$1 == "IpForwDatagrams" { print $2 }')
[ "$encap" -ge $((N * 3)) ] || xmt_fail "node A encapsulated $encap packets for $N connections"
[ "$decap" -ge $((N * 3)) ] || xmt_fail "node B decapsulated $decap packets for $N connections"
[ "$revnat" -ge $((N * 2)) ] || xmt_fail "node B reverse-NATed only $revnat replies"
# Node A's kernel forwarded nothing: requests left through XDP_TX, replies never came through A.
[ "$fwd_after" = "$fwd_before" ] || xmt_fail "node A's kernel forwarded $((fwd_after - fwd_before)) packets"
[ "$(xmx_verdict b ct_new)" -ge "$N" ] || xmt_fail "node B pinned only $(xmx_verdict b ct_new) flows"
[ "$(xmx_verdict b drop_no_local)" = 0 ] || xmt_fail "node B found no local backend for some flows"

XMT_SUBTEST="managed neighbour"
# XDP's FIB lookup only reads the neighbour table: node A's agent keeps node B resolved with a managed entry,
# and removes it once no backend lives on node B.
ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | grep -qw managed ||
	xmt_fail "node A has no managed neighbour entry for node B: $(ip -n "${XMT_P}nodea" neigh show dev up0)"
{
	xmx_yaml_ext_service web "$VIP"
	xmx_yaml_slice web nodea 10.200.1.99
	xmx_yaml_node nodea 10.199.0.1
	xmx_yaml_node nodeb 10.199.0.2
} | xmt_config_write web.yaml
for _ in $(seq 1 50); do
	ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | grep -qw managed || break
	sleep 0.1
done
! ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | grep -qw managed ||
	xmt_fail "node A kept its managed entry for node B after B's backends left"

XMT_SUBTEST=""
xmt_note "$N connections via IPIP: $spread; node A tx_encap=$encap, node B decap=$decap tc_rev_nat=$revnat," \
	"node A forwarded 0; node B's neighbour managed, then removed"
xmt_pass "IPIP to the backend's node, decapsulation, direct server return"
