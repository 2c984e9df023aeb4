#!/usr/bin/env bash
# Slow unauthenticated bodies: credentials carried in headers are checked before the body is
# read, so a refused request costs no body buffering. 200 connections that send a wrong token
# and then most of a 1 MiB body (never all of it) each get 401 at once, and the daemon's memory
# stays bounded (before: 300 such bodies took RSS from 6.5 MB to 632 MB, never released).
source "$(dirname "$0")/lib.sh"
A="python3 $(dirname "$0")/conn/attack.py"

start_redis
start_daemon "$(default_config | jq '.log_level = "info" | .limits.max_body_bytes = 1048576')"

kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$DAEMON_PID/status"; }
base=$(kb VmRSS)

printf 'POST /v1/registry/acr HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer stolen\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n' \
    > "$T/head.req"
$A bodies "$PORT" 200 "$T/head.req" 1040000 > "$T/bodies.out"
check "every connection got its answer before its body was complete" 200 "$(head -n 1 "$T/bodies.out")"
check "... a 401 each" 200 "$(grep -c '^HTTP/1.1 401 Unauthorized$' "$T/bodies.out" || true)"
peak=$(kb VmHWM)
grown=$(( (peak - base) / 1024 ))
check "peak RSS grew by less than 64 MiB (base ${base} kB, peak ${peak} kB: +${grown} MiB)" 1 \
    "$([ "$grown" -lt 64 ] && echo 1 || echo 0)"
check "... refusals counted" 200 "$(metric digestmap_auth_failures_total)"
check "... and logged before any body" 200 \
    "$(grep -c 'msg="request refused" status=401 route=/v1/registry/acr reason="header value mismatch".*before_body=true' "$T/daemon.log" || true)"

# No credentials at all: the same.
printf 'POST /v1/registry/acr HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n' > "$T/none.req"
$A bodies "$PORT" 1 "$T/none.req" 1040000 > "$T/none.out"
check "no credentials: 401 before the body" "HTTP/1.1 401 Unauthorized" "$(sed -n 2p "$T/none.out")"

# An HMAC entry needs the body: a request carrying its header is read, then judged.
body='{"images": []}'
printf 'POST /v1/builds HTTP/1.1\r\nHost: x\r\nX-Digestmap-Signature: sha256=%064d\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    0 "${#body}" "$body" > "$T/hmac.req"
$A send "$PORT" "$T/hmac.req" > "$T/hmac.out"
check "a signed body is read before it is judged" "HTTP/1.1 401 Unauthorized" "$(head -n 1 "$T/hmac.out" | tr -d '\r')"
check "... by the handler, after the body" 1 \
    "$(grep -c 'status=401 route=/v1/builds reason="signature mismatch"' "$T/daemon.log" || true)"

# No route and a body: 404 before the body; the right token still gets its body read.
printf 'POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n' > "$T/404.req"
$A bodies "$PORT" 1 "$T/404.req" 1040000 > "$T/404.out"
check "no such route: 404 before the body" "HTTP/1.1 404 Not Found" "$(sed -n 2p "$T/404.out")"
acr_push "$T/push.json" "$(random_digest)" "1.0" "$(iso_at 0)"
post_acr "$T/push.json"
check "an authenticated body is still parked" 202 "$STATUS"

# The memory of the refused bodies is not kept (RSS back near its start).
rss=$(kb VmRSS)
check "RSS after the attack within 64 MiB of the start (${rss} kB)" 1 \
    "$([ $(( (rss - base) / 1024 )) -lt 64 ] && echo 1 || echo 0)"
finish
