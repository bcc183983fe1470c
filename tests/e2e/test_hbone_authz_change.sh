#!/usr/bin/env bash
# An AuthorizationPolicy change closes the open HBONE streams it denies (ztunnel's PolicyWatcher), and only
# those. Node B's agent (--hbone) serves its STRICT pod sa; an independent client (tests/tools/hbone_streams.py:
# Python ssl + h2) on node A opens one long-lived tunnelled connection as sleep and one as other, both allowed
# by allow-listed (ALLOW principals sleep and other). Then deny-sleep (DENY principals */sa/sleep) is added:
#   sleep's stream is reset (RST_STREAM CONNECT_ERROR) within 2 s of the file's change, and its TCP connection
#     to the pod is gone;
#   other's stream keeps its TCP connection and still echoes 64 KiB byte-exact after that, then ends cleanly;
#   xmesh_authz_closed_total{policy="default/deny-sleep"} is 1, xmesh_authz_denied_total did not move (nothing
#     was refused at CONNECT).
# Topology: test_hbone_authz.sh's.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls"
for c in openssl curl ss; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
xmt_require_py_h2
STREAMS="$(cd "$(dirname "$0")/../tools" && pwd)/hbone_streams.py"

SA=10.200.2.11
PA=10.200.1.11

xmx_two_nodes_pods
xmx_pod nodeb sa "$SA" 10.200.2.1
xmx_pod nodea pa "$PA" 10.200.1.1

ap() { # NAME ACTION SPEC_LINES...: an AuthorizationPolicy of namespace default
	printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: AuthorizationPolicy" "metadata:" "  name: $1" \
		"  namespace: default" "spec:" "  action: $2"
	shift 2
	printf '%s\n' "$@"
}
config() { # [with-deny-sleep]
	xmx_yaml_pod sa "$SA" nodeb web
	xmx_yaml_pod pa "$PA" nodea
	printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: PeerAuthentication" "metadata:" \
		"  name: sa-strict" "  namespace: default" "spec:" "  selector:" "    matchLabels:" "      app: sa" \
		"  mtls:" "    mode: STRICT"
	ap allow-listed ALLOW "  selector:" "    matchLabels:" "      app: sa" "  rules:" "  - from:" "    - source:" \
		"        principals: [cluster.local/ns/default/sa/sleep, cluster.local/ns/default/sa/other]"
	[ "${1:-}" != with-deny-sleep ] ||
		ap deny-sleep DENY "  rules:" "  - from:" "    - source:" "        principals: ['*/sa/sleep']"
}
config | xmt_config_write hbone.yaml

xmx_agent b nodeb nodeb up0 --hbone
xmt_wait_for "$XMT_AGENT_LOG" 'hbone: serving HBONE' 5 || xmt_fail "hbone server not started: $(tail -n 5 "$XMT_AGENT_LOG")"

t="$XMT_TMP/pki"
mkdir -p "$t"
ca="$XMT_TMP/agent-state/ca"
ossl() { openssl "$@" >>"$t/openssl.log" 2>&1 || xmt_fail "openssl $1 failed: $(tail -n 3 "$t/openssl.log")"; }
leaf() { # NAME: a SPIFFE client certificate of the agent's root for ns default, sa NAME
	printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
		"extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/$1" \
		>"$t/$1.ext"
	ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/$1.key" -subj "/O=test" -out "$t/$1.csr"
	ossl x509 -req -in "$t/$1.csr" -CA "$ca/root-cert.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial -days 1 \
		-extfile "$t/$1.ext" -out "$t/$1.pem"
}
for n in sleep other; do leaf "$n"; done

streams() { # SA_NAME STEPS...: one TLS connection from node A to sa:15008 as SA_NAME
	local who=$1
	shift
	xmt_nsrun nodea "$PY" "$STREAMS" --ca "$ca/root-cert.pem" --cert "$t/$who.pem" --key "$t/$who.key" \
		--connect "$SA:15008" --forwarded "for=\"$PA:40000\"" --expect-prefix $'sa\n' "$@" 2>&1
}
scrape() { xmt_nsrun nodeb curl -sS --max-time 10 http://127.0.0.1:15090/metrics; }
metric() { scrape | awk -v s="$1" '$1 == s { v = $2 } END { print v + 0 }'; }
# TCP connections established to the pod's server (the agent's spliced upstream side).
upstreams() { xmt_nsrun sa ss -Htn state established "( sport = :$XMT_TARGET )" | wc -l; }

XMT_SUBTEST="two long-lived allowed streams"
streams sleep "open:a:$SA:$XMT_TARGET:200" "echo:a:4096" "wait:$XMT_TMP/changed" "reset:a:0xa:2.0" \
	>"$XMT_TMP/sleep.out" 2>&1 &
sleep_pid=$!
streams other "open:a:$SA:$XMT_TARGET:200" "echo:a:4096" "wait:$XMT_TMP/after" "echo:a:65536" "close:a" \
	>"$XMT_TMP/other.out" 2>&1 &
other_pid=$!
for w in sleep other; do
	pid=$sleep_pid
	[ $w = sleep ] || pid=$other_pid
	xmt_wait_for "$XMT_TMP/$w.out" '^echo a: ' 10 "$pid" || {
		kill "$sleep_pid" "$other_pid" 2>/dev/null
		xmt_fail "$w before the change: $(cat "$XMT_TMP/$w.out")"
	}
done
n=$(upstreams)
[ "$n" = 2 ] || xmt_fail "upstream connections to sa before the change: $n, want 2"
denied_before=$(scrape | awk '$1 ~ /^xmesh_authz_denied_total/ { s += $2 } END { print s + 0 }')

XMT_SUBTEST="deny-sleep closes sleep's stream within 2 s"
config with-deny-sleep | xmt_config_write hbone.yaml
touch "$XMT_TMP/changed"
wait "$sleep_pid" || {
	kill "$other_pid" 2>/dev/null
	xmt_fail "sleep's stream after the change: $(cat "$XMT_TMP/sleep.out")"
}
xmt_log "$(grep -E '^reset' "$XMT_TMP/sleep.out")"
for _ in $(seq 1 50); do
	[ "$(upstreams)" = 1 ] && break
	sleep 0.1
done
n=$(upstreams)
[ "$n" = 1 ] || xmt_fail "upstream connections to sa after the change: $n, want 1 (other's)"

XMT_SUBTEST="other's stream, still allowed, echoes after the change"
touch "$XMT_TMP/after"
wait "$other_pid" || xmt_fail "other's stream after the change: $(cat "$XMT_TMP/other.out")"
grep -q '^echo a: 69635 bytes byte-exact' "$XMT_TMP/other.out" || xmt_fail "other: $(cat "$XMT_TMP/other.out")"

XMT_SUBTEST="xmesh_authz_closed_total"
closed=$(metric 'xmesh_authz_closed_total{namespace="default",pod="sa",policy="default/deny-sleep"}')
[ "$closed" = 1 ] || xmt_fail "streams closed by deny-sleep: $closed, want 1"
denied_after=$(scrape | awk '$1 ~ /^xmesh_authz_denied_total/ { s += $2 } END { print s + 0 }')
[ "$denied_after" = "$denied_before" ] || xmt_fail "xmesh_authz_denied_total moved: $denied_before -> $denied_after"
grep -q "AuthorizationPolicy changed: closed a stream of spiffe://cluster.local/ns/default/sa/sleep to default/sa" \
	"$XMT_AGENT_LOG" || xmt_fail "no log line of the closed stream: $(grep -i authorization "$XMT_AGENT_LOG" | head -n 5)"

xmt_pass "a policy change resets the open stream it denies ($(grep -oE 'after [0-9.]+ s' "$XMT_TMP/sleep.out" | head -n 1)) and its upstream TCP connection, the allowed one echoes on"
