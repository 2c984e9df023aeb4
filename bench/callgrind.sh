#!/usr/bin/env bash
# bench/callgrind.sh [SECONDS] [CONNECTIONS] - digestmapd's instructions per ACR push: the daemon
# (1 worker, BENCH_DAEMON or build/bin/digestmapd) runs under valgrind --tool=callgrind while wrk
# sends bench/push.lua (every digest new) for SECONDS (20) over CONNECTIONS (8); prints the
# instructions counted from wrk's start until every request is answered (callgrind_control
# zeroes the counters, then dumps them: start-up and shutdown are not counted; CG_WHOLE=1 counts
# the whole run as docs/hot-path.md's first figures did) divided by the pushes parked. The
# count repeats within a few hundred instructions on a busy machine, unlike CPU time
# (docs/hot-path.md). CG_KEEP=<dir> keeps callgrind.out for callgrind_annotate.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-20}; conns=${2:-8}
acr_auth="Bearer bench-acr-token"; ci_auth="Bearer bench-ci-token"
BENCH_NAME=callgrind
. bench/lib.sh
bench_begin callgrind
port=${BENCH_PORT:-$(free_port 18390)}
daemon=${BENCH_DAEMON:-$top/build/bin/digestmapd}
[ -x "$daemon" ] || fail "no $daemon (build first, or set BENCH_DAEMON)"
bench_redis_start
# bench_daemon_start's 10 s readiness wait is short for valgrind: wrap the daemon and wait longer
real=$daemon
daemon=$tmp/cg-daemon
printf '#!/bin/sh\nexec valgrind --tool=callgrind --compress-strings=no --compress-pos=no %s --callgrind-out-file=%s/callgrind.out %s "$@"\n' \
    "" "$tmp" "$real" > "$daemon"
chmod +x "$daemon"
bench_daemon_start 1 || true
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || fail "digestmapd under valgrind did not become ready"
[ "${CG_WHOLE:-0}" = 1 ] || callgrind_control -z "$dm_pid" >/dev/null
run_wrk "$tmp/push.out" push /v1/registry/acr
bench_quiet
[ "${CG_WHOLE:-0}" = 1 ] || callgrind_control -d "$dm_pid" >/dev/null
parked=$(count_keys r)
non2xx=$(wrk_field "$tmp/push.out" non2xx)
bench_daemon_stop
for _ in $(seq 100); do [ -s "$tmp/callgrind.out" ] && break; sleep 0.1; done
# the dump of the run (callgrind.out.1) when the counters were zeroed at its start
out=$tmp/callgrind.out
[ "${CG_WHOLE:-0}" = 1 ] || out=$tmp/callgrind.out.1
[ -s "$out" ] || { ls "$tmp" >&2; fail "no $out"; }
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
[ -n "${CG_KEEP:-}" ] && mkdir -p "$CG_KEEP" && cp "$out" "$CG_KEEP/callgrind.out"
echo "callgrind: $parked pushes parked, non-2xx $non2xx, $total instructions"
awk -v t="$total" -v n="$parked" 'BEGIN {printf "callgrind: %.1fk instructions per push\n", t / n / 1000}'
