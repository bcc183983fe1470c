#!/usr/bin/env bash
# Two nodes on one L2 segment, the VIP routed to node A, its backends on node B: A's XDP encapsulates each
# packet (IPIP to B's InternalIP, XDP_TX), B's XDP decapsulates and DNATs to its pod, and B's TC gives the
# pod's reply the VIP as its source, so it goes from B straight to the client (direct server return). IPIP
# that the external host sends to B itself is dropped: only nodes may tunnel to a VIP.
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

XMT_SUBTEST="tunnel from a stranger"
# The external host wraps TCP SYNs to the VIP in IPIP straight to node B (a raw IPPROTO_IPIP socket: the
# kernel adds the outer header from 10.199.0.100). Not a node, so B's XDP drops them before the connection
# table; before this check, B decapsulated them and its pods answered whoever the inner source claimed.
decap_before=$(xmx_verdict b decap)
dropped_before=$(xmx_verdict b drop_tunnel_source)
xmt_nsrun ext python3 - "$VIP" <<'PY' || xmt_fail "could not send IPIP from the external host"
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst = socket.inet_aton("10.199.0.100"), socket.inet_aton(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
for i in range(5):
    tcp = struct.pack("!HHIIBBHHH", 41000 + i, 80, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.sendto(ip + tcp, ("10.199.0.2", 0))
PY
sleep 0.5
dropped=$(($(xmx_verdict b drop_tunnel_source) - dropped_before))
decapped=$(($(xmx_verdict b decap) - decap_before))
[ "$decapped" = 0 ] || xmt_fail "node B decapsulated $decapped IPIP packets from a host that is no node"
[ "$dropped" = 5 ] || xmt_fail "node B counted $dropped drop_tunnel_source packets for 5 tunnelled SYNs"

XMT_SUBTEST="managed neighbour"
# XDP's FIB lookup only reads the neighbour table: node A's agent keeps node B resolved with a managed entry,
# and removes it once no backend lives on node B.
ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | grep -w managed >/dev/null ||
	xmt_fail "node A has no managed neighbour entry for node B: $(ip -n "${XMT_P}nodea" neigh show dev up0)"
{
	xmx_yaml_ext_service web "$VIP"
	xmx_yaml_slice web nodea 10.200.1.99
	xmx_yaml_node nodea 10.199.0.1
	xmx_yaml_node nodeb 10.199.0.2
} | xmt_config_write web.yaml
for _ in $(seq 1 50); do
	ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | grep -w managed >/dev/null || break
	sleep 0.1
done
! ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | grep -w managed >/dev/null ||
	xmt_fail "node A kept its managed entry for node B after B's backends left"

XMT_SUBTEST=""
xmt_note "$N connections via IPIP: $spread; node A tx_encap=$encap, node B decap=$decap tc_rev_nat=$revnat," \
	"node A forwarded 0; a non-node's IPIP dropped ($dropped packets); node B's neighbour managed, then removed"
xmt_pass "IPIP to the backend's node, decapsulation, direct server return"
