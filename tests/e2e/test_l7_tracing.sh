#!/usr/bin/env bash
# Trace propagation through the agent's proxy: a request forced by x-b3-sampled starts a trace whose ids the
# backend sees the same in traceparent, b3 and x-b3-*; a request with a traceparent keeps its trace id and gets a
# child span (parent = the caller's span, its decision and tracestate kept); invalid or duplicated trace headers
# are replaced by one set; x-request-id is kept; the access log's trace_id is the trace the backend saw. The
# sampled requests' client spans reach a Zipkin collector written here, with the ids the backend saw.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/l7_reviews_lib.sh
. "$(dirname "$0")/l7_reviews_lib.sh"
xmt_init "$@"
xml_reviews 1
t="$XMT_TMP"
vip="http://$XMT_VIP:$XMT_PORT"

{
	xml_yaml_reviews 1
} | xmt_config_write reviews.yaml
# A Zipkin collector in the node's namespace: each POST body (a JSON array of spans) one line of spans.jsonl.
xmt_bg collector node plain python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        ok = self.path == "/api/v2/spans" and self.headers["content-type"] == "application/json"
        with open(sys.argv[1], "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(202 if ok else 400)
        self.send_header("content-length", "0")
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", 9411), H).serve_forever()
' "$t/spans.jsonl"
sleep 0.5
# No new trace is sampled by rate: every sampled one below was forced by its caller.
xmt_agent_start --proxy-workers 2 --access-log "$t/access.log" --access-log-format json --trace-sampling 0 \
	--trace-endpoint http://127.0.0.1:9411/api/v2/spans
curl_c1() { xmt_in_pod c1 curl -sS --max-time 30 -H 'Host: reviews' "$@"; }

TID=4bf92f3577b34da6a3ce929d0e0e4736
SID=00f067aa0ba902b7
curl_c1 -o "$t/forced.json" -H 'x-b3-sampled: 1' -H 'x-request-id: req-forced' "$vip/echo"
curl_c1 -o "$t/w3c.json" -H "traceparent: 00-$TID-$SID-01" -H 'tracestate: congo=t61rcWkgMzE' \
	-H 'x-request-id: req-w3c' "$vip/echo"
curl_c1 -o "$t/unsampled.json" -H "traceparent: 00-$TID-$SID-00" -H 'x-request-id: req-unsampled' "$vip/echo"
curl_c1 -o "$t/invalid.json" -H 'traceparent: 00-zz-01' -H 'b3: nonsense' -H 'x-b3-spanid: 12' \
	-H 'x-request-id: req-invalid' "$vip/echo"
curl_c1 -o "$t/none.json" -H 'x-request-id: req-none' "$vip/echo"
sleep 1

XMT_SUBTEST="headers the backend saw"
python3 - "$t" "$TID" "$SID" <<'PY' || xmt_fail "trace headers: $(cat "$t"/*.json)"
import json, re, sys
t, tid, sid = sys.argv[1:4]
def seen(name):
    e = json.load(open("%s/%s.json" % (t, name)))
    h = {}
    for k, v in e["headers"]:
        h.setdefault(k.lower(), []).append(v)
    for k in ("traceparent", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-request-id"):
        assert len(h.get(k, [])) == 1, (name, k, h)
    return {k: v[0] for k, v in h.items()}
def consistent(h, name):
    m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0([01])", h["traceparent"])
    assert m, (name, h)
    assert m.group(1) == h["x-b3-traceid"] and m.group(2) == h["x-b3-spanid"], (name, h)
    assert m.group(3) == h["x-b3-sampled"], (name, h)
    b3 = h["x-b3-traceid"] + "-" + h["x-b3-spanid"] + "-" + h["x-b3-sampled"]
    if "x-b3-parentspanid" in h:
        b3 += "-" + h["x-b3-parentspanid"]
    assert h["b3"] == b3, (name, h)
    return m.group(1), m.group(2)
h = seen("forced")
trace, span = consistent(h, "forced")
assert h["x-b3-sampled"] == "1" and "x-b3-parentspanid" not in h and trace != "0" * 32, h
assert h["x-request-id"] == "req-forced", h
h = seen("w3c")
trace, span = consistent(h, "w3c")
assert trace == tid and span != sid and h["x-b3-parentspanid"] == sid and h["x-b3-sampled"] == "1", h
assert h.get("tracestate") == "congo=t61rcWkgMzE", h
h = seen("unsampled")
trace, span = consistent(h, "unsampled")
assert trace == tid and h["x-b3-sampled"] == "0", h
h = seen("invalid")
trace, span = consistent(h, "invalid")
assert "x-b3-parentspanid" not in h and h["x-b3-sampled"] == "0", h
h = seen("none")
trace, span = consistent(h, "none")
assert h["x-b3-sampled"] == "0" and h["x-request-id"] == "req-none", h
PY

XMT_SUBTEST="access log trace_id"
python3 - "$t" <<'PY' || xmt_fail "access log: $(cat "$t/access.log")"
import json, sys
t = sys.argv[1]
lines = {l["request_id"]: l for l in map(json.loads, open(t + "/access.log"))}
for name in ("forced", "w3c", "unsampled", "invalid", "none"):
    h = {k.lower(): v for k, v in json.load(open("%s/%s.json" % (t, name)))["headers"]}
    got = lines["req-" + name]["trace_id"]
    assert got == h["x-b3-traceid"], (name, got, h["x-b3-traceid"])
PY
XMT_SUBTEST="spans at the collector"
# Two sampled requests: their spans are posted within the exporter's 1 s batching.
for _ in $(seq 60); do
	[ "$(python3 -c 'import json,sys; print(sum(len(json.loads(l)) for l in open(sys.argv[1])))' "$t/spans.jsonl" \
		2>/dev/null)" = 2 ] && break
	sleep 0.1
done
sleep 1.5 # and nothing more arrives
python3 - "$t" "$TID" "$SID" "$(xmt_pod_ip b1)" <<'PY' || xmt_fail "spans: $(cat "$t/spans.jsonl" 2>&1)"
import json, sys
t, tid, sid, b1 = sys.argv[1:5]
spans = [s for l in open(t + "/spans.jsonl") for s in json.loads(l)]
assert len(spans) == 2, spans
log = {l["request_id"]: l for l in map(json.loads, open(t + "/access.log"))}
for name in ("forced", "w3c"):
    h = {k.lower(): v for k, v in json.load(open("%s/%s.json" % (t, name)))["headers"]}
    s = [s for s in spans if s["id"] == h["x-b3-spanid"]]
    assert len(s) == 1, (name, h, spans)
    s = s[0]
    assert s["traceId"] == h["x-b3-traceid"] == log["req-" + name]["trace_id"], (name, s, h)
    assert s.get("parentId") == h.get("x-b3-parentspanid"), (name, s, h)
    assert s["kind"] == "CLIENT" and s["name"] == "reviews/echo", s
    assert s["localEndpoint"]["serviceName"] == "productpage", s
    assert s["remoteEndpoint"]["ipv4"] == b1 and s["timestamp"] > 1.7e15 and s["duration"] > 0, s
    tags = s["tags"]
    assert tags["http.method"] == "GET" and tags["http.status_code"] == "200" and tags["response_flags"] == "-", s
    assert tags["http.url"] == "http://reviews/echo" and "reviews" in tags["upstream_cluster"], s
    assert "error" not in tags, s
w3c = [s for s in spans if s["traceId"] == tid]
assert len(w3c) == 1 and w3c[0]["parentId"] == sid, spans
PY
xmt_nsrun node curl -sS --max-time 10 http://127.0.0.1:15090/metrics >"$t/metrics"
grep -q '^xmesh_trace_spans_total{result="exported"} 2$' "$t/metrics" ||
	xmt_fail "span counters: $(grep xmesh_trace_spans_total "$t/metrics")"
grep -q '^xmesh_trace_spans_total{result="dropped"} 0$' "$t/metrics" ||
	xmt_fail "span counters: $(grep xmesh_trace_spans_total "$t/metrics")"

xmt_pass "trace headers propagated as one consistent set, trace ids kept, access log trace_id matches, sampled spans at the collector"
