#!/usr/bin/env bash
# Loopback ceilings on this machine, to compare digestmap's throughput against in the same run
# (copied from the team's shared bench, so that CI and later sessions have it):
#   1. nginx (one process) answering 204 to the same POST that wrk sends digestmap
#   2. the framework's own ceiling: bench/evhttp204.c, a bare libevent evhttp server (one
#      thread) answering 204 to the same POST; it counts the body bytes it received, and the
#      script fails unless every request carried the whole body file
#   3. redis-server answering an EVAL that parks one field and sets a TTL (one round trip per
#      event), unpipelined and pipelined x16 over TCP, and unpipelined over a unix socket (the
#      transport digestmapd uses in bench/run.sh)
# Needs: nginx-light wrk redis-server redis-tools, and cc, pkg-config, libevent-dev and
# libhttp-parser-dev for evhttp204 (Debian). Prints one "name: value" line each: requests/s,
# latency p50/p99 (wrk), CPU µs per request (utime + stime from /proc/PID/stat over the run)
# for nginx and evhttp-204.
# Usage: ceiling.sh [BODY_FILE] [SECONDS] [CONNECTIONS]
#   env: NGINX_PORT, EVHTTP_PORT, REDIS_PORT (default: the first free from 18080, 18280, 16399),
#        AUTH (Authorization header to send), EVHTTP204 (the server binary; default: built by
#        bench/lib.sh into build-bench/bench/)
# redis-benchmark has no duration option: its request count is SECONDS x a typical rate, so each
# Redis figure also takes about SECONDS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BENCH_NAME=ceiling.sh
. "$here/lib.sh"   # bench_tool, free_port, cpu_ticks, per_item_us
body=${1:-$here/../tests/fixtures/acr/push.json}; secs=${2:-5}; conns=${3:-32}
[ -s "$body" ] || fail "no body file $body"
body=$(cd "$(dirname "$body")" && pwd)/$(basename "$body")
nginx_port=${NGINX_PORT:-$(free_port 18080)}; evhttp_port=${EVHTTP_PORT:-$(free_port 18280)}
redis_port=${REDIS_PORT:-$(free_port 16399)}
evhttp=${EVHTTP204:-$(bench_tool evhttp204)}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dm-ceiling.XXXXXX")
nginx_pid=""; evhttp_pid=""
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    [ -n "$evhttp_pid" ] && kill "$evhttp_pid" 2>/dev/null && wait "$evhttp_pid" 2>/dev/null
    [ -f "$tmp/r.pid" ] && kill "$(cat "$tmp/r.pid")" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_tcp() { # port: wait (bounded, 5 s) until something accepts on 127.0.0.1:port
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "ceiling.sh: nothing listens on 127.0.0.1:$1" >&2; return 1
}

chmod 755 "$tmp"   # nginx's worker runs as nobody
sed -e "s#@DIR@#$tmp#g" -e "s#@PORT@#$nginx_port#g" "$here/nginx204.conf" > "$tmp/nginx.conf"
post() { # name port: wrk -t1 POSTing the body file; prints the figures, leaves requests in $tmp/n
    BODY_FILE=$body wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$here/post.lua" \
        "http://127.0.0.1:$2/" > "$tmp/wrk.out"
    awk -v n="$1" '/Requests\/sec/ {print n " requests/s: " $2}
         $1 == "50%" {print n " latency p50: " $2}
         $1 == "99%" {print n " latency p99: " $2}
         /Non-2xx/ {print n " non-2xx: " $NF}' "$tmp/wrk.out"
    awk '/requests in/ {print $1}' "$tmp/wrk.out" > "$tmp/n"
}
# master_process off: one process serves, so its /proc/PID/stat holds all the CPU time.
nginx -e "$tmp/error.log" -c "$tmp/nginx.conf" -p "$tmp" -g 'master_process off;' & nginx_pid=$!
wait_tcp "$nginx_port"
t0=$(cpu_ticks "$nginx_pid")
post nginx-204 "$nginx_port"
echo "nginx-204 CPU/req us: $(per_item_us "$t0" "$(cpu_ticks "$nginx_pid")" "$(cat "$tmp/n")" 1)"
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; nginx_pid=""

"$evhttp" "$evhttp_port" > "$tmp/evhttp.out" & evhttp_pid=$!
wait_tcp "$evhttp_port"
t0=$(cpu_ticks "$evhttp_pid")
post evhttp-204 "$evhttp_port"
t1=$(cpu_ticks "$evhttp_pid")
kill "$evhttp_pid"; wait "$evhttp_pid" 2>/dev/null || true; evhttp_pid=""
served=$(awk '$1 == "requests:" {print $2}' "$tmp/evhttp.out")
bytes=$(awk '$1 == "body" {print $3}' "$tmp/evhttp.out")
echo "evhttp-204 CPU/req us: $(per_item_us "$t0" "$t1" "${served:-0}" 1)"
# The body must really be sent: post.lua read BODY_FILE, and wrk put all of it in every request.
[ -n "$served" ] && [ "$served" -gt 0 ] && [ "$bytes" = $(( served * $(wc -c < "$body") )) ] \
    || fail "evhttp204 got $bytes body bytes in ${served:-no} requests, not $(wc -c < "$body") each"

redis-server --port "$redis_port" --bind 127.0.0.1 --unixsocket "$tmp/r.sock" --save "" \
    --appendonly no --daemonize yes --pidfile "$tmp/r.pid" --dir "$tmp" >/dev/null
for _ in $(seq 50); do redis-cli -s "$tmp/r.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
script="redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); redis.call('PEXPIRE', KEYS[1], 60000); return redis.call('HLEN', KEYS[1])"
bench() { # label pipeline ops-per-second-guess transport-args...
    local label=$1 p=$2 n=$(( secs * $3 )); shift 3
    local r
    r=$(redis-benchmark "$@" -q -n "$n" -c "$conns" -P "$p" eval "$script" 1 'k:{__rand_int__}' f v \
        2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
    echo "$label ops/s: ${r:-0}"
}
bench "redis EVAL park (pipeline 1)" 1 45000 -p "$redis_port"
bench "redis EVAL park (pipeline 16)" 16 100000 -p "$redis_port"
bench "redis EVAL park (pipeline 1, unix socket)" 1 55000 -s "$tmp/r.sock"
