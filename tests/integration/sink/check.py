#!/usr/bin/env python3
"""check.py - read what sink.py logged, for the sink tests.

  check.py verify LOG SECRET   one line per request: "ok" when the request is a well-formed
                               delivery (POST, Content-Type application/cloudevents+json,
                               X-Digestmap-Signature = sha256=<hex HMAC-SHA256(SECRET, body)>,
                               Idempotency-Key = the body's CloudEvent id, X-Digestmap-Attempt a
                               positive integer, User-Agent digestmap), else "bad: <reasons>"
  check.py get LOG N WHAT      WHAT of request N (0-based; negative counts from the end):
                               "body", "t", "answer", "retry_at", "conn", "conn_req",
                               "resumed", or a header name (case-insensitive)
  check.py ids LOG             the Idempotency-Key of every request, one a line
  check.py header LOG NAME     header NAME of every request, one a line ("" when absent)
  check.py gaps LOG            seconds between consecutive requests, one a line ("%.3f")
  check.py conns LOG           the connection of every request, named A, B, ... in order of
                               first use, on one line ("A A B ...")
  check.py nconns LOG          how many connections the requests came on
"""
import hashlib
import hmac
import json
import sys


def load(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def header(req, name):
    for k, v in req["headers"].items():
        if k.lower() == name.lower():
            return v
    return None


def verify(req, secret):
    bad = []
    body = req["body"].encode()
    if req["method"] != "POST":
        bad.append("method " + req["method"])
    if header(req, "Content-Type") != "application/cloudevents+json":
        bad.append("content-type %r" % header(req, "Content-Type"))
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if header(req, "X-Digestmap-Signature") != want:
        bad.append("signature %r != %r" % (header(req, "X-Digestmap-Signature"), want))
    try:
        ce_id = json.loads(body)["id"]
    except (ValueError, KeyError, TypeError):
        ce_id = None
        bad.append("body is not a CloudEvent with an id")
    if ce_id is not None and header(req, "Idempotency-Key") != ce_id:
        bad.append("idempotency-key %r != id %r" % (header(req, "Idempotency-Key"), ce_id))
    attempt = header(req, "X-Digestmap-Attempt") or ""
    if not attempt.isdigit() or int(attempt) < 1:
        bad.append("attempt %r" % attempt)
    if not (header(req, "User-Agent") or "").startswith("digestmap"):
        bad.append("user-agent %r" % header(req, "User-Agent"))
    return "ok" if not bad else "bad: " + "; ".join(bad)


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    reqs = load(path)
    if cmd == "verify":
        for r in reqs:
            print(verify(r, sys.argv[3]))
    elif cmd == "get":
        r = reqs[int(sys.argv[3])]
        what = sys.argv[4]
        if what in ("body", "t", "answer", "method", "path", "retry_at", "conn", "conn_req",
                    "resumed"):
            print(r[what])
        else:
            print(header(r, what) or "")
    elif cmd == "ids":
        for r in reqs:
            print(header(r, "Idempotency-Key") or "")
    elif cmd == "header":
        for r in reqs:
            print(header(r, sys.argv[3]) or "")
    elif cmd == "gaps":
        for a, b in zip(reqs, reqs[1:]):
            print("%.3f" % (b["t"] - a["t"]))
    elif cmd == "conns":
        names = {}
        for r in reqs:
            names.setdefault(r["conn"], chr(ord("A") + len(names) % 26))
        print(" ".join(names[r["conn"]] for r in reqs))
    elif cmd == "nconns":
        print(len({r["conn"] for r in reqs}))
    else:
        sys.exit("unknown command " + cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
