#!/usr/bin/env python3
"""pairs.py - a sender of pushes and builds for the failover tests (test_cluster_failover*.sh),
stdlib only. Two commands:

  pairs.py send --port P --log L --digests D [--threads 4] [--rate 25] [--pairs N]
                [--until-file F] [--solo-every K] [--retry-delay 0.1] [--max-seconds 300]
                [--watch-pid PID]

Each thread posts pairs: the ACR push of a new random digest, then its build event (one event
time for both, now), each request retried until it is accepted, the way a sender that honours
503 + Retry-After does (it waits --retry-delay rather than the Retry-After seconds, so that the
failover is timed to that resolution). With --solo-every K every K-th pair is a push alone.
Threads stop after N pairs in all (--pairs) or once the file F exists (--until-file), at most
--max-seconds, and pace themselves to --rate pairs a second each (a bound on the load, not a
margin). Every attempt is one JSON line in L: {"t0", "t": ms since the epoch (sent, answered),
"kind": "push"|"build", "digest", "status" (0: no answer), "spooled", "retry_after", "body"
(of unexpected answers)}. D gets "pair DIGEST" / "solo DIGEST" once the last event of a pair
is accepted. Exit 0 when every event was accepted; 1 when one was given up (an unexpected
answer 3 times, or no answer for 60 s).

  pairs.py report --log L --kill-ms MS --shards S,S,... --nshards N

Reads L after a master was killed at MS and prints, as "key value" lines: failover_ms (from MS
to the answer of the first request sent after MS for a digest of the killed master's shards S
that was accepted, not spooled), and for the requests of those shards answered from MS to then: refused (503 + Retry-After),
spooled (202 with "spooled": true), accepted; the same for the other shards (others_*); and
over the whole run: requests, accepted,
spooled, refused, bad (any other answer: another 5xx, a 503 without Retry-After, a 4xx, no
answer), events.
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time

LOCK = threading.Lock()
STATE = {"started": 0, "stop": False, "failed": 0}


def now_ms():
    return int(time.time() * 1000)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def push_body(digest, when):
    return json.dumps({
        "id": "evt-" + digest[7:31], "timestamp": when, "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.index.v1+json", "size": 1609,
                   "digest": digest, "length": 1609, "repository": "team/api", "tag": "1.4.0"},
        "request": {"id": "req-1", "host": "contoso.azurecr.io", "method": "PUT",
                    "useragent": "buildkit/v0.16"}})


def build_body(digest, when):
    return json.dumps({
        "images": [{"name": "contoso.azurecr.io/team/api", "digest": digest, "tags": ["1.4.0"]}],
        "built_at": when,
        "run": {"provider": "github", "repository": "acme/api", "run_id": "r" + digest[7:23],
                "run_attempt": "1", "commit": "3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
                "ref": "refs/heads/main", "workflow": "release", "actor": "mona"}})


class Sender:
    def __init__(self, args, log):
        self.args = args
        self.log = log
        self.conn = None

    def record(self, line):
        with LOCK:
            self.log.write(json.dumps(line) + "\n")
            self.log.flush()

    def post(self, kind, digest, body):
        """Posts until accepted; True when it was."""
        path, auth = (("/v1/registry/acr", "Bearer acr-token") if kind == "push"
                      else ("/v1/builds", "Bearer ci-token"))
        bad = 0
        silent_since = None
        while True:
            status, text, retry_after = 0, "", None
            sent = now_ms()
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.args.port, timeout=30)
                self.conn.request("POST", path, body, {"Content-Type": "application/json",
                                                       "Authorization": auth})
                resp = self.conn.getresponse()
                text = resp.read().decode("utf-8", "replace")
                status = resp.status
                retry_after = resp.getheader("Retry-After")
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
            except (OSError, http.client.HTTPException) as e:
                text = "%s: %s" % (type(e).__name__, e)
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
            spooled = False
            if status == 202:
                try:
                    spooled = json.loads(text).get("spooled") is True
                except ValueError:
                    status = -202  # a 202 that is not JSON counts as bad
            line = {"t0": sent, "t": now_ms(), "kind": kind, "digest": digest, "status": status,
                    "spooled": spooled, "retry_after": retry_after}
            if status not in (202, 503) or (status == 503 and not retry_after):
                line["body"] = text[:300]
            self.record(line)
            if status == 202:
                return True
            if status == 503 and retry_after:
                time.sleep(self.args.retry_delay)
                continue
            if status == 0:
                silent_since = silent_since or time.time()
                if time.time() - silent_since > 60:
                    return False
            else:
                bad += 1
                if bad >= 3:
                    return False
            time.sleep(self.args.retry_delay)

    def run(self, digests):
        period = 1.0 / self.args.rate
        while True:
            with LOCK:
                if STATE["stop"] or (self.args.pairs and STATE["started"] >= self.args.pairs):
                    return
                STATE["started"] += 1
                k = STATE["started"]
            t0 = time.time()
            digest = "sha256:" + os.urandom(32).hex()
            when = iso(t0)
            solo = self.args.solo_every and k % self.args.solo_every == 0
            ok = self.post("push", digest, push_body(digest, when))
            if ok and not solo:
                ok = self.post("build", digest, build_body(digest, when))
            with LOCK:
                if ok:
                    digests.write("%s %s\n" % ("solo" if solo else "pair", digest))
                    digests.flush()
                else:
                    STATE["failed"] += 1
            rest = period - (time.time() - t0)
            if rest > 0:
                time.sleep(rest)


def send(args):
    deadline = time.time() + args.max_seconds
    with open(args.log, "a") as log, open(args.digests, "a") as digests:
        threads = [threading.Thread(target=Sender(args, log).run, args=(digests,))
                   for _ in range(args.threads)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if ((args.until_file and os.path.exists(args.until_file)) or time.time() > deadline
                    or (args.watch_pid and not pid_alive(args.watch_pid))):
                STATE["stop"] = True
            time.sleep(0.05)
    return 1 if STATE["failed"] else 0


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def report(args):
    shards = {int(s) for s in args.shards.split(",") if s != ""}
    lines = []
    with open(args.log) as fh:
        for raw in fh:
            lines.append(json.loads(raw))
    lines.sort(key=lambda x: x["t"])

    def killed(line):
        return int(line["digest"][7:11], 16) % args.nshards in shards

    back = None
    for line in lines:
        if (line["t0"] >= args.kill_ms and killed(line) and line["status"] == 202
                and not line["spooled"]):
            back = line["t"]
            break
    out = {"failover_ms": -1 if back is None else back - args.kill_ms}
    win = {"refused": 0, "spooled": 0, "accepted": 0}
    others = {"refused": 0, "spooled": 0, "accepted": 0}
    tot = {"requests": 0, "accepted": 0, "spooled": 0, "refused": 0, "bad": 0, "events": 0}
    for line in lines:
        st = line["status"]
        kind = ("spooled" if st == 202 and line["spooled"] else "accepted" if st == 202
                else "refused" if st == 503 and line["retry_after"] else "bad")
        tot["requests"] += 1
        tot[kind] += 1
        if st == 202:
            tot["events"] += 1
        if back is not None and args.kill_ms <= line["t"] < back and kind != "bad":
            (win if killed(line) else others)[kind] += 1
    for k, v in out.items():
        print(k, v)
    for k, v in win.items():
        print("window_" + k, v)
    for k, v in others.items():
        print("others_" + k, v)
    for k, v in tot.items():
        print(k, v)
    if args.timeline:
        # answers per half second from the kill: k/o = the killed master's shards / the others,
        # a = accepted, s = spooled, r = refused (503 + Retry-After), x = any other answer
        slots = {}
        for line in lines:
            st = line["status"]
            c = ("s" if st == 202 and line["spooled"] else "a" if st == 202
                 else "r" if st == 503 and line["retry_after"] else "x")
            b = (line["t"] - args.kill_ms) // 500
            key = ("k" if killed(line) else "o") + c
            slots.setdefault(b, {}).setdefault(key, 0)
            slots[b][key] += 1
        for b in sorted(slots):
            print("timeline %+.1f %s" % (b / 2.0, " ".join(
                "%s=%d" % kv for kv in sorted(slots[b].items()))), file=sys.stderr)
    for line in lines:
        if (line["status"] not in (202, 503)) or (line["status"] == 503 and not line["retry_after"]):
            print("bad_answer", json.dumps(line), file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--digests", required=True)
    s.add_argument("--threads", type=int, default=4)
    s.add_argument("--rate", type=float, default=25.0)
    s.add_argument("--pairs", type=int, default=0)
    s.add_argument("--until-file")
    s.add_argument("--solo-every", type=int, default=0)
    s.add_argument("--retry-delay", type=float, default=0.1)
    s.add_argument("--max-seconds", type=float, default=300)
    s.add_argument("--watch-pid", type=int, default=0)
    r = sub.add_parser("report")
    r.add_argument("--log", required=True)
    r.add_argument("--kill-ms", type=int, required=True)
    r.add_argument("--shards", required=True)
    r.add_argument("--nshards", type=int, required=True)
    r.add_argument("--timeline", action="store_true")
    args = ap.parse_args()
    return send(args) if args.cmd == "send" else report(args)


if __name__ == "__main__":
    sys.exit(main())
