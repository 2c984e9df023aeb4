#!/usr/bin/env python3
"""slow_client.py PORT TOKEN SECONDS [BYTES INTERVAL] - an event-stream client that reads slowly.

Opens GET /v1/events/stream with a tiny receive buffer, waits for the start of the stream
("retry:"), prints "started <local port>", then for SECONDS either reads nothing (no BYTES)
or reads at most BYTES every INTERVAL seconds (a trickle: the daemon's write timeout never
fires, only its own back-pressure can end the stream). Prints "closed after <n> bytes" when
the daemon ends the connection, "timeout after <n> bytes" otherwise. Stdlib only.
"""
import socket
import sys
import time


def main():
    port, token, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    chunk = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    interval = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n" % token).encode())
    got = b""
    s.settimeout(5)
    while b"retry:" not in got:
        data = s.recv(512)
        if not data:
            print("closed before start", flush=True)
            return 1
        got += data
    print("started %d" % s.getsockname()[1], flush=True)
    total = len(got)
    deadline = time.monotonic() + seconds
    if not chunk:
        # Read nothing more: the daemon must stop reading Redis for us, then give up on us.
        time.sleep(seconds)
        return 0
    s.settimeout(interval)
    while time.monotonic() < deadline:
        try:
            data = s.recv(chunk)
        except socket.timeout:
            continue
        except ConnectionResetError:
            data = b""
        if not data:
            print("closed after %d bytes" % total, flush=True)
            return 0
        total += len(data)
        time.sleep(interval)
    print("timeout after %d bytes" % total, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
