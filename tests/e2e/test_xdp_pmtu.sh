#!/usr/bin/env bash
# Path MTU discovery through the XDP balancer. Everything on the segment has an MTU of 1500, so a client's
# full-size TCP segment (1500 bytes, DF) no longer fits once node A adds the IPIP (20) or IP6IP6 (40) header.
# Node A answers it with ICMP "fragmentation needed" (MTU 1480) / ICMPv6 "packet too big" (MTU 1460) from the
# VIP; the client's kernel lowers its path MTU and a 2 MB echo completes in each family. Without the reply
# the stream stalls at its first full-size segment (a PMTU black hole).
#
#               l2: br0 (a bridge in its own namespace)
#        a0 │                      b0 │                      e0 │
#   nodea up0 10.199.0.1         nodeb up0 10.199.0.2         ext eth0 10.199.0.100
#             fd00:199::1                  fd00:199::2                 fd00:199::100 (VIPs via node A)
#                                br0 10.200.2.1, fd00:200:2::1 ── bs1 .11 / ::11 (an echo server)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

XM_STREAM="$XMT_BUILD/tools/xm-stream"
[ -x "$XM_STREAM" ] || xmt_skip "test tool $XM_STREAM not built (make tools)"
VIP4=10.97.0.10
VIP6=fd00:97::10
BYTES=2000000

xmx_two_nodes
xmx_sysctl nodea net.ipv6.conf.all.forwarding=1
xmx_sysctl nodeb net.ipv6.conf.all.forwarding=1
ip -n "${XMT_P}nodeb" addr add fd00:200:2::1/64 dev br0 nodad
xmx_addr6 nodea up0 fd00:199::1
xmx_addr6 nodeb up0 fd00:199::2
xmx_addr6 ext eth0 fd00:199::100
ip -n "${XMT_P}ext" -6 route add fd00:97::/64 via fd00:199::1
# As in test_xdp_two_nodes.sh: native XDP on the port that receives node A's XDP_TX frames (the IPIP packets
# and the ICMP replies), and full checksums in the client's frames, which leave node A as bytes.
xmx_xdp_pass l2 a0
xmx_tx_csum_off ext eth0

# The backend: one dual-stack pod on node B echoing every byte (xm-stream), so the client sends full segments.
xmt_netns_add bs1
ip -n "${XMT_P}nodeb" link add v-bs1 type veth peer name eth0 netns "${XMT_P}bs1"
ip -n "${XMT_P}nodeb" link set v-bs1 master br0 up
ip -n "${XMT_P}bs1" addr add 10.200.2.11/24 dev eth0
ip -n "${XMT_P}bs1" addr add fd00:200:2::11/64 dev eth0 nodad
ip -n "${XMT_P}bs1" link set eth0 up
ip -n "${XMT_P}bs1" route add default via 10.200.2.1
ip -n "${XMT_P}bs1" -6 route add default via fd00:200:2::1
xmt_bg echo-bs1 bs1 plain "$XM_STREAM" serve --port "$XMT_TARGET"
xmt_wait_for "$(xmt_bg_log echo-bs1)" 'ready' 5 "${XMT_BG[echo-bs1]}" ||
	xmt_fail "xm-stream in bs1 did not start: $(cat "$(xmt_bg_log echo-bs1)")"

{
	xmx_yaml_ext_service web4 "$VIP4" 10.96.0.50
	xmx_yaml_slice web4 nodeb 10.200.2.11
	xmx_yaml_ext_service web6 "$VIP6" fd00:96::50
	xmx_yaml_slice web6 nodeb fd00:200:2::11
	printf '%s\n' "---" "apiVersion: v1" "kind: Node" "metadata:" "  name: nodea" "status:" "  addresses:" \
		"  - type: InternalIP" "    address: 10.199.0.1" "  - type: InternalIP" "    address: fd00:199::1"
	printf '%s\n' "---" "apiVersion: v1" "kind: Node" "metadata:" "  name: nodeb" "status:" "  addresses:" \
		"  - type: InternalIP" "    address: 10.199.0.2" "  - type: InternalIP" "    address: fd00:199::2"
} | xmt_config_write web.yaml
xmx_agent a nodea nodea up0
xmx_agent b nodeb nodeb up0

# echo_through FAMILY ADDR:PORT: a BYTES echo from ext, every byte checked by xm-stream.
echo_through() {
	local out="$XMT_TMP/echo$1"
	xmt_nsrun ext "$XM_STREAM" echo --addr "$2" --bytes "$BYTES" --timeout-ms 15000 >"$out" 2>&1 ||
		xmt_fail "IPv$1 echo of $BYTES bytes did not complete: $(tail -n 3 "$out")" \
			"(node A: $(xmx_status a | tr '\n' ' '); node B: $(xmx_status b | tr '\n' ' ');" \
			"node A's neighbours: $(ip -n "${XMT_P}nodea" neigh show dev up0 | tr '\n' ';'))"
}

# cached_pmtu ADDR: the path MTU ext's kernel learned for ADDR (empty if none).
cached_pmtu() {
	xmt_nsrun ext ip route get "$1" | sed -n 's/.* mtu \([0-9]*\).*/\1/p'
}

XMT_SUBTEST="IPv4 echo through node A"
[ -z "$(cached_pmtu "$VIP4")" ] || xmt_fail "ext has a path MTU for $VIP4 before any traffic"
echo_through 4 "$VIP4:80"
icmp4=$(xmx_verdict a tx_icmp_too_big)
pmtu4=$(cached_pmtu "$VIP4")
[ "$icmp4" -ge 1 ] || xmt_fail "node A sent no ICMP fragmentation needed"
[ "$pmtu4" = 1480 ] || xmt_fail "ext's path MTU to $VIP4 is '${pmtu4:-none}', want 1480 (1500 - IPIP)"

XMT_SUBTEST="IPv6 echo through node A"
echo_through 6 "[$VIP6]:80"
icmp6=$(($(xmx_verdict a tx_icmp_too_big) - icmp4))
pmtu6=$(cached_pmtu "$VIP6")
[ "$icmp6" -ge 1 ] || xmt_fail "node A sent no ICMPv6 packet too big"
[ "$pmtu6" = 1460 ] || xmt_fail "ext's path MTU to $VIP6 is '${pmtu6:-none}', want 1460 (1500 - IP6IP6)"

XMT_SUBTEST="counters"
[ "$(xmx_verdict a tx_encap)" -ge $((2 * BYTES / 1500)) ] || xmt_fail "node A encapsulated only $(xmx_verdict a tx_encap)"
[ "$(xmx_verdict a drop_too_big)" = 0 ] || xmt_fail "node A dropped $(xmx_verdict a drop_too_big) packets as too big"

XMT_SUBTEST=""
xmt_note "ICMP replies: $icmp4 (IPv4) + $icmp6 (IPv6); client path MTU $pmtu4 / $pmtu6"
xmt_pass "oversized packets for a remote backend get ICMP too big; the client's PMTU discovery recovers"
