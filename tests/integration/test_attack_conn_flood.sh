#!/usr/bin/env bash
# An idle-connection flood under a low file-descriptor limit. Before, the accept loop spun at
# EMFILE (a million log lines in 10 s, /healthz timed out). Now the connection limit is lowered
# to what RLIMIT_NOFILE allows (logged), the listener pauses at it (new connections wait in the
# backlog) or, out of descriptors all the same, for a moment: the daemon's CPU stays a fraction
# of the time the flood lasts, its log a line per connection, and /healthz answers once the
# idle connections are closed (limits.header_timeout_ms).
source "$(dirname "$0")/lib.sh"
A="python3 $(dirname "$0")/conn/attack.py"

# The daemon starts with at most 256 descriptors (prlimit execs it: the pid stays the same).
REAL=$DIGESTMAPD
DIGESTMAPD=$T/digestmapd-256
printf '#!/bin/sh\nexec prlimit --nofile=256:256 -- "%s" "$@"\n' "$REAL" > "$DIGESTMAPD"
chmod +x "$DIGESTMAPD"

start_redis
start_daemon "$(default_config | jq '.log_level = "info"
    | .limits += {"header_timeout_ms": 1000, "max_connections": 4096}')"
limit=$(sed -n 's/.*msg="connection limit" max_connections=\([0-9]*\) .*nofile=256 .*/\1/p' "$T/daemon.log")
check_match "the connection limit is lowered to the descriptors (logged: $limit)" '^[0-9]+$' "$limit"
check "... below 256" 1 "$([ "${limit:-999}" -lt 256 ] && echo 1 || echo 0)"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
flood() { # flood N: N idle connections until the daemon has closed them all; sets CPU_MS, WALL_MS
    local t0 c0 t1 c1 tick
    tick=$(getconf CLK_TCK)
    t0=$(date +%s%N); c0=$(cpu_ticks)
    CLOSED=$($A idle "$PORT" "$1" 120)
    t1=$(date +%s%N); c1=$(cpu_ticks)
    WALL_MS=$(( (t1 - t0) / 1000000 ))
    CPU_MS=$(( (c1 - c0) * 1000 / tick ))
}

lines0=$(wc -l < "$T/daemon.log")
flood 600
check "600 idle connections: all closed by the daemon" 600 "$CLOSED"
check "... a 408 for each, logged once" 600 "$(grep -c 'status=408 route=- reason="request head not complete' "$T/daemon.log" || true)"
# A spinning accept loop burns a whole core for the whole flood; this one sleeps.
check "... CPU ${CPU_MS} ms over ${WALL_MS} ms: under a quarter" 1 \
    "$([ $((CPU_MS * 4)) -lt "$WALL_MS" ] && echo 1 || echo 0)"
lines=$(( $(wc -l < "$T/daemon.log") - lines0 ))
check "... log lines bounded: $lines for 600 connections" 1 "$([ "$lines" -le 640 ] && echo 1 || echo 0)"
check_match "... the listener paused at the limit" 'msg="listener paused" worker=[12] reason="limits.max_connections reached"' \
    "$(cat "$T/daemon.log")"
request GET /healthz
check "/healthz answers after the flood" 200 "$STATUS"
check "connections open again" 1 "$(metric digestmap_connections_open)"

# Fewer descriptors than the limit assumed (another part of the process took them): accept
# fails with EMFILE; the listener waits and retries, it does not spin or log each failure.
prlimit --pid "$DAEMON_PID" --nofile=48:48
lines0=$(wc -l < "$T/daemon.log")
flood 150
check "EMFILE: 150 idle connections all closed in the end" 150 "$CLOSED"
check "... CPU ${CPU_MS} ms over ${WALL_MS} ms: under a quarter" 1 \
    "$([ $((CPU_MS * 4)) -lt "$WALL_MS" ] && echo 1 || echo 0)"
lines=$(( $(wc -l < "$T/daemon.log") - lines0 ))
check "... log lines bounded: $lines for 150 connections" 1 "$([ "$lines" -le 190 ] && echo 1 || echo 0)"
check_match "... one line for the pauses" 'msg="listener paused" worker=[12] reason="accept failed: Too many open files"' \
    "$(cat "$T/daemon.log")"
if grep -q 'Error from accept' "$T/daemon.log"; then fail "libevent logged failed accepts"; fi
request GET /healthz
check "/healthz answers after the EMFILE flood" 200 "$STATUS"
check "the pauses are counted" 1 "$([ "$(metric 'digestmap_accept_paused_total{reason="fd_limit"}')" -ge 1 ] && echo 1 || echo 0)"
finish
