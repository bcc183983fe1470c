#!/usr/bin/env bash
# maxEjectionPercent on the XDP path: 4 local backends of an external VIP, 3 die, maxEjectionPercent 50 →
# exactly 2 ejected (by TC seeing the RSTs to the SYNs), and new flows keep reaching the survivor. The state is
# the service port's: xmesh status shows the same ejections under its ClusterIP and its externalIP.
#
#   ext 10.199.0.100 ── eth0 ═ up0 ── node 10.199.0.1 (XDP + TC on up0), br0 10.200.1.1 ── b1..b4 .11-.14
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"

VIP=10.97.0.10
xmx_single_node 4
{
	xmx_yaml_ext_service web "$VIP"
	xmx_yaml_slice web node1 10.200.1.11 10.200.1.12 10.200.1.13 10.200.1.14
	xmx_yaml_node node1 10.199.0.1
	printf '%s\n' "---" "apiVersion: networking.istio.io/v1beta1" "kind: DestinationRule" "metadata:" \
		"  name: web" "  namespace: default" "spec:" "  host: web" "  trafficPolicy:" "    outlierDetection:" \
		"      consecutive5xxErrors: 2" "      interval: 1s" "      baseEjectionTime: 30s" \
		"      maxEjectionPercent: 50"
} | xmt_config_write web.yaml
xmx_agent a node node1 up0
out="$XMT_TMP/out"

for b in b2 b3 b4; do xmt_bg_stop "srv-$b" || true; done
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 100 || true
# The Service's ClusterIP and externalIP share the port's state: each lists the same ejected endpoints.
n=$(xmx_status a | awk '/ EJECTED / { print $1 }' | sort -u | wc -l)
[ "$(xmx_status a | grep -c ' EJECTED ' || true)" = $((2 * n)) ] ||
	xmt_fail "the ClusterIP and the externalIP show different ejections: $(xmx_status a | grep 10.200.1.1)"
[ "$n" = 2 ] || xmt_fail "$n endpoints ejected, want exactly 2 (maxEjectionPercent 50 of 4): $(xmx_status a | grep 10.200.1.1)"
ok=$(xmt_field "$out" ok)
b1=$(xmt_ids "$out" | grep -o 'b1=[0-9]*' || true)
[ -n "$b1" ] || xmt_fail "no connection reached the survivor b1: $(xmt_ids "$out")"
xmt_note "3 of 4 dead, maxEjectionPercent 50: $n ejected; $ok of 100 connects succeeded ($b1)"
xmt_pass "xdp ejection cap"
