#!/usr/bin/env python3
"""fake_token_server.py - the CI platforms' OIDC token endpoints, for test_notify.sh.

  GET  /github/token?api-version=2.0&audience=AUD   like ACTIONS_ID_TOKEN_REQUEST_URL: needs
       "Authorization: bearer <--github-request-token>", answers {"count": 1, "value": JWT}
       with aud = the requested audience
  POST /azure/<...>/oidctoken?api-version=7.1&serviceConnectionId=ID   like
       SYSTEM_OIDCREQUESTURI: needs "Authorization: Bearer <--azure-access-token>", answers
       {"oidcToken": JWT} with aud = api://AzureADTokenExchange
  POST /_fail?n=N     the next N token requests answer 503
  GET  /files/NAME    the file NAME of --files (a plain download)

Tokens are minted per request by --mint (notify/mint-jwt.sh: RS256 with openssl) from the
claims in --github-claims / --azure-claims (JSON files, read at each request so the test can
change them) plus iss, aud, iat, nbf, exp and a fresh jti. Every request is appended to --log
as one JSON line: method, path, query, headers, status and the jti issued.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

AZURE_AUDIENCE = "api://AzureADTokenExchange"


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--mint", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--kid", required=True)
    p.add_argument("--github-issuer", default="https://token.actions.githubusercontent.com")
    p.add_argument("--github-claims", required=True)
    p.add_argument("--github-request-token", required=True)
    p.add_argument("--azure-issuer", required=True)
    p.add_argument("--azure-claims", required=True)
    p.add_argument("--azure-access-token", required=True)
    p.add_argument("--files", default="")
    return p.parse_args()


ARGS = parse_args()
LOCK = threading.Lock()
STATE = {"fail": 0}


def mint(issuer, audience, claims_file):
    with open(claims_file) as f:
        claims = json.load(f)
    now = int(time.time())
    claims.update({"iss": issuer, "aud": audience, "iat": now, "nbf": now - 5,
                   "exp": now + 300, "jti": str(uuid.uuid4())})
    out = subprocess.run(["bash", ARGS.mint, ARGS.key, ARGS.kid], input=json.dumps(claims).encode(),
                         capture_output=True, check=True)
    return out.stdout.decode().strip(), claims["jti"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def answer(self, status, body, ctype="application/json", jti=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        u = urlsplit(self.path)
        entry = {"method": self.command, "path": u.path,
                 "query": {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()},
                 "headers": {k: v for k, v in self.headers.items()}, "status": status}
        if jti:
            entry["jti"] = jti
        with LOCK:
            with open(ARGS.log, "a") as f:
                f.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def injected_failure(self):
        with LOCK:
            if STATE["fail"] > 0:
                STATE["fail"] -= 1
                return True
        return False

    def do_GET(self):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/github/token":
            if self.headers.get("Authorization", "").lower() != \
                    "bearer " + ARGS.github_request_token.lower():
                return self.answer(401, {"message": "bad request token"})
            if self.injected_failure():
                return self.answer(503, {"message": "injected failure"})
            aud = q.get("audience", "https://github.com/acme")
            token, jti = mint(ARGS.github_issuer, aud, ARGS.github_claims)
            return self.answer(200, {"count": 1, "value": token}, jti=jti)
        if u.path.startswith("/files/") and ARGS.files:
            name = os.path.basename(u.path)
            path = os.path.join(ARGS.files, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    return self.answer(200, f.read(), ctype="text/plain")
        return self.answer(404, {"message": "not found"})

    def do_POST(self):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if u.path == "/_fail":
            with LOCK:
                STATE["fail"] = int(q.get("n", "1"))
            return self.answer(200, {"fail": STATE["fail"]})
        if u.path.startswith("/azure/") and u.path.endswith("/oidctoken"):
            if self.headers.get("Authorization", "") != "Bearer " + ARGS.azure_access_token:
                return self.answer(401, {"message": "bad access token"})
            if q.get("api-version") != "7.1":
                return self.answer(400, {"message": "api-version 7.1 expected"})
            if self.injected_failure():
                return self.answer(503, {"message": "injected failure"})
            token, jti = mint(ARGS.azure_issuer, AZURE_AUDIENCE, ARGS.azure_claims)
            return self.answer(200, {"oidcToken": token}, jti=jti)
        return self.answer(404, {"message": "not found"})


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
