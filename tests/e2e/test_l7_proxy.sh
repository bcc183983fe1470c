#!/usr/bin/env bash
# The L7 proxy in the agent, end to end: a client pod dials an HTTP service VIP (IPv4 or IPv6), the kernel hands
# the connection to the agent's proxy on the node address, the proxy routes and balances per request. Checks:
# forwarding headers, per-request round robin on one keep-alive connection, directResponse, 10 MiB chunked
# download and 100-continue upload byte-exact, a chunked response to an HTTP/1.0 client de-chunked and
# close-delimited (byte-exact against a direct fetch), a smuggling attempt refused with 400 while another client keeps
# working, request metrics equal to the access-log lines, 1,000 concurrent keep-alive connections, requests per
# service in xmesh status, and an agent restart under keep-alive load without a
# failed request (the listening sockets handed from the old agent to the new one through the holder).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
for c in curl python3 sha256sum; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi
xmt_node_create
xmt_pod_add b1 11
xmt_pod_add b2 12
xmt_pod_add c1 101
xmt_http_server b1
xmt_http_server b2
t="$XMT_TMP"
vip="http://$XMT_VIP:$XMT_PORT"

{
	# This node's InternalIPs in both families: the proxy listens on both, the capture sends each family there.
	printf '%s\n' '---' 'apiVersion: v1' 'kind: Node' "metadata: {name: $XMT_NODE_NAME}" 'status:' '  addresses:' \
		"  - {type: InternalIP, address: $XMT_SUBNET.1}" "  - {type: InternalIP, address: \"${XMT_SUBNET6}:1\"}"
	xmt_yaml_service --name reviews --vip "$XMT_VIP" --vip "$XMT_VIP6" --port-name http
	xmt_yaml_slice --service reviews --port-name http "$(xmt_pod_ip b1)" "$(xmt_pod_ip b2)"
	xmt_yaml_slice --service reviews --family 6 --port-name http "$(xmt_pod_ip6 b1)" "$(xmt_pod_ip6 b2)"
	xmt_yaml_dr --host reviews.default.svc.cluster.local --lb ROUND_ROBIN
	printf '%s\n' '---' 'apiVersion: networking.istio.io/v1' 'kind: VirtualService' \
		'metadata: {name: reviews, namespace: default}' 'spec:' '  hosts: [reviews]' '  http:' \
		'  - match: [{uri: {exact: /teapot}}]' '    directResponse: {status: 418, body: {string: short and stout}}' \
		'  - route: [{destination: {host: reviews}}]'
} | xmt_config_write reviews.yaml
xmt_agent_start --access-log "$t/access.log" --proxy-workers 2
curl_c1() { xmt_in_pod c1 curl -sS --max-time 30 "$@"; }

XMT_SUBTEST="forwarded through the proxy"
curl_c1 -o "$t/echo.json" -H 'Host: reviews' "$vip/echo"
python3 - "$t/echo.json" "$(xmt_pod_ip c1)" <<'PY' || xmt_fail "echo through the proxy: $(cat "$t/echo.json")"
import json, sys
e = json.load(open(sys.argv[1]))
h = {k.lower(): v for k, v in e["headers"]}
assert h.get("x-forwarded-for") == sys.argv[2], h
assert h.get("x-forwarded-proto") == "http", h
assert len(h.get("x-request-id", "")) == 36, h
PY

XMT_SUBTEST="IPv6"
curl_c1 -g -o "$t/echo6.json" -H 'Host: reviews' "http://[$XMT_VIP6]:$XMT_PORT/echo"
python3 - "$t/echo6.json" "$(xmt_pod_ip6 c1)" <<'PY' || xmt_fail "echo over IPv6: $(cat "$t/echo6.json")"
import json, sys
e = json.load(open(sys.argv[1]))
h = {k.lower(): v for k, v in e["headers"]}
assert h.get("x-forwarded-for") == sys.argv[2], h
PY

XMT_SUBTEST="per-request round robin on one connection"
# curl reuses one connection for URLs given together; the proxy balances each request on its own.
curl_c1 -o "$t/rr" -H 'Host: reviews' "$vip/" -o "$t/rr2" "$vip/" -o "$t/rr3" "$vip/" -o "$t/rr4" "$vip/" \
	-w '%{num_connects}\n' >"$t/conns"
cat "$t/rr" "$t/rr2" "$t/rr3" "$t/rr4" >"$t/rr_all"
if ! grep -q b1 "$t/rr_all" || ! grep -q b2 "$t/rr_all"; then
	xmt_fail "4 requests on one connection reached only: $(cat "$t/rr_all")"
fi
[ "$(awk '{ s += $1 } END { print s }' "$t/conns")" = 1 ] || xmt_fail "curl opened $(cat "$t/conns") connections"

XMT_SUBTEST="local replies"
code=$(curl_c1 -o "$t/b" -w '%{http_code}' -H 'Host: reviews' "$vip/teapot")
if [ "$code" != 418 ] || [ "$(cat "$t/b")" != "short and stout" ]; then xmt_fail "directResponse: $code $(cat "$t/b")"; fi

XMT_SUBTEST="10 MiB both ways"
n=$((10 * 1024 * 1024))
curl_c1 -o "$t/dl" -H 'Host: reviews' "$vip/bytes/$n?chunked=1"
want=$(python3 -c "import hashlib,sys; n=int(sys.argv[1]); h=hashlib.sha256()
for k in range(0, n // 16 + 1): h.update(b'%015x\n' % k if (k + 1) * 16 <= n else (b'%015x\n' % k)[:n - k * 16])
print(h.hexdigest())" "$n")
[ "$(sha256sum <"$t/dl" | cut -d' ' -f1)" = "$want" ] || xmt_fail "10 MiB chunked download differs ($(stat -c %s "$t/dl") bytes)"
head -c "$n" /dev/urandom >"$t/up"
curl_c1 -v -H 'Host: reviews' -H 'Expect: 100-continue' -T "$t/up" -o "$t/up.json" "$vip/upload" 2>"$t/up.err"
grep -q '< HTTP/1.1 100 Continue' "$t/up.err" || xmt_fail "no 100 Continue relayed: $(grep '^<' "$t/up.err")"
python3 - "$t/up.json" "$(sha256sum <"$t/up" | cut -d' ' -f1)" "$n" <<'PY' || xmt_fail "upload: $(cat "$t/up.json")"
import json, sys
e = json.load(open(sys.argv[1]))
assert e["body_sha256"] == sys.argv[2] and e["body_len"] == int(sys.argv[3]), e
PY

XMT_SUBTEST="HTTP/1.0 client of a chunked response"
# RFC 9112 §6.1: no chunked to a 1.0 client. The proxy relays the payload alone and closes after it, as Envoy.
n=1048576
curl_c1 -o "$t/direct10" "http://$(xmt_pod_ip b1):$XMT_TARGET/bytes/$n?chunked=1"
for ka in "" "Connection: keep-alive"; do
	curl_c1 --http1.0 -D "$t/h10.head" -o "$t/h10" -H 'Host: reviews' ${ka:+-H "$ka"} "$vip/bytes/$n?chunked=1"
	if grep -qi '^transfer-encoding:' "$t/h10.head" || ! grep -qi '^connection: close' "$t/h10.head"; then
		xmt_fail "1.0 client (${ka:-no keep-alive}) got: $(tr -d '\r' <"$t/h10.head")"
	fi
	if [ "$(stat -c %s "$t/h10")" != "$n" ] || [ "$(sha256sum <"$t/h10")" != "$(sha256sum <"$t/direct10")" ]; then
		xmt_fail "1.0 client (${ka:-no keep-alive}): $(stat -c %s "$t/h10") bytes, differ from the direct fetch"
	fi
done

XMT_SUBTEST="smuggling refused, others unaffected"
xmt_bg steady c1 mesh "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --conns 2 --duration 3 --interval-ms 20
xmt_in_pod c1 python3 - "$XMT_VIP" "$XMT_PORT" >"$t/smuggle" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"POST / HTTP/1.1\r\nHost: reviews\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: reviews\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.decode(errors="replace").split("\r\n")[0], data.count(b"HTTP/1.1 "))
PY
[ "$(cat "$t/smuggle")" = "HTTP/1.1 400 Bad Request 1" ] || xmt_fail "CL+TE: $(cat "$t/smuggle") (want one 400, then close)"
wait "${XMT_BG[steady]}" || xmt_fail "the other client failed: $(tail -n 3 "$(xmt_bg_log steady)")"

XMT_SUBTEST="metrics and access log"
sleep 1
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"
grep -q '^xmesh_l7_parse_errors_total{error="cl_and_te"} 1$' "$t/metrics" ||
	xmt_fail "parse error not counted: $(grep parse_errors "$t/metrics")"
total=$(awk '/^istio_requests_total\{/ { s += $NF } END { print s + 0 }' "$t/metrics")
lines=$(wc -l <"$t/access.log")
[ "$total" -gt 10 ] || xmt_fail "istio_requests_total sums to $total"
[ "$lines" = "$total" ] || xmt_fail "$lines access-log lines for $total requests in istio_requests_total"

XMT_SUBTEST="1,000 concurrent keep-alive connections"
xmt_in_pod c1 sh -c "ulimit -n 4096 && exec \"\$0\" \"\$@\"" "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" \
	--host reviews --conns 1000 --requests 5 >"$t/k1000" 2>&1 || xmt_fail "1000 connections: $(tail -n 3 "$t/k1000")"
grep -q '^ok=5000 failed=0 ' "$t/k1000" || xmt_fail "1000 connections: $(tail -n 1 "$t/k1000")"
xmt_xmesh status --admin "$XMT_ADMIN" >"$t/status"
grep -q '^http: .*reviews.*: [0-9]* requests' "$t/status" || xmt_fail "xmesh status shows no HTTP requests: $(cat "$t/status")"

XMT_SUBTEST="restart under load"
xmt_bg load c1 mesh "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --conns 20 --duration 8 \
	--interval-ms 5 --reconnect-on-close
sleep 2
xmt_agent_stop
xmt_agent_start --access-log "$t/access2.log" --proxy-workers 2
wait "${XMT_BG[load]}" || xmt_fail "requests failed across the restart: $(tail -n 4 "$(xmt_bg_log load)")"
grep -q 'listening sockets held for the next agent' "$XMT_TMP/agent-1.log" ||
	xmt_fail "the stopping agent handed nothing over: $(grep 'l7' "$XMT_TMP/agent-1.log" | tail -n 5)"
grep -q 'took over [1-9][0-9]* listening sockets' "$XMT_AGENT_LOG" ||
	xmt_fail "the new agent took no listening socket over: $(grep 'l7' "$XMT_AGENT_LOG" | head -n 5)"
[ ! -e "$XMT_ADMIN.l7" ] || xmt_fail "the holder's socket $XMT_ADMIN.l7 is still there after the handover"
summary=$(tail -n 1 "$(xmt_bg_log load)")
xmt_note "restart: $summary"
xmt_pass "proxy: routing, per-request RR, directResponse, 10 MiB both ways, 1.0 de-chunked, 400 on smuggling, metrics = access log, restart: $summary"
