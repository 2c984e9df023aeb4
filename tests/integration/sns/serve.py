#!/usr/bin/env python3
"""serve.py DIR PORTFILE: a stand-in for sns.<region>.amazonaws.com in the integration tests
(digestmapd fetches from it through DIGESTMAP_TEST_SNS_CERT_BASE).

GET /NAME.pem answers the file DIR/NAME.pem (404 when absent) with the status in
DIR/NAME.pem.status when that file exists (default 200). GET /?Action=ConfirmSubscription&...
answers 200 with a ConfirmSubscriptionResponse. Every request is appended to DIR/requests.log
as "PATH-AND-QUERY STATUS" before the answer is sent. Listens on a free port of 127.0.0.1 and
writes the port to PORTFILE.
"""
import http.server
import os
import sys
import threading
import time
import urllib.parse

DIR, PORTFILE = sys.argv[1], sys.argv[2]
PARENT = os.getppid()


def orphan_watch():
    """Exit when the test script is gone (killed by a ctest timeout, say): no stray servers."""
    while os.getppid() == PARENT:
        time.sleep(0.5)
    os._exit(0)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qs(query)
        ctype = "application/x-pem-file"
        if path == "/" and params.get("Action") == ["ConfirmSubscription"]:
            status = 200
            ctype = "text/xml"
            body = (b'<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
                    b"<ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:eu-west-1:"
                    b"111122223333:ecr-events:1</SubscriptionArn></ConfirmSubscriptionResult>"
                    b"</ConfirmSubscriptionResponse>\n")
        else:
            name = os.path.basename(path)
            file = os.path.join(DIR, name)
            status = 200
            try:
                with open(file + ".status") as f:
                    status = int(f.read().strip())
            except FileNotFoundError:
                pass
            try:
                if not name.endswith(".pem"):
                    raise FileNotFoundError
                with open(file, "rb") as f:
                    body = f.read()
            except (FileNotFoundError, IsADirectoryError):
                status, body = 404, b"not found\n"
        with open(os.path.join(DIR, "requests.log"), "a") as f:
            f.write("%s %d\n" % (self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=orphan_watch, daemon=True).start()
with open(PORTFILE + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
