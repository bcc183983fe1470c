#!/usr/bin/env bash
# A client connects through node A's XDP while node A has not resolved node B's next hop (node B hosts the
# only backend): XDP cannot send the SYN and the kernel cannot route a VIP. The SYN is dropped and counted
# (drop_no_neigh), the client retransmits, and once the neighbour is resolved the connection completes.
# Passed to node A's kernel, the SYN was answered with ICMP destination unreachable (no route), which
# aborts a SYN_SENT socket with ENETUNREACH unless it arrives while connect() still holds the socket (here
# it always did; most likely it did not in the once-flaky IPv6 echo of test_xdp_pmtu.sh). As that depends
# on timing, the test checks the cause: the client must see no unreachable (1000 bytes: no segment
# is big enough for an ICMP fragmentation needed, which IPv4 counts as unreachable too). Both families.
#
#        a0 │ l2: br0 │ b0                    │ e0
#   nodea up0 .1 / ::1   nodeb up0 .2 / ::2    ext eth0 .100 / ::100 (VIPs via node A)
#                        br0 10.200.2.1, fd00:200:2::1 ── bs1 .11 / ::11 (an echo server)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

XM_STREAM="$XMT_BUILD/tools/xm-stream"
[ -x "$XM_STREAM" ] || xmt_skip "test tool $XM_STREAM not built (make tools)"

xmx_two_nodes_echo

# ext_unreachables: ICMP and ICMPv6 destination unreachable messages ext's kernel received so far.
ext_unreachables() {
	xmt_nsrun ext nstat -saz IcmpInDestUnreachs Icmp6InDestUnreachs | awk '/DestUnreachs/ { n += $2 } END { print n + 0 }'
}

# unresolved_connect FAMILY VIP:PORT NODE_B: node A forgets node B's neighbour entry (the agent re-adds it
# only at its next sync, 30 s away), a client connects, node A drops its SYN; node A then resolves node B
# (a managed entry, as the agent's), and the client's retransmitted SYN gets through: the echo completes.
unresolved_connect() {
	local fam=$1 addr=$2 nodeb=$3 out="$XMT_TMP/echo$1" pid rc=0 before waited=0 unreach
	before=$(xmx_verdict a drop_no_neigh)
	unreach=$(ext_unreachables)
	ip -n "${XMT_P}nodea" neigh del "$nodeb" dev up0
	xmt_nsrun ext "$XM_STREAM" echo --addr "$addr" --bytes 1000 --timeout-ms 15000 >"$out" 2>&1 &
	pid=$!
	while [ "$(xmx_verdict a drop_no_neigh)" -le "$before" ] && kill -0 "$pid" 2>/dev/null && ((waited < 50)); do
		sleep 0.1
		waited=$((waited + 1))
	done
	kill -0 "$pid" 2>/dev/null ||
		xmt_fail "the echo ended before node A resolved node B: $(tail -n 3 "$out")" \
			"(node A: $(xmx_status a | grep -o 'pass_[a-z_]*=[0-9]*\|drop_[a-z_]*=[0-9]*' | tr '\n' ' '))"
	[ "$(xmx_verdict a drop_no_neigh)" -gt "$before" ] || xmt_fail "node A counted no drop_no_neigh"
	# What the agent's sync does: a managed entry, which the kernel resolves at once.
	ip -n "${XMT_P}nodea" neigh replace "$nodeb" dev up0 extern_learn managed proto 0xb1
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || xmt_fail "IPv$fam echo did not complete once node B was resolved: $(tail -n 3 "$out")"
	[ "$(ext_unreachables)" = "$unreach" ] ||
		xmt_fail "the client got $(($(ext_unreachables) - unreach)) ICMP destination unreachable for the VIP"
}

XMT_SUBTEST="IPv4"
unresolved_connect 4 10.97.0.10:80 10.199.0.2
XMT_SUBTEST="IPv6"
unresolved_connect 6 "[fd00:97::10]:80" fd00:199::2
XMT_SUBTEST=""
xmt_pass "a SYN for a remote backend whose next hop is unresolved is dropped ($(xmx_verdict a drop_no_neigh) counted), the client's retransmission connects"
