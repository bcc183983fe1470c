#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""An independent HBONE peer for the interop tests: Python's ssl (TLS 1.3, ALPN h2, mutual certificates)
and the h2 state machine (Debian's python3-h2), nothing shared with the C implementation.

client: opens one CONNECT stream to --authority through the HBONE server at --connect, sends --bytes
        random bytes, ends its side, expects them back byte-exact (the target is an echo server). With
        --expect-refused, succeeds only when the TLS connection or the stream is refused. With
        --rounds-seconds T, keeps the stream open instead and echoes --round-bytes random bytes every
        --round-interval seconds until T seconds passed, each round byte-exact, then ends it. With
        --print-cert, prints the serial and notAfter of the certificate the server presented. With --again,
        then opens a second connection offering the first one's TLS session (ticket) and prints
        resumed=True|False for each.
server: serves one TLS connection on 127.0.0.1 (its port written to --port-file), requires a client
        certificate, answers each CONNECT whose :authority is --authority with 200 and echoes the stream's
        bytes back on it (it is its own target); any other request (or one without an --expect-header
        NAME=VALUE exactly) gets 400. Exits 0 once the client
        closed the connection after at least one echoed stream.
"""
import argparse
import os
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

WINDOW = 4 << 20
# Debian's h2 4.1 wants :scheme and :path on every request, CONNECT included (RFC 9113 §8.5 forbids them
# there; fixed in h2 4.2): its header validation is off on the side that sends or receives a CONNECT.


def tls_context(args, server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"])
    ctx.load_verify_locations(args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    if server:
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False  # SPIFFE identities are URI SANs, checked below
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_uri(sock):
    for kind, value in sock.getpeercert().get("subjectAltName", ()):
        if kind == "URI":
            return value
    return None


def pump_out(sock, conn):
    data = conn.data_to_send()
    if data:
        sock.sendall(data)


def run_client(args):
    """One connection, or with --again a second one offering the first one's TLS session (ticket)."""
    ctx = tls_context(args, False)
    kept = {}
    rc = client_once(args, ctx, None, kept)
    if rc or not args.again:
        return rc
    if args.again_wait_file:
        deadline = time.monotonic() + 30
        while not os.path.exists(args.again_wait_file):
            if time.monotonic() > deadline:
                print("no %s within 30 s" % args.again_wait_file, file=sys.stderr)
                return 1
            time.sleep(0.05)
    # --chain N: N connections in all, each offering the session (ticket) the previous one brought
    for i in range(1, max(args.chain, 2)):
        if kept.get("session") is None:
            print("no session ticket from connection %d" % i, file=sys.stderr)
            return 1
        session, kept = kept["session"], {}
        rc = client_once(args, ctx, session, kept)
        if rc:
            return rc
    return 0


def client_once(args, ctx, session, kept):
    host, port = args.connect.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock = ctx.wrap_socket(raw, session=session)
        if args.again:
            print("resumed=%s" % sock.session_reused, flush=True)
        if sock.selected_alpn_protocol() != "h2":
            print("no h2 from the server", file=sys.stderr)
            return 1
        if args.expect_id and peer_uri(sock) != args.expect_id:
            print("server identity %r, expected %r" % (peer_uri(sock), args.expect_id), file=sys.stderr)
            return 1
        if args.print_cert:
            cert = sock.getpeercert()
            print("server-cert serial=%s notAfter=%s" % (cert["serialNumber"], cert["notAfter"]), flush=True)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
        conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        headers = [(":method", "CONNECT"), (":authority", args.authority)]
        if args.forwarded:
            headers.append(("forwarded", args.forwarded))
        headers.append(("traceparent", "00-0123456789abcdef0123456789abcdef-0123456789abcdef-00"))
        conn.send_headers(sid, headers)
        pump_out(sock, conn)
        payload = os.urandom(args.bytes)
        sent = 0
        got = bytearray()
        status = None
        ended = False
        sock.settimeout(0.05)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if status == 200 and args.rounds_seconds:
                return run_rounds(sock, conn, sid, args, got)
            if status == 200 and sent < len(payload):
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(payload) - sent)
                if room > 0:
                    conn.send_data(sid, payload[sent:sent + room])
                    sent += room
            if status == 200 and sent == len(payload) and not ended:
                conn.end_stream(sid)
                ended = True
            pump_out(sock, conn)
            try:
                data = sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = int(dict(ev.headers)[":status"])
                    if status != 200:
                        print("status %d" % status)
                        return 0 if args.expect_refused else 1
                elif isinstance(ev, h2.events.DataReceived):
                    got += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    want = args.expect_prefix.encode() + payload
                    if bytes(got) != want:
                        print("echo differs: %d of %d bytes" % (len(got), len(want)), file=sys.stderr)
                        return 1
                    print("echoed %d bytes" % len(got))
                    conn.close_connection()
                    pump_out(sock, conn)
                    # the ticket came after the handshake; close_notify keeps OpenSSL from voiding the session
                    kept["session"] = sock.session
                    if args.again and kept["session"] is not None:
                        # a ticket's session id is the SHA-256 of the ticket (OpenSSL): a new ticket, a new id
                        print("session-id=%s" % kept["session"].id.hex(), flush=True)
                    try:
                        sock.settimeout(1)
                        sock.unwrap()
                    except (ssl.SSLError, OSError):
                        pass
                    return 1 if args.expect_refused else 0
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    print("refused: %r" % ev)
                    return 0 if args.expect_refused else 1
            pump_out(sock, conn)
        print("no answer", file=sys.stderr)
        return 1
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print("refused: %s" % e)
        return 0 if args.expect_refused else 1


def run_rounds(sock, conn, sid, args, got):
    """The stream is open (200): a round every --round-interval s until --rounds-seconds passed, each
    --round-bytes random bytes echoed back byte-exact (after --expect-prefix, once); then END_STREAM, and
    the target's end with nothing more."""
    prefix = args.expect_prefix.encode()
    start = time.monotonic()
    rounds = 0
    want = bytearray(prefix)
    ended = False

    def wait(pred, until):
        # pumps the connection (PINGs are answered) until pred() or the time is over
        nonlocal ended
        while not pred():
            if time.monotonic() >= until:
                return False
            pump_out(sock, conn)
            try:
                data = sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not data:
                raise ConnectionError("the server closed the connection")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    got.extend(ev.data)
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    ended = True
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise ConnectionError("stream ended: %r" % ev)
            pump_out(sock, conn)
        return True

    try:
        while True:
            payload = os.urandom(args.round_bytes)
            want += payload
            conn.send_data(sid, payload)
            pump_out(sock, conn)
            if not wait(lambda: len(got) >= len(want) or ended, time.monotonic() + 5):
                print("round %d: %d of %d bytes after 5 s" % (rounds + 1, len(got), len(want)), file=sys.stderr)
                return 1
            if bytes(got) != bytes(want):
                print("round %d: echo differs (%d bytes, want %d)" % (rounds + 1, len(got), len(want)),
                      file=sys.stderr)
                return 1
            rounds += 1
            print("round %d byte-exact at %.1f s" % (rounds, time.monotonic() - start), flush=True)
            if time.monotonic() - start >= args.rounds_seconds:
                break
            nxt = start + rounds * args.round_interval
            wait(lambda: ended, nxt)
            if ended:
                print("the target ended the stream after %d rounds" % rounds, file=sys.stderr)
                return 1
        conn.end_stream(sid)
        pump_out(sock, conn)
        if not wait(lambda: ended, time.monotonic() + 5):
            print("no end of stream from the target", file=sys.stderr)
            return 1
        if bytes(got) != bytes(want):
            print("bytes after the last round", file=sys.stderr)
            return 1
        print("rounds %d byte-exact over %.1f s" % (rounds, time.monotonic() - start), flush=True)
        conn.close_connection()
        pump_out(sock, conn)
        return 0
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print("after %d rounds: %s" % (rounds, e), file=sys.stderr)
        return 1


def run_server(args):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(lsock.getsockname()[1]))
    os.rename(tmp, args.port_file)
    lsock.settimeout(30)
    raw, _ = lsock.accept()
    sock = tls_context(args, True).wrap_socket(raw, server_side=True)
    client_id = peer_uri(sock)
    if args.expect_id and client_id != args.expect_id:
        print("client identity %r, expected %r" % (client_id, args.expect_id), file=sys.stderr)
        return 1
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding="utf-8", validate_inbound_headers=False))
    conn.local_settings = h2.settings.Settings(client=False, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    conn.initiate_connection()
    pump_out(sock, conn)
    pending = {}  # stream → bytes to echo
    ended = set()
    echoed = 0
    sock.settimeout(0.05)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for sid in list(pending):
            buf = pending[sid]
            while buf:
                try:
                    room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(buf))
                except h2.exceptions.StreamClosedError:
                    buf = b""
                    break
                if room <= 0:
                    break
                conn.send_data(sid, buf[:room])
                buf = buf[room:]
            pending[sid] = buf
            if not buf and sid in ended:
                conn.end_stream(sid)
                del pending[sid]
                echoed += 1
        pump_out(sock, conn)
        try:
            data = sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except (ssl.SSLError, ConnectionError):
            break
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                h = dict(ev.headers)
                ok = h.get(":method") == "CONNECT" and h.get(":authority") == args.authority
                ok = ok and h.get("forwarded", "").startswith('for="') and len(h.get("traceparent", "")) == 55
                for nv in args.expect_header:
                    name, _, value = nv.partition("=")
                    ok = ok and h.get(name) == value
                print("request %r" % sorted(h.items()))
                if ok:
                    conn.send_headers(ev.stream_id, [(":status", "200")])
                    pending[ev.stream_id] = b""
                else:
                    conn.send_headers(ev.stream_id, [(":status", "400")], end_stream=True)
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if ev.stream_id in pending:
                    pending[ev.stream_id] += ev.data
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                deadline = 0
        pump_out(sock, conn)
    print("echoed %d streams for %s" % (echoed, client_id))
    return 0 if echoed > 0 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["client", "server"])
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--connect")
    ap.add_argument("--authority", required=True)
    ap.add_argument("--bytes", type=int, default=1 << 20)
    ap.add_argument("--expect-id")
    ap.add_argument("--expect-header", action="append", default=[],
                    help="server: NAME=VALUE that each CONNECT must carry exactly (else 400)")
    ap.add_argument("--expect-prefix", default="",
                    help="the target sends this before echoing (xm-server's id line)")
    ap.add_argument("--expect-refused", action="store_true")
    ap.add_argument("--forwarded", default='for="127.0.0.1:40000"',
                    help="the client's Forwarded header (\"\": none)")
    ap.add_argument("--port-file")
    ap.add_argument("--rounds-seconds", type=float, default=0,
                    help="client: keep the stream open this long, echoing a round every --round-interval")
    ap.add_argument("--round-bytes", type=int, default=4096)
    ap.add_argument("--round-interval", type=float, default=1.0)
    ap.add_argument("--again", action="store_true",
                    help="client: then a second connection that offers the first one's session ticket")
    ap.add_argument("--chain", type=int, default=2,
                    help="client, with --again: this many connections, each offering the previous one's ticket")
    ap.add_argument("--again-wait-file", help="client: before the second connection, wait for this file")
    ap.add_argument("--print-cert", action="store_true",
                    help="client: print the serial and notAfter of the server's certificate")
    args = ap.parse_args()
    return run_client(args) if args.mode == "client" else run_server(args)


if __name__ == "__main__":
    sys.exit(main())
