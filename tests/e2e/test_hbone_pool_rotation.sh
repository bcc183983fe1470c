#!/usr/bin/env bash
# The HBONE client's pool across a re-issue of its certificate and a trust bundle change (agent/hbone/client.c
# retire): new tunnelled connections take a NEW TLS connection presenting the new certificate, while a connection
# held open on the old one keeps echoing. Both agents --hbone --log-level debug, each with a --ca-dir of its own
# (Kubernetes' secret layout, ..data swapped atomically) made by the openssl CLI: root1 (int1), root2 (int3).
#   - a tunnelled connection from pa (node A) to sa (node B) is held from the start to the end (pings);
#   - agent A re-issued (its CA becomes int3 of root2; agent B trusts root1 and root2 first): new tunnelled
#     connections ride a second TLS connection: node B counts one more handshake, logs that its client presented
#     agent A's new serial, and `ss` shows two connections on 15008; agent A counts one retired connection
#     (own_certificate_replaced);
#   - agent B re-issued under root2, then agent A stops trusting root1 (its signer unchanged, no re-mint): the
#     pooled connection whose server certificate is of root1 is retired (peer_untrusted), and new tunnelled
#     connections take a third TLS connection, on which node A saw agent B's new serial;
#   - the held connection echoed every ping over its first TLS connection to the end.
# On the code before the retirement (the pool's choice ignored the certificate) the first check fails: the new
# streams rode the held connection's TLS connection (no new handshake on node B).
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
command -v ss >/dev/null || xmt_skip "command ss not installed"
PY=/usr/bin/python3 # json of `xmesh certs`
SA=10.200.2.11
PA=10.200.1.11
WEB=spiffe://cluster.local/ns/default/sa/web
DEF=spiffe://cluster.local/ns/default/sa/default

# ---- the PKI, by the openssl CLI ----
t="$XMT_TMP/pki"
mkdir -p "$t"
printf '%s\n' "basicConstraints=critical,CA:TRUE" "keyUsage=critical,keyCertSign,cRLSign" \
	"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid:always" >"$t/ca.ext"
ossl() { openssl "$@" >>"$t/openssl.log" 2>&1 || xmt_fail "openssl $1: $(tail -n 3 "$t/openssl.log")"; }
root() { # NAME
	ossl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/$1.key" -days 30 \
		-subj "/O=xmesh-test/CN=$1" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" -out "$t/$1.pem"
}
inter() { # NAME ROOT
	ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/$1.key" \
		-subj "/O=xmesh-test/CN=$1" -out "$t/$1.csr"
	ossl x509 -req -in "$t/$1.csr" -CA "$t/$2.pem" -CAkey "$t/$2.key" -CAcreateserial -days 20 \
		-extfile "$t/ca.ext" -out "$t/$1.pem"
	cat "$t/$1.pem" "$t/$2.pem" >"$t/$1.chain"
}
root root1
inter int1 root1
root root2
inter int3 root2

# setca AGENT INT ROOTS...: agent AGENT's --ca-dir ($t/ca-AGENT) switches to intermediate INT trusting ROOTS, by
# an atomic ..data swap (the first call lays the symlinks).
n_ver=0
setca() {
	local dir="$t/ca-$1" int=$2 r v
	shift 2
	n_ver=$((n_ver + 1))
	v="..v$n_ver"
	mkdir -p "$dir/$v"
	cp "$t/$int.pem" "$dir/$v/ca-cert.pem"
	install -m 0600 "$t/$int.key" "$dir/$v/ca-key.pem"
	for r in "$@"; do cat "$t/$r.pem"; done >"$dir/$v/root-cert.pem"
	cp "$t/$int.chain" "$dir/$v/cert-chain.pem"
	if [ -e "$dir/..data" ]; then
		ln -s "$v" "$dir/..data_tmp" && mv -T "$dir/..data_tmp" "$dir/..data"
	else
		ln -s "$v" "$dir/..data"
		for f in ca-cert.pem ca-key.pem root-cert.pem cert-chain.pem; do ln -s "..data/$f" "$dir/$f"; done
	fi
}
setca a int1 root1
setca b int1 root1

# ---- the nodes ----
xmx_two_nodes_pods
xmx_pod nodeb sa "$SA" 10.200.2.1
xmx_pod nodea pa "$PA" 10.200.1.1
{
	xmh_yaml_nodes_pods "$SA" "$PA"
	xmh_yaml_sa_mode STRICT sa-strict
} | xmt_config_write mesh.yaml
xmh_agent_a 'hbone: capturing' --ca-dir "$t/ca-a" --log-level debug
xmh_agent_b --ca-dir "$t/ca-b" --log-level debug
LOG_A="$XMT_TMP/agent-a.log"
LOG_B="$XMT_TMP/agent-b.log"

server_hs() { xmx_metric nodeb 'xmesh_tls_handshakes_total{side="server",result="success"}'; }
retired() { xmx_metric nodea "xmesh_hbone_client_connections_retired_total{reason=\"$1\"}"; }
# serial AGENT ID: the serial of identity ID on agent AGENT (a|b), upper-case hex without leading zeros
serial() {
	xmt_xmesh certs --json --admin "$XMT_TMP/admin-$1.sock" >"$t/certs-$1.json" || xmt_fail "xmesh certs ($1) failed"
	"$PY" -c "import json,sys; c=json.load(open(sys.argv[1])); print([i['serial'] for i in c['identities'] if i['identity'] == sys.argv[2]][0].upper().lstrip('0'))" \
		"$t/certs-$1.json" "$2"
}
# reissued AGENT ID OLD: waits (at most 5 s) until identity ID on agent AGENT has another serial than OLD; prints it
reissued() {
	local s deadline=$(($(date +%s) + 5))
	while s=$(serial "$1" "$2") && [ "$s" = "$3" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || xmt_fail "agent $1 did not re-issue $2 within 5 s (serial $3)"
		sleep 0.1
	done
	echo "$s"
}
# seen LOG ROLE ID: the serials (normalised) that the agent of LOG verified for its ROLE (client|server) peer ID
seen() { sed -n "s|^.*hbone: $2 $3 verified, certificate serial \\([0-9A-F]*\\)$|\\1|p" "$1" | sed 's/^0*//'; }
# conns15008: established TCP connections to node B's 15008 (node B's view)
conns15008() { xmt_nsrun nodeb ss -Htn state established '( sport = :15008 )' | wc -l; }
# tunnel N: N new tunnelled connections from pa to sa, each echoed
tunnel() {
	local out
	out=$(xmh_in_pod pa "$XM_CLIENT" spread --addr "$SA:8080" -n "$1" 2>&1) || xmt_fail "new tunnelled connections: $out"
	grep "total=$1 ok=$1 errors=0" <<<"$out" >/dev/null || xmt_fail "new tunnelled connections: $out"
}
# wait_eq DESC CMD WANT: waits (at most 5 s) until CMD prints WANT
wait_eq() {
	local v deadline=$(($(date +%s) + 5))
	while v=$($2) && [ "$v" != "$3" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || xmt_fail "$1 is $v, want $3"
		sleep 0.1
	done
}

XMT_SUBTEST="a tunnelled connection held from the start"
sa0=$(serial a "$DEF")
sb0=$(serial b "$WEB")
# shellcheck disable=SC2016
timeout -k 5 "$XMT_BG_TIMEOUT" nsenter --net="/run/netns/${XMT_P}pa" -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
	"$XMT_CG/a" "$XM_CLIENT" hold --addr "$SA:8080" -k 1 --duration-ms 30000 --ping-ms 500 >"$t/held.log" 2>&1 &
XMT_BG[held]=$!
XMT_PIDS+=("$!")
xmt_wait_for "$t/held.log" '^holding 1' 10 "${XMT_BG[held]}" || xmt_fail "not held: $(cat "$t/held.log")"
grep -E "^id sa 1$" "$t/held.log" >/dev/null || xmt_fail "held: $(cat "$t/held.log")"
[ "$(xmx_metric nodea 'xmesh_hbone_outbound_connections_total{source="capture"}')" -ge 1 ] ||
	xmt_fail "the held connection was not tunnelled"
hs0=$(server_hs)
[ "$hs0" = 1 ] || xmt_fail "node B counted $hs0 handshakes for one tunnelled connection, want 1"
[ "$(conns15008)" = 1 ] || xmt_fail "node B has $(conns15008) connections on 15008, want 1"

XMT_SUBTEST="agent a re-issued (int3 of root2): new tunnelled connections take a new TLS connection"
setca b int1 root1 root2 # b trusts root2 first (the same signer: no re-issue on b)
xmt_wait_for "$LOG_B" 'reloaded trust bundle \(2 root' 5 || xmt_fail "agent b did not take root2"
setca a int3 root1 root2
sa1=$(reissued a "$DEF" "$sa0")
tunnel 3
hs1=$(server_hs)
[ "$hs1" = $((hs0 + 1)) ] ||
	xmt_fail "after agent a's re-issue node B counted $((hs1 - hs0)) new handshake(s) for new tunnelled connections, want 1 (0: they rode the held connection's TLS connection, made with the old certificate)"
[ "$(conns15008)" = 2 ] || xmt_fail "node B has $(conns15008) connections on 15008, want 2 (the held one's and the new one)"
seen "$LOG_B" client "$DEF" | grep -Fx "$sa1" >/dev/null ||
	xmt_fail "node B never saw agent a's new serial $sa1: $(seen "$LOG_B" client "$DEF" | tr '\n' ' ')"
[ "$(seen "$LOG_B" client "$DEF" | grep -cFx "$sa0")" = 1 ] ||
	xmt_fail "node B saw agent a's old serial $sa0 $(seen "$LOG_B" client "$DEF" | grep -cFx "$sa0") time(s), want once (the held connection's handshake)"
wait_eq "node A's retired{own_certificate_replaced}" "retired own_certificate_replaced" 1
[ "$(retired peer_untrusted)" = 0 ] || xmt_fail "retired{peer_untrusted} $(retired peer_untrusted), want 0"
xmt_log "agent a's serial $sa0 -> $sa1: a new TLS connection presented it ($((hs1 - hs0)) handshake on node B)"

XMT_SUBTEST="agent a stops trusting root1: the connection whose server was verified by root1 is retired"
setca b int3 root1 root2 # b re-issued under root2
sb1=$(reissued b "$WEB" "$sb0")
setca a int3 root2 # the same signer on a: no re-issue, only the bundle
xmt_wait_for "$LOG_A" 'reloaded trust bundle \(1 root' 5 || xmt_fail "agent a did not take the bundle without root1"
wait_eq "node A's retired{peer_untrusted}" "retired peer_untrusted" 1
[ "$(serial a "$DEF")" = "$sa1" ] || xmt_fail "agent a re-issued on a bundle change"
tunnel 3
hs2=$(server_hs)
[ "$hs2" = $((hs1 + 1)) ] || xmt_fail "after the trust change node B counted $((hs2 - hs1)) new handshake(s), want 1"
seen "$LOG_A" server "$WEB" | grep -Fx "$sb1" >/dev/null ||
	xmt_fail "node A never saw agent b's new serial $sb1: $(seen "$LOG_A" server "$WEB" | tr '\n' ' ')"
[ "$(retired own_certificate_replaced)" = 1 ] || xmt_fail "retired{own_certificate_replaced} $(retired own_certificate_replaced), want 1"
# the recheck's refusal is counted as a handshake's would be
[ "$(xmx_metric nodea 'xmesh_cert_verify_failures_total{reason="unknown_ca"}')" = 1 ] ||
	xmt_fail "node A: $(xmx_scrape nodea | grep '^xmesh_cert_verify_failures_total' | grep -v ' 0$')"
xmt_log "agent b's serial $sb0 -> $sb1; the pooled connection verified by root1 retired, a new one saw $sb1"

XMT_SUBTEST="the held connection echoed every ping over its first TLS connection"
r=0
wait "${XMT_BG[held]}" || r=$?
[ "$r" = 0 ] || xmt_fail "the held connection failed (exit $r): $(tail -n 5 "$t/held.log")"
grep "dead=0" "$t/held.log" >/dev/null || xmt_fail "held: $(tail -n 3 "$t/held.log")"
# once it ended, its TLS connection (the only one with a stream) closed; the newest stays pooled
wait_eq "node B's connections on 15008 after the held one ended" conns15008 1
xmt_pass "re-issue and trust change: new streams took new TLS connections with the new certificates (node B: $hs0 -> $hs1 -> $hs2 handshakes); the held connection echoed every ping"
