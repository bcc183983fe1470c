#!/usr/bin/env bash
# Certificate rotation under the HBONE server (issue #15: "a connection open across two renewals keeps working,
# and new connections present the new certificate"). Node B's agent runs --hbone with --cert-ttl 10s, so the
# pod's workload certificate is renewed every ~5 s (half-life). The independent HBONE client
# (tests/tools/hbone_peer.py) on node A keeps one CONNECT stream to node B's STRICT pod open for 13 s and echoes
# 4 KiB byte-exact every second across two renewals (and past the expiry of the certificate its TLS connection
# began with); meanwhile a new connection after each renewal sees the serial that `xmesh certs --json` shows
# then, a new one each time. TLS session resumption with the agent: a second connection of Python's ssl
# offering the first one's ticket resumes, and so does each of a chain of four after the first (each offering
# the ticket the previous connection brought: the agent sends a new one on a resumed connection); one offering a ticket made before a renewal does not (the server
# accepts a ticket only under the certificate it presented then) and sees the new certificate.
#
#        a0 │            b0 │
#   nodea up0 10.199.0.1   nodeb up0 10.199.0.2
#   br0 10.200.1.1         br0 10.200.2.1 ── sa .11 (STRICT, serviceAccount web)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
# shellcheck source=tests/e2e/hbone_lib.sh
. "$(dirname "$0")/hbone_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"
command -v openssl >/dev/null || xmt_skip "command openssl not installed"
xmt_require_py_h2
PEER="$(cd "$(dirname "$0")/../tools" && pwd)/hbone_peer.py"
SA=10.200.2.11
WEB=spiffe://cluster.local/ns/default/sa/web

xmx_two_nodes
ip -n "${XMT_P}nodea" route add 10.200.2.0/24 via 10.199.0.2
xmx_pod nodeb sa "$SA" 10.200.2.1
{
	xmx_yaml_pod sa "$SA" nodeb web
	xmh_yaml_sa_mode STRICT sa-strict
} | xmt_config_write rotation.yaml

xmh_agent_b --cert-ttl 10s

# The client's certificate, from the agent's root (generated under --state-dir) by the openssl CLI.
t="$XMT_TMP/pki"
mkdir -p "$t"
ca="$XMT_TMP/agent-state/ca"
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
	"extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/client" \
	>"$t/client.ext"
{
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/client.key" -subj "/O=test" \
		-out "$t/client.csr" &&
		openssl x509 -req -in "$t/client.csr" -CA "$ca/root-cert.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial -days 1 \
			-extfile "$t/client.ext" -out "$t/client.pem"
} >"$t/openssl.log" 2>&1 || xmt_fail "openssl: $(tail -n 3 "$t/openssl.log")"

# serial: the pod identity's current serial from `xmesh certs --json` (upper-case hex, no leading zeros)
serial() {
	xmt_xmesh certs --json --admin "$XMT_TMP/admin-b.sock" >"$t/certs.json" || xmt_fail "xmesh certs failed"
	"$PY" -c "import json,sys; c=json.load(open(sys.argv[1])); print([i['serial'] for i in c['identities'] if i['identity'] == sys.argv[2]][0].upper().lstrip('0'))" \
		"$t/certs.json" "$WEB"
}
# seen: the serial of the certificate node B's server presents to a new HBONE connection (one short echo)
seen() {
	local out
	out=$(xmt_nsrun nodea "$PY" "$PEER" client --ca "$ca/root-cert.pem" --connect "$SA:15008" --cert "$t/client.pem" \
		--key "$t/client.key" --authority "$SA:8080" --bytes 1024 --expect-id "$WEB" --expect-prefix $'sa\n' \
		--print-cert 2>&1) || xmt_fail "a new connection failed: $out"
	sed -n 's/^server-cert serial=\([0-9A-Fa-f]*\) .*/\1/p' <<<"$out" | tr a-f A-F | sed 's/^0*//'
}
# next_serial OLD: waits (at most 8 s) for `xmesh certs` to show another serial than OLD, prints it
next_serial() {
	local s deadline=$(($(date +%s) + 8))
	while s=$(serial) && [ "$s" = "$1" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || xmt_fail "no renewal within 8 s (serial $1)"
		sleep 0.2
	done
	echo "$s"
}

XMT_SUBTEST="a connection held across two renewals"
s0=$(serial)
[ -n "$s0" ] || xmt_fail "no certificate for $WEB: $(cat "$t/certs.json")"
long="$t/long.out"
xmt_nsrun nodea "$PY" "$PEER" client --ca "$ca/root-cert.pem" --connect "$SA:15008" --cert "$t/client.pem" \
	--key "$t/client.key" --authority "$SA:8080" --expect-id "$WEB" --expect-prefix $'sa\n' --print-cert \
	--rounds-seconds 13 --round-interval 1 --round-bytes 4096 >"$long" 2>&1 &
long_pid=$!
xmt_wait_for "$long" 'round 1 byte-exact' 5 || xmt_fail "the held connection did not start: $(cat "$long")"
first=$(sed -n 's/^server-cert serial=\([0-9A-Fa-f]*\) .*/\1/p' "$long" | tr a-f A-F | sed 's/^0*//')
first_na=$(sed -n 's/^server-cert serial=[0-9A-Fa-f]* notAfter=//p' "$long")

XMT_SUBTEST="new connections present the current certificate"
seen0=$(seen)
[ "$seen0" = "$s0" ] || [ "$seen0" = "$(serial)" ] || xmt_fail "a new connection saw serial $seen0, xmesh certs shows $s0"
s1=$(next_serial "$s0")
seen1=$(seen)
[ "$seen1" = "$s1" ] || xmt_fail "after the first renewal a new connection saw $seen1, want $s1 (before: $s0)"

XMT_SUBTEST="TLS session resumption with the agent (Python's ssl as the client)"
again() { # EXTRA...: two connections, the second offering the first one's session ticket
	xmt_nsrun nodea "$PY" "$PEER" client --ca "$ca/root-cert.pem" --connect "$SA:15008" --cert "$t/client.pem" \
		--key "$t/client.key" --authority "$SA:8080" --bytes 1024 --expect-id "$WEB" --expect-prefix $'sa\n' \
		--print-cert --again "$@" 2>&1
}
out=$(again) || xmt_fail "two connections: $out"
[ "$(grep -c '^echoed 1027 bytes' <<<"$out")" = 2 ] || xmt_fail "two connections: $out"
[ "$(grep '^resumed=' <<<"$out" | tr '\n' ' ')" = "resumed=False resumed=True " ] ||
	xmt_fail "the second connection did not resume: $out"
# a chain: each connection offers the ticket the previous one brought (a resumed one brings a new one), so
# all resume after the first; one that follows a renewal (a new server serial) may not
chain=$(again --chain 4) || xmt_fail "a chain of four connections: $chain"
declined=$(awk '/^resumed=/ { r = $1 } /^server-cert serial=/ { n++; if (n > 1 && r != "resumed=True") {
	if ($2 == prev) bad = 1; else d++ } prev = $2 } END { if (n != 4 || bad) print "bad"; else print d + 0 }' <<<"$chain")
[ "$declined" != bad ] || xmt_fail "a chain of four connections did not resume after the first: $chain"
# and each brought a ticket of its own (a client that uses a ticket once needs that to go on resuming)
[ "$(grep '^session-id=' <<<"$chain" | sort -u | wc -l)" = 4 ] ||
	xmt_fail "a resumed connection brought no new ticket: $chain"
# a ticket made under the certificate the server presents no more is refused: a full handshake, the new one
rm -f "$t/renewed"
again --again-wait-file "$t/renewed" >"$t/again.out" &
again_pid=$!
xmt_wait_for "$t/again.out" '^echoed' 5 || xmt_fail "first connection: $(cat "$t/again.out")"
s2=$(next_serial "$s1")
touch "$t/renewed"
r=0
wait "$again_pid" || r=$?
[ "$r" = 0 ] || xmt_fail "the connection after the renewal failed: $(cat "$t/again.out")"
[ "$(grep '^resumed=' "$t/again.out" | tr '\n' ' ')" = "resumed=False resumed=False " ] ||
	xmt_fail "a ticket of the renewed certificate resumed: $(cat "$t/again.out")"
after=$(sed -n 's/^server-cert serial=\([0-9A-Fa-f]*\) .*/\1/p' "$t/again.out" | tail -n 1 | tr a-f A-F | sed 's/^0*//')
[ "$after" = "$s2" ] || xmt_fail "after the renewal the ticket's connection saw $after, want $s2"
resumed=$(xmx_metric nodeb 'xmesh_tls_resumptions_total{side="server"}')
rejected=$(xmx_metric nodeb 'xmesh_tls_tickets_rejected_total{side="server"}')
[ "$resumed" = $((4 - declined)) ] ||
	xmt_fail "xmesh_tls_resumptions_total{side=\"server\"} is $resumed, want $((4 - declined))"
[ "$rejected" = $((1 + declined)) ] ||
	xmt_fail "xmesh_tls_tickets_rejected_total{side=\"server\"} is $rejected, want $((1 + declined))"

XMT_SUBTEST="new connections present the current certificate (second renewal)"
seen2=$(seen)
[ "$seen2" = "$s2" ] || xmt_fail "after the second renewal a new connection saw $seen2, want $s2 (before: $s1)"
xmt_log "serials: $s0 -> $s1 -> $s2; the held connection began with $first (notAfter $first_na)"

XMT_SUBTEST="the held connection echoed byte-exact in every round"
r=0
wait "$long_pid" || r=$?
[ "$r" = 0 ] || xmt_fail "the held connection failed (exit $r): $(tail -n 5 "$long")"
grep -E '^rounds [0-9]+ byte-exact over' "$long" >/dev/null || xmt_fail "no final line: $(tail -n 3 "$long")"
rounds=$(sed -n 's/^rounds \([0-9]*\) byte-exact over.*/\1/p' "$long")
[ "$rounds" -ge 12 ] || xmt_fail "only $rounds rounds: $(cat "$long")"
[ "$first" = "$s0" ] || [ "$first" = "$s1" ] || xmt_fail "the held connection began with $first, not $s0 or $s1"
[ "$first" != "$s2" ] || xmt_fail "the held connection did not begin before the second renewal"
grep 'renewal: .* renewed' "$XMT_AGENT_LOG" >/dev/null || xmt_fail "the agent did not log renewals"
xmt_log "the held connection outlived its certificate (notAfter $first_na): $(tail -n 1 "$long")"

xmt_pass "one HBONE connection echoed $rounds rounds byte-exact across two renewals ($s0 -> $s1 -> $s2); new connections saw each new serial"
