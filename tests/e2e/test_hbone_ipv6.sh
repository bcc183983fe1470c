#!/usr/bin/env bash
# The HBONE tunnel over IPv6 in a dual-stack cluster (both agents --hbone; test_hbone_tunnel.sh is the IPv4
# twin): a mesh pod of node A connects to sa's IPv6 address on node B, directly and through an IPv6 Service VIP
# (after the socket LB). Agent A's connect hook sends it to the outbound listener on node A's IPv6 InternalIP,
# which carries it inside mutual TLS to [sa's IPv6]:15008, steered on node B to agent B's listener by the IPv6
# policy-routing rule.
#   - a marker the client writes never crosses node A's uplink, and TLS runs on 15008 over IPv6 (tcpdump);
#   - 10 MiB byte-exact; the VIP's connections are tunnelled and getpeername answers the VIP;
#   - STRICT: the external host's IPv6 plaintext to sa is refused by agent B's kernel program (peer_auth);
#     PERMISSIVE: still tunnelled, the external plaintext gets through; DISABLE: the marker is on the wire;
#   - IPv4 keeps working next to it (the same pods' IPv4 addresses are tunnelled too);
#   - an HTTP Service's IPv6 VIP: agent A's L7 proxy hands its upstream to sa's IPv6 address to the tunnel;
#   - a restart of agent A (docs/mtls.md "Restart"): an IPv6 tunnelled connection lives on, new IPv6 connections
#     made meanwhile wait in the held IPv6 outbound listener; agent B's stop leaves both families' steering to
#     its holder, which removes it 10 s later.
#
#        a0 │                          b0 │                          e0 │
#   nodea up0 10.199.0.1 fd00:199::1  nodeb up0 10.199.0.2 fd00:199::2  ext 10.199.0.100 fd00:199::100
#   br0 10.200.1.1 fd00:200:1::1      br0 10.200.2.1 fd00:200:2::1 ── sa .11 ::11 (serviceAccount web)
#    └─ pa .11 ::11 (client pod, cgroup of agent a)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/xdp_lib.sh
. "$(dirname "$0")/xdp_lib.sh"
# shellcheck source=tests/e2e/hbone_lib.sh
. "$(dirname "$0")/hbone_lib.sh"
xmx_init "$@"
xmt_require_kernel "program_type sched_cls" "program_type cgroup_sock_addr" "program_type sock_ops"
command -v tcpdump >/dev/null || xmt_fail "tcpdump missing (scripts/install-deps.sh installs it)"
command -v curl >/dev/null || xmt_skip "command curl not installed"
XM_STREAM="$XMT_BUILD/tools/xm-stream"
[ -x "$XM_STREAM" ] || xmt_skip "test tool $XM_STREAM not built (make tools)"
[ -x "$XM_HTTP" ] || xmt_skip "xm-http not built (make tools)"

SA=10.200.2.11
SA6=fd00:200:2::11
PA=10.200.1.11
PA6=fd00:200:1::11
VIP=10.96.0.60
VIP6=fd00:96::60
HVIP6=fd00:96::61 # the HTTP Service (L7 proxy), IPv6 only
MARK="xmesh-marker6-$$-$RANDOM-plaintext"

# The IPv4 two-node topology, made dual-stack: uplinks, pod bridges, routes, pods (addresses without DAD).
xmx_two_nodes_pods
for n in nodea nodeb; do xmx_sysctl "$n" net.ipv6.conf.all.forwarding=1; done
xmx_addr6 nodea up0 fd00:199::1
xmx_addr6 nodeb up0 fd00:199::2
xmx_addr6 ext eth0 fd00:199::100
xmx_addr6 nodea br0 fd00:200:1::1
xmx_addr6 nodeb br0 fd00:200:2::1
ip -n "${XMT_P}nodea" -6 route add fd00:200:2::/64 via fd00:199::2
ip -n "${XMT_P}nodeb" -6 route add fd00:200:1::/64 via fd00:199::1
ip -n "${XMT_P}ext" route add 10.200.2.0/24 via 10.199.0.2
ip -n "${XMT_P}ext" -6 route add fd00:200:2::/64 via fd00:199::2
# dual_pod NODE NAME IP IP6 GW GW6: xmx_pod with an IPv6 address and default route too.
dual_pod() {
	xmx_pod "$1" "$2" "$3" "$5"
	xmx_addr6 "$2" eth0 "$4"
	ip -n "$XMT_P$2" -6 route add default via "$6"
}
dual_pod nodeb sa "$SA" "$SA6" 10.200.2.1 fd00:200:2::1
xmt_bg stream-sa sa plain "$XM_STREAM" serve --port 9000
xmt_wait_for "$(xmt_bg_log stream-sa)" 'ready' 5 || xmt_fail "xm-stream in sa did not start"
xmt_bg http-sa sa plain "$XM_HTTP" --id sa --port 9080
xmt_wait_for "$(xmt_bg_log http-sa)" ' ready$' 5 "${XMT_BG[http-sa]}" || xmt_fail "xm-http in sa did not start"
dual_pod nodea pa "$PA" "$PA6" 10.200.1.1 fd00:200:1::1

# node NAME IP IP6: a Node with both InternalIPs.
node() {
	printf '%s\n' "---" "apiVersion: v1" "kind: Node" "metadata:" "  name: $1" "status:" "  addresses:" \
		"  - type: InternalIP" "    address: $2" "  - type: InternalIP" "    address: $3"
}
# pod NAME NODE IP IP6 [SERVICEACCOUNT]: a dual-stack Pod of namespace default labelled app=NAME.
pod() {
	printf '%s\n' "---" "apiVersion: v1" "kind: Pod" "metadata:" "  name: $1" "  namespace: default" "  labels:" \
		"    app: $1" "spec:" "  nodeName: $2"
	[ -z "${5:-}" ] || echo "  serviceAccountName: $5"
	printf '%s\n' "status:" "  podIP: $3" "  podIPs:" "  - ip: $3" "  - ip: $4"
}
# service NAME VIP VIP6 PORT_NAME TARGET_PORT: a dual-stack Service, port 80.
service() {
	printf '%s\n' "---" "apiVersion: v1" "kind: Service" "metadata:" "  name: $1" "  namespace: default" \
		"spec:" "  clusterIP: $2" "  clusterIPs:" "  - $2" "  - $3" "  ipFamilies:" "  - IPv4" "  - IPv6" \
		"  ports:" "  - name: $4" "    port: 80" "    protocol: TCP" "    targetPort: $5"
}
# slice SERVICE FAMILY IP PORT_NAME PORT: one EndpointSlice of SERVICE with sa at IP.
slice() {
	printf '%s\n' "---" "apiVersion: discovery.k8s.io/v1" "kind: EndpointSlice" "metadata:" "  name: $1-${2,,}" \
		"  namespace: default" "  labels:" "    kubernetes.io/service-name: $1" "addressType: $2" "ports:" \
		"- name: $4" "  port: $5" "  protocol: TCP" "endpoints:" "- addresses:" "  - \"$3\"" "  conditions:" \
		"    ready: true" "  nodeName: nodeb"
}
# config MODE: sa's PeerAuthentication mode; the rest never changes.
config() {
	{
		node nodea 10.199.0.1 fd00:199::1
		node nodeb 10.199.0.2 fd00:199::2
		pod sa nodeb "$SA" "$SA6" web
		pod pa nodea "$PA" "$PA6"
		service web "$VIP" "$VIP6" tcp 8080
		slice web IPv4 "$SA" tcp 8080
		slice web IPv6 "$SA6" tcp 8080
		# IPv6 single-stack: the proxy has no IPv4 endpoint to fall back to.
		printf '%s\n' "---" "apiVersion: v1" "kind: Service" "metadata:" "  name: webh" "  namespace: default" \
			"spec:" "  clusterIP: $HVIP6" "  clusterIPs:" "  - $HVIP6" "  ipFamilies:" "  - IPv6" "  ports:" \
			"  - name: http" "    port: 80" "    protocol: TCP" "    targetPort: 9080"
		slice webh IPv6 "$SA6" http 9080
		xmh_yaml_sa_mode "$1"
	} | xmt_config_write mesh.yaml
}
config STRICT

xmh_agent_a 'hbone: capturing .* IPv6 connections' --proxy-workers 1
xmh_agent_b

XMT_SUBTEST="the outbound listener on node A's IPv6 InternalIP, the steering rule on node B"
st=$(xmx_status a)
grep -F "outbound listener 10.199.0.1:15002 and [fd00:199::1]:15002" <<<"$st" >/dev/null ||
	xmt_fail "status a: $(grep 'hbone' <<<"$st")"
grep -F "hbone: capture on (IPv4, IPv6)" <<<"$st" >/dev/null || xmt_fail "status a: $(grep 'hbone' <<<"$st")"
rules=$(ip -n "${XMT_P}nodeb" -6 rule show)
grep -E "iif up0 ipproto tcp dport 15008 lookup 15008" <<<"$rules" >/dev/null || xmt_fail "node B's IPv6 rules: $rules"
ip -n "${XMT_P}nodeb" -6 route show table 15008 | grep -E "^local default dev lo" >/dev/null ||
	xmt_fail "node B's IPv6 table 15008: $(ip -n "${XMT_P}nodeb" -6 route show table 15008)"

XMH_PCAP_ANY="IP6 "
# The first payload byte of an IPv6 TCP segment without extension headers (tcpdump's tcp[] is IPv4 only).
TLS6='ip6[6] = 6 and ip6[40 + ((ip6[52] & 0xf0) >> 2)]'

XMT_SUBTEST="IPv6: the marker stays inside the tunnel, TLS on 15008"
xmh_capture_start tunnel
out=$(xmh_marker "$SA6" 8080 "$MARK" with-local) || xmt_fail "marker through the tunnel: $out"
[ "$out" = "sa $SA6 $PA6" ] || xmt_fail "marker: got '$out', want 'sa $SA6 $PA6'"

XMT_SUBTEST="IPv6: 10 MiB byte-exact"
out=$(xmh_in_pod pa "$XM_STREAM" echo --addr "[$SA6]:9000" --bytes $((10 << 20)) --timeout-ms 20000 2>&1) ||
	xmt_fail "10 MiB through the tunnel: $out"
grep "first_bad=-1" <<<"$out" >/dev/null || xmt_fail "10 MiB: $out"
xmt_log "10 MiB over IPv6: $out"
xmh_capture_stop tunnel
xmh_pcap_has tunnel "" "$MARK" && xmt_fail "the marker crossed node A's uplink in plaintext"
xmh_pcap_has tunnel "tcp dst port 8080 or tcp dst port 9000" "IP" && xmt_fail "plaintext TCP to sa's ports on node A's uplink"
xmh_pcap_has tunnel "ip6 and dst host $SA6 and tcp dst port 15008" || xmt_fail "no IPv6 connection to [$SA6]:15008"
xmh_pcap_has tunnel "ip6 and tcp dst port 15008 and $TLS6 = 0x16" || xmt_fail "no TLS handshake to port 15008 over IPv6"
xmh_pcap_has tunnel "ip6 and tcp src port 15008 and $TLS6 = 0x17" || xmt_fail "no TLS application data from port 15008 over IPv6"
xmh_pcap_has tunnel "ip and tcp port 15008" "IP " && xmt_fail "the IPv6 connections went over IPv4"
n=$(xmh_captured)
[ "$n" = 2 ] || xmt_fail "agent a captured $n connections, want 2"
srv=$(xmx_status b | sed -n 's/.*serving on port 15008, \([0-9]*\) TLS connection(s) open.*/\1/p')
[ "$srv" -ge 1 ] || xmt_fail "node B serves $srv TLS connections"

XMT_SUBTEST="IPv6 Service VIP: the socket LB's backend is tunnelled, getpeername the VIP"
n0=$(xmh_captured)
out=$(xmh_in_pod pa "$XM_CLIENT" spread --addr "[$VIP6]:80" -n 5 2>&1) || xmt_fail "through the VIP: $out"
grep "total=5 ok=5 errors=0 getpeername_mismatch=0" <<<"$out" >/dev/null || xmt_fail "through the VIP: $out"
grep -E "^id sa 5$" <<<"$out" >/dev/null || xmt_fail "through the VIP: $out"
n=$(($(xmh_captured) - n0))
[ "$n" = 5 ] || xmt_fail "$n of 5 connections to the IPv6 VIP went through the tunnel"

XMT_SUBTEST="STRICT over IPv6: external plaintext refused by the kernel, the tunnelled pod reaches sa"
rej0=$(xmx_scrape nodeb | awk '$1 ~ /^xmesh_plaintext_rejected_total/ { s += $2 } END { print s + 0 }')
out=$(xmt_nsrun ext "$XM_CLIENT" refuse --addr "[$SA6]:8080" --timeout-ms 2000 2>&1) ||
	xmt_fail "the external host's IPv6 plaintext to the STRICT pod was not refused: $out"
rej=$(xmx_scrape nodeb | awk '$1 ~ /^xmesh_plaintext_rejected_total/ { s += $2 } END { print s + 0 }')
[ "$rej" -gt "$rej0" ] || xmt_fail "agent b's kernel program did not count the refusal: $rej0 -> $rej"
out=$(xmh_marker "$SA6" 8080 "$MARK" with-local) || xmt_fail "tunnelled pod to the STRICT pod: $out"

XMT_SUBTEST="IPv4 next to it: the same pods' IPv4 addresses are tunnelled too"
n0=$(xmh_captured)
out=$(xmh_marker "$SA" 8080 "$MARK" with-local) || xmt_fail "IPv4 marker: $out"
[ "$out" = "sa $SA $PA" ] || xmt_fail "IPv4 marker: got '$out'"
out=$(xmh_in_pod pa "$XM_CLIENT" spread --addr "$VIP:80" -n 3 2>&1) || xmt_fail "IPv4 VIP: $out"
grep "total=3 ok=3 errors=0 getpeername_mismatch=0" <<<"$out" >/dev/null || xmt_fail "IPv4 VIP: $out"
n=$(($(xmh_captured) - n0))
[ "$n" = 4 ] || xmt_fail "$n of 4 IPv4 connections went through the tunnel"

XMT_SUBTEST="IPv6 HTTP Service: the L7 proxy's upstream to sa's IPv6 address rides the tunnel"
h0=$(xmx_metric nodea 'xmesh_hbone_outbound_connections_total{source="handoff"}')
code=$(xmh_in_pod pa curl -g -sS -o "$XMT_TMP/echo6.json" -w '%{http_code}' --max-time 5 -H 'Host: webh' "http://[$HVIP6]/echo" 2>&1) ||
	xmt_fail "pa -> [$HVIP6]: $code"
[ "$code" = 200 ] || xmt_fail "pa -> [$HVIP6]: $code; $(tail -n 3 "$XMT_TMP/agent-a.log")"
python3 - "$XMT_TMP/echo6.json" "$PA6" <<'PY' || xmt_fail "sa's view: $(cat "$XMT_TMP/echo6.json")"
import json, sys
e = json.load(open(sys.argv[1]))
assert e["id"] == "sa", e
h = {k.lower(): v for k, v in e["headers"]}
assert h.get("x-forwarded-for") == sys.argv[2], h  # through agent a's proxy: pa is the client
PY
h=$(($(xmx_metric nodea 'xmesh_hbone_outbound_connections_total{source="handoff"}') - h0))
[ "$h" -ge 1 ] || xmt_fail "the proxy's IPv6 upstream was not handed to the tunnel ($h)"

XMT_SUBTEST="PERMISSIVE over IPv6: tunnelled, external plaintext accepted"
config PERMISSIVE
# The mode change reaches agent b's kernel program: the external host's plaintext gets through.
for _ in $(seq 1 60); do
	xmt_nsrun ext "$XM_CLIENT" spread --addr "[$SA6]:8080" -n 1 >/dev/null 2>&1 && break
	sleep 0.05
done
out=$(xmt_nsrun ext "$XM_CLIENT" spread --addr "[$SA6]:8080" -n 3 2>&1) || xmt_fail "external plaintext under PERMISSIVE: $out"
grep -E "^id sa 3$" <<<"$out" >/dev/null || xmt_fail "external plaintext under PERMISSIVE: $out"
ms=$(xmh_wait_captured yes "[$SA6]:8080" "$(date +%s%3N)")
xmt_log "captured again after $ms ms"
xmh_capture_start permissive
out=$(xmh_marker "$SA6" 8080 "$MARK" with-local) || xmt_fail "marker under PERMISSIVE: $out"
xmh_capture_stop permissive
xmh_pcap_has permissive "" "$MARK" && xmt_fail "under PERMISSIVE the marker crossed node A's uplink in plaintext"
xmh_pcap_has permissive "ip6 and tcp dst port 15008 and $TLS6 = 0x17" || xmt_fail "no TLS application data to 15008 under PERMISSIVE"

XMT_SUBTEST="DISABLE over IPv6: plaintext again"
config DISABLE
ms=$(xmh_wait_captured no "[$SA6]:8080" "$(date +%s%3N)")
xmt_log "plaintext again after $ms ms"
xmh_capture_start plain
out=$(xmh_marker "$SA6" 8080 "$MARK" with-local) || xmt_fail "plaintext marker: $out"
xmh_capture_stop plain
xmh_pcap_has plain "ip6 and tcp dst port 8080" "$MARK" || xmt_fail "under DISABLE the marker is not on the wire in plaintext"

XMT_SUBTEST="restart of agent a: an IPv6 tunnelled connection lives on, both outbound listeners handed over"
config STRICT
ms=$(xmh_wait_captured yes "[$SA6]:8080" "$(date +%s%3N)")
xmt_log "captured again after $ms ms"
# conns ADDR PORT SECONDS (for xmh_bg_py): new connections one after another, one exchange each; "conn START_MS"
# per success.
CONNS='
import os, socket, sys, time
end = time.monotonic() + float(sys.argv[3])
ok = 0
while time.monotonic() < end:
    t0 = time.time()
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
    s.settimeout(30)
    m = os.urandom(512)
    err = echo_exact(s, m)
    if err:
        sys.exit("conns: connection %d: %s" % (ok, err))
    s.close()
    ok += 1
    print("conn %d" % (t0 * 1000), flush=True)
    time.sleep(0.02)
print("conns ok=%d" % ok)
'
xmh_bg_py rr6 "$XMH_RR_PY" "$SA6" 9000 4
xmh_bg_py conns6 "$CONNS" "$SA6" 9000 9
sleep 1
stop_ms=$(date +%s%3N)
xmh_stop_agent "${XMX_AGENTS[0]}" a
mv "$XMT_TMP/agent-a.log" "$XMT_TMP/agent-a-old.log"
XMX_AGENTS=("${XMX_AGENTS[1]}")
xmx_agent a nodea nodea up0 --hbone --proxy-workers 1
ready_ms=$(date +%s%3N)
wait "${XMT_BG[rr6]}" || xmt_fail "the IPv6 tunnelled connection broke across the restart: $(tail -n 3 "$XMT_TMP/rr6.log")"
wait "${XMT_BG[conns6]}" || xmt_fail "new IPv6 tunnelled connections failed across the restart: $(tail -n 2 "$XMT_TMP/conns6.log")"
during=$(awk -v a="$stop_ms" -v b="$ready_ms" '$1 == "conn" && $2 >= a && $2 <= b { n++ } END { print n + 0 }' "$XMT_TMP/conns6.log")
[ "$during" -ge 1 ] || xmt_fail "no IPv6 connection was made while agent a restarted"
grep 'hbone: 3 listening sockets held for the next agent' "$XMT_TMP/agent-a-old.log" >/dev/null ||
	xmt_fail "agent a did not hand 15008 and both outbound listeners over: $(grep 'hbone' "$XMT_TMP/agent-a-old.log" | tail -n 4)"
grep 'hbone: took over the 15008 listener, the IPv4 outbound listener, the IPv6 outbound listener' "$XMT_TMP/agent-a.log" >/dev/null ||
	xmt_fail "the new agent a did not take both outbound listeners: $(grep 'hbone' "$XMT_TMP/agent-a.log" | head -n 4)"
st=$(xmx_status a)
grep -F "outbound listener 10.199.0.1:15002 and [fd00:199::1]:15002" <<<"$st" >/dev/null ||
	xmt_fail "status a after the restart: $(grep 'hbone' <<<"$st")"
grep -F "hbone: capture on (IPv4, IPv6)" <<<"$st" >/dev/null || xmt_fail "status a after the restart: $(grep 'hbone' <<<"$st")"
out=$(xmh_marker "$SA6" 8080 "$MARK" with-local) || xmt_fail "marker after the restart: $out"
xmt_log "restart of agent a over IPv6: $(tail -n 1 "$XMT_TMP/rr6.log"), $(tail -n 1 "$XMT_TMP/conns6.log"), $during during the restart"

XMT_SUBTEST="stop: node B's IPv4 and IPv6 steering stay with its holder, then go"
xmh_stop_agent "${XMX_AGENTS[0]}" b
XMX_AGENTS=("${XMX_AGENTS[1]}")
# The holder keeps the dual-stack 15008 listener for a next agent: both families' rules stay meanwhile.
ip -n "${XMT_P}nodeb" -6 rule show | grep "lookup 15008" >/dev/null || xmt_fail "the IPv6 steering rule went with the agent although its listener is held"
ip -n "${XMT_P}nodeb" rule show | grep "lookup 15008" >/dev/null || xmt_fail "the IPv4 steering rule went with the agent although its listener is held"
for ((i = 0; i < 150; i++)); do
	ip -n "${XMT_P}nodeb" -6 rule show | grep "lookup 15008" >/dev/null || break
	sleep 0.1
done
! ip -n "${XMT_P}nodeb" -6 rule show | grep "lookup 15008" >/dev/null || xmt_fail "the IPv6 steering rule outlived the agent's holder"
! ip -n "${XMT_P}nodeb" rule show | grep "lookup 15008" >/dev/null || xmt_fail "the IPv4 steering rule outlived the agent's holder"
[ -z "$(ip -n "${XMT_P}nodeb" -6 route show table 15008 2>/dev/null)" ] || xmt_fail "the IPv6 steering route outlived the agent's holder"
[ -z "$(ip -n "${XMT_P}nodeb" route show table 15008 2>/dev/null)" ] || xmt_fail "the IPv4 steering route outlived the agent's holder"

xmt_pass "tunnel over IPv6: marker never on node A's uplink, TLS on [pod]:15008, 10 MiB exact, IPv6 VIP tunnelled, STRICT refused by the kernel, PERMISSIVE tunnelled, DISABLE plaintext; IPv4 alongside; an IPv6 connection across agent a's restart"
