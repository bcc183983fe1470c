#!/usr/bin/env bash
# Node A's XDP encapsulates to node B with the next hop (MACs, uplink) that A's agent read from the kernel at
# its last neighbour sync (xm_nexthops), not with a FIB lookup per packet. When node B's MAC changes, B
# announces it (arp_notify), A's kernel updates its neighbour entry, and A's XDP must follow within one
# sync period (--neigh-sync 2 here): traffic recovers. Without the periodic refresh it never would (the
# table would keep the old MAC, which the bridge still delivers to B's port, where nobody has it).
#
# Topology: tests/e2e/test_xdp_two_nodes.sh (client ext → node A → IPIP → node B → pods bb1, bb2).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

VIP=10.97.0.10
PERIOD=2
xmx_two_nodes
xmx_xdp_pass l2 a0
xmx_tx_csum_off ext eth0
xmx_pod nodeb bb1 10.200.2.11 10.200.2.1
xmx_pod nodeb bb2 10.200.2.12 10.200.2.1
# B announces a new MAC (gratuitous ARP); A accepts an announcement however recently its entry changed.
xmx_sysctl nodeb net.ipv4.conf.up0.arp_notify=1
xmx_sysctl nodea net.ipv4.neigh.up0.locktime=0

{
	xmx_yaml_ext_service web "$VIP"
	xmx_yaml_slice web nodeb 10.200.2.11 10.200.2.12
	xmx_yaml_node nodea 10.199.0.1
	xmx_yaml_node nodeb 10.199.0.2
} | xmt_config_write web.yaml
xmx_agent a nodea nodea up0 --neigh-sync "$PERIOD"
xmx_agent b nodeb nodeb up0

# ok [N]: N (default 10) connections through node A all succeed, 0.3 s each at most.
ok() {
	local n=${1:-10}
	xmx_ext_client ext "$XMT_TMP/out" spread --addr "$VIP:80" -n "$n" --timeout-ms 300 || true
	[ "$(xmt_field "$XMT_TMP/out" ok)" = "$n" ] && [ "$(xmt_field "$XMT_TMP/out" errors)" = 0 ]
}

# table_mac: the MAC node A's xm_nexthops holds for node B 10.199.0.2 (its slot or the next; empty: none).
# The slot: xm_nexthop_slot() of include/xmesh/xdp.h over the address as XDP loads it (little-endian word).
table_mac() {
	local fold=$((0x0200c70a)) slot s
	slot=$(((((fold ^ 4) * 0x9E3779B1) & 0xffffffff) >> 17 & 32767))
	for s in "$slot" $((slot ^ 1)); do
		bpftool -j map lookup pinned "$XMT_PIN-a/xm_nexthops" key \
			$((s & 255)) $((s >> 8 & 255)) 0 0 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)["formatted"]["value"]
if v["flags"] & 1 and v["node"]["bytes"][:4] == [10, 199, 0, 2]:
    print(":".join("%02x" % b for b in v["dmac"]))' && true
	done
}

XMT_SUBTEST="before the change"
# The managed entry is resolved a moment after the first apply; the table has it from the next sync on.
t=0
until ok; do
	t=$((t + 1))
	[ "$t" -lt 20 ] || xmt_fail "no traffic through node A: $(tail -n 3 "$XMT_TMP/out.err" 2>/dev/null)"
	sleep 0.5
done
sleep $((PERIOD + 1))
ok || xmt_fail "traffic through node A stopped after a neighbour sync"
old=$(ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }')
[ "$(table_mac)" = "$old" ] || xmt_fail "node A's next-hop table has '$(table_mac)' for node B, its kernel $old"
encap0=$(xmx_verdict a tx_encap)
noneigh0=$(xmx_verdict a drop_no_neigh)

XMT_SUBTEST="node B's MAC changes"
ip -n "${XMT_P}nodeb" link set up0 address 02:00:00:00:0b:0b
start=$(date +%s%N)
for _ in $(seq 1 20); do
	ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | grep 02:00:00:00:0b:0b >/dev/null && break
	sleep 0.1
done
ip -n "${XMT_P}nodea" neigh show 10.199.0.2 dev up0 | grep 02:00:00:00:0b:0b >/dev/null ||
	xmt_fail "node A's kernel did not learn B's new MAC (was $old): $(ip -n "${XMT_P}nodea" neigh show dev up0)"
until ok 1; do
	now=$(date +%s%N)
	[ $(((now - start) / 1000000)) -lt $(((PERIOD + 2) * 1000)) ] ||
		xmt_fail "traffic did not recover within $((PERIOD + 2)) s of B's MAC change (sync period $PERIOD s)"
	sleep 0.2
done
recovered_ms=$((($(date +%s%N) - start) / 1000000))
[ "$(table_mac)" = 02:00:00:00:0b:0b ] || xmt_fail "node A's next-hop table has '$(table_mac)' for node B"
ok || xmt_fail "traffic through node A not steady after the change"
encap=$(($(xmx_verdict a tx_encap) - encap0))
[ "$encap" -gt 0 ] || xmt_fail "node A encapsulated nothing after the change"
[ "$(xmx_verdict a drop_no_neigh)" = "$noneigh0" ] || xmt_fail "node A dropped packets for want of a neighbour"

XMT_SUBTEST=""
xmt_note "node B's MAC $old -> 02:00:00:00:0b:0b: traffic through node A back after $recovered_ms ms" \
	"(sync period $PERIOD s); $encap packets encapsulated since"
xmt_pass "the next hop XDP uses follows a changed MAC within one neighbour-sync period"
