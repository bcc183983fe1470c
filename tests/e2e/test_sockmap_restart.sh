#!/usr/bin/env bash
# A connection made before the agent started is never accelerated and keeps working; a redirected stream
# survives an agent restart (stop, 1 s without agent, start: links and maps adopted) with every byte intact.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sockmap_lib.sh"
xms_init "$@"
xmt_node_create
xmt_pod_add b1 11
xmt_pod_add c1 101
xmt_pod_add c2 102
xms_serve b1
xms_config b1 c1 c2
MiB=$((1024 * 1024))
b1=$(xmt_pod_ip b1)

XMT_SUBTEST="connection before the agent"
# 24 MiB at 64 Mbit/s: about 3 s, spanning the agent's start.
xmt_bg early c2 mesh "$XM_STREAM" echo --addr "$b1:$XMT_TARGET" --bytes $((24 * MiB)) --rate-mbps 64 \
	--timeout-ms 10000
sleep 0.3
xmt_agent_start
progs=$(xmt_cg_progs | sort | paste -sd ' ')
# The mesh cgroup runs one sockops program, the socket LB's and sockmap's parts together (docs/sockmap.md).
one_sockops() {
	local got
	got=$({ bpftool cgroup show "$XMT_CG" 2>/dev/null || true; } | awk '$2 == "cgroup_sock_ops" { print $NF }' |
		paste -sd ' ')
	[ "$got" = xm_mesh_ops ] || xmt_fail "$1: sockops on the mesh cgroup: '$got', want the one program xm_mesh_ops"
}
one_sockops "after the start"

XMT_SUBTEST="stream across a restart"
v0=$(xms_veth_bytes c1)
xmt_bg mid c1 mesh "$XM_STREAM" echo --addr "$XMT_VIP:$XMT_PORT" --bytes $((32 * MiB)) --rate-mbps 96 \
	--timeout-ms 10000
sleep 0.7
xmt_agent_stop || xmt_fail "agent exit status on SIGTERM"
sleep 1
xmt_agent_start
[ "$(xmt_cg_progs | sort | paste -sd ' ')" = "$progs" ] ||
	xmt_fail "programs after restart: '$(xmt_cg_progs | sort | paste -sd ' ')', before: '$progs'"
one_sockops "after the restart"
for n in early mid; do
	xmt_wait_for "$(xmt_bg_log "$n")" '^bytes=' 20 "${XMT_BG[$n]}" || xmt_fail "$n: stream did not finish"
	xmt_bg_stop "$n" || xmt_fail "$n: stream broken: $(cat "$(xmt_bg_log "$n")")"
done
veth_mid=$(($(xms_veth_bytes c1) - v0))
((veth_mid < MiB)) || xmt_fail "the stream across the restart moved $veth_mid bytes over c1's veth: not redirected"
veth_early=$(xms_veth_bytes c2)
((veth_early >= 48 * MiB)) ||
	xmt_fail "the pre-agent connection moved only $veth_early bytes over c2's veth (expected plain TCP)"
XMT_SUBTEST=""
xmt_note "pre-agent connection: plain TCP, $veth_early B on its veth; across restart: $veth_mid B on the veth"
xmt_pass "pre-agent connections work unaccelerated; redirected streams survive a restart"
