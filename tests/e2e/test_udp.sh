#!/usr/bin/env bash
# UDP through the VIP: sendto(VIP) reaches a backend and recvfrom() reports the reply as coming from the VIP,
# on IPv4 and IPv6, for unconnected (sendmsg/recvmsg hooks) and connected (connect hook) sockets.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 1
xmt_config_std --proto UDP --dual b1 b2 b3
xmt_agent_start

out="$XMT_TMP/out"
notes=()
for addr in "$XMT_VIP:$XMT_PORT" "[$XMT_VIP6]:$XMT_PORT"; do
	for how in sendto connect; do
		XMT_SUBTEST="$addr $how"
		args=(udp --addr "$addr" -n 60)
		[ "$how" = connect ] && args+=(--connect)
		xmt_client c1 "$out" "${args[@]}" || true
		ok=$(xmt_field "$out" ok)
		[ -n "$ok" ] || xmt_fail "xm-client printed no summary: $(cat "$out.err")"
		[ "$(xmt_field "$out" errors)" = 0 ] ||
			xmt_fail "$(xmt_field "$out" errors) of 60 requests got no reply ($(head -n 2 "$out.err" | tr '\n' ' '))"
		[ "$(xmt_field "$out" src_mismatch)" = 0 ] ||
			xmt_fail "$(xmt_field "$out" src_mismatch) of 60 replies did not come from the VIP" \
				"($(head -n 2 "$out.err" | tr '\n' ' '))"
		n=$(awk '$1 == "id" && $2 ~ /^b[123]$/ { s += $3 } END { print s + 0 }' "$out")
		[ "$n" = 60 ] || xmt_fail "replies from unexpected backends: $(xmt_ids "$out")"
		notes+=("$addr/$how: $(xmt_ids "$out")")
	done
done
XMT_SUBTEST=""
for n in "${notes[@]}"; do xmt_note "$n"; done
xmt_pass "UDP replies come from the VIP on both families"
