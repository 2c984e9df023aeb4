#!/usr/bin/env bash
# Loopback ceilings on this machine, to compare digestmap's throughput against in the same run
# (copied from the team's shared bench, so that CI and later sessions have it):
#   1. nginx (one worker) answering 204 to the same POST that wrk sends digestmap
#   2. redis-server answering an EVAL that parks one field and sets a TTL (one round trip per
#      event), unpipelined and pipelined x16 over TCP, and unpipelined over a unix socket (the
#      transport digestmapd uses in bench/run.sh)
# Needs: nginx-light wrk redis-server redis-tools (Debian). Prints one "name: value" line each.
# Usage: ceiling.sh [BODY_FILE] [SECONDS] [CONNECTIONS]
#   env: NGINX_PORT (18080), REDIS_PORT (16399), AUTH (Authorization header to send nginx)
# redis-benchmark has no duration option: its request count is SECONDS x a typical rate, so each
# Redis figure also takes about SECONDS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
body=${1:-$here/../tests/fixtures/acr/push.json}; secs=${2:-5}; conns=${3:-32}
nginx_port=${NGINX_PORT:-18080}; redis_port=${REDIS_PORT:-16399}
tmp=$(mktemp -d /tmp/dm-ceiling.XXXXXX)
nginx_pid=""
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
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
nginx -e "$tmp/error.log" -c "$tmp/nginx.conf" -p "$tmp" & nginx_pid=$!
wait_tcp "$nginx_port"
BODY_FILE=$body wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$here/post.lua" \
    "http://127.0.0.1:$nginx_port/" > "$tmp/wrk.out"
awk '/Requests\/sec/ {print "nginx-204 requests/s: " $2}
     $1 == "50%" {print "nginx-204 latency p50: " $2}
     $1 == "99%" {print "nginx-204 latency p99: " $2}
     /Non-2xx/ {print "nginx-204 non-2xx: " $NF}' "$tmp/wrk.out"
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; nginx_pid=""

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
