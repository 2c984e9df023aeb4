#!/usr/bin/env bash
# The sources' POST routes are served by the connection layer itself, without evhttp
# (receiver/dm_req.h, docs/internet-connections.md "Direct ingest"): pipelined requests are
# answered in order; a client that half-closes after its request still gets the answer; HTTP/1.0
# gets HTTP/1.0 (closed, or kept with Connection: keep-alive); Expect: 100-continue gets its
# 100; Connection: close is honoured; a client that goes away while Redis holds its request
# leaves a daemon that goes on (the event is parked, the answer counted); and a connection busy
# with direct requests is not closed by the idle timeout meant for idle ones.
source "$(dirname "$0")/lib.sh"

start_redis
start_daemon "$(default_config | jq '.workers = 1 | .limits.idle_timeout_seconds = 2')"

# raw SCRIPT ARGS...: a raw-socket client (python) against the daemon.
raw() {
    local script=$1
    shift
    python3 - "$PORT" "$@" <<EOF
import socket, struct, sys, time
port = int(sys.argv[1])
args = sys.argv[2:]
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=30)
def push(digest, extra="", version="1.1"):
    body = open(digest).read().encode()
    return (("POST /v1/registry/acr HTTP/%s\r\nHost: x\r\nAuthorization: Bearer acr-token\r\n"
             "Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n")
            % (version, len(body), extra)).encode() + body
def read_all(s):
    out = b""
    s.settimeout(30)
    while True:
        try:
            d = s.recv(65536)
        except OSError:
            break
        if not d:
            break
        out += d
    return out
def read_answer(s):
    """One whole answer (head and Content-Length body)."""
    out = b""
    s.settimeout(30)
    while b"\r\n\r\n" not in out:
        d = s.recv(65536)
        if not d:
            return out
        out += d
    head, rest = out.split(b"\r\n\r\n", 1)
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return head + b"\r\n\r\n" + rest
$script
EOF
}

for i in 1 2 3 4 5 6 7 8; do
    eval "d$i=\$(random_digest)"
    eval "acr_push \"\$T/p$i.json\" \"\$d$i\" 1.0 \"\$(iso_at 0)\""
done
parked() { rcli exists "dm:{0}:r:$1"; }

# Pipelined: an ingest, a health check (evhttp's), an ingest that closes: answered in order.
raw '
s = conn()
s.sendall(push(args[0]) + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + push(args[1], "Connection: close\r\n"))
sys.stdout.buffer.write(read_all(s))' "$T/p1.json" "$T/p2.json" > "$T/pipe.out"
check "pipelined ingest and health check answered in order" "202 200 202" \
    "$(grep -ao '^HTTP/1.1 [0-9]*' "$T/pipe.out" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')"
check_match "... the ingest answers as JSON" '\{"status":"accepted","events":1,"edges":0\}' \
    "$(cat "$T/pipe.out")"
check "... the last one says it closes" 1 "$(grep -ac '^Connection: close' "$T/pipe.out")"
check "... both events parked" "1 1" "$(parked "$d1") $(parked "$d2")"

# Half-closed after the request (while Redis, paused, holds it): the answer still comes.
rcli client pause 1000 ALL >/dev/null
raw '
s = conn()
s.sendall(push(args[0]))
s.shutdown(socket.SHUT_WR)
sys.stdout.buffer.write(read_all(s))' "$T/p3.json" > "$T/half.out"
check "a client that half-closes gets its answer" "HTTP/1.1 202 Accepted" \
    "$(head -n 1 "$T/half.out" | tr -d '\r')"
check_match "... whole" '"edges":0\}$' "$(tail -n 1 "$T/half.out")"

# HTTP/1.0: answered in HTTP/1.0, closed unless the client asked to keep the connection.
raw '
s = conn()
s.sendall(push(args[0], version="1.0"))
sys.stdout.buffer.write(read_all(s))' "$T/p4.json" > "$T/h10.out"
check "HTTP/1.0: HTTP/1.0 202" "HTTP/1.0 202 Accepted" "$(head -n 1 "$T/h10.out" | tr -d '\r')"
check "... and the connection closed" 1 "$(grep -ac '^Connection: close' "$T/h10.out")"
raw '
s = conn()
s.sendall(push(args[0], "Connection: keep-alive\r\n", "1.0"))
a = read_answer(s)
s.sendall(push(args[1], "", "1.0"))
sys.stdout.buffer.write(a + read_all(s))' "$T/p5.json" "$T/p6.json" > "$T/h10ka.out"
check "HTTP/1.0 keep-alive: kept, then closed" "202 202" \
    "$(grep -ao '^HTTP/1.0 [0-9]*' "$T/h10ka.out" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')"
check "... saying so" 1 "$(grep -ac '^Connection: keep-alive' "$T/h10ka.out")"

# Expect: 100-continue: the 100 comes before the body is sent.
raw '
s = conn()
req = push(args[0], "Expect: 100-continue\r\n")
head, body = req.split(b"\r\n\r\n", 1)
s.sendall(head + b"\r\n\r\n")
s.settimeout(30)
first = s.recv(25)
s.sendall(body)
sys.stdout.buffer.write(first + b"|" + read_answer(s))' "$T/p7.json" > "$T/expect.out"
check "Expect: 100-continue gets its 100 first" "HTTP/1.1 100 Continue" \
    "$(head -n 1 "$T/expect.out" | tr -d '\r')"
check_match "... then the answer" '\|HTTP/1.1 202 Accepted' "$(cat "$T/expect.out")"

# Clients that go away while Redis holds their request (paused): one closes, one resets the
# connection. Redis then parks both events and the daemon goes on.
before=$(metric 'digestmap_requests_total{route="/v1/registry/acr",status="202"}')
d9=$(random_digest)
acr_push "$T/p9.json" "$d9" 1.0 "$(iso_at 0)"
rcli client pause 3000 ALL >/dev/null
raw '
a = conn()
a.sendall(push(args[0]))
b = conn()
b.sendall(push(args[1]))
time.sleep(0.5)
a.close()
b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
b.close()' "$T/p8.json" "$T/p9.json"
poll_until "$DM_WAIT" eval '[ "$(parked "$d8")$(parked "$d9")" == 11 ]' || fail "events not parked"
poll_until "$DM_WAIT" eval \
    '[ "$(metric "digestmap_requests_total{route=\"/v1/registry/acr\",status=\"202\"}")" -ge $((before + 2)) ]' \
    || fail "the answers to clients that left were not counted"
request GET /healthz
check "the daemon goes on after clients left mid-request" 200 "$STATUS"

# A connection busy with direct requests, longer than limits.idle_timeout_seconds (2 s): not
# closed (evhttp's idle timeout counts from the last answer, not from the last byte it saw).
for i in $(seq 1 40); do acr_push "$T/k$i.json" "$(random_digest)" 1.0 "$(iso_at 0)"; done
raw '
s = conn()
start = time.time()
n = 0
i = 0
while time.time() - start < 5:
    s.sendall(push(args[i % len(args)]))
    a = read_answer(s)
    if not a.startswith(b"HTTP/1.1 202"):
        break
    n += 1
    i += 1
print("ok" if time.time() - start >= 5 else "closed after %d answers" % n)' $(ls "$T"/k*.json) > "$T/busy.out"
check "a connection busy for 5 s with idle_timeout_seconds 2 stays open" ok "$(cat "$T/busy.out")"
# Authentication decided at the head is kept only for credentials of the head alone: a
# signature checked there against no body (the HMAC of "") must not stand for a real body.
bd=$(random_digest)
build_event "$T/hb.json" "$bd" "$(iso_at 0)" 5
: > "$T/empty"
post /v1/builds "$T/hb.json" -H "X-Digestmap-Signature: $(hmac_sig "$T/empty")"
check "the HMAC of an empty body does not sign a real one: 401" 401 "$STATUS"
check "... and nothing is parked" 0 "$(rcli exists "dm:{0}:b:$bd")"
post /v1/builds "$T/hb.json" -H "X-Digestmap-Signature: $(hmac_sig "$T/hb.json")"
check "the body's own HMAC still passes" 202 "$STATUS"

# A chunked body's trailer is no header: credentials in it count for nothing (and reading
# them as headers read past the head's buffer).
td=$(random_digest)
build_event "$T/tb.json" "$td" "$(iso_at 0)" 5
raw '
body = open(args[0], "rb").read()
s = conn()
s.sendall(b"POST /v1/builds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"X-Pad: " + b"p" * 300 + b"\r\nX-Digestmap-Signature: sha256=00\r\n"
          b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
          + b"%x\r\n" % len(body) + body + b"\r\n0\r\nAuthorization: Bearer ci-token\r\n\r\n")
sys.stdout.buffer.write(read_all(s))' "$T/tb.json" > "$T/trailer.out"
check "credentials in a trailer: 401" "401" "$(grep -ao '^HTTP/1.1 [0-9]*' "$T/trailer.out" | cut -d' ' -f2)"
check "... nothing parked" 0 "$(rcli exists "dm:{0}:b:$td")"
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null
check "... and the daemon still answers" 0 "$?"
finish
