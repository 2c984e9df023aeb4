#!/usr/bin/env python3
"""slow_client.py PORT TOKEN SECONDS - an event-stream client that stops reading.

Opens GET /v1/events/stream with a tiny receive buffer, waits for the start of the stream
("retry:"), prints "started" and then reads nothing more for SECONDS, so the daemon's
back-pressure can be observed (in its log and metrics). Stdlib only.
"""
import socket
import sys
import time


def main():
    port, token, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n" % token).encode())
    got = b""
    s.settimeout(5)
    while b"retry:" not in got:
        chunk = s.recv(512)
        if not chunk:
            print("closed before start", flush=True)
            return 1
        got += chunk
    print("started", flush=True)
    # Read nothing more: the daemon must stop reading Redis for us, then give up on us.
    time.sleep(seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
