#!/usr/bin/env bash
# An upgrade over maps pinned by an earlier version with another layout: the agent replaces each
# incompatible pin by this version's map (logged, entries lost) instead of failing to load, then serves
# external traffic through XDP; a plain restart afterwards replaces nothing.
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
} | xmt_config_write web.yaml
out="$XMT_TMP/out"

# What an earlier version left: the connection table with a 44-byte value (before the handshake state),
# and xm_backends (the socket LB's object) with a 32-byte value.
pin="$XMT_PIN-a"
XMX_PINS+=("$pin") # removed on exit even if the agent never starts
XMX_NS+=("${XMT_P}node")
mkdir -p "$pin"
bpftool map create "$pin/xm_ct" type lru_hash key 40 value 44 entries 1024 name xm_ct ||
	xmt_fail "bpftool map create xm_ct"
bpftool map create "$pin/xm_backends" type hash key 4 value 32 entries 64 name xm_backends flags 1 ||
	xmt_fail "bpftool map create xm_backends"

XMT_SUBTEST="upgrade"
xmx_agent a node node1 up0
log="$XMT_TMP/agent-a.log"
for m in xm_ct xm_backends; do
	grep -q "pinned map $pin/$m was made by another version" "$log" ||
		xmt_fail "no replacement of $m logged: $(grep -i pinned "$log" | head -n 3)"
done
value=$(bpftool map show pinned "$pin/xm_ct" | grep -o 'value [0-9]*B' || true)
[ "$value" = "value 48B" ] || xmt_fail "xm_ct after the upgrade: $value, want value 48B"
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 60 || true
xmt_assert_spread "$out" 60 10 60 b1 b2 b3

XMT_SUBTEST="plain restart"
xmt_stop_pid "${XMX_AGENTS[0]}" || xmt_fail "the agent did not exit cleanly on SIGTERM"
xmx_agent a2 node node1 up0 --bpffs "$pin" --cgroup "$XMT_CG/a"
! grep -q "made by another version" "$XMT_TMP/agent-a2.log" ||
	xmt_fail "a restart of the same version replaced maps: $(grep 'another version' "$XMT_TMP/agent-a2.log" | head -n 3)"
grep -q "uplink up0 .*XDP adopted" "$XMT_TMP/agent-a2.log" || xmt_fail "the restarted agent did not adopt the XDP link"
xmx_ext_client ext "$out" spread --addr "$VIP:80" -n 30 || true
xmt_assert_spread "$out" 30 5 80 b1 b2 b3

XMT_SUBTEST=""
xmt_note "incompatible xm_ct and xm_backends pins replaced (xm_ct now $value), then 60 connects spread;" \
	"a plain restart replaced nothing, 30 more: $(xmt_ids "$out")"
xmt_pass "upgrade over incompatible pins"
