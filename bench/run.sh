#!/usr/bin/env bash
# bench/run.sh [SECONDS] [CONNECTIONS] - digestmapd's throughput, as ratios against the loopback
# ceilings measured in the same run (see bench/README.md). Installs what is missing (as root or
# with sudo), builds build-bench/ (Release), runs everything on 127.0.0.1 and a private
# redis-server (unix socket, no persistence), stops by itself and cleans up.
#   env: BENCH_SECONDS (5), BENCH_CONNS (32), BENCH_WORKERS ("2 1"), BENCH_PORT (first free from 18090),
#        BENCH_PERF=1 (perf profile of the push run with the first worker count),
#        NGINX_PORT / REDIS_PORT (ceiling ports, first free from 18190 / 16490),
#        BENCH_REV=<git rev> (bench that commit, exported with git archive into a temp dir,
#        instead of the working tree: to compare revisions or skip someone's half-done edit)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-${BENCH_SECONDS:-5}}; conns=${2:-${BENCH_CONNS:-32}}
workers_list=${BENCH_WORKERS:-"2 1"}
acr_auth="Bearer bench-acr-token"; ci_auth="Bearer bench-ci-token"
case "$secs$conns" in *[!0-9]*) echo "usage: bench/run.sh [SECONDS] [CONNECTIONS]" >&2; exit 2;; esac

# --- packages, processes and cleanup, build (bench/lib.sh) --------------------------------------
BENCH_NAME=bench
. bench/lib.sh
bench_deps
tmp=$(mktemp -d /tmp/dm-bench.XXXXXX)
redis_pid=""; dm_pid=""; perf_pid=""
cleanup() {
    [ -n "$perf_pid" ] && stop_pid "$perf_pid"
    [ -n "$dm_pid" ] && stop_pid "$dm_pid"
    [ -n "$redis_pid" ] && stop_pid "$redis_pid"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=${BENCH_PORT:-$(free_port 18090)}
export NGINX_PORT=${NGINX_PORT:-$(free_port 18190)} REDIS_PORT=${REDIS_PORT:-$(free_port 16490)}
per_req_us() { per_item_us "$1" "$2" "$3"; } # ticks-before ticks-after requests
rcli() { redis-cli -s "$tmp/redis.sock" "$@"; }
bench_build

echo "bench: $(date -u +%FT%TZ), $(nproc) cores, ${secs}s per figure, $conns connections," \
     "wrk -t1, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews everything)" >&2

# --- 1. ceilings -------------------------------------------------------------------------------
AUTH=$acr_auth bench/ceiling.sh "$top/tests/fixtures/acr/push.json" "$secs" "$conns" \
    | tee "$tmp/ceiling.out" >&2
ceil() { awk -F': ' -v k="$1" '$1 == k {print $2}' "$tmp/ceiling.out"; }
c_nginx=$(ceil "nginx-204 requests/s"); c_redis=$(ceil "redis EVAL park (pipeline 1) ops/s")
c_redis16=$(ceil "redis EVAL park (pipeline 16) ops/s")
c_redis_unix=$(ceil "redis EVAL park (pipeline 1, unix socket) ops/s")
[ -n "$c_nginx" ] && [ -n "$c_redis" ] && [ "${c_redis%.*}" -gt 0 ] || fail "no ceiling figures"

# --- 2. digestmapd -----------------------------------------------------------------------------
redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" & redis_pid=$!
for _ in $(seq 50); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(rcli ping)" = PONG ] || fail "redis-server did not start"

write_config() { # workers
    cat > "$tmp/config.json" <<JSON
{
  "listen": "127.0.0.1:$port",
  "workers": $1,
  "log_level": "warn",
  "redis": {"url": "unix://$tmp/redis.sock"},
  "limits": {"max_inflight": 100000},
  "outputs": {"stream_maxlen": 1000000000},
  "sources": [
    {"type": "acr", "path": "/v1/registry/acr",
     "auth": [{"type": "header", "name": "Authorization", "value": "$acr_auth"}]},
    {"type": "build", "path": "/v1/builds",
     "auth": [{"type": "header", "name": "Authorization", "value": "$ci_auth"}]}
  ]
}
JSON
}
start_daemon() { # workers
    write_config "$1"
    "$daemon" --config "$tmp/config.json" 2>>"$tmp/digestmapd.log" & dm_pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$dm_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$tmp/digestmapd.log" >&2; fail "digestmapd (workers $1) did not become ready"
}
metric() { # name: the daemon's counter (sum over labels)
    curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}
run_wrk() { # out-file mode path: wrk with the same threads, connections and duration as the ceiling
    SALT=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n') MODE=$2 AUTH=$acr_auth BUILD_AUTH=$ci_auth \
        wrk -t1 -c"$conns" -d"${secs}s" --latency -s bench/push.lua "http://127.0.0.1:$port$3" > "$1"
}
wrk_field() { # file field: Requests/sec | p50 | p99 | requests | non2xx | sockerr
    case $2 in
        rps) awk '/Requests\/sec/ {print $2}' "$1" ;;
        p50) awk '$1 == "50%" {print $2}' "$1" ;;
        p99) awk '$1 == "99%" {print $2}' "$1" ;;
        requests) awk '/requests in/ {print $1}' "$1" ;;
        non2xx) awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$1" ;;
        sockerr) awk '/Socket errors/ {gsub(",", ""); n = $4 + $6 + $8 + $10} END {print n + 0}' "$1" ;;
    esac
}
count_keys() { # kind: number of dm:{0}:<kind>:* keys
    rcli --raw eval "return #redis.call('KEYS', ARGV[1])" 0 "dm:{0}:$1:*"
}
# digests whose push and build are both parked (each such pair must have produced one edge)
count_pairs() {
    rcli --raw eval "local n = 0
        for _, k in ipairs(redis.call('KEYS', 'dm:{0}:r:*')) do
          if redis.call('EXISTS', 'dm:{0}:b:' .. string.sub(k, 10)) == 1 then n = n + 1 end
        end
        return n" 0
}

rows=()   # "figure|value|unit"
add_row() { rows+=("$1|$2"); }
first=1
for w in $workers_list; do
    rcli flushall >/dev/null
    start_daemon "$w"

    # (a) ACR pushes, every digest new
    if [ "${BENCH_PERF:-0}" = 1 ] && [ $first = 1 ] && command -v perf >/dev/null; then
        perf record -F 999 -g -o "$tmp/perf.data" -a -- sleep "$secs" >/dev/null 2>&1 & perf_pid=$!
    fi
    d0=$(cpu_ticks "$dm_pid"); r0=$(cpu_ticks "$redis_pid")
    run_wrk "$tmp/push.out" push /v1/registry/acr
    d1=$(cpu_ticks "$dm_pid"); r1=$(cpu_ticks "$redis_pid")
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true; perf_pid=""
        echo "--- perf (workers $w, push): CPU share by process" >&2
        perf report -i "$tmp/perf.data" -g none --no-children --sort comm --stdio 2>/dev/null \
            | grep -v '^#' | grep '%' | head -8 >&2 || true
        echo "--- top symbols" >&2
        perf report -i "$tmp/perf.data" -g none --no-children --sort comm,dso,sym --stdio 2>/dev/null \
            | grep -v '^#' | grep '%' | head -25 >&2 || true
    fi
    first=0
    req=$(wrk_field "$tmp/push.out" requests); non2xx=$(wrk_field "$tmp/push.out" non2xx)
    sockerr=$(wrk_field "$tmp/push.out" sockerr); parked=$(count_keys r)
    dups=$(metric digestmap_duplicates_absorbed_total)
    echo "bench: workers $w push: $req requests answered, $parked digests parked," \
         "non-2xx $non2xx, socket errors $sockerr, duplicates $dups" >&2
    [ "$non2xx" = 0 ] || fail "push: $non2xx non-2xx answers"
    [ "$dups" = 0 ] || fail "push: $dups duplicates absorbed (digests are not unique)"
    # wrk drops the requests in flight when its time is up; the daemon may still have parked them
    [ "$parked" -ge "$req" ] && [ "$parked" -le $(( req + conns )) ] \
        || fail "push: $parked digests parked for $req answered requests"
    add_row "push req/s, workers $w" "$(wrk_field "$tmp/push.out" rps)"
    add_row "push p50, workers $w" "$(wrk_field "$tmp/push.out" p50)"
    add_row "push p99, workers $w" "$(wrk_field "$tmp/push.out" p99)"
    add_row "push CPU/req digestmapd, w $w" "$(per_req_us "$d0" "$d1" "$parked")us"
    add_row "push CPU/req redis-server, w $w" "$(per_req_us "$r0" "$r1" "$parked")us"

    # (b) join-heavy: push then build of the same digest, alternately
    rcli flushall >/dev/null
    e0=$(metric digestmap_edges_emitted_total)
    d0=$(cpu_ticks "$dm_pid"); r0=$(cpu_ticks "$redis_pid")
    run_wrk "$tmp/join.out" join /
    d1=$(cpu_ticks "$dm_pid"); r1=$(cpu_ticks "$redis_pid")
    req=$(wrk_field "$tmp/join.out" requests); non2xx=$(wrk_field "$tmp/join.out" non2xx)
    sleep 0.2   # let requests cut off by wrk's stop finish in the daemon
    edges=$(rcli xlen 'dm:{0}:out'); pairs=$(count_pairs); maps=$(count_keys m)
    e1=$(metric digestmap_edges_emitted_total)
    echo "bench: workers $w join: $req requests answered, $pairs pairs parked, $edges edges" \
         "in dm:{0}:out, $maps mappings, $(( e1 - e0 )) edges counted, non-2xx $non2xx" >&2
    [ "$non2xx" = 0 ] || fail "join: $non2xx non-2xx answers"
    [ "$edges" = "$pairs" ] && [ "$maps" = "$pairs" ] || fail "join: $edges edges for $pairs pairs"
    [ "$edges" -ge $(( req / 2 - conns )) ] || fail "join: only $edges edges for $req requests"
    add_row "join edges/s, workers $w" "$(awk -v e="$edges" -v s="$secs" 'BEGIN {printf "%.2f", e / s}')"
    add_row "join req/s, workers $w" "$(wrk_field "$tmp/join.out" rps)"
    add_row "join p50, workers $w" "$(wrk_field "$tmp/join.out" p50)"
    add_row "join p99, workers $w" "$(wrk_field "$tmp/join.out" p99)"
    add_row "join CPU/req digestmapd, w $w" "$(per_req_us "$d0" "$d1" "$req")us"
    add_row "join CPU/req redis-server, w $w" "$(per_req_us "$r0" "$r1" "$req")us"

    stop_daemon_pid=$dm_pid; dm_pid=""; stop_pid "$stop_daemon_pid"
done

# --- table -------------------------------------------------------------------------------------
printf '\n%-34s %12s %10s %10s\n' figure value /nginx204 /redisEVAL
for c in "nginx-204 req/s (ceiling)|$c_nginx" "redis EVAL p1 ops/s (ceiling)|$c_redis" "redis EVAL p16 ops/s|$c_redis16" \
         "redis EVAL p1 unix ops/s|$c_redis_unix" "nginx-204 p50|$(ceil 'nginx-204 latency p50')" \
         "nginx-204 p99|$(ceil 'nginx-204 latency p99')" "${rows[@]}"; do
    name=${c%%|*}; val=${c#*|}
    case $val in
        *s) printf '%-34s %12s %10s %10s\n' "$name" "$val" - - ;;   # a latency or CPU time
        *) awk -v n="$name" -v v="$val" -v a="$c_nginx" -v b="$c_redis" \
               'BEGIN {printf "%-34s %12.0f %10.3f %10.3f\n", n, v, v / a, v / b}' ;;
    esac
done
