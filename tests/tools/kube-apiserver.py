#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A small Kubernetes API server for the tests: the protocol the agent's client speaks, nothing more.

Lists with limit/continue and a resourceVersion; watches (watch=1) as a chunked stream of JSON events, one per
line, with BOOKMARK events every --bookmark-interval seconds and the end at timeoutSeconds; an expired
resourceVersion answered as an ERROR event with code 410 (or as HTTP 410 for a list's continue); TLS with
the test's CA; a bearer token (401 when wrong) or a client certificate (--client-ca), 403 for resources the test forbids; Istio kinds served or
not (404, as with their CRDs absent).

The test drives it over /_ctl/ (no token, same TLS port):
  POST /_ctl/put?resource=R        the body is one object or a JSON array of them: ADDED or MODIFIED
  POST /_ctl/delete?resource=R&namespace=NS&name=N
  POST /_ctl/expire                 every resourceVersion so far expires: open watches get ERROR 410
  POST /_ctl/expire?http=1          the same, but open watches are cut and their reopening gets HTTP 410
  POST /_ctl/expire-continue?resource=R  the next list continue of R is answered HTTP 410 (once)
  POST /_ctl/cut                    open watches send half of an event line and drop the connection
  POST /_ctl/stall                  open watches go silent (no bookmark, no event) until the client leaves
  POST /_ctl/token?value=T          the token accepted from now on
  POST /_ctl/forbid?resource=R      403 for R from now on (no resource: none forbidden)
  POST /_ctl/serve?resource=R       R is served from now on (its CRD installed; --absent, --no-istio)
  GET  /_ctl/stats                  JSON: requests by kind (list, watch, 401, 403, 404) and resource
Python 3 standard library only.
"""
import argparse
import base64
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# path prefix -> resource name, namespaced
CORE = {"services": True, "pods": True, "nodes": False}
GROUPS = {
    ("discovery.k8s.io", "v1"): ["endpointslices"],
    ("networking.istio.io", "v1"): ["destinationrules", "virtualservices"],
    ("networking.istio.io", "v1alpha3"): ["envoyfilters"],
    ("security.istio.io", "v1"): ["peerauthentications", "authorizationpolicies", "requestauthentications"],
}
KINDS = {
    "services": ("Service", "v1"),
    "pods": ("Pod", "v1"),
    "nodes": ("Node", "v1"),
    "endpointslices": ("EndpointSlice", "discovery.k8s.io/v1"),
    "destinationrules": ("DestinationRule", "networking.istio.io/v1"),
    "virtualservices": ("VirtualService", "networking.istio.io/v1"),
    "envoyfilters": ("EnvoyFilter", "networking.istio.io/v1alpha3"),
    "peerauthentications": ("PeerAuthentication", "security.istio.io/v1"),
    "authorizationpolicies": ("AuthorizationPolicy", "security.istio.io/v1"),
    "requestauthentications": ("RequestAuthentication", "security.istio.io/v1"),
}
ISTIO = {"destinationrules", "virtualservices", "envoyfilters", "peerauthentications", "authorizationpolicies",
         "requestauthentications"}


class State:
    def __init__(self, token, absent):
        self.lock = threading.Condition()
        self.rv = 100
        self.token = token
        self.absent = set(absent)  # resources answered 404 (their CRD not installed)
        self.expire_continue = set()  # resources whose next list continue is answered 410
        self.http410 = False  # a watch from an expired resourceVersion: HTTP 410 (else an ERROR event)
        self.forbidden = set()
        self.objects = {r: {} for r in KINDS}  # resource -> (ns, name) -> obj
        self.events = {r: [] for r in KINDS}  # resource -> [(rv, type, obj)]
        self.compacted = 0  # a resourceVersion below this one is too old
        self.generation = {"expire": 0, "cut": 0, "stall": 0}
        self.stats = {}

    def count(self, what, resource):
        key = "%s %s" % (what, resource)
        self.stats[key] = self.stats.get(key, 0) + 1

    def put(self, resource, obj):
        md = obj.setdefault("metadata", {})
        key = (md.get("namespace", ""), md["name"])
        with self.lock:
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            kind, api = KINDS[resource]
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", api)
            typ = "MODIFIED" if key in self.objects[resource] else "ADDED"
            self.objects[resource][key] = obj
            self.events[resource].append((self.rv, typ, obj))
            self.lock.notify_all()

    def delete(self, resource, ns, name):
        with self.lock:
            obj = self.objects[resource].pop((ns, name), None)
            if obj is None:
                return False
            self.rv += 1
            obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
            self.events[resource].append((self.rv, "DELETED", obj))
            self.lock.notify_all()
            return True


STATE = None
ARGS = None


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def resource_of(path):
    """(resource, served) for an API path, or (None, False)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) == 3 and parts[0] == "api" and parts[1] == "v1" and parts[2] in CORE:
        return parts[2], True
    if len(parts) == 4 and parts[0] == "apis":
        names = GROUPS.get((parts[1], parts[2]), [])
        if parts[3] in names:
            return parts[3], parts[3] not in STATE.absent
    return None, False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # --- control ---
    def do_POST(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if u.path == "/_ctl/put":
            objs = json.loads(body)
            for obj in objs if isinstance(objs, list) else [objs]:
                STATE.put(q["resource"], obj)
        elif u.path == "/_ctl/delete":
            if not STATE.delete(q["resource"], q.get("namespace", ""), q["name"]):
                return self.send_json(404, status(404, "NotFound", "no such object"))
        elif u.path in ("/_ctl/expire", "/_ctl/cut", "/_ctl/stall"):
            what = u.path[len("/_ctl/"):]
            with STATE.lock:
                if what == "expire":
                    STATE.http410 = q.get("http") == "1"
                    if STATE.http410:
                        STATE.rv += 1  # the newest version expires too: every watch has to relist
                    STATE.compacted = STATE.rv
                    if STATE.http410:
                        what = "cut"  # the streams drop; their reopening is answered HTTP 410
                STATE.generation[what] += 1
                STATE.lock.notify_all()
        elif u.path == "/_ctl/token":
            with STATE.lock:
                STATE.token = q["value"]
        elif u.path == "/_ctl/expire-continue":
            with STATE.lock:
                STATE.expire_continue.add(q["resource"])
        elif u.path == "/_ctl/serve":
            with STATE.lock:
                STATE.absent.discard(q["resource"])
        elif u.path == "/_ctl/forbid":
            with STATE.lock:
                STATE.forbidden = {q["resource"]} if "resource" in q else set()
        else:
            return self.send_json(404, status(404, "NotFound", "no such control"))
        self.send_json(200, {"ok": True, "resourceVersion": str(STATE.rv)})

    # --- the API ---
    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/_ctl/stats":
            with STATE.lock:
                return self.send_json(200, dict(STATE.stats, rv=STATE.rv))
        resource, served = resource_of(u.path)
        auth = self.headers.get("Authorization", "")
        with STATE.lock:
            if auth != "Bearer " + STATE.token and not self.client_cert_ok():
                STATE.count("401", resource or u.path)
                return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            if resource in STATE.forbidden:
                STATE.count("403", resource)
                return self.send_json(403, status(403, "Forbidden", 'serviceaccount cannot list resource "%s"' % resource))
            if not resource or not served:
                STATE.count("404", resource or u.path)
                return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        if q.get("watch") in ("1", "true"):
            return self.watch(resource, q)
        return self.list(resource, q)

    def client_cert_ok(self):
        """A client certificate the test CA signed, for the user --client-cn (no token needed)."""
        if not ARGS.client_ca:
            return False
        cert = self.connection.getpeercert() or {}
        cns = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
        return ARGS.client_cn in cns

    def list(self, resource, q):
        limit = int(q.get("limit", "0") or 0)
        if ARGS.max_page and (not limit or limit > ARGS.max_page):
            limit = ARGS.max_page  # a server may return fewer items than asked: the client follows continue
        with STATE.lock:
            STATE.count("list", resource)
            start, list_rv = 0, STATE.rv
            if q.get("continue"):
                tok = json.loads(base64.b64decode(q["continue"]))
                start, list_rv = tok["start"], tok["rv"]
                if resource in STATE.expire_continue:
                    STATE.expire_continue.discard(resource)
                    STATE.count("410", resource)
                    return self.send_json(410, status(410, "Expired", "The provided continue parameter is too old"))
                if list_rv < STATE.compacted:
                    return self.send_json(410, status(410, "Expired", "The provided continue parameter is too old"))
            items = [STATE.objects[resource][k] for k in sorted(STATE.objects[resource])]
        page = items[start:start + limit] if limit else items[start:]
        end = start + len(page)
        md = {"resourceVersion": str(list_rv)}
        if end < len(items):
            md["continue"] = base64.b64encode(json.dumps({"start": end, "rv": list_rv}).encode()).decode()
        kind, api = KINDS[resource]
        # List items carry neither kind nor apiVersion, as the real server's.
        strip = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in page]
        self.send_json(200, {"kind": kind + "List", "apiVersion": api, "metadata": md, "items": strip})

    def watch(self, resource, q):
        rv = int(q.get("resourceVersion") or 0)
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + min(timeout, ARGS.max_watch)
        with STATE.lock:
            STATE.count("watch", resource)
            gen = dict(STATE.generation)
            expired = rv < STATE.compacted
            if expired and STATE.http410:
                STATE.count("410", resource)
                return self.send_json(410, status(410, "Expired", "too old resource version: %d" % rv))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if expired:
                self.event("ERROR", status(410, "Expired", "too old resource version: %d" % rv))
                return self.end()
            next_bookmark = time.monotonic() + ARGS.bookmark_interval
            while True:
                with STATE.lock:
                    pending = [e for e in STATE.events[resource] if e[0] > rv]
                    if not pending and STATE.generation == gen:
                        wait = min(deadline, next_bookmark) - time.monotonic()
                        if wait > 0:
                            STATE.lock.wait(wait)
                        pending = [e for e in STATE.events[resource] if e[0] > rv]
                    now_gen = dict(STATE.generation)
                    cur = STATE.rv
                if now_gen["expire"] != gen["expire"]:
                    self.event("ERROR", status(410, "Expired", "too old resource version: %d" % rv))
                    return self.end()
                if now_gen["cut"] != gen["cut"]:
                    line = json.dumps({"type": "ADDED", "object": {"kind": KINDS[resource][0],
                                                                    "metadata": {"name": "cut-here"}}}).encode()
                    self.chunk(line[: len(line) // 2])
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if now_gen["stall"] != gen["stall"]:
                    # Silent until the watch's own end: the client has to notice by itself.
                    while time.monotonic() < deadline:
                        time.sleep(0.2)
                    self.close_connection = True
                    return
                for erv, typ, obj in pending:
                    self.event(typ, obj)
                    rv = erv
                if time.monotonic() >= next_bookmark:
                    self.event("BOOKMARK", {"kind": KINDS[resource][0], "apiVersion": KINDS[resource][1],
                                            "metadata": {"resourceVersion": str(max(rv, cur))}})
                    rv = max(rv, cur)
                    next_bookmark = time.monotonic() + ARGS.bookmark_interval
                if time.monotonic() >= deadline:
                    return self.end()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def event(self, typ, obj):
        self.chunk(json.dumps({"type": typ, "object": obj}).encode() + b"\n")

    def end(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    global STATE, ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--client-ca", help="accept client certificates this CA signed (in place of the token)")
    p.add_argument("--client-cn", default="xmesh-agent", help="the client certificate's CN to accept")
    p.add_argument("--no-istio", action="store_true", help="serve no Istio kind (404: CRDs absent)")
    p.add_argument("--absent", action="append", default=[], help="a resource not served (404), e.g. "
                   "requestauthentications; /_ctl/serve installs it")
    p.add_argument("--istio-version", default="v1", help="the version DestinationRule, VirtualService and "
                   "the security.istio.io kinds are served as (v1 or v1beta1; the other one is 404)")
    p.add_argument("--bookmark-interval", type=float, default=1.0)
    p.add_argument("--max-page", type=int, default=0, help="at most this many items per list page")
    p.add_argument("--max-watch", type=float, default=60.0, help="cap of a watch's timeoutSeconds")
    ARGS = p.parse_args()
    if ARGS.istio_version != "v1":
        for group in ("networking.istio.io", "security.istio.io"):
            GROUPS[(group, ARGS.istio_version)] = GROUPS.pop((group, "v1"))
        for r in ("destinationrules", "virtualservices", "peerauthentications", "authorizationpolicies",
                  "requestauthentications"):
            KINDS[r] = (KINDS[r][0], KINDS[r][1].replace("/v1", "/" + ARGS.istio_version))
    STATE = State(ARGS.token, (ISTIO if ARGS.no_istio else set()) | set(ARGS.absent))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    if ARGS.client_ca:
        ctx.load_verify_locations(ARGS.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    srv = ThreadingHTTPServer((ARGS.addr, ARGS.port), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("kube-apiserver listening on https://%s:%d ready" % (ARGS.addr, ARGS.port), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
