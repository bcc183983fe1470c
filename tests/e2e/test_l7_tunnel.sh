#!/usr/bin/env bash
# The L7 proxy's upstreams to pods of other nodes go through the node's HBONE tunnel (docs/l7.md "Upstreams
# through the tunnel"), both agents --hbone: an HTTP Service whose endpoint is pod sa on node B (STRICT); client
# pod pa on node A requests it through the Service VIP, agent A's proxy takes the request and hands its upstream
# socket to agent A's HBONE client (tunnel_submit), which carries it in mTLS to sa:15008 on node B.
#   - 200 from sa, which saw the proxy's x-forwarded-for naming pa;
#   - node A's request metric says connection_security_policy="mutual_tls", with pa's and sa's SPIFFE ids;
#     the access log line says mutual_tls too; the connection was handed to the tunnel, not captured;
#   - 400 keep-alive requests on 4 client connections ride at most 4 more tunnelled connections (pooled);
#   - a Service whose endpoint is sa on a port nothing listens on: node B's tunnel answers 503, agent A's proxy
#     hears "refused" from its tunnel (xmesh_l7_tunnel_answers_total) and answers 503 UF,URX after the
#     VirtualService's 2 retries (3 tunnel CONNECTs), byte-exact Envoy body, as for a refused TCP connect;
#   - a client in the mesh cgroup that is no pod (node A's own namespace) gets 503 UF: no identity to present;
#   - node A's own plaintext to sa's port is refused (STRICT in node B's kernel).
#
#        a0 │                          b0 │
#   nodea up0 10.199.0.1         nodeb up0 10.199.0.2
#   br0 10.200.1.1               br0 10.200.2.1 ── sa .11 (serviceAccount web; xm-http on 9080)
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
for c in curl python3; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi

SA=10.200.2.11
PA=10.200.1.11
VIP=10.96.0.70
VIP_GONE=10.96.0.71

xmx_two_nodes_pods
xmx_pod nodeb sa "$SA" 10.200.2.1
xmt_bg http-sa sa plain "$XM_HTTP" --id sa --port 9080
xmt_wait_for "$(xmt_bg_log http-sa)" ' ready$' 5 "${XMT_BG[http-sa]}" || xmt_fail "xm-http in sa did not start"
xmx_pod nodea pa "$PA" 10.200.1.1

# config MODE: the web pod's PeerAuthentication mode; the rest never changes.
config() {
	{
		xmx_yaml_node nodea 10.199.0.1
		xmx_yaml_node nodeb 10.199.0.2
		printf '%s\n' "---" "apiVersion: v1" "kind: Pod" "metadata:" "  name: sa" "  namespace: default" "  labels:" \
			"    app: web" "spec:" "  nodeName: nodeb" "  serviceAccountName: web" "status:" "  podIP: $SA"
		printf '%s\n' "---" "apiVersion: v1" "kind: Pod" "metadata:" "  name: pa" "  namespace: default" "  labels:" \
			"    app: sleep" "spec:" "  nodeName: nodea" "  serviceAccountName: sleep" "status:" "  podIP: $PA"
		printf '%s\n' "---" "apiVersion: v1" "kind: Service" "metadata:" "  name: web" "  namespace: default" \
			"spec:" "  clusterIP: $VIP" "  clusterIPs:" "  - $VIP" "  ports:" "  - name: http" "    port: 80" \
			"    protocol: TCP" "    targetPort: 9080"
		printf '%s\n' "---" "apiVersion: discovery.k8s.io/v1" "kind: EndpointSlice" "metadata:" "  name: web-nodeb" \
			"  namespace: default" "  labels:" "    kubernetes.io/service-name: web" "addressType: IPv4" "ports:" \
			"- name: http" "  port: 9080" "  protocol: TCP" "endpoints:" "- addresses:" "  - \"$SA\"" \
			"  conditions:" "    ready: true" "  nodeName: nodeb"
		# "gone": sa's port 9091, where nothing listens; 2 retries on connect-failure.
		printf '%s\n' "---" "apiVersion: v1" "kind: Service" "metadata:" "  name: gone" "  namespace: default" \
			"spec:" "  clusterIP: $VIP_GONE" "  clusterIPs:" "  - $VIP_GONE" "  ports:" "  - name: http" "    port: 80" \
			"    protocol: TCP" "    targetPort: 9091"
		printf '%s\n' "---" "apiVersion: discovery.k8s.io/v1" "kind: EndpointSlice" "metadata:" "  name: gone-nodeb" \
			"  namespace: default" "  labels:" "    kubernetes.io/service-name: gone" "addressType: IPv4" "ports:" \
			"- name: http" "  port: 9091" "  protocol: TCP" "endpoints:" "- addresses:" "  - \"$SA\"" \
			"  conditions:" "    ready: true" "  nodeName: nodeb"
		printf '%s\n' "---" "apiVersion: networking.istio.io/v1" "kind: VirtualService" "metadata:" "  name: gone" \
			"  namespace: default" "spec:" "  hosts: [gone]" "  http:" "  - retries:" "      attempts: 2" \
			"      retryOn: connect-failure" "    route:" "    - destination:" "        host: gone"
		printf '%s\n' "---" "apiVersion: security.istio.io/v1" "kind: PeerAuthentication" "metadata:" \
			"  name: web-mode" "  namespace: default" "spec:" "  selector:" "    matchLabels:" "      app: web" \
			"  mtls:" "    mode: $1"
	} | xmt_config_write mesh.yaml
}
config STRICT

# Agent a first: it generates the root under the shared --state-dir, which agent b then loads.
xmx_agent a nodea nodea up0 --hbone --proxy-workers 1 --access-log "$XMT_TMP/access-a.log" --access-log-format json
xmh_agent_b --proxy-workers 1

XMT_SUBTEST="pa -> web (on node B) through agent a's proxy and the tunnel"
# The tunnel's client may still be waiting for the trust bundle: the first requests may get 503 UF.
ok=0
for _ in $(seq 1 50); do
	code=$(xmh_in_pod pa curl -sS -o "$XMT_TMP/echo.json" -w '%{http_code}' --max-time 5 -H 'Host: web' \
		"http://$VIP/echo" 2>/dev/null || true)
	if [ "$code" = 200 ]; then
		ok=1
		break
	fi
	sleep 0.1
done
[ "$ok" = 1 ] || xmt_fail "pa -> web: last status $code; $(tail -n 5 "$XMT_TMP/agent-a.log")"
python3 - "$XMT_TMP/echo.json" "$PA" <<'PY' || xmt_fail "sa's view: $(cat "$XMT_TMP/echo.json")"
import json, sys
e = json.load(open(sys.argv[1]))
assert e["id"] == "sa", e
h = {k.lower(): v for k, v in e["headers"]}
assert h.get("x-forwarded-for") == sys.argv[2], h  # the proxy forwarded it: pa is the client
PY
for _ in 1 2 3 4; do
	code=$(xmh_in_pod pa curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H 'Host: web' "http://$VIP/" || true)
	[ "$code" = 200 ] || xmt_fail "pa -> web: $code"
done

XMT_SUBTEST="node A's request metric: mutual_tls and both principals"
sleep 1
xmx_scrape nodea >"$XMT_TMP/metrics-a"
python3 - "$XMT_TMP/metrics-a" <<'PY' || xmt_fail "metrics: $(grep -E '^istio_requests_total|xmesh_l7_tunnel' "$XMT_TMP/metrics-a")"
import re, sys
n = 0
for line in open(sys.argv[1]):
    m = re.match(r'^istio_requests_total\{(.*)\} (\S+)$', line)
    if not m:
        continue
    l = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(1)))
    if l.get("destination_service_name") != "web" or l.get("response_code") != "200":
        continue
    assert l["reporter"] == "source", l
    assert l["connection_security_policy"] == "mutual_tls", l
    assert l["source_principal"] == "spiffe://cluster.local/ns/default/sa/sleep", l
    assert l["destination_principal"] == "spiffe://cluster.local/ns/default/sa/web", l
    n += float(m.group(2))
assert n == 5, n
PY
n=$(xmx_metric nodea xmesh_l7_tunnel_upstream_connections_total)
[ "$n" -ge 1 ] || xmt_fail "xmesh_l7_tunnel_upstream_connections_total=$n"
grep -F '"connection_security_policy":"mutual_tls"' "$XMT_TMP/access-a.log" >/dev/null ||
	xmt_fail "access log: $(tail -n 2 "$XMT_TMP/access-a.log")"
handoff=$(awk '$1 == "xmesh_hbone_outbound_connections_total{source=\"handoff\"}" { print $2 }' "$XMT_TMP/metrics-a")
capture=$(awk '$1 == "xmesh_hbone_outbound_connections_total{source=\"capture\"}" { print $2 }' "$XMT_TMP/metrics-a")
[ "${handoff:-0}" = "$n" ] || xmt_fail "the tunnel took ${handoff:-0} hand-offs for the proxy's $n tunnelled connection(s)"
[ "${capture:-0}" = 0 ] || xmt_fail "the kernel captured $capture connection(s): the request bypassed the proxy"
xmt_log "node A: $n tunnelled upstream connection(s) for 5 requests, all handed to the tunnel"

XMT_SUBTEST="400 keep-alive requests on 4 connections reuse the pooled tunnelled connections"
t0=$(date +%s%3N)
out=$(xmh_in_pod pa "$XM_HTTP_LOAD" --addr "$VIP:80" --host web --path / --conns 4 --requests 100 2>&1) ||
	xmt_fail "load through the tunnel: $out"
ms=$(($(date +%s%3N) - t0))
grep -E "^status 200 400$" <<<"$out" >/dev/null || xmt_fail "load through the tunnel: $out"
n2=$(xmx_metric nodea xmesh_l7_tunnel_upstream_connections_total)
[ "$n2" -le $((n + 4)) ] || xmt_fail "$((n2 - n)) new tunnelled connections for 4 client connections"
xmt_log "400 requests (4 connections) through the tunnel in $ms ms, $((n2 - n)) new tunnelled connection(s); $(tail -n 1 <<<"$out")"

XMT_SUBTEST="a closed port on the remote pod: the tunnel's answer is refused, 503 UF,URX after 2 retries"
opened=$(xmx_metric nodea 'xmesh_l7_tunnel_answers_total{outcome="opened"}')
[ "$opened" -ge 1 ] || xmt_fail "the proxy heard no 'opened' answer for its tunnelled connections: $opened"
refused0=$(xmx_metric nodea 'xmesh_l7_tunnel_answers_total{outcome="refused"}')
hand0=$(xmx_metric nodea 'xmesh_hbone_outbound_connections_total{source="handoff"}')
code=$(xmh_in_pod pa curl -sS -o "$XMT_TMP/gone.body" -w '%{http_code}' --max-time 10 -H 'Host: gone' "http://$VIP_GONE/" ||
	true)
[ "$code" = 503 ] || xmt_fail "pa -> gone: $code, not 503"
printf '%s' "upstream connect error or disconnect/reset before headers. reset reason: connection failure" |
	cmp -s - "$XMT_TMP/gone.body" || xmt_fail "pa -> gone: body $(cat "$XMT_TMP/gone.body")"
refused=$(xmx_metric nodea 'xmesh_l7_tunnel_answers_total{outcome="refused"}')
hand=$(xmx_metric nodea 'xmesh_hbone_outbound_connections_total{source="handoff"}')
[ $((refused - refused0)) = 3 ] || xmt_fail "answers refused: $((refused - refused0)), want 3 (1 try + 2 retries)"
[ $((hand - hand0)) = 3 ] || xmt_fail "hand-offs to the tunnel: $((hand - hand0)), want 3"
python3 - "$XMT_TMP/access-a.log" <<'PY' || xmt_fail "access log: $(grep -F '"gone' "$XMT_TMP/access-a.log" | tail -n 1)"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
gone = [l for l in lines if l.get("authority") == "gone"]
assert len(gone) == 1, gone
assert gone[0]["status"] == 503, gone[0]
flags = set(gone[0]["response_flags"].split(","))
assert flags == {"UF", "URX"}, gone[0]
PY
xmt_log "a closed remote port: 503 UF,URX after 3 tunnel CONNECTs, each answered refused"

XMT_SUBTEST="a client that is no pod gets 503 UF, never plaintext"
# A process of node A's own namespace inside agent a's mesh cgroup: captured by the proxy, but no identity.
code=$(xmh_in_pod nodea curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H 'Host: web' "http://$VIP/" || true)
[ "$code" = 503 ] || xmt_fail "a client that is no pod got $code"
n=$(xmx_metric nodea 'xmesh_l7_tunnel_refused_total{reason="no_identity"}')
[ "$n" -ge 1 ] || xmt_fail "xmesh_l7_tunnel_refused_total{reason=\"no_identity\"}=$n"

XMT_SUBTEST="node A's plaintext to sa is refused (STRICT)"
out=$(xmt_nsrun nodea "$XM_CLIENT" refuse --addr "$SA:9080" --timeout-ms 2000 2>&1) ||
	xmt_fail "node A's plaintext to the STRICT pod was not refused: $out"

XMT_SUBTEST="DISABLE: the proxy's upstream is plaintext again"
config DISABLE
ok=0
for _ in $(seq 1 30); do
	sleep 0.1
	before=$(xmx_metric nodea xmesh_l7_tunnel_upstream_connections_total)
	xmh_in_pod pa curl -sS -o /dev/null --max-time 5 -H 'Host: web' -H 'Connection: close' "http://$VIP/" || true
	if [ "$(xmx_metric nodea xmesh_l7_tunnel_upstream_connections_total)" = "$before" ] &&
		xmx_scrape nodea | grep -E '^istio_requests_total\{.*destination_service_name="web".*connection_security_policy="unknown",response_code="200"' >/dev/null; then
		ok=1
		break
	fi
done
[ "$ok" = 1 ] || xmt_fail "under DISABLE the proxy still tunnels: $(xmx_scrape nodea | grep -E '^istio_requests_total.*web' | head -n 3)"
t0=$(date +%s%3N)
out=$(xmh_in_pod pa "$XM_HTTP_LOAD" --addr "$VIP:80" --host web --path / --conns 4 --requests 100 2>&1) ||
	xmt_fail "plaintext load: $out"
xmt_log "400 requests (4 connections) in plaintext in $(($(date +%s%3N) - t0)) ms; $(tail -n 1 <<<"$out")"

xmt_pass "L7 upstream through the tunnel: 200, mutual_tls with both principals on node A, plaintext refused, DISABLE plaintext"
