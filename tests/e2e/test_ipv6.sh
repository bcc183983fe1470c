#!/usr/bin/env bash
# A dual-stack Service (clusterIPs IPv4 + IPv6, one EndpointSlice per family) serves both families: 300 TCP
# connects to each VIP spread over the 3 backends, getpeername() the dialed VIP every time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 1
xmt_config_std --dual b1 b2 b3
xmt_agent_start

out="$XMT_TMP/out"
XMT_SUBTEST=IPv6
xmt_client c1 "$out" spread --addr "[$XMT_VIP6]:$XMT_PORT" -n 300 || true
xmt_assert_spread "$out" 300 20 47 b1 b2 b3
v6=$(xmt_ids "$out")
XMT_SUBTEST=IPv4
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 300 || true
xmt_assert_spread "$out" 300 20 47 b1 b2 b3
xmt_note "v6 $v6; v4 $(xmt_ids "$out")"
xmt_pass "dual-stack Service works on both families"
