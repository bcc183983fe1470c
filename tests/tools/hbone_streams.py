#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Several HBONE CONNECT streams on ONE TLS connection (Python ssl + h2, independent of the agent's code), driven
by steps given on the command line, in order:

  open:NAME:AUTHORITY:STATUS       open a stream, require its response status
  echo:NAME:BYTES                  send BYTES random bytes on an open stream, require them echoed byte-exact
                                   (after --expect-prefix, which the target sends first)
  wait:PATH                        wait (30 s at most) until PATH exists; the clock of `until` starts here
  until:NAME:AUTHORITY:STATUS:SEC  open a stream every 50 ms until one answers STATUS, within SEC seconds of the
                                   last `wait` (each other answer's stream is closed)
  close:NAME                       end an open stream and require the target's end
  reset:NAME:CODE:SEC              require the server's RST_STREAM with error CODE on an open stream within SEC
                                   seconds of the last `wait` (bytes before it are dropped)

Prints one line per step; exits 1 at the first step that fails."""

import argparse
import os
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

WINDOW = 4 << 20


class Conn:
    def __init__(self, args):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["h2"])
        ctx.load_verify_locations(args.ca)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.check_hostname = False  # SPIFFE identities are URI SANs
        host, port = args.connect.rsplit(":", 1)
        self.sock = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10))
        self.sock.settimeout(0.05)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
        self.h2.initiate_connection()
        self.streams = {}  # id -> {"status", "data", "ended", "reset"}
        self.forwarded = args.forwarded
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, pred, seconds):
        until = time.monotonic() + seconds
        while not pred():
            if time.monotonic() > until:
                return False
            self.flush()
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not data:
                raise ConnectionError("the server closed the TLS connection")
            for ev in self.h2.receive_data(data):
                st = self.streams.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.ConnectionTerminated):
                    raise ConnectionError("GOAWAY: %r" % ev)
                if st is None:
                    continue
                if isinstance(ev, h2.events.ResponseReceived):
                    st["status"] = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    st["data"] += ev.data
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    st["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    st["reset"] = True
                    st["code"] = int(ev.error_code)
            self.flush()
        return True

    def open(self, authority):
        sid = self.h2.get_next_available_stream_id()
        headers = [(":method", "CONNECT"), (":authority", authority)]
        if self.forwarded:
            headers.append(("forwarded", self.forwarded))
        self.h2.send_headers(sid, headers)
        self.streams[sid] = {"status": None, "data": bytearray(), "ended": False, "reset": False, "sent": b""}
        st = self.streams[sid]
        if not self.pump(lambda: st["status"] is not None or st["reset"], 10):
            raise ConnectionError("no answer to the CONNECT to %s" % authority)
        return sid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--forwarded", default="")
    ap.add_argument("--expect-prefix", default="")
    ap.add_argument("steps", nargs="+")
    args = ap.parse_args()
    prefix = args.expect_prefix.encode()
    names = {}
    mark = time.monotonic()
    try:
        c = Conn(args)
        for step in args.steps:
            kind, _, rest = step.partition(":")
            if kind == "open":
                name, authority_and = rest.split(":", 1)
                authority, status = authority_and.rsplit(":", 1)
                status = int(status)
                sid = c.open(authority)
                got = c.streams[sid]["status"]
                print("open %s %s: status %s" % (name, authority, got), flush=True)
                if got != status:
                    return 1
                names[name] = sid
            elif kind == "echo":
                name, n = rest.split(":")
                st = c.streams[names[name]]
                payload = os.urandom(int(n))
                st["sent"] += payload
                c.h2.send_data(names[name], payload)
                want = prefix + st["sent"]
                if not c.pump(lambda: len(st["data"]) >= len(want) or st["ended"] or st["reset"], 10) or \
                        bytes(st["data"]) != want:
                    print("echo %s: %d of %d bytes" % (name, len(st["data"]), len(want)), flush=True)
                    return 1
                print("echo %s: %d bytes byte-exact" % (name, len(st["data"])), flush=True)
            elif kind == "wait":
                deadline = time.monotonic() + 30
                while not os.path.exists(rest):
                    if time.monotonic() > deadline:
                        print("wait: no %s within 30 s" % rest, flush=True)
                        return 1
                    c.pump(lambda: False, 0.02)  # keep answering PINGs
                mark = time.monotonic()
                print("wait: %s" % rest, flush=True)
            elif kind == "until":
                name, authority_and = rest.split(":", 1)
                authority, status, seconds = authority_and.rsplit(":", 2)
                tries = 0
                while True:
                    sid = c.open(authority)
                    tries += 1
                    got = c.streams[sid]["status"]
                    if got == int(status):
                        names[name] = sid
                        print("until %s: status %s after %.3f s (%d streams)" %
                              (name, got, time.monotonic() - mark, tries), flush=True)
                        break
                    # a 200 the server reset since (a policy change re-checks open streams) needs no end
                    if got == 200 and not c.streams[sid]["reset"]:
                        c.h2.end_stream(sid)
                    if time.monotonic() - mark > float(seconds):
                        print("until %s: still status %s after %.3f s" % (name, got, time.monotonic() - mark),
                              flush=True)
                        return 1
                    c.pump(lambda: False, 0.05)
            elif kind == "reset":
                name, code, seconds = rest.split(":")
                st = c.streams[names[name]]
                c.pump(lambda: st["reset"] or st["ended"], max(0.0, mark + float(seconds) - time.monotonic()))
                if not st["reset"]:
                    print("reset %s: none within %s s (ended %s)" % (name, seconds, st["ended"]), flush=True)
                    return 1
                print("reset %s: error code %d after %.3f s" % (name, st["code"], time.monotonic() - mark),
                      flush=True)
                if st["code"] != int(code, 0):
                    return 1
            elif kind == "close":
                st = c.streams[names[rest]]
                c.h2.end_stream(names[rest])
                if not c.pump(lambda: st["ended"] or st["reset"], 10) or not st["ended"]:
                    print("close %s: no end from the target" % rest, flush=True)
                    return 1
                print("close %s: ended" % rest, flush=True)
            else:
                print("unknown step %r" % step, file=sys.stderr)
                return 2
        c.h2.close_connection()
        c.flush()
        print("ok %d streams on one TLS connection" % len(c.streams), flush=True)
        return 0
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print("failed: %s" % e, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
