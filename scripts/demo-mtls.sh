#!/usr/bin/env bash
# `make demo`, the mTLS scene (issue 15): two nodes on one L2 segment, an agent on each with --hbone, a client
# pod on node A and a server pod on node B under PeerAuthentication STRICT. Shows a cross-node call through
# the Service VIP carried in mutual TLS (HBONE: HTTP/2 CONNECT to the pod's IP on port 15008), what tcpdump
# sees on node A's uplink (TLS, never the marker the client wrote), the SPIFFE identities on both ends, node
# B's Istio TCP metrics (connection_security_policy="mutual_tls" and the principals), and a plaintext attempt
# from an external host refused by the kernel. Removes everything before it exits (per-PID names, as the tests).
#
#   scripts/demo-mtls.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$root/tests/e2e/xdp_lib.sh"
# The demo is not a test: a machine that cannot run it is an error, with the reason.
xmt_skip() {
	echo "demo: cannot run: $*" >&2
	exit 1
}
xmt_log() { :; } # the narration below says what matters
xmx_init "${1:-build}"
command -v tcpdump >/dev/null || xmt_skip "tcpdump missing (scripts/install-deps.sh installs it)"
say() { printf '%s\n' "$*"; }

SA=10.200.2.11 PA=10.200.1.11 VIP=10.96.0.60
MARK="reviews-secret-$RANDOM$RANDOM"
TD=cluster.local

say ""
say "== mTLS between nodes: node A (10.199.0.1) runs productpage, node B (10.199.0.2) runs reviews;"
say "   Service reviews $VIP:80 -> reviews:8080 on node B, PeerAuthentication STRICT on reviews"
xmx_two_nodes_pods
ip -n "${XMT_P}ext" route add 10.200.2.0/24 via 10.199.0.2
xmx_pod nodeb reviews "$SA" 10.200.2.1
xmx_pod nodea productpage "$PA" 10.200.1.1
{
	xmx_yaml_node nodea 10.199.0.1
	xmx_yaml_node nodeb 10.199.0.2
	printf '%s\n' "---" "apiVersion: v1" "kind: Pod" "metadata:" "  name: reviews" "  namespace: default" \
		"  labels:" "    app: reviews" "spec:" "  nodeName: nodeb" "  serviceAccountName: bookinfo-reviews" \
		"status:" "  podIP: $SA"
	printf '%s\n' "---" "apiVersion: v1" "kind: Pod" "metadata:" "  name: productpage" "  namespace: default" \
		"  labels:" "    app: productpage" "spec:" "  nodeName: nodea" "  serviceAccountName: bookinfo-productpage" \
		"status:" "  podIP: $PA"
	printf '%s\n' "---" "apiVersion: v1" "kind: Service" "metadata:" "  name: reviews" "  namespace: default" \
		"spec:" "  clusterIP: $VIP" "  clusterIPs:" "  - $VIP" "  ports:" "  - name: tcp" "    port: 80" \
		"    protocol: TCP" "    targetPort: 8080"
	xmx_yaml_slice reviews nodeb "$SA"
	printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: PeerAuthentication" "metadata:" \
		"  name: reviews-strict" "  namespace: default" "spec:" "  selector:" "    matchLabels:" "      app: reviews" \
		"  mtls:" "    mode: STRICT"
} | xmt_config_write mesh.yaml
# Agent A generates the root under the shared state directory; agent B loads the same one (docs/mtls.md).
xmx_agent a nodea nodea up0 --hbone
xmt_wait_for "$XMT_TMP/agent-a.log" 'hbone: capturing' 5 || xmt_fail "agent a does not capture: $(tail -n 3 "$XMT_TMP/agent-a.log")"
xmx_agent b nodeb nodeb up0 --hbone
xmt_wait_for "$XMT_TMP/agent-b.log" 'hbone: serving HBONE' 5 || xmt_fail "agent b not serving: $(tail -n 3 "$XMT_TMP/agent-b.log")"
say "   agents: node A and node B, both --hbone; one root CA shared through the state directory"

in_pod() { # POD CMD...: CMD in POD's namespace, inside agent a's mesh cgroup
	XMT_POD_CG="$XMT_CG/a" xmt_in_pod "$@"
}
scrape() { xmt_nsrun "$1" curl -sS --max-time 10 http://127.0.0.1:15090/metrics; }

say ""
say "== productpage connects to $VIP:80 and writes \"$MARK\"; tcpdump listens on node A's uplink"
xmt_bg tcpdump nodea plain tcpdump -i up0 --immediate-mode -U -n -s 0 -w "$XMT_TMP/uplink.pcap" tcp
xmt_wait_for "$(xmt_bg_log tcpdump)" 'listening on' 5 || xmt_fail "tcpdump did not start"
out=$(in_pod productpage python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=5)
f = s.makefile("rb")
ident = f.readline().strip().decode()
m = sys.argv[2].encode()
s.sendall(m)
ok = f.read(len(m)) == m
print(ident, "%s:%d" % s.getpeername(), "echoed" if ok else "DIFFERS")
' "$VIP" "$MARK" 2>&1) || xmt_fail "the call failed: $out"
read -r who peer echoed <<<"$out"
say "   answered by pod '$who'; getpeername() in productpage says $peer; the reply came back $echoed"
sleep 0.3
xmt_bg_stop tcpdump >/dev/null 2>&1 || true
pkts=$(tcpdump -n -r "$XMT_TMP/uplink.pcap" 2>/dev/null | wc -l)
tls=$(tcpdump -n -r "$XMT_TMP/uplink.pcap" "tcp port 15008" 2>/dev/null | wc -l)
hello=$(tcpdump -n -r "$XMT_TMP/uplink.pcap" "tcp dst port 15008 and tcp[((tcp[12] & 0xf0) >> 2)] = 0x16" 2>/dev/null | wc -l)
seen=$(tcpdump -n -r "$XMT_TMP/uplink.pcap" -A 2>/dev/null | grep -cF -- "$MARK" || true)
say "   tcpdump on node A's uplink: $pkts packets, $tls of them to or from $SA:15008 (TLS 1.3, $hello handshake"
say "   record(s) to 15008), none to port 8080; the marker appears $seen time(s) on the wire"
rc=0
[ "$who" = reviews ] && [ "$echoed" = echoed ] && [ "$seen" = 0 ] && [ "$tls" -gt 0 ] || rc=1

say ""
say "== who is who: the SPIFFE identities each agent minted for its own pods (xmesh certs)"
for n in a b; do
	timeout -k 5 20 "$XMESH" certs --admin "$XMT_TMP/admin-$n.sock" 2>&1 | grep -E "spiffe://|root" | head -n 3 |
		sed "s/^/   node ${n^^}: /"
done
m=$(scrape nodeb | grep -E '^istio_tcp_connections_opened_total\{reporter="destination"' | grep 'mutual_tls' | head -n 1)
say "   node B counted the stream (reporter=\"destination\"):"
sed -E 's/,(source_app|destination_service_name|destination_service_namespace|source_workload_namespace|destination_workload_namespace|request_protocol|response_flags)="[^"]*"//g; s/^/     /' <<<"$m"
grep "source_principal=\"spiffe://$TD/ns/default/sa/bookinfo-productpage\"" <<<"$m" >/dev/null &&
	grep "destination_principal=\"spiffe://$TD/ns/default/sa/bookinfo-reviews\"" <<<"$m" >/dev/null || rc=1
hs=$(scrape nodea | awk '$1 == "xmesh_tls_handshakes_total{side=\"client\",result=\"success\"}" { print $2 }')
say "   node A: ${hs:-0} client TLS handshake(s); further connections ride the pooled TLS connection"

say ""
say "== the external host (10.199.0.100, no identity) connects to reviews $SA:8080 in plaintext"
if out=$(xmt_nsrun ext "$XM_CLIENT" refuse --addr "$SA:8080" --timeout-ms 2000 2>&1); then
	rej=$(scrape nodeb | awk -F' ' '/^xmesh_plaintext_rejected_total/ { n += $2 } END { print n + 0 }')
	say "   refused: node B's kernel (TC on reviews' veth) answered the SYN with a reset; xmesh_plaintext_rejected_total=$rej"
else
	say "   NOT refused: $out"
	rc=1
fi
out=$(in_pod productpage "$XM_CLIENT" spread --addr "$VIP:80" -n 20 2>&1) || true
say "   while productpage, through the tunnel: $(grep -o 'ok=[0-9]* errors=[0-9]*' <<<"$out")"
grep "ok=20 errors=0" <<<"$out" >/dev/null || rc=1

[ "$rc" = 0 ] || say "== mTLS scene FAILED (agent logs: $XMT_TMP/agent-a.log, agent-b.log)"
[ "$rc" = 0 ] && XMT_KEEP_LOGS=0
exit "$rc"
