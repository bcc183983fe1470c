#!/usr/bin/env bash
# Established plaintext connections that a policy change denies are closed (Istio/ztunnel parity): the kernel
# judges a plaintext connection at its SYN only; after the agent publishes a changed table it sweeps the TCP
# sockets of the affected pods inside their network namespaces (NETLINK_SOCK_DIAG) and destroys the ones the
# kernel would refuse now (SOCK_DESTROY: the client gets a reset). Long-lived echo connections opened before
# the policies: the external host to pb:9080 (then denied by a DENY on that port) and to sa (then denied by an
# ALLOW of one principal), pd (another service account) to sa (denied), and ones that stay allowed: ext to
# pb:9081, pc (the allowed principal) to sa, and the node itself to sa. Then STRICT on pb:9081 closes the
# external host's connection there and keeps pc's (a mesh pod of this node). Each close within 1 s of the
# config write; counted per pod, port and policy (xmesh_authz_plaintext_closed_total). Last, a DENY of pd to pb
# written while the agent is down: the restarted agent sweeps every guarded pod and closes pd's connection.
#
# The two-node topology (xdp_lib.sh), the agent on node B only:
#               l2: br0
#        a0 │            b0 │               e0 │
#   nodea up0 10.199.0.1   nodeb up0 10.199.0.2   ext eth0 10.199.0.100 (10.200.2.0/24 via 10.199.0.2)
#                          br0 10.200.2.1 ── sa .11 (app=sa), pb .12 (app=pb), pc .13 (sa client), pd .14 (sa other)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
# shellcheck source=tests/e2e/plaintext_lib.sh
. "$(dirname "$0")/plaintext_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"

SA=10.200.2.11
PB=10.200.2.12
XM_STREAM="$XMT_BUILD/tools/xm-stream"
HOLD="$(cd "$(dirname "$0")/../tools" && pwd)/plain_hold.py"
[ -x "$XM_STREAM" ] || xmt_fail "test tool $XM_STREAM not built (make tools)"

xmp_two_nodes_ext
xmp_nodeb_pods sa="$SA" pb="$PB" pc=10.200.2.13 pd=10.200.2.14

# echo servers (dual-stack listeners: the IPv4 connections show as v4-mapped AF_INET6 sockets)
echo_server() { # NAME POD PORT
	xmt_bg "$1" "$2" plain "$XM_STREAM" serve --port "$3"
	xmt_wait_for "$(xmt_bg_log "$1")" 'ready' 5 "${XMT_BG[$1]}" ||
		xmt_fail "xm-stream serve in $2:$3 did not start: $(cat "$(xmt_bg_log "$1")")"
}
echo_server echo-sa sa 9080
echo_server echo-pb pb 9080
echo_server echo-pb81 pb 9081

# config [policies] [strict] [deny-pd]: the pods; with "policies" a DENY of the external host to pb:9080 and an
# ALLOW of sa to the service account "client" only; with "strict" pb:9081 STRICT as well; with "deny-pd" a DENY
# of pd's service account to pb.
config() {
	{
		xmx_yaml_pod sa "$SA" nodeb server
		xmx_yaml_pod pb "$PB" nodeb server
		xmx_yaml_pod pc 10.200.2.13 nodeb client
		xmx_yaml_pod pd 10.200.2.14 nodeb other
		if [ "${1:-}" = policies ]; then
			xmp_policy deny-ext pb DENY 'ipBlocks: ["10.199.0.100/32"]' 9080
			xmp_policy only-client sa ALLOW 'principals: ["cluster.local/ns/default/sa/client"]'
		fi
		[ "${3:-}" != deny-pd ] || xmp_policy deny-pd pb DENY 'principals: ["cluster.local/ns/default/sa/other"]'
		if [ "${2:-}" = strict ]; then
			printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: PeerAuthentication" "metadata:" \
				"  name: pb-9081" "  namespace: default" "spec:" "  selector:" "    matchLabels:" \
				"      app: pb" "  mtls:" "    mode: PERMISSIVE" "  portLevelMtls:" "    9081:" \
				"      mode: STRICT"
		fi
	} | xmt_config_write authz.yaml
}

# hold NAME NS ADDR PORT GATE: a long-lived echo connection, open before the change; echoes every 20 ms for
# 3 s once GATE exists.
hold() {
	xmt_bg "hold-$1" "$2" plain python3 "$HOLD" "$3" "$4" "$5" 3
	xmt_wait_for "$(xmt_bg_log "hold-$1")" '^open$' 5 "${XMT_BG[hold-$1]}" ||
		xmt_fail "$1: $2 -> $3:$4 did not open: $(cat "$(xmt_bg_log "hold-$1")")"
}

# outcome NAME: the final line of a hold (waits for it).
outcome() {
	xmt_wait_for "$(xmt_bg_log "hold-$1")" '^(closed|alive|error|wrong)' 10 "${XMT_BG[hold-$1]}" || true
	tail -n 1 "$(xmt_bg_log "hold-$1")"
}

# closed_within NAME T0 MS: the hold was reset (or ended) within MS of T0; prints the time taken.
closed_within() {
	local out at
	out=$(outcome "$1")
	[[ "$out" == "closed how="* ]] || xmt_fail "$1 was not closed by the change: $out"
	at=$(sed -n 's/.* at_ms=\([0-9]*\).*/\1/p' <<<"$out")
	xmt_note "$1 closed ($out) $((at - $2)) ms after the config write"
	[ $((at - $2)) -le "$3" ] || xmt_fail "$1 closed $((at - $2)) ms after the config write, want <= $3"
}

still_alive() {
	local out
	out=$(outcome "$1")
	[[ "$out" == "alive echoed="* ]] || xmt_fail "$1 should have stayed open and echoing: $out"
}

# closed POD PORT POLICY: xmesh_authz_plaintext_closed_total of the series (0 when absent).
closed() { xmx_metric nodeb "xmesh_authz_plaintext_closed_total{namespace=\"default\",pod=\"$1\",port=\"$2\",policy=\"$3\"}"; }

config
xmx_agent b nodeb nodeb up0

XMT_SUBTEST="connections open before the policies"
hold ext-pb ext "$PB" 9080 "$XMT_TMP/changed"
hold ext-pb81 ext "$PB" 9081 "$XMT_TMP/changed"
hold ext-sa ext "$SA" 9080 "$XMT_TMP/changed"
hold pd-sa pd "$SA" 9080 "$XMT_TMP/changed"
hold pc-sa pc "$SA" 9080 "$XMT_TMP/changed"
hold node-sa nodeb "$SA" 9080 "$XMT_TMP/changed"

XMT_SUBTEST="DENY and ALLOW applied: the denied connections are reset"
t0=$(date +%s%3N)
config policies
touch "$XMT_TMP/changed"
closed_within ext-pb "$t0" 1000
closed_within ext-sa "$t0" 1000
closed_within pd-sa "$t0" 1000
still_alive ext-pb81
still_alive pc-sa
still_alive node-sa

XMT_SUBTEST="metrics and log"
n=$(closed pb 9080 default/deny-ext)
[ "$n" = 1 ] || xmt_fail "closed{pod=pb,port=9080,policy=default/deny-ext} is $n, want 1: $(xmx_scrape nodeb | grep closed_total)"
n=$(closed sa 9080 allow-not-matched)
[ "$n" = 2 ] || xmt_fail "closed{pod=sa,port=9080,policy=allow-not-matched} is $n, want 2 (ext, pd): $(xmx_scrape nodeb | grep closed_total)"
grep -E 'plaintext connections after the policy change: [0-9]+ judged, 3 closed' "$XMT_AGENT_LOG" >/dev/null ||
	xmt_fail "no sweep log line with 3 closed: $(grep 'plaintext connections' "$XMT_AGENT_LOG")"
xmt_note "$(grep 'plaintext connections after' "$XMT_AGENT_LOG" | tail -n 1)"
out=$(xmx_scrape nodeb | grep '^xmesh_authz_plaintext_close_failures_total' | awk '$2 != 0')
[ -z "$out" ] || xmt_fail "sweep failures: $out"

XMT_SUBTEST="status"
out=$(xmx_status b)
grep -E '^plaintext sweeps: 1 \(6 connections judged, 3 closed\)' <<<"$out" >/dev/null ||
	xmt_fail "status: $(grep -i sweep <<<"$out")"
out=$(timeout -k 5 20 "$XMESH" status --json --admin "$XMT_TMP/admin-b.sock" |
	python3 -c 'import json, sys; s = json.load(sys.stdin)["plaintext_sweeps"]; print(s["sweeps"], s["closed"])') ||
	xmt_fail "status --json: no plaintext_sweeps or not JSON"
[ "$out" = "1 3" ] || xmt_fail "status --json plaintext_sweeps: $out, want 1 sweep, 3 closed"

XMT_SUBTEST="new connections still refused in the kernel"
xmp_refused ext "$PB:9080"

XMT_SUBTEST="STRICT on pb:9081: the external host's connection is reset, the mesh pod's stays"
hold ext-pb81b ext "$PB" 9081 "$XMT_TMP/strict"
hold pc-pb81 pc "$PB" 9081 "$XMT_TMP/strict"
t0=$(date +%s%3N)
config policies strict
touch "$XMT_TMP/strict"
closed_within ext-pb81b "$t0" 1000
still_alive pc-pb81
n=$(closed pb 9081 strict)
[ "$n" = 1 ] || xmt_fail "closed{pod=pb,port=9081,policy=strict} is $n, want 1: $(xmx_scrape nodeb | grep closed_total)"
# only pb's entries changed: only pb is swept (sa's connections are not judged again)
out=$(grep 'plaintext connections after the policy change' "$XMT_AGENT_LOG" | tail -n 1)
[[ "$out" == *" judged, 1 closed, 1 pod address(es) in "* ]] || xmt_fail "the STRICT sweep: $out, want 1 closed of 1 pod"
xmt_note "$out"

XMT_SUBTEST="a policy written while the agent was down: its start sweeps every guarded pod"
kill -TERM "${XMX_AGENTS[0]}"
wait "${XMX_AGENTS[0]}" || xmt_fail "the agent exited with status $? on SIGTERM"
XMX_AGENTS=()
hold pd-pb pd "$PB" 9080 "$XMT_TMP/restarted"
hold pc-pb pc "$PB" 9080 "$XMT_TMP/restarted"
config policies strict deny-pd
xmx_agent b nodeb nodeb up0
touch "$XMT_TMP/restarted"
out=$(outcome pd-pb)
[[ "$out" == "closed how="* ]] || xmt_fail "pd -> pb:9080 was not closed by the restarted agent: $out"
still_alive pc-pb
n=$(closed pb 9080 default/deny-pd)
[ "$n" = 1 ] || xmt_fail "closed{pod=pb,port=9080,policy=default/deny-pd} is $n, want 1: $(xmx_scrape nodeb | grep closed_total)"
out=$(grep 'plaintext connections after the policy change' "$XMT_AGENT_LOG" | head -n 1)
[[ "$out" == *" 1 closed, 2 pod address(es) in "* ]] || xmt_fail "the start's sweep: $out, want 1 closed of 2 pods"
xmt_note "after a restart: $out"

xmt_pass "established plaintext connections a policy change denies are reset within 1 s (DENY, ALLOW, STRICT); allowed ones, the node's and a same-node mesh pod's keep echoing; counted per policy"
