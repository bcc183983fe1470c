#!/usr/bin/env bash
# Reloading the plug-in CA without a restart (issue #15), as istiod does when its cacerts secret changes. Both
# agents --hbone with one --ca-dir in Kubernetes' secret layout (each file a symlink through ..data to a
# timestamped directory), made by the openssl CLI: root1 with intermediate int1.
#   - a tunnelled connection from pod pa (node A) to sa (node B) is opened first and held to the end (pings);
#   - a half-written set (int2's certificate, int1's key still there) is refused: an error naming the file
#     and the reason, xmesh_ca_reload_total{result="error"} 1, the certificates unchanged;
#   - with int2's key written too (a new intermediate of the same root, the same subject name) both agents
#     switch: `xmesh certs --json` shows int2 as the CA and as every identity's issuer, with new serials,
#     within 3 s; a new HBONE connection (the independent client) sees sa's new certificate;
#   - root rotation as Istio documents it, by an atomic ..data swap: int3 of a new root2 signs, root-cert.pem
#     holds root1 and root2: both agents switch, trust both roots; new connections from the independent client
#     and new tunnelled connections through a new agent-to-agent handshake (100 more streams than the pool's
#     first connection carries) work; no peer check failed on either node;
#   - root1 removed from root-cert.pem: the independent client's certificate of int1 is refused (unknown_ca);
#   - the connection held from the start echoed every ping; no key in any log or output.
#
#   nodea up0 10.199.0.1 ── pa .11 (10.200.1.0/24)     nodeb up0 10.199.0.2 ── sa .11 (serviceAccount web, STRICT)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
# shellcheck source=tests/e2e/hbone_lib.sh
. "$(dirname "$0")/hbone_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls" "program_type cgroup_sock_addr" "program_type sock_ops"
command -v openssl >/dev/null || xmt_skip "command openssl not installed"
command -v curl >/dev/null || xmt_skip "command curl not installed"
xmt_require_py_h2
PEER="$(cd "$(dirname "$0")/../tools" && pwd)/hbone_peer.py"
SA=10.200.2.11
PA=10.200.1.11
WEB=spiffe://cluster.local/ns/default/sa/web
DEF=spiffe://cluster.local/ns/default/sa/default

# ---- the PKI, by the openssl CLI ----
t="$XMT_TMP/pki"
ca="$XMT_TMP/cacerts" # what the agents get as --ca-dir
mkdir -p "$t" "$ca"
printf '%s\n' "basicConstraints=critical,CA:TRUE" "keyUsage=critical,keyCertSign,cRLSign" \
	"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid:always" >"$t/ca.ext"
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
	"extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/client" \
	>"$t/client.ext"
ossl() { openssl "$@" >>"$t/openssl.log" 2>&1 || xmt_fail "openssl $1: $(tail -n 3 "$t/openssl.log")"; }
root() { # NAME
	ossl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/$1.key" -days 30 \
		-subj "/O=xmesh-test/CN=$1" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" -out "$t/$1.pem"
}
inter() { # NAME ROOT: every intermediate has the same subject, as a re-issued one does
	ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/$1.key" \
		-subj "/O=xmesh-test/CN=intermediate" -out "$t/$1.csr"
	ossl x509 -req -in "$t/$1.csr" -CA "$t/$2.pem" -CAkey "$t/$2.key" -CAcreateserial -days 20 \
		-extfile "$t/ca.ext" -out "$t/$1.pem"
}
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/^.*=//'; }
root root1
inter int1 root1
inter int2 root1
root root2
inter int3 root2
# the independent client's certificate, from int1 (sent with int1)
ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/client.key" -subj "/O=test" -out "$t/client.csr"
ossl x509 -req -in "$t/client.csr" -CA "$t/int1.pem" -CAkey "$t/int1.key" -CAcreateserial -days 1 \
	-extfile "$t/client.ext" -out "$t/client.crt"
cat "$t/client.crt" "$t/int1.pem" >"$t/client.pem"
cat "$t/root1.pem" "$t/root2.pem" >"$t/roots12.pem"

# version DIR INT ROOTS...: the plug-in files of intermediate INT under $ca/DIR (cert-chain.pem as Istio's docs
# write it: the intermediate, then its root).
version() {
	local d="$ca/$1" int=$2 r
	shift 2
	mkdir -p "$d"
	cp "$t/$int.pem" "$d/ca-cert.pem"
	install -m 0600 "$t/$int.key" "$d/ca-key.pem"
	for r in "$@"; do cat "$t/$r.pem"; done >"$d/root-cert.pem"
	cat "$t/$int.pem" "$t/$(sed -n 's/.*CN *= *\(root[0-9]*\).*/\1/p' <(openssl x509 -in "$t/$int.pem" -noout -issuer)).pem" >"$d/cert-chain.pem"
}
version ..v1 int1 root1
ln -s ..v1 "$ca/..data"
for f in ca-cert.pem ca-key.pem root-cert.pem cert-chain.pem; do ln -s "..data/$f" "$ca/$f"; done
FP1=$(fp "$t/int1.pem")
FP2=$(fp "$t/int2.pem")
FP3=$(fp "$t/int3.pem")

# ---- the nodes ----
xmx_two_nodes_pods
xmx_pod nodeb sa "$SA" 10.200.2.1
xmx_pod nodea pa "$PA" 10.200.1.1
{
	xmh_yaml_nodes_pods "$SA" "$PA"
	xmh_yaml_sa_mode STRICT sa-strict
} | xmt_config_write mesh.yaml
xmh_agent_a 'hbone: capturing' --ca-dir "$ca"
xmh_agent_b --ca-dir "$ca"

# certs NODE EXPR: EXPR of c = `xmesh certs --json` of agent NODE (a|b), ids = {identity: entry}
certs() {
	xmt_xmesh certs --json --admin "$XMT_TMP/admin-$1.sock" >"$t/certs-$1.json" || xmt_fail "xmesh certs ($1) failed"
	"$PY" -c "import json,sys; c=json.load(open(sys.argv[1])); ids={i['identity']: i for i in c['identities']}; print($2)" \
		"$t/certs-$1.json"
}
# state NODE ID: "CA-FP ISSUER-FP SERIAL" of identity ID on agent NODE
state() { certs "$1" "c['ca_sha256'], ids['$2']['issuer_sha256'], ids['$2']['serial']" | tr -d "(),'"; }
# switched NODE ID FP: waits (at most 5 s) until agent NODE's CA and ID's issuer are FP; prints the ms taken
switched() {
	local s now
	while s=$(state "$1" "$2") && [ "$(cut -d' ' -f1-2 <<<"$s")" != "$3 $3" ]; do
		now=$(date +%s%3N)
		[ $((now - t0)) -lt 5000 ] || xmt_fail "agent $1 did not switch $2 to the CA $3 within 5 s: $s"
		sleep 0.1
	done
	echo $(($(date +%s%3N) - t0))
}
# peer ROOTS: a new HBONE connection of the independent client from node A to sa; prints the serial it saw
peer() {
	local out
	out=$(xmt_nsrun nodea "$PY" "$PEER" client --ca "$1" --connect "$SA:15008" --cert "$t/client.pem" \
		--key "$t/client.key" --authority "$SA:8080" --bytes 1024 --expect-id "$WEB" --expect-prefix $'sa\n' \
		--print-cert 2>&1) || xmt_fail "a new HBONE connection failed: $out"
	sed -n 's/^server-cert serial=\([0-9A-Fa-f]*\) .*/\1/p' <<<"$out" | tr a-f A-F | sed 's/^0*//'
}
norm() { tr a-f A-F <<<"$1" | sed 's/^0*//'; }

XMT_SUBTEST="start: int1 signs"
for n in a b; do
	id=$DEF
	[ $n = b ] && id=$WEB
	read -r cafp issuer _ <<<"$(state $n $id)"
	[ "$cafp $issuer" = "$FP1 $FP1" ] || xmt_fail "agent $n: CA $cafp, issuer $issuer; want int1 $FP1"
done
read -r _ _ sb0 <<<"$(state b "$WEB")"
read -r _ _ sa0 <<<"$(state a "$DEF")"
[ "$(peer "$t/root1.pem")" = "$(norm "$sb0")" ] || xmt_fail "a new connection did not see serial $sb0"

XMT_SUBTEST="a tunnelled connection held across both rotations"
# shellcheck disable=SC2016
timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/${XMT_P}pa" -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
	"$XMT_CG/a" "$XM_CLIENT" hold --addr "$SA:8080" -k 1 --duration-ms 25000 --ping-ms 500 >"$t/held.log" 2>&1 &
XMT_BG[held]=$!
XMT_PIDS+=("$!")
xmt_wait_for "$t/held.log" '^holding 1' 10 "${XMT_BG[held]}" || xmt_fail "not held: $(cat "$t/held.log")"
grep -E "^id sa 1$" "$t/held.log" >/dev/null || xmt_fail "held: $(cat "$t/held.log")"
n=$(xmx_metric nodea 'xmesh_hbone_outbound_connections_total{source="capture"}')
[ "$n" -ge 1 ] || xmt_fail "the held connection was not tunnelled (captured $n)"

XMT_SUBTEST="a half-written set is refused, nothing changes"
cp "$t/int2.pem" "$ca/..v1/.tmp" && mv "$ca/..v1/.tmp" "$ca/..v1/ca-cert.pem" # the key not yet
for n in a b; do
	xmt_wait_for "$XMT_TMP/agent-$n.log" 'CA files in .* are not used' 5 ||
		xmt_fail "agent $n logged no refusal: $(tail -n 5 "$XMT_TMP/agent-$n.log")"
done
grep 'CA files in .* are not used' "$XMT_TMP/agent-b.log" | grep -F 'ca-key.pem is not the key of ca-cert.pem' >/dev/null ||
	xmt_fail "the refusal does not say which file and why: $(grep 'CA files' "$XMT_TMP/agent-b.log")"
for n in nodea nodeb; do
	[ "$(xmx_metric $n 'xmesh_ca_reload_total{result="error"}')" = 1 ] || xmt_fail "$n: $(xmx_scrape $n | grep ca_reload)"
	[ "$(xmx_metric $n 'xmesh_ca_reload_total{result="ok"}')" = 0 ] || xmt_fail "$n: $(xmx_scrape $n | grep ca_reload)"
done
[ "$(state b "$WEB")" = "$FP1 $FP1 $sb0" ] || xmt_fail "agent b changed on a refused set: $(state b "$WEB")"
[ "$(peer "$t/root1.pem")" = "$(norm "$sb0")" ] || xmt_fail "after a refused set a new connection saw another serial"

XMT_SUBTEST="a new intermediate of the same root (its key written): both agents switch"
t0=$(date +%s%3N)
install -m 0600 "$t/int2.key" "$ca/..v1/.tmp" && mv "$ca/..v1/.tmp" "$ca/..v1/ca-key.pem"
cat "$t/int2.pem" "$t/root1.pem" >"$ca/..v1/.tmp" && mv "$ca/..v1/.tmp" "$ca/..v1/cert-chain.pem"
msb=$(switched b "$WEB" "$FP2")
msa=$(switched a "$DEF" "$FP2")
xmt_log "int1 -> int2: agent b switched after $msb ms, agent a after $msa ms (from the key's write)"
read -r _ _ sb1 <<<"$(state b "$WEB")"
read -r _ _ sa1 <<<"$(state a "$DEF")"
if [ "$sb1" = "$sb0" ] || [ "$sa1" = "$sa0" ]; then xmt_fail "serials did not change: $sb0 -> $sb1, $sa0 -> $sa1"; fi
[ "$(peer "$t/root1.pem")" = "$(norm "$sb1")" ] || xmt_fail "a new connection did not see the new serial $sb1"
grep 'CA reloaded from .*: a new signing certificate' "$XMT_TMP/agent-b.log" >/dev/null || xmt_fail "no reload logged"
grep 'CA reloaded: .* renewed (1 of another issuer)' "$XMT_TMP/agent-b.log" >/dev/null ||
	xmt_fail "the reissue is not logged: $(grep 'identity:' "$XMT_TMP/agent-b.log" | tail -n 3)"
out=$(xmh_in_pod pa "$XM_CLIENT" spread --addr "$SA:8080" -n 3 2>&1) || xmt_fail "new tunnelled connections: $out"
grep "total=3 ok=3 errors=0" <<<"$out" >/dev/null || xmt_fail "new tunnelled connections: $out"

XMT_SUBTEST="root rotation (root1 and root2 trusted, int3 of root2 signs) by an atomic ..data swap"
version ..v2 int3 root1 root2
hs0=$(xmx_metric nodea 'xmesh_tls_handshakes_total{side="client",result="success"}')
t0=$(date +%s%3N)
ln -s ..v2 "$ca/..data_tmp" && mv -T "$ca/..data_tmp" "$ca/..data"
msb=$(switched b "$WEB" "$FP3")
msa=$(switched a "$DEF" "$FP3")
xmt_log "root1/int2 -> root2/int3: agent b switched after $msb ms, agent a after $msa ms"
[ "$(certs b "len(c['roots'])")" = 2 ] || xmt_fail "agent b trusts $(certs b "len(c['roots'])") root(s), want 2"
read -r _ _ sb2 <<<"$(state b "$WEB")"
[ "$(peer "$t/roots12.pem")" = "$(norm "$sb2")" ] || xmt_fail "a new connection did not see the new serial $sb2"
# agent a must have taken root2 too before a new TLS connection to b verifies b's int3 certificate
xmt_wait_for "$XMT_TMP/agent-a.log" 'reloaded trust bundle \(2 root' 5 || xmt_fail "agent a's tunnel kept the old bundle"
xmt_wait_for "$XMT_TMP/agent-b.log" 'reloaded trust bundle \(2 root' 5 || xmt_fail "agent b's tunnel kept the old bundle"
# 100 more streams than the pooled connection (which carries the held one) takes: a new handshake, new certificates
# shellcheck disable=SC2016
timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/${XMT_P}pa" -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
	"$XMT_CG/a" "$XM_CLIENT" hold --addr "$SA:8080" -k 100 --duration-ms 2000 --ping-ms 500 >"$t/hold100.log" 2>&1 ||
	xmt_fail "100 new tunnelled connections: $(tail -n 3 "$t/hold100.log")"
if ! grep -E "^id sa 100$" "$t/hold100.log" >/dev/null || ! grep "dead=0" "$t/hold100.log" >/dev/null; then
	xmt_fail "100 new tunnelled connections: $(cat "$t/hold100.log")"
fi
hs=$(($(xmx_metric nodea 'xmesh_tls_handshakes_total{side="client",result="success"}') - hs0))
[ "$hs" -ge 1 ] || xmt_fail "no new agent-to-agent handshake after the root rotation"
xmt_log "after the root rotation: $hs new agent-to-agent handshake(s)"
for n in nodea nodeb; do
	f=$(xmx_scrape $n | awk '/^xmesh_cert_verify_failures_total/ { s += $2 } END { print s + 0 }')
	[ "$f" = 0 ] || xmt_fail "$n refused $f peer certificate(s): $(xmx_scrape $n | grep '^xmesh_cert_verify_failures_total' | grep -v ' 0$')"
	[ "$(xmx_metric $n 'xmesh_ca_reload_total{result="ok"}')" = 2 ] || xmt_fail "$n: $(xmx_scrape $n | grep ca_reload)"
done

XMT_SUBTEST="root1 removed from root-cert.pem: a certificate of it is refused from then on"
version ..v3 int3 root2
ln -s ..v3 "$ca/..data_tmp" && mv -T "$ca/..data_tmp" "$ca/..data"
t0=$(date +%s%3N)
# the third bundle reached agent b's tunnel (the signer is the same: no re-mint)
until [ "$(grep -c 'peers are verified against the reloaded trust bundle' "$XMT_TMP/agent-b.log")" = 3 ]; do
	[ $(($(date +%s%3N) - t0)) -lt 5000 ] || xmt_fail "agent b's tunnel did not take the bundle without root1"
	sleep 0.1
done
[ "$(certs b "len(c['roots'])")" = 1 ] || xmt_fail "agent b trusts $(certs b "len(c['roots'])") root(s), want 1"
# the independent client's certificate is of int1 (root1): its TLS store still has root1, the peer check not
out=$(xmt_nsrun nodea "$PY" "$PEER" client --ca "$t/root2.pem" --connect "$SA:15008" --cert "$t/client.pem" \
	--key "$t/client.key" --authority "$SA:8080" --bytes 1024 --expect-refused 2>&1) ||
	xmt_fail "a certificate of the removed root was accepted: $out"
n=$(xmx_metric nodeb 'xmesh_cert_verify_failures_total{reason="unknown_ca"}')
[ "$n" = 1 ] || xmt_fail "node B counted $n unknown_ca refusals, want 1"

XMT_SUBTEST="the connection held from the start echoed every ping"
r=0
wait "${XMT_BG[held]}" || r=$?
[ "$r" = 0 ] || xmt_fail "the held connection failed (exit $r): $(tail -n 5 "$t/held.log")"
grep "dead=0" "$t/held.log" >/dev/null || xmt_fail "held: $(tail -n 3 "$t/held.log")"
if grep -l 'PRIVATE KEY' "$XMT_TMP"/agent-*.log "$t"/certs-*.json 2>/dev/null; then
	xmt_fail "key material in a log or in xmesh certs"
fi
xmt_pass "CA reloaded twice without a restart (int1 -> int2 -> root2/int3), a half-written set refused; the held tunnelled connection survived"
