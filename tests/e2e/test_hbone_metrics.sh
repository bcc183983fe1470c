#!/usr/bin/env bash
# Istio's TCP metrics of tunnelled connections on the destination node: after streams through the HBONE server
# (agent --hbone on node B) from the independent Python client on node A (tests/tools/hbone_peer.py), node B's
# istio_tcp_* have one series per stream kind with reporter="destination", connection_security_policy=
# "mutual_tls", source_principal = the client certificate's SPIFFE ID, destination_principal = the pod's, the
# source workload from the Forwarded for= pod (only when its identity is the peer's), the destination Service
# from the EndpointSlice that lists the pod's port; opened/closed = 1 and the bytes that went each way; a refused
# stream (503) counts nothing; the scrape passes `promtool check metrics` when promtool is installed.
#
# The two-node topology (xdp_lib.sh), the agent on node B:
#        a0 │            b0 │
#   nodea up0 10.199.0.1   nodeb up0 10.199.0.2
#   br0 10.200.1.1         br0 10.200.2.1 ── sa .11 (STRICT, sa web, Service web), pb .12 (sa default)
#    └─ pa .11 (sa client), pc .12 (sa other)
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
PC=10.200.1.12

xmx_two_nodes_pods
xmx_pod nodeb sa "$SA" 10.200.2.1
xmx_pod nodeb pb "$PB" 10.200.2.1

{
	xmx_yaml_pod sa "$SA" nodeb web
	xmx_yaml_pod pb "$PB" nodeb default
	xmx_yaml_pod pa "$PA" nodea client
	xmx_yaml_pod pc "$PC" nodea other
	xmt_yaml_service --name web --vip 10.96.0.80
	XMT_NODE_NAME=nodeb xmt_yaml_slice --service web "$SA"
	xmh_yaml_sa_mode STRICT sa-strict
} | xmt_config_write hbone.yaml

xmh_agent_b

# The client's certificate, from the agent's root (generated under --state-dir).
t="$XMT_TMP/pki"
mkdir -p "$t"
ca="$XMT_TMP/agent-state/ca"
ossl() { openssl "$@" >>"$t/openssl.log" 2>&1 || xmt_fail "openssl $1 failed: $(tail -n 3 "$t/openssl.log")"; }
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
	"extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/client" \
	>"$t/client.ext"
ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/client.key" -subj "/O=test" -out "$t/client.csr"
ossl x509 -req -in "$t/client.csr" -CA "$ca/root-cert.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial -days 1 \
	-extfile "$t/client.ext" -out "$t/client.pem"

# hbone DEST_IP AUTHORITY BYTES FORWARDED EXTRA...: one CONNECT stream from node A, as spiffe://.../sa/client.
hbone() {
	local ip=$1 auth=$2 bytes=$3 fwd=$4
	shift 4
	xmt_nsrun nodea "$PY" "$PEER" client --ca "$ca/root-cert.pem" --connect "$ip:15008" --cert "$t/client.pem" \
		--key "$t/client.key" --authority "$auth" --bytes "$bytes" --forwarded "$fwd" "$@" 2>&1
}
# series FILE FAMILY LABEL=VALUE...: the value of the one sample of FAMILY having every label given ("" if none).
series() {
	local f=$1 fam=$2
	shift 2
	awk -v fam="$fam" -v want="$*" '
		index($0, fam "{") == 1 {
			n = split(want, w, " "); ok = 1
			for (i = 1; i <= n; i++) if (index($0, w[i]) == 0) ok = 0
			if (ok) { hits++; v = $NF }
		}
		END { if (hits == 1) print v; else if (hits > 1) print "several" }' "$f"
}
CLIENT=spiffe://cluster.local/ns/default/sa/client
WEB=spiffe://cluster.local/ns/default/sa/web

XMT_SUBTEST="1 MiB through the tunnel to a pod of Service web, from pod pa"
out=$(hbone "$SA" "$SA:8080" $((1 << 20)) "for=\"$PA:40000\"" --expect-id "$WEB" --expect-prefix $'sa\n') ||
	xmt_fail "tunnelled connection to sa failed: $out"
grep "echoed $(((1 << 20) + 3)) bytes" <<<"$out" >/dev/null || xmt_fail "unexpected: $out"

XMT_SUBTEST="64 KiB to pb: no Service, no Forwarded"
out=$(hbone "$PB" "$PB:8080" 65536 "" --expect-prefix $'pb\n') || xmt_fail "tunnelled connection to pb failed: $out"
XMT_SUBTEST="a Forwarded pod of another identity is not the source"
out=$(hbone "$PB" "$PB:8080" 1000 "for=\"$PC:40001\"" --expect-prefix $'pb\n') || xmt_fail "to pb as pc: $out"
XMT_SUBTEST="a refused stream counts nothing"
out=$(hbone "$SA" "$SA:9999" 1024 "for=\"$PA:40002\"" --expect-refused)
grep "status 503" <<<"$out" >/dev/null || xmt_fail "CONNECT to a closed port of sa: $out"

# The server frees a stream once both ends ended: closed may follow the client's exit by a loop turn.
s="$XMT_TMP/scrape.txt"
sa_labels=(reporter=\"destination\" source_workload=\"pa\" source_workload_namespace=\"default\"
	source_principal=\""$CLIENT"\" source_app=\"pa\" destination_service=\"web.default.svc.cluster.local\"
	destination_service_name=\"web\" destination_service_namespace=\"default\" destination_workload=\"sa\"
	destination_workload_namespace=\"default\" destination_principal=\""$WEB"\" request_protocol=\"tcp\"
	connection_security_policy=\"mutual_tls\" response_flags=\"-\")
pb_labels=(reporter=\"destination\" source_workload=\"unknown\" source_workload_namespace=\"unknown\"
	source_principal=\""$CLIENT"\" source_app=\"unknown\" destination_service=\"unknown\"
	destination_service_name=\"unknown\" destination_workload=\"pb\"
	destination_principal=\"spiffe://cluster.local/ns/default/sa/default\" connection_security_policy=\"mutual_tls\")
for _ in $(seq 1 20); do
	xmx_scrape nodeb >"$s"
	[ "$(series "$s" istio_tcp_connections_closed_total "${pb_labels[@]}")" = 2 ] &&
		[ "$(series "$s" istio_tcp_connections_closed_total "${sa_labels[@]}")" = 1 ] && break
	sleep 0.1
done

XMT_SUBTEST="the series of the 1 MiB stream"
check() { # FAMILY WANT LABELS...
	local fam=$1 want=$2 got
	shift 2
	got=$(series "$s" "$fam" "$@")
	[ "$got" = "$want" ] || xmt_fail "$fam{$*} is '$got', want $want: $(grep "^$fam{" "$s")"
}
check istio_tcp_connections_opened_total 1 "${sa_labels[@]}"
check istio_tcp_connections_closed_total 1 "${sa_labels[@]}"
check istio_tcp_received_bytes_total $((1 << 20)) "${sa_labels[@]}"
check istio_tcp_sent_bytes_total $(((1 << 20) + 3)) "${sa_labels[@]}"

XMT_SUBTEST="the series of the streams to pb"
check istio_tcp_connections_opened_total 2 "${pb_labels[@]}"
check istio_tcp_connections_closed_total 2 "${pb_labels[@]}"
check istio_tcp_received_bytes_total $((65536 + 1000)) "${pb_labels[@]}"
check istio_tcp_sent_bytes_total $((65536 + 1000 + 6)) "${pb_labels[@]}"

XMT_SUBTEST="nothing else: the 503 made no series"
n=$(grep -c '^istio_tcp_connections_opened_total{.*connection_security_policy="mutual_tls"' "$s" || true)
[ "$n" = 2 ] || xmt_fail "$n mutual_tls series, want 2: $(grep '^istio_tcp_connections_opened_total{' "$s")"
ov=$(awk '$1 == "xmesh_hbone_metrics_overflow_total" { print $2 }' "$s")
[ "$ov" = 0 ] || xmt_fail "xmesh_hbone_metrics_overflow_total is '$ov', want 0"

if command -v promtool >/dev/null; then
	XMT_SUBTEST=promtool
	rc=0
	promtool check metrics <"$s" >"$XMT_TMP/promtool.out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || xmt_fail "promtool check metrics exited $rc: $(head -c 600 "$XMT_TMP/promtool.out")"
	xmt_note "promtool: clean"
fi

xmt_pass "istio_tcp_* of tunnelled streams on node B: mutual_tls, SPIFFE principals, Service web, 1 MiB each way counted"
