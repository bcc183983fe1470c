#!/usr/bin/env bash
# 600 TCP connects to the VIP from a client pod in the mesh spread over all 3 backends (each 20-47%) and
# getpeername() answers the VIP every time: for the default (LEAST_REQUEST), ROUND_ROBIN and RANDOM; and
# once the client has closed them, no backend counts a live connection.
# The algorithm changes by rewriting the DestinationRule, which also exercises re-apply on change.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 1
backends=$(xmt_backends 3)
# shellcheck disable=SC2086 # word splitting of the backend list is intended
xmt_config_std $backends
xmt_agent_start

out="$XMT_TMP/out"
notes=()
for lb in default ROUND_ROBIN RANDOM LEAST_REQUEST; do
	if [ "$lb" != default ]; then
		# shellcheck disable=SC2086
		xmt_config_std --lb "$lb" $backends
		xmt_settle
	fi
	XMT_SUBTEST=$lb
	xmt_log "subtest $lb"
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 600 || true
	# shellcheck disable=SC2086
	xmt_assert_spread "$out" 600 20 47 $backends
	# The client has closed every connection, so none is live any more for LEAST_REQUEST: sockops takes a
	# connection out of its backend's count at close(), not when the server gets round to closing its end.
	live=$(xmt_xmesh maps xm_backend_conns --bpffs "$XMT_PIN" | grep 'active=' || true)
	[ -z "$live" ] || xmt_fail "live connection counts after the client closed all: ${live//$'\n'/ }"
	notes+=("$lb $(xmt_ids "$out") max_connect=$(xmt_field "$out" max_connect_ms)ms")
	xmt_log "$lb: $(xmt_ids "$out")"
done
for n in "${notes[@]}"; do xmt_note "$n"; done
xmt_pass "600 connects spread over 3 backends for every algorithm"
