#!/usr/bin/env bash
# The HBONE tunnel end to end (both agents --hbone): a mesh pod of node A connects to pods of node B as usual;
# agent A's connect hook sends each connection to the agent's outbound listener, which carries it in a CONNECT
# stream inside mutual TLS to <pod IP>:15008 of node B (pooled: 100 streams per TLS connection), where agent
# B's server hands it to the pod.
#   - a marker the client writes never crosses node A's uplink, and TLS runs on 15008 (tcpdump);
#   - 10 MiB byte-exact; 200 concurrent connections from one pod to one remote pod ride exactly 2 TLS connections;
#   - STRICT on node B's pod: the external host's plaintext is refused, the tunnelled pod gets through;
#     DISABLE: the cross-node connection is plaintext again (the marker is on the wire); each change of the
#     file applies within 1 s (measured);
#   - a Service VIP whose backend is on node B goes through the tunnel, and getpeername answers the VIP.
#
#        a0 │                          b0 │                     e0 │
#   nodea up0 10.199.0.1         nodeb up0 10.199.0.2          ext 10.199.0.100
#   br0 10.200.1.1               br0 10.200.2.1 ── sa .11 (serviceAccount web; xm-server 8080, xm-stream 9000)
#    └─ pa .11 (client pod, cgroup of agent a)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
# shellcheck source=tests/e2e/hbone_lib.sh
. "$(dirname "$0")/hbone_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls" "program_type cgroup_sock_addr" "program_type sock_ops"
command -v curl >/dev/null || xmt_skip "command curl not installed"
# Without tcpdump the test cannot show that nothing crosses in plaintext: that is a failure, not a skip.
command -v tcpdump >/dev/null || xmt_fail "tcpdump missing (scripts/install-deps.sh installs it)"
XM_STREAM="$XMT_BUILD/tools/xm-stream"
[ -x "$XM_STREAM" ] || xmt_skip "test tool $XM_STREAM not built (make tools)"

SA=10.200.2.11
PA=10.200.1.11
VIP=10.96.0.60
MARK="xmesh-marker-$$-$RANDOM-plaintext"

xmx_two_nodes_pods
ip -n "${XMT_P}ext" route add 10.200.2.0/24 via 10.199.0.2
xmx_pod nodeb sa "$SA" 10.200.2.1
xmt_bg stream-sa sa plain "$XM_STREAM" serve --port 9000
xmt_wait_for "$(xmt_bg_log stream-sa)" 'ready' 5 || xmt_fail "xm-stream in sa did not start"
xmx_pod nodea pa "$PA" 10.200.1.1
xmx_pod nodea px 10.200.1.12 10.200.1.1 # in agent a's cgroup, but no Pod of the config

# config MODE: sa's PeerAuthentication mode; the rest never changes.
config() {
	{
		xmh_yaml_nodes_pods "$SA" "$PA"
		printf '%s\n' "---" "apiVersion: v1" "kind: Service" "metadata:" "  name: web" "  namespace: default" \
			"spec:" "  clusterIP: $VIP" "  clusterIPs:" "  - $VIP" "  ports:" "  - name: tcp" "    port: 80" \
			"    protocol: TCP" "    targetPort: 8080"
		xmx_yaml_slice web nodeb "$SA"
		xmh_yaml_sa_mode "$1"
	} | xmt_config_write mesh.yaml
}
config STRICT

xmh_agent_a 'hbone: capturing'
xmh_agent_b

XMT_SUBTEST="the marker stays inside the tunnel, TLS on 15008"
xmh_capture_start tunnel
out=$(xmh_marker "$SA" 8080 "$MARK") || xmt_fail "marker through the tunnel: $out"
[ "$out" = "sa $SA" ] || xmt_fail "marker: got '$out', want 'sa $SA'"

XMT_SUBTEST="10 MiB byte-exact"
out=$(xmh_in_pod pa "$XM_STREAM" echo --addr "$SA:9000" --bytes $((10 << 20)) --timeout-ms 20000 2>&1) ||
	xmt_fail "10 MiB through the tunnel: $out"
grep "first_bad=-1" <<<"$out" >/dev/null || xmt_fail "10 MiB: $out"
xmt_log "10 MiB: $out"
xmh_capture_stop tunnel
xmh_pcap_has tunnel "" "$MARK" && xmt_fail "the marker crossed node A's uplink in plaintext"
xmh_pcap_has tunnel "tcp dst port 8080 or tcp dst port 9000" && xmt_fail "plaintext TCP to sa's ports on node A's uplink"
# A TLS handshake record (content type 22) opening the client's payload to 15008, and data both ways.
xmh_pcap_has tunnel "tcp dst port 15008 and tcp[((tcp[12] & 0xf0) >> 2)] = 0x16" ||
	xmt_fail "no TLS handshake to port 15008 on node A's uplink"
xmh_pcap_has tunnel "tcp src port 15008 and tcp[((tcp[12] & 0xf0) >> 2)] = 0x17" ||
	xmt_fail "no TLS application data from port 15008"
n=$(xmh_captured)
[ "$n" = 2 ] || xmt_fail "agent a captured $n connections, want 2"

XMT_SUBTEST="200 concurrent connections ride 2 TLS connections"
hs0=$(xmx_metric nodea 'xmesh_tls_handshakes_total{side="client",result="success"}')
xmh_bg_pa hold "$XM_CLIENT" hold --addr "$SA:8080" -k 200 --duration-ms 20000 --ping-ms 1000
xmt_wait_for "$XMT_TMP/hold.log" '^holding 200' 20 "${XMT_BG[hold]}" || xmt_fail "200 connections not held: $(tail -n 5 "$XMT_TMP/hold.log")"
grep -E "^id sa 200$" "$XMT_TMP/hold.log" >/dev/null || xmt_fail "hold: $(cat "$XMT_TMP/hold.log")"
pool=$(xmx_metric nodea xmesh_hbone_client_connections)
hs=$(($(xmx_metric nodea 'xmesh_tls_handshakes_total{side="client",result="success"}') - hs0))
srv=$(xmx_status b | sed -n 's/.*serving on port 15008, \([0-9]*\) TLS connection(s) open.*/\1/p')
st=$(xmx_status a)
xmt_log "holding 200: pool $pool TLS connection(s), $hs new handshake(s), node B serves $srv; $(grep 'hbone: client' <<<"$st")"
[ "$pool" = 2 ] || xmt_fail "pool holds $pool TLS connections for 200 streams, want 2"
[ "$srv" = 2 ] || xmt_fail "node B serves $srv TLS connections, want 2"
[ "$hs" = 1 ] || xmt_fail "$hs new client handshakes for 200 streams next to the pooled connection, want 1"
grep "hbone: client: 2 TLS connection(s) in the pool" <<<"$st" >/dev/null || xmt_fail "status: $st"
json=$(timeout -k 5 20 "$XMESH" status --json --admin "$XMT_TMP/admin-a.sock")
python3 -c 'import json, sys; c = json.loads(sys.argv[1])["hbone"]["client"]; sys.exit(0 if c["connections"] == 2 and c["capturing"] else 1)' \
	"$json" || xmt_fail "status --json: $json"
xmt_bg_stop hold || true
grep "dead=0" "$XMT_TMP/hold.log" >/dev/null || xmt_fail "hold: $(tail -n 3 "$XMT_TMP/hold.log")"

XMT_SUBTEST="STRICT: external plaintext refused, the tunnelled pod reaches sa"
out=$(xmt_nsrun ext "$XM_CLIENT" refuse --addr "$SA:8080" --timeout-ms 2000 2>&1) ||
	xmt_fail "the external host's plaintext to the STRICT pod was not refused: $out"
out=$(xmh_marker "$SA" 8080 "$MARK") || xmt_fail "tunnelled pod to the STRICT pod: $out"

XMT_SUBTEST="a Service VIP with its backend on node B, getpeername the VIP"
n0=$(xmh_captured)
out=$(xmh_in_pod pa "$XM_CLIENT" spread --addr "$VIP:80" -n 5 2>&1) || xmt_fail "through the VIP: $out"
grep "total=5 ok=5 errors=0 getpeername_mismatch=0" <<<"$out" >/dev/null || xmt_fail "through the VIP: $out"
grep -E "^id sa 5$" <<<"$out" >/dev/null || xmt_fail "through the VIP: $out"
n=$(($(xmh_captured) - n0))
[ "$n" = 5 ] || xmt_fail "$n of 5 connections to the VIP went through the tunnel"
# Node A's kernel counted them for Istio's TCP metrics (reporter source), marked as carried in mutual TLS.
src=$(xmx_scrape nodea | grep '^istio_tcp_connections_opened_total{reporter="source"' | grep 'destination_service="web.default.svc.cluster.local"')
grep 'connection_security_policy="mutual_tls"' <<<"$src" | grep 'source_principal="spiffe://cluster.local/ns/default/sa/default"' |
	grep 'destination_principal="spiffe://cluster.local/ns/default/sa/web"' | grep ' 5$' >/dev/null ||
	xmt_fail "node A's source-side TCP metrics of the tunnelled VIP connections: $src"

XMT_SUBTEST="DISABLE: plaintext again, within 1 s"
start=$(date +%s%3N)
config DISABLE
ms=$(xmh_wait_captured no "$SA:8080" "$start")
xmt_log "STRICT -> DISABLE: plaintext after $ms ms"
[ "$ms" -le 1000 ] || xmt_fail "DISABLE took $ms ms to apply"
xmh_capture_start plain
out=$(xmh_marker "$SA" 8080 "$MARK") || xmt_fail "plaintext marker: $out"
xmh_capture_stop plain
xmh_pcap_has plain "tcp dst port 8080" "$MARK" || xmt_fail "under DISABLE the marker is not on the wire in plaintext"

XMT_SUBTEST="back to STRICT: tunnelled again, within 1 s"
start=$(date +%s%3N)
config STRICT
ms=$(xmh_wait_captured yes "$SA:8080" "$start")
xmt_log "DISABLE -> STRICT: tunnelled after $ms ms"
[ "$ms" -le 1000 ] || xmt_fail "STRICT took $ms ms to apply"

XMT_SUBTEST="refusals: no original destination, a client that is no pod of node A"
refused() { xmx_metric nodea "xmesh_hbone_outbound_refused_total{reason=\"$1\"}"; }
[ "$(refused no_origdst)" = 0 ] && [ "$(refused not_local_pod)" = 0 ] ||
	xmt_fail "refusals before any was provoked: $(xmx_scrape nodea | grep outbound_refused)"
# The node itself dials the outbound listener: nothing was captured, so there is no original destination.
out=$(xmt_nsrun nodea python3 -c '
import socket
try:
    s = socket.create_connection(("10.199.0.1", 15002), timeout=5)
    print("closed" if s.recv(16) == b"" else "data")
except ConnectionResetError:
    print("reset")
' 2>&1) || xmt_fail "node A to its outbound listener: $out"
[ "$out" = reset ] || xmt_fail "an uncaptured connection to the outbound listener: $out, want reset"
[ "$(refused no_origdst)" = 1 ] || xmt_fail "no_origdst: $(refused no_origdst), want 1"
# px is in the mesh cgroup but no Pod of the config: captured, then reset (no identity to present).
out=$(xmh_in_pod px "$XM_CLIENT" spread --addr "$SA:8080" -n 1 2>&1) && xmt_fail "px was carried: $out"
grep "errors=1" <<<"$out" >/dev/null || xmt_fail "px: $out"
[ "$(refused not_local_pod)" = 1 ] || xmt_fail "not_local_pod: $(refused not_local_pod), want 1"
st=$(xmx_status a)
grep "refused no_origdst=1 not_local_pod=1" <<<"$st" >/dev/null || xmt_fail "status: $(grep 'hbone: client' <<<"$st")"

XMT_SUBTEST="stop"
xmt_stop_pid "${XMX_AGENTS[0]}" || xmt_fail "agent a did not exit cleanly on SIGTERM"
XMX_AGENTS=("${XMX_AGENTS[1]}")
# Its programs stay attached; its listeners wait in a holder for the next agent (test_hbone_restart.sh), and
# when none comes within 10 s the capture goes off: no pod connection is sent to a listener that is gone.
for ((i = 0; i < 150; i++)); do
	[ "$(xmh_hbone_proxy_state)" = clear ] && break
	sleep 0.1
done
[ "$(xmh_hbone_proxy_state)" = clear ] ||
	xmt_fail "xm_hbone_proxy still set 15 s after agent a stopped: $(bpftool -j map dump pinned "$XMT_PIN-a/xm_hbone_proxy")"

xmt_pass "tunnel: marker never on node A's uplink, 10 MiB exact, 200 connections on 2 TLS connections, STRICT/DISABLE applied in time, VIP tunnelled"
