# shellcheck shell=bash
# HBONE between two nodes as the HBONE e2e tests drive it: the agents (--hbone; agent b alone when node A runs
# an independent client), sa's PeerAuthentication, the client pod pa of node A inside agent a's mesh cgroup,
# agent A's capture counter, tcpdump on node A's uplink, and the byte-checking clients. One copy, so the tests
# start, observe and stop the tunnel the same way. Sourced after lib.sh, xdp_lib.sh and xmx_init (topology:
# xmx_two_nodes_pods or xmx_two_nodes, pa on node A, sa on node B).

# xmh_yaml_nodes_pods SA_IP PA_IP: the Nodes (InternalIPs on the uplinks), pod sa of node B (app: sa,
# serviceAccount web) and pod pa of node A (app: pa).
xmh_yaml_nodes_pods() {
	xmx_yaml_node nodea 10.199.0.1
	xmx_yaml_node nodeb 10.199.0.2
	xmx_yaml_pod sa "$1" nodeb web
	xmx_yaml_pod pa "$2" nodea
}

# xmh_yaml_sa_mode MODE [NAME]: the PeerAuthentication NAME (sa-mode) of pod sa (app: sa) with MODE.
xmh_yaml_sa_mode() {
	printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: PeerAuthentication" "metadata:" \
		"  name: ${2:-sa-mode}" "  namespace: default" "spec:" "  selector:" "    matchLabels:" "      app: sa" \
		"  mtls:" "    mode: $1"
}

# xmh_agent_a CAPTURING_REGEX [ARGS...]: agent a (--hbone ARGS) until its log matches CAPTURING_REGEX. It
# starts before agent b: it generates the root under the shared --state-dir, which agent b then loads.
xmh_agent_a() {
	local capturing=$1
	shift
	xmx_agent a nodea nodea up0 --hbone "$@"
	xmt_wait_for "$XMT_TMP/agent-a.log" "$capturing" 5 ||
		xmt_fail "agent a does not capture ($capturing): $(tail -n 5 "$XMT_TMP/agent-a.log")"
}
# xmh_agent_b [ARGS...]: agent b (--hbone ARGS) until it serves HBONE.
xmh_agent_b() {
	xmx_agent b nodeb nodeb up0 --hbone "$@"
	xmt_wait_for "$XMT_TMP/agent-b.log" 'hbone: serving HBONE' 5 || xmt_fail "agent b not serving: $(tail -n 5 "$XMT_TMP/agent-b.log")"
}

# xmh_stop_agent PID NAME: SIGTERM, then up to 15 s for its exit (its drain takes up to 10 s); fails if it
# still runs or exits with a non-zero status.
xmh_stop_agent() {
	local pid=$1 i
	kill -TERM "$pid"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && xmt_fail "agent $2 still running 15 s after SIGTERM"
	wait "$pid" || xmt_fail "agent $2 exited with status $? on SIGTERM"
}

# xmh_in_pod POD CMD...: CMD in POD's namespace, inside agent a's mesh cgroup (so agent a captures it).
xmh_in_pod() {
	XMT_POD_CG="$XMT_CG/a" xmt_in_pod "$@"
}

# xmh_bg_pa NAME CMD...: CMD in pa, inside agent a's mesh cgroup, in the background (xmt_bg's "mesh" is
# XMT_CG itself); output in $XMT_TMP/NAME.log, pid in XMT_BG[NAME], stopped by the teardown.
xmh_bg_pa() {
	local name=$1
	shift
	# shellcheck disable=SC2016 # $$ and $0 are for the inner shell
	timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/${XMT_P}pa" -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
		"$XMT_CG/a" "$@" >"$XMT_TMP/$name.log" 2>&1 &
	# shellcheck disable=SC2034 # read by the test (xmt_wait_for, wait)
	XMT_BG[$name]=$!
	XMT_PIDS+=("$!")
}

# xmh_marker ADDR PORT TEXT [with-local]: from pa, reads the server's id line, sends TEXT, expects it echoed;
# prints "ID PEER" (and the local address with with-local).
xmh_marker() {
	xmh_in_pod pa python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = s.makefile("rb")
ident = f.readline().strip().decode()
m = sys.argv[3].encode()
s.sendall(m)
got = f.read(len(m))
if got != m:
    sys.exit("echo differs: %r" % got)
print(ident, s.getpeername()[0], *([s.getsockname()[0]] if len(sys.argv) > 4 else []))
' "$@"
}

# xmh_captured: how many connections agent a's capture sent into the tunnel.
xmh_captured() { xmx_metric nodea 'xmesh_hbone_outbound_connections_total{source="capture"}'; }

# xmh_wait_captured yes|no ADDR:PORT START_MS: a fresh connection from pa every 50 ms until agent a's capture
# counter moves (yes) or stays (no) for it; fails 3 s after START_MS; prints the milliseconds since START_MS.
xmh_wait_captured() {
	local before now out
	while :; do
		before=$(xmh_captured)
		out=$(xmh_in_pod pa "$XM_CLIENT" spread --addr "$2" -n 1 2>&1) || xmt_fail "pa -> $2: $out"
		now=$(date +%s%3N)
		if { [ "$1" = yes ] && [ "$(xmh_captured)" != "$before" ]; } || { [ "$1" = no ] && [ "$(xmh_captured)" = "$before" ]; }; then
			echo $((now - $3))
			return 0
		fi
		[ $((now - $3)) -lt 3000 ] || xmt_fail "pa -> $2 still not captured=$1 after $((now - $3)) ms"
		sleep 0.05
	done
}

# xmh_capture_start NAME / xmh_capture_stop NAME: tcpdump on node A's uplink into $XMT_TMP/NAME.pcap.
xmh_capture_start() {
	xmt_bg "tcpdump-$1" nodea plain tcpdump -i up0 --immediate-mode -U -n -s 0 -w "$XMT_TMP/$1.pcap" tcp
	xmt_wait_for "$(xmt_bg_log "tcpdump-$1")" 'listening on' 5 || xmt_fail "tcpdump did not start: $(cat "$(xmt_bg_log "tcpdump-$1")")"
}
xmh_capture_stop() {
	sleep 0.2 # what the last exchange sent is written (immediate mode, packet-buffered)
	xmt_bg_stop "tcpdump-$1" || true
}
# xmh_pcap_has NAME FILTER [GREP]: whether a packet matches FILTER (and its ASCII dump holds GREP; by default
# $XMH_PCAP_ANY, tcpdump's "IP " of an IPv4 packet: an IPv6 test sets "IP6 ").
XMH_PCAP_ANY="IP "
xmh_pcap_has() {
	tcpdump -n -r "$XMT_TMP/$1.pcap" -A "$2" 2>/dev/null | grep -F -- "${3:-$XMH_PCAP_ANY}" >/dev/null
}

# xmh_hbone_proxy_state: "set" while agent a's pinned xm_hbone_proxy holds a listener (the capture is on),
# "clear" once it is all zeros; nothing (and a failure) when the map cannot be read.
xmh_hbone_proxy_state() {
	python3 -c 'import json, sys; v = json.loads(sys.argv[1])[0]["value"]; print("set" if any(int(b, 16) for b in v) else "clear")' \
		"$(bpftool -j map dump pinned "$XMT_PIN-a/xm_hbone_proxy")"
}

# xmh_bg_py NAME SCRIPT ARGS...: xmh_bg_pa of a Python SCRIPT that may call echo_exact(sock, data): sends
# data, reads its echo; None when byte-exact, else what went wrong (the one check of every client here).
xmh_bg_py() {
	local name=$1 script=$2
	shift 2
	xmh_bg_pa "$name" python3 -c "$XMH_PY_ECHO$script" "$@"
}
XMH_PY_ECHO='
def echo_exact(s, m):
    s.sendall(m)
    got = bytearray()
    while len(got) < len(m):
        b = s.recv(len(m) - len(got))
        if not b:
            return "EOF after %d of %d bytes" % (len(got), len(m))
        got += b
    return None if bytes(got) == m else "reply differs"
'

# XMH_RR_PY ADDR PORT SECONDS (for xmh_bg_py): one connection, request/response with random payloads (each reply
# compared) for SECONDS, then a clean end; prints "rr ok exchanges=N bytes=N".
# shellcheck disable=SC2034 # run by the sourcing tests
XMH_RR_PY='
import os, random, socket, sys, time
end = time.monotonic() + float(sys.argv[3])
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
n = nbytes = 0
while time.monotonic() < end:
    m = os.urandom(random.randint(1, 8192))
    err = echo_exact(s, m)
    if err:
        sys.exit("rr: exchange %d: %s" % (n, err))
    n += 1
    nbytes += len(m)
    time.sleep(0.005)
s.shutdown(socket.SHUT_WR)
if s.recv(1) != b"":
    sys.exit("rr: data after the end")
print("rr ok exchanges=%d bytes=%d" % (n, nbytes))
'
