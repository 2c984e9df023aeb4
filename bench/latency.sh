#!/usr/bin/env bash
# bench/latency.sh [SECONDS] [CONNECTIONS] - push -> edge latency at half the saturation rate
# (bench/README.md): the same private redis-server and digestmapd as bench/run.sh, then
#   1. saturation: wrk join (bench/push.lua MODE=join) for BENCH_SATURATION_SECONDS (5), as in
#      run.sh, checked the same way; its req/s is the saturation rate;
#   2. bench/rategen at half that rate (open loop, join mode) for SECONDS, against a flushed
#      Redis: the latency histograms (every request, and push -> edge per pair, from the intended
#      send time) and the counts: every scheduled request answered 2xx, edges in dm:{0}:out =
#      pairs answered = pairs parked = mappings. CPU µs per request of digestmapd and
#      redis-server over the rategen run.
#   env: BENCH_SECONDS (10), BENCH_CONNS (32), BENCH_WORKERS (2: one count), BENCH_PORT,
#        BENCH_RATE (skip step 1 and use this total rate, requests/s), BENCH_REV, BENCH_DAEMON
#        (as in run.sh), BENCH_SATURATION_SECONDS (5)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-${BENCH_SECONDS:-10}}; conns=${2:-${BENCH_CONNS:-32}}; workers=${BENCH_WORKERS:-2}
acr_auth="Bearer bench-acr-token"; ci_auth="Bearer bench-ci-token"
case "$secs$conns$workers" in *[!0-9]*) echo "usage: bench/latency.sh [SECONDS] [CONNECTIONS]" >&2; exit 2;; esac

BENCH_NAME=latency
. bench/lib.sh
bench_deps
bench_begin latency
port=${BENCH_PORT:-$(free_port 18090)}
bench_build
rategen=$(bench_tool rategen)
echo "latency: $(date -u +%FT%TZ), $(nproc) cores, workers $workers, $conns connections," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews everything)" >&2

bench_redis_start
bench_daemon_start "$workers"

# --- 1. saturation -------------------------------------------------------------------------------
if [ -n "${BENCH_RATE:-}" ]; then
    rate=$BENCH_RATE
    echo "latency: rate $rate requests/s (BENCH_RATE), no saturation run" >&2
else
    secs_run=$secs; secs=${BENCH_SATURATION_SECONDS:-5}
    rcli flushall >/dev/null
    run_wrk "$tmp/join.out" join /
    secs=$secs_run
    req=$(wrk_field "$tmp/join.out" requests); non2xx=$(wrk_field "$tmp/join.out" non2xx)
    bench_quiet
    counts=$(join_counts); read -r edges pairs maps <<< "$counts"
    echo "latency: saturation (wrk join): $(wrk_field "$tmp/join.out" rps) requests/s," \
         "p50 $(wrk_field "$tmp/join.out" p50), p99 $(wrk_field "$tmp/join.out" p99); $req answered," \
         "$edges edges, $pairs pairs, $maps mappings, non-2xx $non2xx" >&2
    [ "$non2xx" = 0 ] || fail "saturation: $non2xx non-2xx answers"
    [ "$edges" = "$pairs" ] && [ "$maps" = "$pairs" ] || fail "saturation: $edges edges for $pairs pairs"
    [ "$edges" -ge $(( req / 2 - conns )) ] || fail "saturation: only $edges edges for $req requests"
    rate=$(awk -v r="$(wrk_field "$tmp/join.out" rps)" 'BEGIN {printf "%d", r / 2}')
fi
[ "$rate" -gt 1 ] || fail "rate $rate requests/s"

# --- 2. rategen at half the saturation rate ------------------------------------------------------
rcli flushall >/dev/null
d0=$(cpu_ticks "$dm_pid"); r0=$(cpu_ticks "$redis_pid")
rategen_run "$tmp/rategen.out" join "$rate" "$secs"
d1=$(cpu_ticks "$dm_pid"); r1=$(cpu_ticks "$redis_pid")
rategen_check "$tmp/rategen.out"
sent=$(rg "$tmp/rategen.out" sent)

echo
echo "rategen join at $rate requests/s ($(( rate / 2 )) pairs/s), $conns connections, ${secs}s," \
     "workers $workers: latency from the intended send time"
printf '%-12s %10s %10s %10s %10s %10s\n' "ms" p50 p90 p99 p99.9 max
for h in latency "push->edge"; do
    printf '%-12s' "$h"
    for p in p50 p90 p99 p99.9 max; do printf ' %10s' "$(rg "$tmp/rategen.out" "$h $p ms")"; done
    echo
done
echo "counts: scheduled $(rg "$tmp/rategen.out" scheduled), 2xx $(rg "$tmp/rategen.out" 2xx)," \
     "non-2xx $(rg "$tmp/rategen.out" non-2xx), errors $(rg "$tmp/rategen.out" errors)," \
     "late (> 1 ms after the intended time) $(rg "$tmp/rategen.out" late), pairs answered" \
     "$(rg "$tmp/rategen.out" "pairs answered") = edges"
echo "CPU/req: digestmapd $(per_item_us "$d0" "$d1" "$sent") us, redis-server" \
     "$(per_item_us "$r0" "$r1" "$sent") us"
echo
sed -n '/^# push->edge: bucket table/,$ s/^# //p' "$tmp/rategen.out"
