#!/usr/bin/env bash
# The HBONE tunnel's server side, wired (agent --hbone): TCP to <pod IP>:15008 arriving on node B's uplink is
# steered to the agent (policy routing, no iptables), which presents the pod's workload certificate, verifies
# the client against the trust bundle, admits a CONNECT to a pod of node B at the address dialled, and connects
# to the pod with the agent's mark. An independent HBONE client (tests/tools/hbone_peer.py: Python ssl + h2)
# on node A, holding a certificate from the same root, reaches a STRICT pod of node B (1 MiB byte-exact echo)
# while node A's plaintext connection to it is refused; without a client certificate, or with one from another
# root, it is refused; a CONNECT to another pod than the one dialled, or to a pod of another node, gets 400, to
# a port the pod does not listen on 503; plaintext on 15008 and 15008 of an address that is no local pod are closed.
#
# The two-node topology (xdp_lib.sh), the agent on node B:
#        a0 │            b0 │
#   nodea up0 10.199.0.1   nodeb up0 10.199.0.2
#   br0 10.200.1.1         br0 10.200.2.1 ── sa .11 (STRICT, serviceAccount web), pb .12 (PERMISSIVE)
#    └─ pa .11 (a pod of node A)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
# shellcheck source=tests/e2e/hbone_lib.sh
. "$(dirname "$0")/hbone_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"
for c in openssl curl; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
xmt_require_py_h2
PEER="$(cd "$(dirname "$0")/../tools" && pwd)/hbone_peer.py"

SA=10.200.2.11
PB=10.200.2.12
PA=10.200.1.11

xmx_two_nodes_pods
xmx_pod nodeb sa "$SA" 10.200.2.1
xmx_pod nodeb pb "$PB" 10.200.2.1
xmx_pod nodea pa "$PA" 10.200.1.1

{
	xmx_yaml_pod sa "$SA" nodeb web
	xmx_yaml_pod pb "$PB" nodeb
	xmx_yaml_pod pa "$PA" nodea
	xmh_yaml_sa_mode STRICT sa-strict
} | xmt_config_write hbone.yaml

xmh_agent_b

XMT_SUBTEST="steering in place"
rules=$(ip -n "${XMT_P}nodeb" rule show)
grep -q "15008:.*iif up0 ipproto tcp dport 15008 lookup 15008" <<<"$rules" || xmt_fail "no steering rule: $rules"
ip -n "${XMT_P}nodeb" route show table 15008 | grep "^local default dev lo" >/dev/null ||
	xmt_fail "no local route in table 15008: $(ip -n "${XMT_P}nodeb" route show table 15008)"

# The client's certificates: one from the agent's root (generated under --state-dir), one from another root.
t="$XMT_TMP/pki"
mkdir -p "$t"
ca="$XMT_TMP/agent-state/ca"
ossl() { openssl "$@" >>"$t/openssl.log" 2>&1 || xmt_fail "openssl $1 failed: $(tail -n 3 "$t/openssl.log")"; }
leaf() { # NAME CA_CERT CA_KEY: a SPIFFE client certificate for ns default, sa NAME
	printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
		"extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/$1" \
		>"$t/$1.ext"
	ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/$1.key" -subj "/O=test" -out "$t/$1.csr"
	ossl x509 -req -in "$t/$1.csr" -CA "$2" -CAkey "$3" -CAcreateserial -days 1 -extfile "$t/$1.ext" -out "$t/$1.pem"
}
leaf client "$ca/root-cert.pem" "$ca/ca-key.pem"
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/other-root.key" -subj "/CN=other root" \
	-days 1 -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$t/other-root.pem"
leaf intruder "$t/other-root.pem" "$t/other-root.key"

# hbone NAME EXTRA...: the Python HBONE client on node A to SA:15008; prints its output.
hbone() {
	local name=$1
	shift
	xmt_nsrun nodea "$PY" "$PEER" client --ca "$ca/root-cert.pem" --connect "$SA:15008" "$@" 2>&1
}

XMT_SUBTEST="tunnelled to a STRICT pod, 1 MiB byte-exact"
out=$(hbone ok --cert "$t/client.pem" --key "$t/client.key" --authority "$SA:8080" --bytes $((1 << 20)) \
	--expect-id spiffe://cluster.local/ns/default/sa/web --expect-prefix $'sa\n') ||
	xmt_fail "tunnelled connection to sa failed: $out"
grep -q "echoed $(((1 << 20) + 3)) bytes" <<<"$out" || xmt_fail "unexpected: $out"

XMT_SUBTEST="plaintext from node A to the STRICT pod is refused"
out=$(xmt_nsrun nodea "$XM_CLIENT" refuse --addr "$SA:8080" --timeout-ms 2000 2>&1) ||
	xmt_fail "nodea -> $SA:8080 in plaintext was not refused: $out"

XMT_SUBTEST="the PERMISSIVE pod, through its own IP"
out=$(xmt_nsrun nodea "$PY" "$PEER" client --ca "$ca/root-cert.pem" --connect "$PB:15008" --cert "$t/client.pem" \
	--key "$t/client.key" --authority "$PB:8080" --bytes 65536 --expect-id spiffe://cluster.local/ns/default/sa/default \
	--expect-prefix $'pb\n' 2>&1) || xmt_fail "tunnelled connection to pb failed: $out"

XMT_SUBTEST="no client certificate"
out=$(hbone nocert --authority "$SA:8080" --bytes 1024 --expect-refused) || xmt_fail "accepted without a certificate: $out"
XMT_SUBTEST="a client certificate from another root"
out=$(hbone other --cert "$t/intruder.pem" --key "$t/intruder.key" --authority "$SA:8080" --bytes 1024 \
	--expect-refused) || xmt_fail "accepted another root's certificate: $out"

XMT_SUBTEST="400: another pod than the one dialled, a pod of another node"
out=$(hbone mismatch --cert "$t/client.pem" --key "$t/client.key" --authority "$PB:8080" --bytes 1024 --expect-refused)
grep -q "status 400" <<<"$out" || xmt_fail "CONNECT to pb through sa's IP: $out"
out=$(hbone remote --cert "$t/client.pem" --key "$t/client.key" --authority "$PA:8080" --bytes 1024 --expect-refused)
grep -q "status 400" <<<"$out" || xmt_fail "CONNECT to node A's pod: $out"

XMT_SUBTEST="503: a port the pod does not listen on"
out=$(hbone closed --cert "$t/client.pem" --key "$t/client.key" --authority "$SA:9999" --bytes 1024 --expect-refused)
grep -q "status 503" <<<"$out" || xmt_fail "CONNECT to a closed port of sa: $out"

XMT_SUBTEST="plaintext on 15008"
out=$(xmt_nsrun nodea python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 15008), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
try:
    print("closed" if s.recv(4096) is not None else "")
except OSError as e:
    print("closed", e.errno)
' "$SA" 2>&1) || xmt_fail "plaintext on 15008: $out"
[[ "$out" == closed* ]] || xmt_fail "plaintext on 15008: $out"

XMT_SUBTEST="15008 of an address that is no pod of node B: closed before TLS"
out=$(xmt_nsrun nodea "$PY" "$PEER" client --ca "$ca/root-cert.pem" --connect 10.199.0.2:15008 --cert "$t/client.pem" \
	--key "$t/client.key" --authority "$SA:8080" --bytes 1024 --expect-refused 2>&1) || xmt_fail "node B's own IP: $out"
out=$(xmt_nsrun nodea "$PY" "$PEER" client --ca "$ca/root-cert.pem" --connect 10.200.2.99:15008 --cert "$t/client.pem" \
	--key "$t/client.key" --authority "10.200.2.99:8080" --bytes 1024 --expect-refused 2>&1) || xmt_fail "no pod: $out"
dropped=$(xmx_metric nodeb xmesh_hbone_connections_dropped_total)
[ "$dropped" = 2 ] || xmt_fail "xmesh_hbone_connections_dropped_total is $dropped, want 2"

XMT_SUBTEST="metrics"
ok=$(xmx_metric nodeb 'xmesh_tls_handshakes_total{side="server",result="success"}')
bad=$(xmx_metric nodeb 'xmesh_tls_handshakes_total{side="server",result="failure"}')
# sa, pb, the two 400s and the 503 succeeded; no certificate, another root's, the plaintext one and the two
# dropped ones failed.
[ "$ok" = 5 ] || xmt_fail "server handshakes succeeded: $ok, want 5"
[ "$bad" = 5 ] || xmt_fail "server handshakes failed: $bad, want 5"
tg=$(xmx_metric nodeb 'xmesh_hbone_streams_refused_total{reason="target_unreachable"}')
[ "$tg" = 1 ] || xmt_fail "streams refused target_unreachable: $tg, want 1"
nl=$(xmx_metric nodeb 'xmesh_hbone_streams_refused_total{reason="not_local"}')
[ "$nl" = 2 ] || xmt_fail "streams refused not_local: $nl, want 2"
xmt_log "handshakes: $ok succeeded, $bad failed"

XMT_SUBTEST="status and stop"
xmx_status b | grep "hbone: server serving on port 15008" >/dev/null || xmt_fail "status: $(xmx_status b | grep hbone)"
xmt_stop_pid "${XMX_AGENTS[0]}" || xmt_fail "the agent did not exit cleanly on SIGTERM"
XMX_AGENTS=()
# The steering stays while the holder keeps the 15008 listener for a next agent (test_hbone_restart.sh); nobody
# comes back within 10 s, and the holder removes it.
ip -n "${XMT_P}nodeb" rule show | grep "lookup 15008" >/dev/null || xmt_fail "the steering rule went with the agent although its listener is held"
for ((i = 0; i < 150; i++)); do
	ip -n "${XMT_P}nodeb" rule show | grep "lookup 15008" >/dev/null || break
	sleep 0.1
done
! ip -n "${XMT_P}nodeb" rule show | grep "lookup 15008" >/dev/null || xmt_fail "the steering rule outlived the agent's holder"
[ -z "$(ip -n "${XMT_P}nodeb" route show table 15008)" ] || xmt_fail "table 15008 outlived the agent's holder: $(ip -n "${XMT_P}nodeb" route show table 15008)"
[ -z "$(ip -n "${XMT_P}nodeb" route show table 15008)" ] || xmt_fail "table 15008 outlived the agent"

xmt_pass "HBONE from node A reached node B's STRICT pod through 15008 (1 MiB), plaintext refused, bad certificates refused, 400 for foreign targets, 503 for a closed port"
