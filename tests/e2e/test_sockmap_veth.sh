#!/usr/bin/env bash
# Proof of redirection: 100 MiB echoed pod to pod (200 MiB of payload) through the VIP and 100 MiB through
# the pod IP, every byte checked; the veths' byte counters barely move while the redirected-bytes counter
# grows by the payload. Control: with the switch off the same stream moves the veth counters.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sockmap_lib.sh"
xms_init "$@"
xms_pair
xmt_agent_start
out="$XMT_TMP/echo.out"
MiB=$((1024 * 1024))

for via in "$XMT_VIP:$XMT_PORT" "$(xmt_pod_ip b1):$XMT_TARGET"; do
	XMT_SUBTEST="100 MiB via $via"
	v0=$(($(xms_veth_bytes b1) + $(xms_veth_bytes c1)))
	r0=$(xms_stat redirected_bytes)
	xms_echo c1 "$out" --addr "$via" --bytes $((100 * MiB)) --chunk 65536 --timeout-ms 10000 ||
		xmt_fail "echo failed: $(cat "$out")"
	v1=$(($(xms_veth_bytes b1) + $(xms_veth_bytes c1)))
	r1=$(xms_stat redirected_bytes)
	veth=$((v1 - v0))
	redir=$((r1 - r0))
	((redir >= 200 * MiB)) || xmt_fail "only $redir bytes redirected of $((200 * MiB)) ($(cat "$out"))"
	((veth < 1 * MiB)) || xmt_fail "the veths carried $veth bytes while 200 MiB were echoed: not redirected"
	xmt_note "via $via: $(xmt_field "$out" mbps) Mbit/s echo, veths moved $veth B, redirected $redir B"
done

XMT_SUBTEST="control: switch off"
xms_admin sockmap off | grep '^ok' >/dev/null || xmt_fail "admin 'sockmap off' refused"
v0=$(($(xms_veth_bytes b1) + $(xms_veth_bytes c1)))
xms_echo c1 "$out" --addr "$XMT_VIP:$XMT_PORT" --bytes $((20 * MiB)) --timeout-ms 10000 ||
	xmt_fail "echo with the switch off failed: $(cat "$out")"
veth=$(($(xms_veth_bytes b1) + $(xms_veth_bytes c1) - v0))
((veth >= 40 * MiB)) || xmt_fail "with redirection off the veths moved only $veth bytes for 40 MiB of payload"
xmt_note "switch off: veths moved $veth B for 40 MiB of payload"
XMT_SUBTEST=""
xmt_pass "pod-to-pod payload skips the veths when redirected"
