# shellcheck shell=bash
# The set-up of the AuthorizationPolicy e2e tests (test_hbone_authz*.sh), sourced after lib.sh, xdp_lib.sh and
# xmx_init: node B's agent (--hbone) serves its STRICT pod sa (label app: sa), allow-listed (ALLOW, selector
# app: sa) lets principals sleep and other in; an independent client (tests/tools/hbone_streams.py: Python ssl +
# h2) on node A holds certificates of the agent's root for each service account of $AUTHZ_CLIENTS.
# The sourcing test defines extra_policies (more AuthorizationPolicies, printed with ap) before it sources this.
# Defines: config [with-deny-sleep] (deny-sleep: DENY principals */sa/sleep; $SA_LABEL, "key: value": one more
# label of sa), streams, two_long_streams and the checks of a change under them. Node B's metrics: xmx_scrape nodeb, xmx_metric nodeb SERIES (xdp_lib.sh).
# shellcheck source=tests/e2e/hbone_lib.sh
. "$(dirname "$0")/hbone_lib.sh"

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
# shellcheck disable=SC2120 # the sourcing test passes with-deny-sleep
config() { # [with-deny-sleep]
	xmx_yaml_pod sa "$SA" nodeb web |
		awk -v more="${SA_LABEL:-}" '{ print } $0 == "    app: sa" && more != "" { print "    " more }'
	xmx_yaml_pod pa "$PA" nodea
	xmh_yaml_sa_mode STRICT sa-strict
	ap allow-listed ALLOW "  selector:" "    matchLabels:" "      app: sa" "  rules:" "  - from:" "    - source:" \
		"        principals: [cluster.local/ns/default/sa/sleep, cluster.local/ns/default/sa/other]"
	extra_policies
	[ "${1:-}" != with-deny-sleep ] ||
		ap deny-sleep DENY "  rules:" "  - from:" "    - source:" "        principals: ['*/sa/sleep']"
}
config | xmt_config_write hbone.yaml

xmh_agent_b

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
for n in $AUTHZ_CLIENTS; do leaf "$n"; done

streams() { # SA_NAME STEPS...: one TLS connection from node A to sa:15008 as SA_NAME
	local who=$1
	shift
	xmt_nsrun nodea "$PY" "$STREAMS" --ca "$ca/root-cert.pem" --cert "$t/$who.pem" --key "$t/$who.key" \
		--connect "$SA:15008" --forwarded "for=\"$PA:40000\"" --expect-prefix $'sa\n' "$@" 2>&1
}

# two_long_streams: sleep's and other's long-lived allowed streams to sa, each echoing 4 KiB, then waiting:
# sleep's for $XMT_TMP/changed and then a reset within 2 s, other's for $XMT_TMP/after and then 64 KiB more
# echoed and a clean close. Sets sleep_pid and other_pid; output in $XMT_TMP/{sleep,other}.out.
two_long_streams() {
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
}

# denied_total: xmesh_authz_denied_total summed over its series (new streams refused by a policy).
denied_total() { xmx_scrape nodeb | awk '$1 ~ /^xmesh_authz_denied_total/ { s += $2 } END { print s + 0 }'; }

# sleep_reset CHANGE: after CHANGE (written), sleep's stream of two_long_streams is reset within 2 s.
sleep_reset() {
	touch "$XMT_TMP/changed"
	wait "$sleep_pid" || {
		kill "$other_pid" 2>/dev/null
		xmt_fail "sleep's stream after the $1: $(cat "$XMT_TMP/sleep.out")"
	}
	xmt_log "$(grep -E '^reset' "$XMT_TMP/sleep.out")"
}

# other_echoes CHANGE: after CHANGE, other's stream, still allowed, echoes 64 KiB more and closes cleanly.
other_echoes() {
	touch "$XMT_TMP/after"
	wait "$other_pid" || xmt_fail "other's stream after the $1: $(cat "$XMT_TMP/other.out")"
	grep -q '^echo a: 69635 bytes byte-exact' "$XMT_TMP/other.out" || xmt_fail "other: $(cat "$XMT_TMP/other.out")"
}

# closed_by_recheck POLICY DENIED_BEFORE: the re-check closed exactly one stream for default/POLICY and said so
# in the log; no new stream was denied since denied_total was DENIED_BEFORE.
closed_by_recheck() {
	local closed denied_after
	closed=$(xmx_metric nodeb "xmesh_authz_closed_total{namespace=\"default\",pod=\"sa\",policy=\"default/$1\"}")
	[ "$closed" = 1 ] || xmt_fail "streams closed by $1: $closed, want 1"
	denied_after=$(denied_total)
	[ "$denied_after" = "$2" ] || xmt_fail "xmesh_authz_denied_total moved: $2 -> $denied_after"
	grep -q "AuthorizationPolicy re-checked: closed a stream of spiffe://cluster.local/ns/default/sa/sleep to default/sa" \
		"$XMT_AGENT_LOG" || xmt_fail "no log line of the closed stream: $(grep -i authorization "$XMT_AGENT_LOG" | head -n 5)"
}
