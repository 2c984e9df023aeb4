#!/usr/bin/env bash
# bench/rss.sh [PUSHES] - digestmapd's resident memory over PUSHES (10,000,000) ACR pushes of new
# digests (bench/README.md). Same private redis-server and digestmapd as bench/run.sh; bench/rategen
# (closed loop, BENCH_CONNS connections) sends the pushes in RSS_CHUNKS (50) chunks, and after each
# chunk VmRSS of digestmapd (/proc/PID/status) is sampled. Prints the series and the growth from
# the end of the first 10 % of the pushes (the warm-up: allocator arenas, connection buffers,
# Redis pipelines at their working size) to the end; fails when it grew by more than
# max(8 MiB, 10 % of that sample) (RSS_BOUND_KB overrides the 8 MiB), or when any push was not
# answered 2xx.
#
# Redis must not fill up with 10 M parked events (about 620 bytes each: 6 GB). digestmapd runs as in
# production, only with short times: correlation window 1 s, grace 0, mapping TTL 1 s, sweeps every
# 100 ms (up to 1000 items), output stream trimmed to 10000 entries. So every push is parked,
# expires a second later, is swept and reported unmatched (a record appended to dm:{0}:out and
# trimmed), and Redis holds a few seconds' worth of items: the whole life of a push runs through
# digestmapd, not only its ingest, and nothing is refused. As a backstop only, Redis has
# maxmemory 1 GB with allkeys-lru (evicts instead of refusing writes, which digestmapd would
# answer 503); the evicted keys are reported at the end and are 0 in a normal run.
#   env: RSS_CHUNKS (50), RSS_BOUND_KB (8192), BENCH_CONNS (32), BENCH_WORKERS (2), BENCH_PORT,
#        BENCH_REV, BENCH_DAEMON (as in run.sh)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
pushes=${1:-10000000}; chunks=${RSS_CHUNKS:-50}; conns=${BENCH_CONNS:-32}
workers=${BENCH_WORKERS:-2}; bound_kb=${RSS_BOUND_KB:-8192}
acr_auth="Bearer bench-acr-token"; ci_auth="Bearer bench-ci-token"
case "$pushes$chunks$conns$workers$bound_kb" in *[!0-9]*) echo "usage: bench/rss.sh [PUSHES]" >&2; exit 2;; esac
[ "$chunks" -ge 10 ] && [ "$pushes" -ge "$chunks" ] || { echo "rss.sh: at least 10 chunks of 1 push" >&2; exit 2; }
chunk=$(( pushes / chunks ))

BENCH_NAME=rss
. bench/lib.sh
bench_deps
bench_begin rss
port=${BENCH_PORT:-$(free_port 18090)}
bench_build
rategen=$(bench_tool rategen)

bench_redis_start --maxmemory 1gb --maxmemory-policy allkeys-lru
BENCH_STREAM_MAXLEN=10000 bench_daemon_start "$workers" '"correlation": {"window_seconds": 1,
    "grace_seconds": 0, "mapping_ttl_seconds": 1, "sweep_interval_ms": 100, "sweep_batch": 1000},'
rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$dm_pid/status"; }
redis_info() { rcli info "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k {print $2}'; }

echo "rss: $(date -u +%FT%TZ), $(nproc) cores, $pushes pushes in $chunks chunks of $chunk," \
     "workers $workers, $conns connections, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
printf '%-8s %12s %12s %10s %12s %10s\n' chunk pushes "RSS kB" "push/s" "redis MB" "redis keys"
printf '%-8s %12s %12s %10s %12s %10s\n' start 0 "$(rss_kb)" - \
    "$(( $(redis_info memory used_memory) / 1048576 ))" "$(rcli dbsize)"
salt16=$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
samples=(); warm=$(( (chunks + 9) / 10 ))
for i in $(seq 1 "$chunks"); do
    rategen_run "$tmp/chunk.out" push 0 86400 -n "$chunk" -s "$(printf '%s%04x' "$salt16" "$i")"
    ok=$(rg "$tmp/chunk.out" 2xx)
    [ "$ok" = "$chunk" ] && [ "$(rg "$tmp/chunk.out" non-2xx)" = 0 ] && [ "$(rg "$tmp/chunk.out" errors)" = 0 ] \
        || fail "chunk $i: $ok of $chunk answered 2xx, non-2xx $(rg "$tmp/chunk.out" non-2xx), errors $(rg "$tmp/chunk.out" errors)"
    samples+=("$(rss_kb)")
    printf '%-8s %12s %12s %10.0f %12s %10s\n' "$i" $(( i * chunk )) "${samples[-1]}" \
        "$(rg "$tmp/chunk.out" answered/s)" "$(( $(redis_info memory used_memory) / 1048576 ))" "$(rcli dbsize)"
done

base=${samples[$(( warm - 1 ))]}; end=${samples[-1]}
max=$(printf '%s\n' "${samples[@]:$(( warm - 1 ))}" | sort -n | tail -1)
allowed=$(( base / 10 > bound_kb ? base / 10 : bound_kb ))
echo
echo "rss: after $(( warm * chunk )) pushes (warm-up) $base kB, at the end $end kB: growth $(( end - base )) kB" \
     "($(awk -v a="$base" -v b="$end" 'BEGIN {printf "%+.1f", (b - a) * 100 / a}') %), largest sample since $max kB;" \
     "allowed max(${bound_kb} kB, 10 %) = $allowed kB"
echo "rss: unmatched pushes reported $(metric digestmap_unmatched_registry_total) (the sweeper kept up with the" \
     "short window), redis peak $(redis_info memory used_memory_peak_human), evicted keys" \
     "$(redis_info stats evicted_keys) (the maxmemory backstop: 0 unless Redis filled up)"
[ $(( end - base )) -le "$allowed" ] || fail "digestmapd's RSS grew by $(( end - base )) kB after the warm-up (allowed $allowed kB)"
echo "rss: flat: OK"
