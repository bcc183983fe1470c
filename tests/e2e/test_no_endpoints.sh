#!/usr/bin/env bash
# A VIP with no ready endpoint refuses at once: connect() fails with ECONNREFUSED in < 100 ms, both for a
# Service whose EndpointSlice is empty and for one whose only endpoint is not ready; IPv4 and IPv6.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 1 1
{
	xmt_yaml_service --name empty --vip 10.96.0.20 --vip fd00:96::20
	xmt_yaml_slice --service empty
	xmt_yaml_slice --service empty --family 6
	xmt_yaml_service --name notready --vip 10.96.0.21
	xmt_yaml_slice --service notready "!$(xmt_pod_ip b1)"
} | xmt_config_write services.yaml
xmt_agent_start

out="$XMT_TMP/out"
worst=0
for addr in 10.96.0.20:80 "[fd00:96::20]:80" 10.96.0.21:80; do
	for i in 1 2 3; do
		XMT_SUBTEST="$addr try $i"
		xmt_client c1 "$out" refuse --addr "$addr" --timeout-ms 3000 || true
		res=$(xmt_field "$out" result)
		ms=$(xmt_field "$out" elapsed_ms)
		[ "$res" = ECONNREFUSED ] || xmt_fail "connect to $addr: got ${res:-nothing} after ${ms:-?} ms, expected ECONNREFUSED"
		awk -v m="$ms" 'BEGIN { exit !(m < 100) }' || xmt_fail "ECONNREFUSED took $ms ms, expected < 100 ms"
		worst=$(awk -v a="$worst" -v b="$ms" 'BEGIN { print (b > a) ? b : a }')
	done
done
XMT_SUBTEST=""
xmt_note "ECONNREFUSED, slowest of 9 in $worst ms"
xmt_pass "no endpoints: refused at once"
