#!/usr/bin/env bash
# North-south through XDP on one node: an `ext` namespace on the node's uplink makes 600 TCP connections to
# an external VIP, spread over 3 local backends (each 20-47%), every reply coming from the VIP (the client's
# socket would not accept anything else); a long-lived connection survives adding and removing other
# backends; `bpftool map dump pinned` of the connection table prints named fields; status shows its fill.
#
#   ext 10.199.0.100 ── eth0 ═ up0 ── node 10.199.0.1 (XDP + TC on up0), br0 10.200.1.1 ── b1..b5 .11-.15
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

VIP=10.97.0.10
xmx_single_node 5

config() { # config POD_IP...: the external service with these local backends
	{
		xmx_yaml_ext_service web "$VIP"
		xmx_yaml_slice web node1 "$@"
		xmx_yaml_node node1 10.199.0.1
	} | xmt_config_write web.yaml
}
config 10.200.1.11 10.200.1.12 10.200.1.13
xmx_agent a node node1 up0
pin="$XMT_PIN-a"

XMT_SUBTEST="spread"
out="$XMT_TMP/out"
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 600 || true
xmt_assert_spread "$out" 600 20 47 b1 b2 b3
spread=$(xmt_ids "$out")
xmt_log "600 connections: $spread"
[ "$(xmx_verdict a tc_rev_nat)" -gt 600 ] || xmt_fail "TC reverse-NATed only $(xmx_verdict a tc_rev_nat) replies"

XMT_SUBTEST="conntrack BTF"
bpftool map dump pinned "$pin/xm_ct" >"$XMT_TMP/ct.dump" 2>&1 || xmt_fail "bpftool map dump: $(head -c 300 "$XMT_TMP/ct.dump")"
dump=$(head -c 4000 "$XMT_TMP/ct.dump")
for f in saddr daddr sport dport backend_id node_addr; do
	grep -q "\"$f\"" <<<"$dump" || xmt_fail "bpftool map dump of xm_ct lacks field $f: $(head -c 300 <<<"$dump")"
done
fill=$(xmx_status a | grep 'conntrack')
grep -qE 'conntrack [0-9]+/[0-9]+ entries' <<<"$fill" || xmt_fail "status lacks the conntrack fill: $fill"
timeout -k 5 20 "$XMESH" status --json --admin "$XMT_TMP/admin-a.sock" >"$XMT_TMP/status.json" ||
	xmt_fail "xmesh status --json failed"
python3 -c 'import json, sys
x = json.load(open(sys.argv[1]))["xdp"]
assert x["conntrack"]["entries"] >= 600 and x["conntrack"]["capacity"] > 0, x["conntrack"]
assert x["vips"][0]["local"] > 0 and x["verdicts"]["tc_rev_nat"] > 0, x' "$XMT_TMP/status.json" ||
	xmt_fail "status --json: $(head -c 400 "$XMT_TMP/status.json")"
vipline=$(xmx_status a | grep "xdp: vip $VIP:80/TCP" || true)
grep -qE 'local=[1-9][0-9]* .*new_flows=[1-9]' <<<"$vipline" || xmt_fail "status lacks per-VIP counters: '$vipline'"

XMT_SUBTEST="long-lived connection"
hold_log=$(xmt_bg_log hold)
xmt_bg hold ext plain "$XM_CLIENT" hold --addr "$VIP:80" -k 1 --ping-ms 100 --duration-ms 60000
xmt_wait_for "$hold_log" '^holding' 10 "${XMT_BG[hold]}" || xmt_fail "hold did not start: $(cat "$hold_log")"
held=$(awk '$1 == "id" { print $2; exit }' "$hold_log")
others=()
for b in b1 b2 b3; do [ "$b" = "$held" ] || others+=("10.200.1.1${b#b}"); done
xmt_log "held connection on $held; adding b4 b5, then removing the two others"
config 10.200.1.11 10.200.1.12 10.200.1.13 10.200.1.14 10.200.1.15
xmt_settle
config "10.200.1.1${held#b}" 10.200.1.14 10.200.1.15
xmt_settle 2
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 60 || true
xmt_assert_spread "$out" 60 5 80 "$held" b4 b5
xmt_bg_stop hold || xmt_fail "the held connection broke: $(tail -n 3 "$hold_log")"
pings=$(xmt_field "$hold_log" pings)
[ "$(xmt_field "$hold_log" ping_failures)" = 0 ] || xmt_fail "ping failures: $(tail -n 1 "$hold_log")"

ctline=$(xmx_status a | grep conntrack | sed 's/^xdp: //')

XMT_SUBTEST="metrics"
m="$XMT_TMP/metrics"
nsenter --net="/run/netns/${XMT_P}node" -- curl -sf --max-time 5 http://127.0.0.1:15090/metrics >"$m" ||
	xmt_fail "GET /metrics failed"
dnat=$(awk -F' ' '/^xmesh_xdp_packets_total\{action="dnat_local"\}/ { print $2 }' "$m")
((${dnat:-0} >= 600)) || xmt_fail "xmesh_xdp_packets_total{action=dnat_local} = ${dnat:-none}, want >= 600 (one per new flow)"
ct=$(awk '/^xmesh_conntrack_entries / { print $2 }' "$m")
((${ct:-0} >= 600)) || xmt_fail "xmesh_conntrack_entries = ${ct:-none}, want >= 600"
grep -q '^xmesh_conntrack_capacity ' "$m" || xmt_fail "xmesh_conntrack_capacity missing"
grep -q '^xmesh_xdp_vip_packets_total{.*verdict="local"}' "$m" || xmt_fail "per-VIP packets missing"
placed=$(awk '/^xmesh_xdp_istio_tcp_pairs\{state="placed"\}/ { print $2 }' "$m")
unplaced=$(awk '/^xmesh_xdp_istio_tcp_pairs\{state="unplaced"\}/ { print $2 }' "$m")
{ ((${placed:-0} >= 3)) && [ "${unplaced:-x}" = 0 ]; } ||
	xmt_fail "xmesh_xdp_istio_tcp_pairs placed=${placed:-none} unplaced=${unplaced:-none}, want >= 3 and 0"
xmx_status a | grep "^xdp: istio tcp counters for $placed (service port, local backend) pairs" >/dev/null ||
	xmt_fail "status shows no istio tcp counters line: $(xmx_status a | grep '^xdp:' | head -n 4)"
if command -v promtool >/dev/null; then
	promtool check metrics <"$m" >"$XMT_TMP/promtool" 2>&1 || xmt_fail "promtool: $(head -n 5 "$XMT_TMP/promtool")"
fi

# The CLI decodes the per-pair counters: the owner once (not summed over CPUs), counters summed.
"$XMESH" maps xm_xdp_tcp_counters --json --bpffs "$pin" >"$XMT_TMP/tcpc.json" || xmt_fail "xmesh maps xm_xdp_tcp_counters"
python3 - "$XMT_TMP/tcpc.json" <<'PY' || xmt_fail "xmesh maps xm_xdp_tcp_counters: $(head -c 300 "$XMT_TMP/tcpc.json")"
import json, sys
rows = json.load(open(sys.argv[1]))["xm_xdp_tcp_counters"]
assert rows and sum(r["opened"] for r in rows) > 0, rows
assert all(0 < r["svc_id"] < 65536 and 0 < r["backend_id"] < 65536 for r in rows), rows
PY

XMT_SUBTEST="maps: reverse NAT and uplinks"
# Each local backend of the VIP maps back to VIP:80; the uplink up0 carries the node's address.
"$XMESH" maps xm_nat_backends --json --bpffs "$pin" >"$XMT_TMP/nat.json" || xmt_fail "xmesh maps xm_nat_backends"
python3 - "$XMT_TMP/nat.json" "$VIP:80" 10.200.1.14 10.200.1.15 <<'PY' || xmt_fail "xmesh maps xm_nat_backends: $(head -c 400 "$XMT_TMP/nat.json")"
import json, sys
rows = {r["backend"]: r for r in json.load(open(sys.argv[1]))["xm_nat_backends"]}
for b in sys.argv[3:]:
    assert rows[b]["port"] == 8080 and rows[b]["proto"] == 6 and rows[b]["vips"] == [sys.argv[2]], rows
PY
"$XMESH" maps xm_nat_backends --bpffs "$pin" >"$XMT_TMP/nat.txt" || xmt_fail "xmesh maps xm_nat_backends (text)"
grep -q "backend=10.200.1.14 port=8080 proto=6 family=4 vips=\[$VIP:80\]" "$XMT_TMP/nat.txt" ||
	xmt_fail "xmesh maps xm_nat_backends (text): $(head -c 400 "$XMT_TMP/nat.txt")"
ifindex=$(ip -n "${XMT_P}node" -o link show up0 | awk -F: '{ print $1 }')
"$XMESH" maps xm_xdp_ifaces --bpffs "$pin" >"$XMT_TMP/ifaces.txt" || xmt_fail "xmesh maps xm_xdp_ifaces"
grep -q "ifindex=$ifindex addr4=10.199.0.1 " "$XMT_TMP/ifaces.txt" ||
	xmt_fail "xmesh maps xm_xdp_ifaces lacks up0 (ifindex $ifindex) with 10.199.0.1: $(head -c 400 "$XMT_TMP/ifaces.txt")"

# opened_total FILE: istio_tcp_connections_opened_total summed over its series.
opened_total() {
	awk '/^istio_tcp_connections_opened_total\{/ { s += $2 } END { print s + 0 }' "$1"
}

XMT_SUBTEST="restart"
opened_before=$(opened_total "$m")
xmt_stop_pid "${XMX_AGENTS[0]}" || xmt_fail "the agent did not exit cleanly on SIGTERM"
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 30 || true
xmt_assert_spread "$out" 30 5 80 "$held" b4 b5 # XDP stays attached without the agent
# A map that an earlier version pinned and this one replaced: the new agent removes it.
bpftool map create "$pin/xm_xdp_tcp_metrics" type percpu_hash key 8 value 32 entries 16 name xm_xdp_tcp_metrics ||
	xmt_fail "bpftool map create"
xmx_agent a2 node node1 up0 --bpffs "$pin" --cgroup "$XMT_CG/a"
grep -q "uplink up0 .*XDP adopted" "$XMT_TMP/agent-a2.log" || xmt_fail "the restarted agent did not adopt the XDP link"
# The clsact qdisc the first agent created is expected: no libbpf warning for it (real warnings stay).
! grep -i "warn.*exclusivity" "$XMT_TMP/agent-a2.log" ||
	xmt_fail "the restarted agent warned about the existing clsact qdisc"
[ ! -e "$pin/xm_xdp_tcp_metrics" ] || xmt_fail "the retired map xm_xdp_tcp_metrics is still pinned"
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 30 || true
xmt_assert_spread "$out" 30 5 80 "$held" b4 b5
# The Istio counters live in pinned maps and keep their positions: nothing counted so far is lost.
nsenter --net="/run/netns/${XMT_P}node" -- curl -sf --max-time 5 http://127.0.0.1:15090/metrics >"$m" ||
	xmt_fail "GET /metrics failed after the restart"
opened_after=$(opened_total "$m")
((opened_after >= opened_before + 60)) ||
	xmt_fail "istio_tcp_connections_opened_total $opened_before before the restart, $opened_after after 60 more connects"

XMT_SUBTEST="xmesh cleanup detaches XDP and the TC filters"
tc_filters() { nsenter --net="/run/netns/${XMT_P}node" -- tc filter show dev up0 "$1"; }
grep -q "xm_tc_nat" <<<"$(tc_filters egress)" || xmt_fail "no xm_tc_nat filter on up0 egress: $(tc_filters egress)"
xmt_stop_pid "${XMX_AGENTS[1]}" || xmt_fail "the restarted agent did not exit cleanly on SIGTERM"
nsenter --net="/run/netns/${XMT_P}node" -- "$XMESH" cleanup --bpffs "$pin" >"$XMT_TMP/cleanup.out" 2>&1 ||
	xmt_fail "xmesh cleanup: $(cat "$XMT_TMP/cleanup.out")"
for dir in ingress egress; do
	! grep -q "xm_" <<<"$(tc_filters $dir)" || xmt_fail "a filter of ours is left on up0 $dir: $(tc_filters $dir)"
done
! nsenter --net="/run/netns/${XMT_P}node" -- ip -d link show up0 | grep "prog/xdp" >/dev/null ||
	xmt_fail "XDP is still attached to up0 after cleanup"

XMT_SUBTEST=""
xmt_note "600 external connections: $spread; held connection on $held kept $pings pings through 2 changes;" \
	"$ctline; metrics dnat_local=$dnat conntrack=$ct; restarted agent adopted the XDP link;" \
	"opened $opened_before -> $opened_after across the restart; cleanup left no XDP or TC program"
xmt_pass "XDP DNAT to local backends, TC reverse NAT, conntrack stickiness"
