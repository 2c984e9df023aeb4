#!/usr/bin/env bash
# Request framing and body limits, decided by the connection layer before evhttp reads a byte
# (receiver/dm_conn.h): two Content-Length headers or Content-Length with chunked → 400 (no
# request smuggling behind a proxy that frames differently); chunk extensions are fine; an
# oversize body, chunked included, gets the JSON 413 and never libevent's HTML page; bodies
# past limits.max_body_memory_bytes get 503 with Retry-After; the listen backlog is 1024.
source "$(dirname "$0")/lib.sh"
A="python3 $(dirname "$0")/conn/attack.py"

start_redis
start_daemon "$(default_config | jq '.workers = 1
    | .limits += {"max_body_bytes": 65536, "max_body_memory_bytes": 65536}')"

# send NAME: send $T/NAME.req raw, the answer in $T/NAME.out; prints its status line.
send() {
    $A send "$PORT" "$T/$1.req" > "$T/$1.out"
    head -n 1 "$T/$1.out" | tr -d '\r'
}
H=$'Host: x\r\nAuthorization: Bearer acr-token'

printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}' \
    "$H" > "$T/dupcl.req"
check "two Content-Length values: 400" "HTTP/1.1 400 Bad Request" "$(send dupcl)"
check_match "... with a JSON reason" '"error":"two Content-Length headers' "$(cat "$T/dupcl.out")"
check_match "... and the connection closed" 'Connection: close' "$(cat "$T/dupcl.out")"

printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n' \
    "$H" > "$T/clte.req"
check "Content-Length with chunked: 400" "HTTP/1.1 400 Bad Request" "$(send clte)"

printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n' \
    "$H" > "$T/te.req"
check "another Transfer-Encoding than chunked: 400" "HTTP/1.1 400 Bad Request" "$(send te)"

# Chunk extensions are legal HTTP: the body is read (and found not to be an ACR event).
printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2;name=value\r\n{}\r\n0\r\n\r\n' \
    "$H" > "$T/ext.req"
check "a chunk extension reaches the handler" "HTTP/1.1 400 Bad Request" "$(send ext)"
check_match "... which judges the body" '"error":"[^"]*' "$(tail -n 1 "$T/ext.out")"
if grep -q 'two Content-Length\|Transfer-Encoding' "$T/ext.out"; then fail "the chunk extension was refused"; fi

# An oversize chunked body: JSON 413 at the chunk that passes the limit.
{
    printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nTransfer-Encoding: chunked\r\n\r\n' "$H"
    for _ in 1 2 3; do printf '8000\r\n'; head -c 32768 /dev/zero | tr '\0' ' '; printf '\r\n'; done
    printf '0\r\n\r\n'
} > "$T/big.req"
check "oversize chunked body: 413" "HTTP/1.1 413 Payload Too Large" "$(send big)"
check_match "... as JSON" 'Content-Type: application/json' "$(cat "$T/big.out")"
check_match "... saying the limit" '"error":"body of more than 65536 bytes exceeds limits.max_body_bytes \(65536\)"' \
    "$(cat "$T/big.out")"
if grep -qi '<html' "$T/big.out"; then fail "libevent's HTML page reached the client"; fi

# The same with a declared length, far past twice the limit (where libevent answered itself).
printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nContent-Length: 1000000\r\n\r\n{' "$H" > "$T/cl.req"
check "oversize Content-Length: 413" "HTTP/1.1 413 Payload Too Large" "$(send cl)"
check_match "... as JSON" '"error":"body of 1000000 bytes exceeds limits.max_body_bytes \(65536\)"' \
    "$(cat "$T/cl.out")"
check "every 413 counted" 2 "$(metric digestmap_body_too_large_total)"

# Methods evhttp does not know, Expect it does not support, HEAD with a body: JSON too.
printf 'PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n' > "$T/m.req"
check "unknown method: 501" "HTTP/1.1 501 Not Implemented" "$(send m)"
check_match "... as JSON" '"error":"method PROPFIND not implemented"' "$(cat "$T/m.out")"
printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}' "$H" > "$T/e.req"
check "Expect other than 100-continue: 417" "HTTP/1.1 417 Expectation Failed" "$(send e)"
printf 'HEAD /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nGET /metrics HTTP/1.1\r\n' > "$T/hb.req"
check "HEAD with a body (that evhttp would read as a request): 400" "HTTP/1.1 400 Bad Request" "$(send hb)"

# Pipelined requests are answered in order, one at a time.
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' > "$T/pipe.req"
send pipe >/dev/null
check "pipelined requests: both answered in order" "200 404" \
    "$(grep -o '^HTTP/1.1 [0-9]*' "$T/pipe.out" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')"

# limits.max_body_memory_bytes: a body in flight holds its declared length; the next one that
# would pass the limit gets 503 + Retry-After. (The first request never completes its body.)
exec 7<>/dev/tcp/127.0.0.1/"$PORT"
printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nContent-Length: 60000\r\n\r\n{' "$H" >&7
printf 'POST /v1/registry/acr HTTP/1.1\r\n%s\r\nContent-Length: 60000\r\n\r\n{' "$H" > "$T/mem.req"
for _ in $(seq 1 100); do # until the first head is read (its 1 byte of body counts then)
    s=$(send mem)
    [ "$s" == "HTTP/1.1 503 Service Unavailable" ] && break
    sleep 0.1
done
check "bodies past max_body_memory_bytes: 503" "HTTP/1.1 503 Service Unavailable" "$s"
check_match "... with Retry-After" 'Retry-After: [0-9]+' "$(cat "$T/mem.out")"
check "... counted" 1 "$(metric 'digestmap_connections_refused_total{reason="body_memory"}')"
exec 7>&-

# The listen backlog is the 1024 the server asks for (libevent silently made it 128).
check "listen backlog 1024" 1024 "$(ss -ltnH "sport = :$PORT" | awk '{print $3}' | head -n 1)"

# The refusals above were logged with their reason, and none raw.
check_match "refusals logged with the peer" 'msg="request refused" status=400 route=- reason="two Content-Length headers[^"]*" bytes=[0-9]+ peer=127.0.0.1:[0-9]+' \
    "$(cat "$T/daemon.log")"
check "malformed requests counted" 6 "$(metric 'digestmap_connections_refused_total{reason="malformed"}')"
finish
