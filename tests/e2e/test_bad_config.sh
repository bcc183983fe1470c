#!/usr/bin/env bash
# A broken config leaves the previous one serving. The agent reports the error with file:line:col and keeps
# running; `xmesh validate` rejects the same file the same way. Two kinds: a YAML syntax error, and valid
# YAML with an invalid field (a clusterIP that is no address). Afterwards a good file is applied again
# (the watcher survived the errors).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
xmt_topology 3 1
xmt_config_std b1 b2 b3
xmt_agent_start

out="$XMT_TMP/out"
good=$(cat "$XMT_CONF/reviews.yaml")

# check_still_serving WHAT: the agent lives and the VIP still spreads over the previous config's backends.
check_still_serving() {
	xmt_agent_alive || xmt_fail "the agent exited after $1"
	xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 90 || true
	xmt_assert_spread "$out" 90 10 60 b1 b2 b3
}

# check_reported FILE [LINE_RE]: the agent log and `xmesh validate FILE` both name FILE:LINE:COL.
check_reported() {
	local re="${1//./\\.}:${2:-[0-9]+}:[0-9]+" rc=0
	xmt_wait_for "$XMT_AGENT_LOG" "$re" 2 || xmt_fail "the agent logged no error matching '$re'"
	xmt_log "agent: $(grep -E -m 1 "$re" "$XMT_AGENT_LOG")"
	xmt_xmesh validate "$XMT_CONF/$1" >"$out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || xmt_fail "xmesh validate exited $rc on a broken file, expected 1: $(cat "$out")"
	grep -qE "$re" "$out" || xmt_fail "xmesh validate printed no '$re': $(cat "$out")"
}

XMT_SUBTEST="YAML syntax error"
# Line 10 (clusterIPs) becomes a flow sequence that is never closed.
printf '%s\n' "$good" | sed "10s/.*/  clusterIPs: [10.96.0.10,/" | xmt_config_write reviews.yaml
xmt_log "broken file: $(sed -n 9,11p "$XMT_CONF/reviews.yaml" | tr '\n' '|')"
xmt_settle
check_reported reviews.yaml
check_still_serving "a YAML syntax error"
syntax_line=$(grep -oE -m 1 "reviews\\.yaml:[0-9]+:[0-9]+:.*" "$XMT_AGENT_LOG")

XMT_SUBTEST="invalid clusterIP"
printf '%s\n' "$good" | xmt_config_write reviews.yaml
{
	xmt_yaml_service --name bad --vip 10.96.0.999
	xmt_yaml_slice --service bad "$(xmt_pod_ip b1)"
} | xmt_config_write bad.yaml
line=$(grep -n 'clusterIP: 10.96.0.999' "$XMT_CONF/bad.yaml" | cut -d: -f1)
line2=$(grep -n -- '- 10.96.0.999' "$XMT_CONF/bad.yaml" | cut -d: -f1)
xmt_settle
# Either of the two places that carry the address is a fair report.
check_reported bad.yaml "($line|$line2)"
check_still_serving "an invalid clusterIP"

XMT_SUBTEST="fixed config"
xmt_config_rm bad.yaml
xmt_config_std b1 b2
xmt_settle
xmt_client c1 "$out" spread --addr "$XMT_VIP:$XMT_PORT" -n 90 || true
xmt_assert_spread "$out" 90 30 70 b1 b2
XMT_SUBTEST=""
xmt_note "reported: ${syntax_line:0:120}"
xmt_pass "broken configs are reported and the previous one keeps serving"
