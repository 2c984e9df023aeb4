#!/usr/bin/env python3
"""sink.py - a webhook receiver for the sink tests (test_sink_*.sh), stdlib only.

  sink.py --port-file F --log L [--answers LIST] [--answers-file F] [--default ANSWER]
          [--tls-cert C --tls-key K] [--idle-close SECONDS] [--conn-log F] [--watch-pid PID]

Listens on 127.0.0.1, port 0 (the port is written to --port-file once listening), plain HTTP or
HTTPS with --tls-cert/--tls-key. Every request is appended to --log as one JSON line (before it
is answered): {"t": unix time, "method", "path", "headers": {name: value}, "body": text,
"answer": what it got, "conn": the number of the connection it came on (1, 2, ... in accept
order), "conn_req": its place on that connection (1-based), "resumed": whether that TLS
connection resumed a session (null over plain HTTP)}. Answers come from --answers, a comma-separated list consumed one per
request in arrival order, then --default (200) for every later request. An answer is
  CODE             e.g. 200, 500, 400
  CODE:SECONDS     CODE with "Retry-After: SECONDS", e.g. 429:1
  CODE:date+N      CODE with "Retry-After: <HTTP-date, asctime form>" N seconds after the next
                   whole second at answer time; the log entry's "retry_at" holds that time
  hang             never answer (the connection stays open until the client gives up)
  close            close the connection without answering
  CODE+close       CODE with "Connection: close", then close the connection
  CODE/1.0         CODE as an HTTP/1.0 answer (Content-Length, no Connection header); the
                   connection stays open
  CODE+chunked     CODE with a chunked body
  CODE+eof         CODE with a body that ends with the connection (no Content-Length)
  CODE+extra       CODE, then two stray bytes after the answer (in the same write)
Answers are HTTP/1.1 with Content-Length otherwise, and the connection stays open for the
next request until the client closes it, or for --idle-close SECONDS without a request. With
--conn-log, "open N" and "close N" (N: the connection's number) are appended to that file as
connections are accepted and closed.
The answer list can also be replaced while running: write a new list into the file
--answers-file (read at each request when it exists; it is consumed like --answers, and
deleted once read). With --watch-pid, the server exits when that process is gone.
"""
import argparse
import json
import os
import select
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"answers": [], "default": "200", "log": None, "answers_file": None,
         "conn_log": None, "conns": 0}


def conn_event(what, n):
    with LOCK:
        if STATE["conn_log"]:
            with open(STATE["conn_log"], "a") as fh:
                fh.write("%s %d %.6f\n" % (what, n, time.time()))


def next_answer():
    with LOCK:
        f = STATE["answers_file"]
        if f and os.path.exists(f):
            with open(f) as fh:
                STATE["answers"] = [a.strip() for a in fh.read().split(",") if a.strip()]
            os.unlink(f)
        if STATE["answers"]:
            return STATE["answers"].pop(0)
        return STATE["default"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def setup(self):
        with LOCK:
            STATE["conns"] += 1
            self.conn_no = STATE["conns"]
        self.conn_reqs = 0
        conn_event("open", self.conn_no)
        super().setup()

    def finish(self):
        try:
            super().finish()
            self.request.shutdown(socket.SHUT_WR)  # the FIN is out before "close" is logged
        except OSError:
            pass
        finally:
            conn_event("close", self.conn_no)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        answer = next_answer()
        now = time.time()
        retry_at = None
        self.conn_reqs += 1
        resumed = getattr(self.connection, "session_reused", None)
        code, _, retry_after = answer.partition(":")
        code, plus, how = code.partition("+")
        code, slash, version = code.partition("/")
        if retry_after.startswith("date+"):
            retry_at = int(now) + 1 + int(retry_after[5:])
            retry_after = time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(retry_at))
        entry = {
            "t": now,
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "answer": answer,
            "retry_at": retry_at,
            "conn": self.conn_no,
            "conn_req": self.conn_reqs,
            "resumed": resumed,
        }
        with LOCK:
            with open(STATE["log"], "a") as fh:
                fh.write(json.dumps(entry) + "\n")
        if answer == "hang":
            # Wait until the client closes (or 60 s), never answering.
            deadline = time.time() + 60
            while time.time() < deadline:
                r, _, _ = select.select([self.connection], [], [], 0.2)
                if r:
                    try:
                        if not self.connection.recv(1):
                            break
                    except (OSError, ssl.SSLError):
                        break
            self.close_connection = True
            return
        if answer == "close":
            self.close_connection = True
            return
        reply = b'{"ok":true}\n' if code.startswith("2") else b'{"error":"test"}\n'
        if version == "1.0":
            self.protocol_version = "HTTP/1.0"  # the status line; the connection stays open
        self.send_response(int(code))
        self.protocol_version = "HTTP/1.1"
        self.send_header("Content-Type", "application/json")
        if how == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            reply = b"%x\r\n%s\r\n0\r\n\r\n" % (len(reply), reply)
        elif how != "eof":
            self.send_header("Content-Length", str(len(reply)))
        if how == "close":
            self.send_header("Connection", "close")
        if retry_after:
            self.send_header("Retry-After", retry_after)
        # The head, the body (and the stray bytes) in one write: they arrive together.
        self._headers_buffer.append(b"\r\n")
        head = b"".join(self._headers_buffer)
        self._headers_buffer = []
        self.wfile.write(head + reply + (b"XX" if how == "extra" else b""))
        if how in ("close", "eof", "extra"):
            self.close_connection = True

    do_PUT = do_POST


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 refuses bursts of parallel deliveries

    def handle_error(self, request, client_address):  # failed TLS handshakes are expected
        pass


def watch(pid):
    """Exit with the test script, whatever way it ends (no orphaned servers)."""
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            os._exit(0)
        time.sleep(0.5)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--answers", default="")
    p.add_argument("--answers-file")
    p.add_argument("--default", default="200")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--idle-close", type=float,
                   help="close a connection after this many seconds without a request")
    p.add_argument("--conn-log")
    p.add_argument("--watch-pid", type=int, help="exit when this process is gone")
    a = p.parse_args()
    STATE["answers"] = [x.strip() for x in a.answers.split(",") if x.strip()]
    STATE["default"] = a.default
    STATE["log"] = a.log
    STATE["answers_file"] = a.answers_file
    STATE["conn_log"] = a.conn_log
    if a.idle_close:
        Handler.timeout = a.idle_close
    open(a.log, "a").close()

    srv = Server(("127.0.0.1", 0), Handler)
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        # The handshake runs in the handler's thread, not in the accept loop.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(srv.server_address[1]))
    os.rename(tmp, a.port_file)
    if a.watch_pid:
        threading.Thread(target=watch, args=(a.watch_pid,), daemon=True).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
