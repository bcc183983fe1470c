#!/usr/bin/env bash
# Reverse NAT outlives selection: connections held from the external host to an external VIP keep working
# when their backend turns terminating (ready: false, serving: true, terminating: true) and then when it is
# removed from the EndpointSlice outright. New connections no longer go to it. docs/xdp.md, "Draining".
#
#   ext 10.199.0.100 ── eth0 ═ up0 ── node 10.199.0.1 (XDP + TC on up0), br0 10.200.1.1 ── b1, b2 .11-.12
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

VIP=10.97.0.10
xmx_single_node 2

# config READY_IPS [TERMINATING_IP]: the external service, its ready local backends and one terminating one.
config() {
	{
		xmx_yaml_ext_service web "$VIP"
		# shellcheck disable=SC2086 # a list of addresses
		xmx_yaml_slice web node1 $1
		if [ -n "${2:-}" ]; then
			printf '%s\n' "---" "apiVersion: discovery.k8s.io/v1" "kind: EndpointSlice" "metadata:" \
				"  name: web-node1-terminating" "  namespace: default" "  labels:" \
				"    kubernetes.io/service-name: web" "addressType: IPv4" "ports:" "- name: tcp" \
				"  port: 8080" "  protocol: TCP" "endpoints:" "- addresses:" "  - \"$2\"" "  conditions:" \
				"    ready: false" "    serving: true" "    terminating: true" "  nodeName: node1"
		fi
		xmx_yaml_node node1 10.199.0.1
	} | xmt_config_write web.yaml
}
config "10.200.1.11 10.200.1.12"
xmx_agent a node node1 up0

# Eight connections: both backends hold some (Maglev spreads 8 client ports over 2 backends).
hold_log=$(xmt_bg_log hold)
xmt_bg hold ext plain "$XM_CLIENT" hold --addr "$VIP:80" -k 8 --ping-ms 100 --duration-ms 60000
xmt_wait_for "$hold_log" '^holding' 10 "${XMT_BG[hold]}" || xmt_fail "hold did not start: $(cat "$hold_log")"
if ! grep -q '^id b1 ' "$hold_log" || ! grep -q '^id b2 ' "$hold_log"; then
	xmt_fail "the held connections do not reach both backends: $(grep '^id' "$hold_log" | tr '\n' ' ')"
fi
xmt_log "held: $(xmt_ids "$hold_log")"

XMT_SUBTEST="terminating"
config "10.200.1.12" 10.200.1.11
xmt_settle 3
out="$XMT_TMP/out"
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 40 || true
xmt_assert_spread "$out" 40 100 100 b2
! grep -q 'ping on connection' "$hold_log" || xmt_fail "a held connection broke: $(grep -m1 'ping on' "$hold_log")"
drain=$(xmx_status a | grep '^xdp: reverse NAT kept' || true)
grep -q 'kept for 1 (backend, VIP port) pairs' <<<"$drain" || xmt_fail "status does not show b1's draining pair: '$drain'"

XMT_SUBTEST="removed"
config "10.200.1.12"
xmt_settle 3
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 40 || true
xmt_assert_spread "$out" 40 100 100 b2
xmt_bg_stop hold || xmt_fail "a held connection broke: $(tail -n 3 "$hold_log")"
if [ "$(xmt_field "$hold_log" ping_failures)" != 0 ] || [ "$(xmt_field "$hold_log" dead)" != 0 ]; then
	xmt_fail "held connections failed: $(tail -n 3 "$hold_log")"
fi
xmt_note "8 held connections kept working through terminating and removal; $(xmt_field "$hold_log" pings) pings"
