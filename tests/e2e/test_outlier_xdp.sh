#!/usr/bin/env bash
# Outlier detection and Istio's TCP metrics on the XDP path: an `ext` client dials an external VIP over 3
# local backends (consecutive5xxErrors 3). b3's server dies: TC sees its RSTs to the SYNs, at most 3 connects
# fail, then none of the next 300 (XDP's Maglev skips the ejected endpoint). b3's server comes back: after
# baseEjectionTime new flows reach it again. istio_tcp_* with reporter="destination" count exactly the
# connections that opened, their closes, and their payload bytes.
#
#   ext 10.199.0.100 ── eth0 ═ up0 ── node 10.199.0.1 (XDP + TC on up0), br0 10.200.1.1 ── b1..b3 .11-.13
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

VIP=10.97.0.10
xmx_single_node 3
{
	xmx_yaml_ext_service web "$VIP"
	xmx_yaml_slice web node1 10.200.1.11 10.200.1.12 10.200.1.13
	xmx_yaml_node node1 10.199.0.1
	printf '%s\n' "---" "apiVersion: networking.istio.io/v1beta1" "kind: DestinationRule" "metadata:" \
		"  name: web" "  namespace: default" "spec:" "  host: web" "  trafficPolicy:" "    outlierDetection:" \
		"      consecutive5xxErrors: 3" "      interval: 1s" "      baseEjectionTime: 2s" \
		"      maxEjectionPercent: 10"
} | xmt_config_write web.yaml
xmx_agent a node node1 up0
out="$XMT_TMP/out"
opened=0 # connections that completed a handshake, for the metrics check

# spread N: N connections from ext; adds the successful ones to $opened.
spread() {
	xmx_ext_client ext "$out" spread --addr "$VIP:80" -n "$1" || true
	opened=$((opened + $(xmt_field "$out" ok)))
}

XMT_SUBTEST="all healthy"
spread 30
xmt_assert_spread "$out" 30 10 60 b1 b2 b3

XMT_SUBTEST="b3 killed"
xmt_bg_stop srv-b3 || true
spread 30
failed=$(xmt_field "$out" errors)
[ -n "$failed" ] || xmt_fail "no summary: $(cat "$out.err" "$out")"
((failed <= 3)) || xmt_fail "$failed connects failed before the dead backend was ejected; threshold is 3"
((failed >= 1)) || xmt_fail "no connect reached the dead backend (spread: $(xmt_ids "$out"))"
spread 300
xmt_assert_spread "$out" 300 30 70 b1 b2
grep -q 'outlier: ejected 10.200.1.13:8080' "$XMT_AGENT_LOG" ||
	xmt_fail "the agent logged no ejection of b3: $(tail -n 5 "$XMT_AGENT_LOG")"

XMT_SUBTEST="b3 back"
xmt_server b3
sleep 2.2 # baseEjectionTime 2s (first ejection): the first selection after it returns b3
spread 300
xmt_assert_spread "$out" 300 15 50 b1 b2 b3
back=$(xmt_ids "$out")

XMT_SUBTEST="request bytes"
hold_log=$(xmt_bg_log hold)
xmt_bg hold ext plain "$XM_CLIENT" hold --addr "$VIP:80" -k 1 --ping-ms 50 --duration-ms 1500
xmt_wait_for "$hold_log" 'pings=' 10 || xmt_fail "hold did not finish: $(cat "$hold_log")"
pings=$(xmt_field "$hold_log" pings)
[ "$(xmt_field "$hold_log" ping_failures)" = 0 ] || xmt_fail "ping failures: $(tail -n 1 "$hold_log")"
((pings > 0)) || xmt_fail "no pings: $(tail -n 1 "$hold_log")"
opened=$((opened + 1))

XMT_SUBTEST="metrics"
# Every connection wrote nothing but pings ("ping\n") and read its backend's id ("bN\n") and the echoes.
want_rx=$((5 * pings))
want_tx=$((3 * opened + 5 * pings))
m="$XMT_TMP/metrics"
sel='reporter="destination",source_workload="unknown",.*destination_service_name="web"'
sum() { grep "^$1{$sel" "$m" | awk '{ s += $NF } END { print s + 0 }'; }
for _ in 1 2 3 4 5 6 7 8 9 10; do # the last FINs may still be on their way
	nsenter --net="/run/netns/${XMT_P}node" -- curl -sf --max-time 5 http://127.0.0.1:15090/metrics >"$m" ||
		xmt_fail "GET /metrics failed"
	[ "$(sum istio_tcp_connections_closed_total)" = "$opened" ] && break
	sleep 0.2
done
got="opened=$(sum istio_tcp_connections_opened_total) closed=$(sum istio_tcp_connections_closed_total)"
got="$got received=$(sum istio_tcp_received_bytes_total) sent=$(sum istio_tcp_sent_bytes_total)"
want="opened=$opened closed=$opened received=$want_rx sent=$want_tx"
[ "$got" = "$want" ] || xmt_fail "istio_tcp_* of the XDP flows: $got, want $want ($(grep -c "^istio_tcp.*reporter=\"destination\"" "$m") series)"
grep -q '^istio_tcp_connections_opened_total{reporter="destination",[^}]*source_principal="unknown"' "$m" ||
	xmt_fail "XDP series lack source_principal=\"unknown\": $(grep -m1 '^istio_tcp_connections_opened' "$m")"
if command -v promtool >/dev/null; then
	promtool check metrics <"$m" >"$XMT_TMP/promtool" 2>&1 || xmt_fail "promtool: $(head -n 5 "$XMT_TMP/promtool")"
fi

XMT_SUBTEST=""
xmt_note "dead backend cost $failed failed connects (threshold 3), 0 of 300 after; back after 2 s: $back;" \
	"metrics $got"
xmt_pass "outlier ejection and Istio TCP metrics through XDP"
