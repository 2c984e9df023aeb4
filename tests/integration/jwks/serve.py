#!/usr/bin/env python3
"""serve.py DIR PORTFILE [CERT KEY]: a JWKS server for the integration tests.

GET /NAME answers the file DIR/NAME (404 when absent) with the status in DIR/NAME.status when
that file exists (default 200), so a test rotates keys or breaks the server by rewriting files
(write to a temporary name, then mv). Every request is appended to DIR/requests.log as
"NAME STATUS" before the answer is sent. Listens on a free port of 127.0.0.1 (and of ::1
when it can) and writes the port to PORTFILE. With CERT and KEY (PEM), it
speaks TLS.
"""
import http.server
import os
import socket
import ssl
import sys
import threading
import time

DIR, PORTFILE = sys.argv[1], sys.argv[2]
PARENT = os.getppid()


def orphan_watch():
    """Exit when the test script is gone (killed by a ctest timeout, say): no stray servers."""
    while os.getppid() == PARENT:
        time.sleep(0.5)
    os._exit(0)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = os.path.basename(self.path.split("?", 1)[0])
        path = os.path.join(DIR, name)
        status = 200
        try:
            with open(path + ".status") as f:
                status = int(f.read().strip())
        except FileNotFoundError:
            pass
        try:
            with open(path, "rb") as f:
                body = f.read()
        except (FileNotFoundError, IsADirectoryError):
            status, body = 404, b"not found\n"
        with open(os.path.join(DIR, "requests.log"), "a") as f:
            f.write("%s %d\n" % (name, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class V6Server(http.server.HTTPServer):
    address_family = socket.AF_INET6


def tls(server):
    if len(sys.argv) > 4:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server


srv = tls(http.server.HTTPServer(("127.0.0.1", 0), Handler))
try:  # "localhost" may resolve to ::1 rather than 127.0.0.1: answer there too.
    srv6 = tls(V6Server(("::1", srv.server_address[1]), Handler))
    threading.Thread(target=srv6.serve_forever, daemon=True).start()
except OSError:
    pass
threading.Thread(target=orphan_watch, daemon=True).start()
with open(PORTFILE + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
