#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""plain_hold: one long-lived plaintext TCP connection to an echo server (xm-stream serve), for the e2e tests of
closing what a policy change denies.

    plain_hold.py ADDR PORT WAIT_FILE SECS

Connects and echoes 4 KiB ("open" once echoed), waits for WAIT_FILE to exist, then for SECS seconds sends 1 KiB
every 20 ms and checks each echo. Prints one final line and exits 0:
    closed how=reset|eof|aborted at_ms=EPOCH_MS echoed=N   the connection ended (the peer reset or closed it)
    alive echoed=N                                        every echo came back until SECS ran out
Exit 1 on a connect failure or a wrong echo byte.
"""
import errno
import os
import socket
import sys
import time


def now_ms():
    return int(time.time() * 1000)


def echo(s, data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(len(data) - len(got))
        if not chunk:
            raise EOFError
        got += chunk
    if got != data:
        print("wrong echo", flush=True)
        sys.exit(1)


def main():
    addr, port, wait_file, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    try:
        s = socket.create_connection((addr, port), timeout=5)
    except OSError as e:
        print(f"connect failed: {e}", flush=True)
        sys.exit(1)
    echoed = 0
    echo(s, bytes(i & 0xFF for i in range(4096)))
    echoed += 4096
    print("open", flush=True)
    while not os.path.exists(wait_file):
        time.sleep(0.01)
    deadline = time.monotonic() + secs
    block = bytes((i * 7) & 0xFF for i in range(1024))
    try:
        while time.monotonic() < deadline:
            echo(s, block)
            echoed += len(block)
            time.sleep(0.02)
    except EOFError:
        print(f"closed how=eof at_ms={now_ms()} echoed={echoed}", flush=True)
        return
    except OSError as e:
        how = {errno.ECONNRESET: "reset", errno.EPIPE: "reset", errno.ECONNABORTED: "aborted"}.get(e.errno)
        if how is None:
            print(f"error {e}", flush=True)
            sys.exit(1)
        print(f"closed how={how} at_ms={now_ms()} echoed={echoed}", flush=True)
        return
    print(f"alive echoed={echoed}", flush=True)


if __name__ == "__main__":
    main()
