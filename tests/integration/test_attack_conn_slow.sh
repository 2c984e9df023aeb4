#!/usr/bin/env bash
# Slow senders (slowloris): the whole request head must arrive within limits.header_timeout_ms
# and the whole body within limits.body_timeout_ms, however slowly it trickles (an inactivity
# timer alone kept one connection for 91 h at a byte per 20 s). On expiry: 408 as JSON, closed.
source "$(dirname "$0")/lib.sh"
A="python3 $(dirname "$0")/conn/attack.py"

start_redis
start_daemon "$(default_config | jq '.workers = 1
    | .limits += {"header_timeout_ms": 300, "body_timeout_ms": 300, "idle_timeout_seconds": 60}')"

# A head of 200 bytes at one byte per 200 ms would take 40 s: it is cut at the deadline.
{
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n'
    for i in $(seq 1 8); do printf 'X-Slow-%d: aaaaaaaaaaaaaaaaaaaa\r\n' "$i"; done
    printf '\r\n'
} > "$T/head.req"
$A slow "$PORT" "$T/head.req" 200 > "$T/head.out"
read -r sent secs < "$T/head.out"
check_match "slow head: 408" '^HTTP/1.1 408 Request Timeout' "$(sed -n 2p "$T/head.out")"
check_match "... as JSON" '"error":"request head not complete within limits.header_timeout_ms \(300 ms\)"' \
    "$(cat "$T/head.out")"
# Generous: what matters is that the connection did not live for the whole head.
check "... closed long before the head was sent ($sent of $(wc -c < "$T/head.req") bytes, ${secs}s)" \
    1 "$([ "$sent" -lt 100 ] && echo 1 || echo 0)"
check "... counted" 1 "$(metric 'digestmap_connections_refused_total{reason="header_timeout"}')"

# A connection that says nothing at all is closed at the same deadline.
check "an idle connection is closed" 1 "$($A idle "$PORT" 1 10)"

# A body at one byte per 200 ms after a complete head: cut at body_timeout_ms.
printf 'POST /v1/registry/acr HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acr-token\r\nContent-Length: 100\r\n\r\n' \
    > "$T/body.req"
fast=$(wc -c < "$T/body.req")
head -c 100 /dev/zero | tr '\0' ' ' >> "$T/body.req"
$A slow "$PORT" "$T/body.req" 200 "$fast" > "$T/body.out"
read -r sent secs < "$T/body.out"
check_match "slow body: 408" '^HTTP/1.1 408 Request Timeout' "$(sed -n 2p "$T/body.out")"
check_match "... as JSON" '"error":"request body not complete within limits.body_timeout_ms \(300 ms\)"' \
    "$(cat "$T/body.out")"
check "... closed before the body was sent ($sent bytes, ${secs}s)" 1 \
    "$([ "$sent" -lt "$(wc -c < "$T/body.req")" ] && echo 1 || echo 0)"
check "... counted" 1 "$(metric 'digestmap_connections_refused_total{reason="body_timeout"}')"
check "... and as a 408 of its route" 1 \
    "$(metric 'digestmap_requests_total{route="/v1/registry/acr",status="408"}')"
check_match "timeouts logged with the peer" 'msg="request refused" status=408 route=/v1/registry/acr reason="request body not complete[^"]*" bytes=[0-9]+ peer=127.0.0.1:[0-9]+' \
    "$(cat "$T/daemon.log")"

# A keep-alive connection that sends its next request slowly meets the same deadline.
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' > "$T/ka.req"
fast=$(wc -c < "$T/ka.req")
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n' >> "$T/ka.req"
$A slow "$PORT" "$T/ka.req" 200 "$fast" > "$T/ka.out"
check "keep-alive: the first answer, then 408 for the slow second head" "200 408" \
    "$(grep -ao 'HTTP/1.1 [0-9]*' "$T/ka.out" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')"

# Bare CRLFs between requests (which http-parser skips without starting a request) are the
# start of a head too: a CRLF every 200 ms must not keep the connection open past the deadline.
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' > "$T/crlf.req"
fast=$(wc -c < "$T/crlf.req")
for i in $(seq 1 150); do printf '\r\n'; done >> "$T/crlf.req"
$A slow "$PORT" "$T/crlf.req" 200 "$fast" > "$T/crlf.out"
read -r sent secs < "$T/crlf.out"
check "CRLFs after an answer: the answer, then 408" "200 408" \
    "$(grep -ao 'HTTP/1.1 [0-9]*' "$T/crlf.out" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')"
check "... closed long before the CRLFs ran out ($sent of $(wc -c < "$T/crlf.req") bytes)" 1 \
    "$([ "$sent" -lt $((fast + 100)) ] && echo 1 || echo 0)"
finish
