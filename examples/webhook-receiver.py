#!/usr/bin/env python3
"""A minimal digestmap webhook receiver, for trying the webhook door locally (not for production).

    SINK_SECRET=dev-sink-secret python3 examples/webhook-receiver.py [PORT]

Listens on 127.0.0.1:PORT (default 9099), checks X-Digestmap-Signature (HMAC-SHA256 of the raw
body, compared in constant time), prints one line per delivery and answers 204, or 401 when the
signature is wrong (digestmap then dead-letters the record: a 4xx other than 408/425/429 is final).
"""
import hashlib
import hmac
import http.server
import json
import os
import sys

SECRET = os.environ["SINK_SECRET"].encode()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, self.headers.get("X-Digestmap-Signature", ""))
        if ok:
            event = json.loads(body)
            print(self.headers.get("Idempotency-Key"), event["type"], event["subject"], flush=True)
        else:
            print("bad signature from", self.client_address[0], flush=True)
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):  # one line per delivery is enough
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9099
http.server.HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
