# shellcheck shell=bash
# Extra helpers for the sockmap e2e tests (sourced after lib.sh, before xmt_init): namespace prefix xms<PID>-,
# the xm-stream tool, the admin socket, sockmap counters and veth byte counters.

# Our namespaces carry their own prefix; lib.sh's teardown removes whatever XMT_NETNS lists.
XMT_P="xms$$-"
XMT_NODE="${XMT_P}node"
XM_STREAM=""

# xms_init BUILD: xmt_init, plus what the sockmap tests need: their tools, and the kernel's sockmap types.
xms_init() {
	xmt_init "$@"
	XM_STREAM="$XMT_BUILD/tools/xm-stream"
	[ -x "$XM_STREAM" ] || xmt_skip "test tool $XM_STREAM not built (make tools)"
	command -v python3 >/dev/null || xmt_skip "python3 (admin socket client) not installed"
	xmt_require_kernel "program_type sock_ops" "program_type sk_msg" "map_type sockhash" "map_type sk_storage"
}

# xms_admin COMMAND...: one admin request, the answer on stdout.
xms_admin() {
	timeout -k 2 10 python3 - "$XMT_ADMIN" "$*" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
PY
}

# xms_stat NAME: one counter of "sockmap status" (redirected_bytes, fallback_no_peer, ...).
xms_stat() { xms_admin sockmap status | awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'; }

# xms_veth_bytes POD: bytes through the node end of POD's veth, both directions.
xms_veth_bytes() {
	local d=/sys/class/net/v-$1/statistics
	# ip netns exec remounts /sys for the namespace (fine for reading counters; the agent uses nsenter).
	ip netns exec "$XMT_NODE" sh -c "echo \$((\$(cat $d/rx_bytes) + \$(cat $d/tx_bytes)))"
}

# xms_serve POD: an xm-stream echo server on $XMT_TARGET in POD, inside the mesh cgroup.
xms_serve() {
	xmt_bg "echo-$1" "$1" mesh "$XM_STREAM" serve --port "$XMT_TARGET"
	xmt_wait_for "$(xmt_bg_log "echo-$1")" '^ready$' 5 "${XMT_BG[echo-$1]}" ||
		xmt_fail "xm-stream in $1 did not start: $(cat "$(xmt_bg_log "echo-$1")")"
}

# xms_config POD...: Pods on this node (so they are local), and Service reviews -> the first one.
xms_config() {
	local p first=$1
	{
		for p in "$@"; do xmt_yaml_pod "$p" app="$p"; done
		xmt_yaml_node
		xmt_yaml_service --name reviews --vip "$XMT_VIP"
		xmt_yaml_slice --service reviews "$(xmt_pod_ip "$first")"
	} | xmt_config_write sockmap.yaml
}

# xms_pair: the usual pair on the node, server pod b1 (.11, xm-stream echo on $XMT_TARGET) and client pod
# c1 (.101), both local, Service reviews -> b1. The agent is not started.
xms_pair() {
	xmt_node_create
	xmt_pod_add b1 11
	xmt_pod_add c1 101
	xms_serve b1
	xms_config b1 c1
}

# xms_echo POD OUT ARGS...: xm-stream echo in POD inside the mesh; returns its status.
xms_echo() {
	local pod=$1 out=$2 rc=0
	shift 2
	xmt_in_pod "$pod" "$XM_STREAM" echo "$@" >"$out" 2>&1 || rc=$?
	return "$rc"
}
