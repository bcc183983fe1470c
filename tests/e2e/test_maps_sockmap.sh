#!/usr/bin/env bash
# `xmesh maps` decodes the same-node maps: xm_local_ips lists the pods of this node (as pods, also after a
# pod leaves the config and comes back), and while a
# redirected stream runs between c1 and b1, xm_sock_pairs holds both of its sockets (each end's local and
# remote address and port, and a socket cookie), in text and in --json.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sockmap_lib.sh"
xms_init "$@"
xms_pair
xmt_agent_start
out="$XMT_TMP/out"
b1=$(xmt_pod_ip b1)
c1=$(xmt_pod_ip c1)

maps() { # NAME [--json]: xmesh maps NAME into $out; fails the test on a non-zero exit
	local rc=0
	xmt_xmesh maps "$@" --bpffs "$XMT_PIN" >"$out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || xmt_fail "xmesh maps $* exited $rc: $(head -n 5 "$out")"
}

XMT_SUBTEST="xm_local_ips"
maps xm_local_ips
for a in "$b1" "$c1"; do
	grep -q "address=$a pod=true" "$out" || xmt_fail "xm_local_ips (text) lacks $a as a pod: $(head -c 600 "$out")"
done
maps xm_local_ips --json
python3 - "$out" "$b1" "$c1" <<'PY' || xmt_fail "xm_local_ips --json: $(head -c 600 "$out")"
import json, sys
rows = {r["address"]: r for r in json.load(open(sys.argv[1]))["xm_local_ips"]}
for a in sys.argv[2:]:
    assert rows[a]["pod"] is True, rows
PY

# Later applies write only what changed (the sockmap module diffs against the last published set): a pod that
# leaves the config leaves the map, and comes back with it.
XMT_SUBTEST="xm_local_ips after changes"
xms_config b1
xmt_settle
maps xm_local_ips
grep -q "address=$b1 pod=true" "$out" || xmt_fail "b1 went missing when only c1 left: $(head -c 600 "$out")"
! grep -q "address=$c1 " "$out" || xmt_fail "c1 left the config but is still local: $(head -c 600 "$out")"
xms_config b1 c1
xmt_settle
maps xm_local_ips
for a in "$b1" "$c1"; do
	grep -q "address=$a pod=true" "$out" || xmt_fail "$a is not local again: $(head -c 600 "$out")"
done

XMT_SUBTEST="xm_sock_pairs"
# 4 MiB at 8 Mbit/s: about 4 s of a redirected stream to look at.
xmt_bg stream c1 mesh "$XM_STREAM" echo --addr "$b1:$XMT_TARGET" --bytes $((4 * 1024 * 1024)) --rate-mbps 8 \
	--timeout-ms 20000
sleep 1
maps xm_sock_pairs --json
python3 - "$out" "$b1" "$c1" "$XMT_TARGET" <<'PY' || xmt_fail "xm_sock_pairs --json: $(head -c 600 "$out")"
import json, sys
rows = json.load(open(sys.argv[1]))["xm_sock_pairs"]
b1, c1, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
server = [r for r in rows if r["local"] == b1 and r["local_port"] == port and r["remote"] == c1]
client = [r for r in rows if r["local"] == c1 and r["remote"] == b1 and r["remote_port"] == port]
assert len(server) == 1 and len(client) == 1, rows
assert server[0]["remote_port"] == client[0]["local_port"], rows
assert server[0]["cookie"] and client[0]["cookie"] and server[0]["cookie"] != client[0]["cookie"], rows
PY
maps xm_sock_pairs
grep -q "local=$c1 local_port=[0-9]* remote=$b1 remote_port=$XMT_TARGET netns=0 cookie=[1-9]" "$out" ||
	xmt_fail "xm_sock_pairs (text) lacks the client's socket: $(head -c 600 "$out")"
xmt_wait_for "$(xmt_bg_log stream)" '^bytes=' 20 "${XMT_BG[stream]}" || xmt_fail "the stream did not finish"
xmt_bg_stop stream || xmt_fail "the stream broke: $(cat "$(xmt_bg_log stream)")"
XMT_SUBTEST=""
xmt_pass "xm_local_ips and xm_sock_pairs decoded"
