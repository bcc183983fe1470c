#!/usr/bin/env bash
# VirtualService routing through the agent's proxy, end to end from a client pod dialing the service VIP: header,
# uri, method and query matches to DestinationRule subsets (by pod labels), an 80/20 weighted split within ±10
# points over 500 requests, rewrite (uri and authority), redirect, a mirror that gets a shadow copy while the
# client sees only the primary's answer, and an Upgrade passed through as a byte tunnel.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
xmt_init "$@"
for c in curl python3; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
if [ ! -x "$XM_HTTP" ] || [ ! -x "$XM_HTTP_LOAD" ]; then xmt_skip "xm-http / xm-http-load not built (make tools)"; fi
xmt_node_create
xmt_pod_add v1 11
xmt_pod_add v2 12
xmt_pod_add shadow 13
xmt_pod_add c1 101
xmt_http_server v1
xmt_http_server v2
xmt_http_server shadow
t="$XMT_TMP"
vip="http://$XMT_VIP:$XMT_PORT"

{
	xmt_yaml_node
	xmt_yaml_pod v1 app=reviews version=v1
	xmt_yaml_pod v2 app=reviews version=v2
	xmt_yaml_pod shadow app=shadow
	xmt_yaml_service --name reviews --vip "$XMT_VIP" --port-name http
	xmt_yaml_slice --service reviews --port-name http "$(xmt_pod_ip v1)" "$(xmt_pod_ip v2)"
	xmt_yaml_service --name shadow --vip 10.96.0.11 --port-name http
	xmt_yaml_slice --service shadow --port-name http "$(xmt_pod_ip shadow)"
	cat <<'YAML'
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /v2only}}, {method: {exact: DELETE}}, {queryParams: {canary: {exact: "yes"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /, authority: rewritten.example}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {exact: /go}}]
    redirect: {uri: /gone, authority: elsewhere.example, redirectCode: 302}
  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
  - match: [{uri: {prefix: /mirrored}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: shadow}
  - route: [{destination: {host: reviews, subset: v1}}]
YAML
} | xmt_config_write reviews.yaml
xmt_agent_start --proxy-workers 2
curl_c1() { xmt_in_pod c1 curl -sS --max-time 30 -H 'Host: reviews' "$@"; }
backend_of() { curl_c1 -o /dev/null -D - "$@" | awk -F': ' 'tolower($1) == "x-backend" { gsub("\r", "", $2); print $2 }'; }

XMT_SUBTEST="matches"
[ "$(backend_of "$vip/")" = v1 ] || xmt_fail "the default route goes to v1"
[ "$(backend_of -H 'end-user: jason' "$vip/")" = v2 ] || xmt_fail "header end-user: jason goes to v2"
[ "$(backend_of -H 'end-user: other' "$vip/")" = v1 ] || xmt_fail "another end-user stays on v1"
[ "$(backend_of "$vip/v2only/x")" = v2 ] || xmt_fail "uri prefix /v2only goes to v2"
[ "$(backend_of -X DELETE "$vip/")" = v2 ] || xmt_fail "method DELETE goes to v2"
[ "$(backend_of "$vip/?canary=yes")" = v2 ] || xmt_fail "query canary=yes goes to v2"
[ "$(backend_of "$vip/?canary=no")" = v1 ] || xmt_fail "query canary=no stays on v1"

XMT_SUBTEST="rewrite"
curl_c1 -o "$t/echo.json" "$vip/old/echo?x=1"
python3 - "$t/echo.json" <<'PY' || xmt_fail "rewrite: $(cat "$t/echo.json")"
import json, sys
e = json.load(open(sys.argv[1]))
h = {k.lower(): v for k, v in e["headers"]}
assert e["id"] == "v1", e
assert e["path"] == "/echo" and e["query"] == "x=1", e  # the matched prefix /old/ replaced by /
assert h["host"] == "rewritten.example", h
PY

XMT_SUBTEST="redirect"
curl_c1 -o /dev/null -D "$t/h" "$vip/go?a=b"
grep -q '^HTTP/1.1 302' "$t/h" || xmt_fail "redirect code: $(head -n 1 "$t/h")"
grep -qi '^location: http://elsewhere.example/gone?a=b' "$t/h" || xmt_fail "redirect location: $(cat "$t/h")"

XMT_SUBTEST="80/20 split"
xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$XMT_VIP:$XMT_PORT" --host reviews --path /split --conns 5 --requests 100 \
	>"$t/split" || xmt_fail "split load: $(tail -n 3 "$t/split")"
v1=$(awk '$1 == "id" && $2 == "v1" { print $3 }' "$t/split")
v2=$(awk '$1 == "id" && $2 == "v2" { print $3 }' "$t/split")
[ $((v1 + v2)) = 500 ] || xmt_fail "500 requests, got v1=$v1 v2=$v2"
if [ "$v1" -lt 350 ] || [ "$v1" -gt 450 ]; then xmt_fail "80/20 split off by more than 10 points: v1=$v1 v2=$v2"; fi
xmt_note "80/20 split: v1=$v1 v2=$v2"

XMT_SUBTEST="mirror"
[ "$(backend_of "$vip/mirrored/one")" = v1 ] || xmt_fail "the mirrored route answers from v1"
curl_c1 -o /dev/null "$vip/mirrored/two"
sleep 1
code=$(xmt_in_pod c1 curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://10.96.0.11/")
[ "$code" = 200 ] || xmt_fail "the shadow service answers directly: $code"
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"
grep -q '^xmesh_l7_mirrored_requests_total 2$' "$t/metrics" ||
	xmt_fail "two shadow copies expected: $(grep mirrored "$t/metrics")"
# The shadow pod itself saw both copies (and the one direct request): xm-http counts them when it stops.
xmt_bg_stop http-shadow
grep -q ' requests=3 ' "$(xmt_bg_log http-shadow)" || xmt_fail "shadow pod: $(tail -n 1 "$(xmt_bg_log http-shadow)")"

XMT_SUBTEST="upgrade"
xmt_in_pod c1 python3 - "$XMT_VIP" "$XMT_PORT" >"$t/up" <<'PY' || xmt_fail "upgrade: $(cat "$t/up")"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: reviews\r\nConnection: Upgrade\r\nUpgrade: xm-echo\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(4096)
head, rest = data.split(b"\r\n\r\n", 1)
assert head.startswith(b"HTTP/1.1 101"), head
msg = b"tunnelled bytes \x00\x01\x02 both ways" * 100
s.sendall(msg)
while len(rest) < len(msg):
    b = s.recv(65536)
    assert b, "tunnel closed early"
    rest += b
assert rest == msg, (len(rest), len(msg))
print("ok")
PY
xmt_pass "routing: header/uri/method/query matches, rewrite, redirect, 80/20 split (v1=$v1 v2=$v2), mirror, upgrade tunnel"
