#!/usr/bin/env bash
# The L7 test tools themselves, with no mesh in between: xm-http in a backend pod answered from a client pod by
# curl, raw sockets (python3) and xm-http-load, over IPv4 and IPv6. Every endpoint, bodies byte-exact by sha256
# (a 10 MiB chunked download, a 10 MiB upload behind Expect: 100-continue, a chunked upload), HEAD, 204,
# Connection: close, pipelined responses in order behind a slow one, a slow response that holds no one else up,
# the Upgrade byte tunnel, a smuggling-shaped request rejected with 400, a server's idle close and the client's
# reconnect, and 1,000 concurrent keep-alive connections. The L7 proxy tests rely on these tools: a tool bug
# must show here, not there.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
XMT_NEEDS_AGENT=0
xmt_init "$@"
for c in curl python3 sha256sum; do command -v "$c" >/dev/null || xmt_skip "command $c not installed"; done
xmt_node_create
xmt_pod_add b1 11
xmt_pod_add c1 101
xmt_http_server b1
ip=$(xmt_pod_ip b1)
ip6=$(xmt_pod_ip6 b1)
base="http://$ip:$XMT_TARGET"
t="$XMT_TMP"

curl_c1() { xmt_in_pod c1 curl -sS --max-time 30 "$@"; }

# The /bytes pattern, computed independently: line k of 16 bytes is "%015x\n" of k.
pattern_sha() {
	python3 -c "import hashlib,sys; n=int(sys.argv[1]); h=hashlib.sha256()
for k in range(0, n // 16 + 1): h.update(b'%015x\n' % k if (k + 1) * 16 <= n else (b'%015x\n' % k)[:n - k * 16])
print(h.hexdigest())" "$1"
}

json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

XMT_SUBTEST="GET /"
for u in "$base/" "http://[$ip6]:$XMT_TARGET/"; do
	curl_c1 -D "$t/h" -o "$t/b" "$u"
	[ "$(cat "$t/b")" = b1 ] || xmt_fail "$u answered '$(cat "$t/b")', expected b1"
	grep -qi '^x-backend: b1' "$t/h" || xmt_fail "$u: no x-backend header: $(cat "$t/h")"
done

XMT_SUBTEST="echo"
printf 'hello body' >"$t/eb"
curl_c1 -o "$t/echo.json" -H 'X-Test: one two' --data-binary @"$t/eb" "$base/echo?a=1&b=x%20y"
python3 - "$t/echo.json" "$(sha256sum <"$t/eb" | cut -d' ' -f1)" <<'PY' || xmt_fail "echo: $(cat "$t/echo.json")"
import json, sys
e = json.load(open(sys.argv[1]))
assert e["id"] == "b1" and e["method"] == "POST" and e["path"] == "/echo", e
assert e["query"] == "a=1&b=x%20y" and e["version"] == "1.1", e
assert ["X-Test", "one two"] in e["headers"], e["headers"]
assert e["body_len"] == 10 and e["body_sha256"] == sys.argv[2], e
PY

XMT_SUBTEST="bytes"
n=$((10 * 1024 * 1024))
want=$(pattern_sha "$n")
curl_c1 -D "$t/h" -o "$t/dl" "$base/bytes/$n?chunked=1"
grep -qi '^transfer-encoding: chunked' "$t/h" || xmt_fail "?chunked=1 was not chunked: $(cat "$t/h")"
[ "$(sha256sum <"$t/dl" | cut -d' ' -f1)" = "$want" ] || xmt_fail "chunked 10 MiB download differs ($(stat -c %s "$t/dl") bytes)"
curl_c1 -D "$t/h" -o "$t/dl" "http://[$ip6]:$XMT_TARGET/bytes/$n"
grep -qi "^content-length: $n" "$t/h" || xmt_fail "no Content-Length $n: $(cat "$t/h")"
[ "$(sha256sum <"$t/dl" | cut -d' ' -f1)" = "$want" ] || xmt_fail "10 MiB download differs"
for k in 0 1 15 17 100001; do
	curl_c1 -o "$t/dl" "$base/bytes/$k?chunked=1"
	[ "$(sha256sum <"$t/dl" | cut -d' ' -f1)" = "$(pattern_sha "$k")" ] || xmt_fail "/bytes/$k?chunked=1 differs"
done
curl_c1 -I -o /dev/null -D "$t/h" "$base/bytes/100"
grep -qi '^content-length: 100' "$t/h" || xmt_fail "HEAD /bytes/100: $(cat "$t/h")"

XMT_SUBTEST="upload"
head -c "$n" /dev/urandom >"$t/up"
up_sha=$(sha256sum <"$t/up" | cut -d' ' -f1)
curl_c1 -v -H 'Expect: 100-continue' -T "$t/up" -o "$t/up.json" "$base/upload" 2>"$t/up.err"
grep -q '< HTTP/1.1 100 Continue' "$t/up.err" || xmt_fail "no 100 Continue: $(grep '^<' "$t/up.err")"
[ "$(json_field "$t/up.json" body_sha256)" = "$up_sha" ] || xmt_fail "100-continue upload: $(cat "$t/up.json")"
[ "$(json_field "$t/up.json" body_len)" = "$n" ] || xmt_fail "upload length: $(cat "$t/up.json")"
curl_c1 -H 'Transfer-Encoding: chunked' --data-binary @"$t/up" -o "$t/up.json" "$base/upload"
[ "$(json_field "$t/up.json" body_sha256)" = "$up_sha" ] || xmt_fail "chunked upload: $(cat "$t/up.json")"
code=$(curl_c1 -o /dev/null -w '%{http_code}' "$base/upload")
[ "$code" = 405 ] || xmt_fail "GET /upload answered $code, expected 405"

XMT_SUBTEST="status"
for s in 200 204 304 404 503; do
	code=$(curl_c1 -o "$t/b" -w '%{http_code}' "$base/status/$s")
	[ "$code" = "$s" ] || xmt_fail "/status/$s answered $code"
	case $s in 204 | 304) [ ! -s "$t/b" ] || xmt_fail "/status/$s had a body" ;; esac
done
code=$(curl_c1 -o /dev/null -w '%{http_code}' "$base/nothing-here")
[ "$code" = 404 ] || xmt_fail "unknown path answered $code"

XMT_SUBTEST="slow"
curl_c1 -o "$t/slow" -w '%{time_total}\n' "$base/slow?ms=1500" >"$t/slow.t" &
slow_pid=$!
sleep 0.3
fast=$(curl_c1 -o /dev/null -w '%{time_total}' "$base/")
wait "$slow_pid" || xmt_fail "the slow request failed"
awk -v f="$fast" 'BEGIN { exit !(f < 1.0) }' || xmt_fail "a request took ${fast}s while a slow one waited"
awk '{ exit !($1 >= 1.5) }' "$t/slow.t" || xmt_fail "/slow?ms=1500 answered after $(cat "$t/slow.t")s"
[ "$(cat "$t/slow")" = b1 ] || xmt_fail "slow body '$(cat "$t/slow")'"

XMT_SUBTEST="raw"
# Pipelining (three requests in one write, answered in order behind a slow one), Connection: close, the
# Upgrade tunnel, and a request with both Content-Length and Transfer-Encoding.
xmt_in_pod c1 python3 - "$ip" "$XMT_TARGET" <<'PY' || xmt_fail "raw socket checks failed"
import re, socket, sys
addr = (sys.argv[1], int(sys.argv[2]))

def read_all(s):
    out = b""
    s.settimeout(10)
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d

def statuses(data):
    return [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]

s = socket.create_connection(addr)
s.sendall(b"GET /slow?ms=200 HTTP/1.1\r\nHost: a\r\n\r\n"
          b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n"
          b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
d = read_all(s)
assert statuses(d) == [200, 201, 200], d
assert b"Connection: close" in d and b'"body_len":3' in d, d

s = socket.create_connection(addr)
s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
s.settimeout(10)
d = b""
while b"early" not in d:
    d += s.recv(65536)
assert d.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and b"Upgrade: websocket" in d, d
payload = bytes(range(256)) * 4096
s.sendall(payload)
got = b""
while len(got) < len(payload):
    got += s.recv(65536)
assert got == payload, "tunnel echo differs"
s.shutdown(socket.SHUT_WR)
assert read_all(s) == b"", "bytes after the tunnel's end"

s = socket.create_connection(addr)
s.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
d = read_all(s)
assert statuses(d) == [400], d
print("raw ok")
PY

XMT_SUBTEST="idle close"
# A backend that closes keep-alive connections idle for 200 ms: the load tool fails the requests it could not
# send without --reconnect-on-close, and reconnects and loses none with it.
xmt_bg idle b1 plain "$XM_HTTP" --id b1-idle --port 8081 --idle-timeout-ms 200
xmt_wait_for "$(xmt_bg_log idle)" ' ready$' 5 "${XMT_BG[idle]}" || xmt_fail "xm-http --idle-timeout-ms did not start"
xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$ip:8081" --conns 10 --requests 4 --interval-ms 600 >"$t/idle1" 2>&1 &&
	xmt_fail "no failure although the server closed idle connections: $(tail -n 1 "$t/idle1")"
if [ "$(xmt_field "$t/idle1" ok)" != 10 ] || [ "$(xmt_field "$t/idle1" failed)" != 30 ]; then
	xmt_fail "without --reconnect-on-close: $(tail -n 1 "$t/idle1"), expected ok=10 failed=30"
fi
xmt_in_pod c1 "$XM_HTTP_LOAD" --addr "$ip:8081" --conns 10 --requests 4 --interval-ms 600 --reconnect-on-close \
	>"$t/idle2" 2>&1 || xmt_fail "with --reconnect-on-close: $(tail -n 1 "$t/idle2")"
if [ "$(xmt_field "$t/idle2" ok)" != 40 ] || [ "$(xmt_field "$t/idle2" reconnects)" != 30 ]; then
	xmt_fail "with --reconnect-on-close: $(tail -n 1 "$t/idle2"), expected ok=40 reconnects=30"
fi
xmt_bg_stop idle || true
# 10 + 30 closes above; the client's own last close may count too when it was slow to exit
[ "$(xmt_field "$(xmt_bg_log idle)" idle_closed)" -ge 40 ] || xmt_fail "idle closes: $(tail -n 1 "$(xmt_bg_log idle)")"

XMT_SUBTEST="1000 keep-alive connections"
xmt_bg load c1 plain "$XM_HTTP_LOAD" --addr "[$ip6]:$XMT_TARGET" --conns 1000 --requests 5 --hold 5
xmt_wait_for "$(xmt_bg_log load)" '^holding' 30 "${XMT_BG[load]}" ||
	xmt_fail "the load tool did not finish its requests: $(tail -n 3 "$(xmt_bg_log load)")"
held=$(ip netns exec "${XMT_P}b1" ss -Htn state established "( sport = :$XMT_TARGET )" | wc -l)
((held >= 1000)) || xmt_fail "xm-http holds $held connections, expected 1000"
xmt_bg_stop load || true
out=$(xmt_bg_log load)
if [ "$(xmt_field "$out" ok)" != 5000 ] || [ "$(xmt_field "$out" failed)" != 0 ] ||
	[ "$(xmt_field "$out" connects)" != 1000 ]; then
	xmt_fail "load: $(tail -n 3 "$out")"
fi
[ "$(xmt_id_count "$out" b1)" = 5000 ] || xmt_fail "load: x-backend counts: $(cat "$out")"
grep -q '^holding 1000$' "$out" || xmt_fail "load: $(grep holding "$out")"

xmt_pass "xm-http endpoints byte-exact over IPv4 and IPv6; xm-http-load held 1000 keep-alive connections"
