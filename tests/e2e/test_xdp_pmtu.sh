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
VIP4=10.97.0.10 # the VIPs xmx_two_nodes_echo serves
VIP6=fd00:97::10
BYTES=2000000

xmx_two_nodes_echo # web4 at $VIP4 and web6 at $VIP6, served by bs1 on node B

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
