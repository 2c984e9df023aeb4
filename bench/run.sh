#!/usr/bin/env bash
# bench/run.sh [--smoke] [SECONDS] [CONNECTIONS] - digestmapd's throughput, as ratios against the
# loopback ceilings measured in the same run (see bench/README.md). Installs what is missing (as
# root or with sudo), builds build-bench/ (Release), runs everything on 127.0.0.1 and a private
# redis-server (unix socket, no persistence), stops by itself and cleans up.
#   env: BENCH_SECONDS (5), BENCH_CONNS (32), BENCH_WORKERS ("2 1"), BENCH_PORT (first free from 18090),
#        BENCH_PERF=1 (perf profiles of digestmapd and redis-server during the push run with the
#        first worker count: shares per library and top symbols), BENCH_PERF_KEEP=<dir>,
#        NGINX_PORT / EVHTTP_PORT / REDIS_PORT (ceiling ports, first free from 18190 / 18290 / 16490),
#        BENCH_REV=<git rev> (bench that commit, exported with git archive into a temp dir,
#        instead of the working tree: to compare revisions or skip someone's half-done edit),
#        BENCH_DAEMON=<binary> (bench that digestmapd, no build)
#   --smoke (or BENCH_SMOKE=1): the CI mode (scripts/test): 1 s per figure, 8 connections,
#        workers 2, no perf, plus a 1 s rategen join run at 400 requests/s; checks the counts
#        only (parked = answered, edges = pairs, no non-2xx), never the speed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
smoke=${BENCH_SMOKE:-0}
if [ "${1:-}" = --smoke ]; then smoke=1; shift; fi
if [ "$smoke" = 1 ]; then
    secs=${1:-1}; conns=${2:-8}; workers_list=2; BENCH_PERF=0
else
    secs=${1:-${BENCH_SECONDS:-5}}; conns=${2:-${BENCH_CONNS:-32}}
    workers_list=${BENCH_WORKERS:-"2 1"}
fi
acr_auth="Bearer bench-acr-token"; ci_auth="Bearer bench-ci-token"
case "$secs$conns" in *[!0-9]*|"") echo "usage: bench/run.sh [--smoke] [SECONDS] [CONNECTIONS]" >&2; exit 2;; esac
started=$(date +%s)

# --- packages, processes and cleanup, build (bench/lib.sh) --------------------------------------
BENCH_NAME=bench
. bench/lib.sh
bench_deps
bench_begin bench
port=${BENCH_PORT:-$(free_port 18090)}
export NGINX_PORT=${NGINX_PORT:-$(free_port 18190)} REDIS_PORT=${REDIS_PORT:-$(free_port 16490)}
export EVHTTP_PORT=${EVHTTP_PORT:-$(free_port 18290)}
per_req_us() { per_item_us "$1" "$2" "$3"; } # ticks-before ticks-after requests
bench_build
rategen=$(bench_tool rategen)

echo "bench: $(date -u +%FT%TZ), $(nproc) cores, ${secs}s per figure, $conns connections," \
     "wrk -t1, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews everything)" >&2

# --- 1. ceilings -------------------------------------------------------------------------------
AUTH=$acr_auth bench/ceiling.sh "$top/tests/fixtures/acr/push.json" "$secs" "$conns" \
    | tee "$tmp/ceiling.out" >&2
ceil() { awk -F': ' -v k="$1" '$1 == k {print $2}' "$tmp/ceiling.out"; }
c_nginx=$(ceil "nginx-204 requests/s"); c_redis=$(ceil "redis EVAL park (pipeline 1) ops/s")
c_evhttp=$(ceil "evhttp-204 requests/s")
c_redis16=$(ceil "redis EVAL park (pipeline 16) ops/s")
c_redis_unix=$(ceil "redis EVAL park (pipeline 1, unix socket) ops/s")
[ -n "$c_nginx" ] && [ -n "$c_evhttp" ] && [ -n "$c_redis" ] && [ "${c_redis%.*}" -gt 0 ] \
    || fail "no ceiling figures"

# --- 2. digestmapd -----------------------------------------------------------------------------
bench_redis_start

rows=()   # "figure|value|unit"
add_row() { rows+=("$1|$2"); }
first=1
for w in $workers_list; do
    rcli flushall >/dev/null
    bench_daemon_start "$w"

    # (a) ACR pushes, every digest new
    perf_now=0
    if [ "${BENCH_PERF:-0}" = 1 ] && [ $first = 1 ]; then
        perf_now=1; bench_perf_start "$secs" "digestmapd:$dm_pid" "redis-server:$redis_pid"
    fi
    d0=$(cpu_ticks "$dm_pid"); r0=$(cpu_ticks "$redis_pid")
    run_wrk "$tmp/push.out" push /v1/registry/acr
    d1=$(cpu_ticks "$dm_pid"); r1=$(cpu_ticks "$redis_pid")
    if [ $perf_now = 1 ]; then
        bench_perf_wait
        echo "--- perf (workers $w, push, -e cpu-clock): share of each process's CPU time" >&2
        bench_perf_report digestmapd redis-server
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
    bench_quiet   # requests cut off by wrk's stop finish in the daemon
    counts=$(join_counts); read -r edges pairs maps <<< "$counts"
    e1=$(metric digestmap_edges_emitted_total)
    echo "bench: workers $w join: $req requests answered, $pairs pairs parked, $edges edges" \
         "in dm:{0}:out, $maps mappings, $(( e1 - e0 )) edges counted, non-2xx $non2xx" >&2
    [ "$non2xx" = 0 ] || fail "join: $non2xx non-2xx answers"
    [ "$edges" = "$pairs" ] && [ "$maps" = "$pairs" ] && [ $(( e1 - e0 )) = "$edges" ] \
        || fail "join: $edges edges, $(( e1 - e0 )) counted, for $pairs pairs"
    [ "$edges" -ge $(( req / 2 - conns )) ] || fail "join: only $edges edges for $req requests"
    add_row "join edges/s, workers $w" "$(awk -v e="$edges" -v s="$secs" 'BEGIN {printf "%.2f", e / s}')"
    add_row "join req/s, workers $w" "$(wrk_field "$tmp/join.out" rps)"
    add_row "join p50, workers $w" "$(wrk_field "$tmp/join.out" p50)"
    add_row "join p99, workers $w" "$(wrk_field "$tmp/join.out" p99)"
    add_row "join CPU/req digestmapd, w $w" "$(per_req_us "$d0" "$d1" "$req")us"
    add_row "join CPU/req redis-server, w $w" "$(per_req_us "$r0" "$r1" "$req")us"

    # (c) smoke: a short open-loop rategen run (bench/latency.sh measures with it), counts only
    if [ "$smoke" = 1 ]; then
        rcli flushall >/dev/null
        rategen_run "$tmp/rategen.out" join 400 1
        rategen_check "$tmp/rategen.out"
        add_row "rategen join p99 at 400/s, w $w" "$(rg "$tmp/rategen.out" "push->edge p99 ms")ms"
    fi

    bench_daemon_stop
done

# --- table -------------------------------------------------------------------------------------
printf '\n%-36s %12s %10s %10s %10s\n' figure value /nginx204 /evhttp204 /redisEVAL
for c in "nginx-204 req/s (ceiling)|$c_nginx" "evhttp-204 req/s (ceiling)|$c_evhttp" \
         "redis EVAL p1 ops/s (ceiling)|$c_redis" "redis EVAL p16 ops/s|$c_redis16" \
         "redis EVAL p1 unix ops/s|$c_redis_unix" "nginx-204 p50|$(ceil 'nginx-204 latency p50')" \
         "nginx-204 p99|$(ceil 'nginx-204 latency p99')" "nginx-204 CPU/req|$(ceil 'nginx-204 CPU/req us')us" \
         "evhttp-204 p50|$(ceil 'evhttp-204 latency p50')" "evhttp-204 p99|$(ceil 'evhttp-204 latency p99')" \
         "evhttp-204 CPU/req|$(ceil 'evhttp-204 CPU/req us')us" "${rows[@]}"; do
    name=${c%%|*}; val=${c#*|}
    case $val in
        *s) printf '%-36s %12s %10s %10s %10s\n' "$name" "$val" - - - ;;   # a latency or CPU time
        *) awk -v n="$name" -v v="$val" -v a="$c_nginx" -v e="$c_evhttp" -v b="$c_redis" \
               'BEGIN {printf "%-36s %12.0f %10.3f %10.3f %10.3f\n", n, v, v / a, v / e, v / b}' ;;
    esac
done
echo "bench: done in $(( $(date +%s) - started )) s$([ "$smoke" = 1 ] && echo ' (smoke: counts checked, speed ignored)')" >&2
