#!/usr/bin/env bash
# bench/cluster.sh [SECONDS] [CONNECTIONS] - what routing through Redis Cluster costs: the same
# wrk load as bench/run.sh (push.lua, digests spread over the shards) against digestmapd with
# 16 shards on one redis-server, on a cluster of 3 masters, on 3 masters + 3 replicas, and on
# those with redis.wait_replicas 1, all in one run; reported as ratios against the one-server
# figures (see bench/README.md).
#   env: BENCH_SECONDS (5), BENCH_CONNS (32), BENCH_WORKERS (2), BENCH_PORT (first free from
#        18090), REDIS_PORT (first free from 16490), BENCH_CLUSTER_PORT (22100: the clusters use
#        22100-22102 and 22110-22115, bus ports + 10000), BENCH_REV (as in run.sh)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-${BENCH_SECONDS:-5}}; conns=${2:-${BENCH_CONNS:-32}}
workers=${BENCH_WORKERS:-2}
acr_auth="Bearer bench-acr-token"; ci_auth="Bearer bench-ci-token"
case "$secs$conns$workers" in *[!0-9]*) echo "usage: bench/cluster.sh [SECONDS] [CONNECTIONS]" >&2; exit 2;; esac

BENCH_NAME=bench-cluster
. bench/lib.sh
bench_deps
tmp=$(mktemp -d /tmp/dm-bench-cluster.XXXXXX)
redis_pid=""; dm_pid=""
# What tests/integration/cluster.sh needs from tests/integration/lib.sh.
T=$tmp DM_WAIT=60 AT_EXIT=()
die() { fail "$*"; }
at_exit() { AT_EXIT+=("$1"); }
poll_until() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.1; done
}
. tests/integration/cluster.sh
cleanup() {
    set +e
    [ -n "$dm_pid" ] && stop_pid "$dm_pid"
    [ -n "$redis_pid" ] && stop_pid "$redis_pid"
    for c in "${AT_EXIT[@]}"; do eval "$c"; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=${BENCH_PORT:-$(free_port 18090)}
redis_port=${REDIS_PORT:-$(free_port 16490)}
cbase=${BENCH_CLUSTER_PORT:-22100}
bench_build

echo "bench-cluster: $(date -u +%FT%TZ), $(nproc) cores, ${secs}s per figure, $conns connections," \
     "workers $workers, wrk -t1, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

start_daemon() { # url cluster(true|false) wait_replicas
    cat > "$tmp/config.json" <<JSON
{
  "listen": "127.0.0.1:$port",
  "workers": $workers,
  "log_level": "warn",
  "data_dir": "$tmp/var",
  "redis": {"url": "$1", "cluster": $2, "shards": 16, "wait_replicas": $3},
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
    "$daemon" --config "$tmp/config.json" 2>>"$tmp/digestmapd.log" & dm_pid=$!
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$dm_pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$tmp/digestmapd.log" >&2; fail "digestmapd ($1, cluster $2) did not become ready"
}
metric() { # name: the daemon's counter (sum over labels)
    curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}
run_wrk() { # out-file mode path
    SPREAD=1 SALT=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n') MODE=$2 AUTH=$acr_auth BUILD_AUTH=$ci_auth \
        wrk -t1 -c"$conns" -d"${secs}s" --latency -s bench/push.lua "http://127.0.0.1:$port$3" > "$1"
}
wrk_field() { # file field
    case $2 in
        rps) awk '/Requests\/sec/ {print $2}' "$1" ;;
        p50) awk '$1 == "50%" {print $2}' "$1" ;;
        p99) awk '$1 == "99%" {print $2}' "$1" ;;
        requests) awk '/requests in/ {print $1}' "$1" ;;
        non2xx) awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$1" ;;
    esac
}
# The Redis side: the masters' ports (MASTERS) and every redis-server's pid (RPIDS).
ticks() { local p n=0; for p in "$@"; do n=$((n + $(cpu_ticks "$p"))); done; echo "$n"; }
rkeys() { # pattern: keys on all masters
    local m n=0
    for m in $MASTERS; do n=$((n + $(redis-cli -p "$m" --scan --pattern "$1" | grep -c . || true))); done
    echo "$n"
}
xlen_all() { local s n=0; for s in $(seq 0 15); do n=$((n + $(redis-cli -c -p "${MASTERS%% *}" xlen "dm:{$s}:out"))); done; echo "$n"; }
flush_all() { local m; for m in $MASTERS; do redis-cli -p "$m" flushall >/dev/null; done; }

declare -A R=() # "<setup> <figure>" -> value
bench_setup() { # name url cluster wait_replicas
    local name=$1 req non2xx parked edges maps d0 d1 r0 r1
    flush_all
    start_daemon "$2" "$3" "$4"
    # (a) pushes, every digest new
    d0=$(cpu_ticks "$dm_pid"); r0=$(ticks $RPIDS)
    run_wrk "$tmp/push.out" push /v1/registry/acr
    d1=$(cpu_ticks "$dm_pid"); r1=$(ticks $RPIDS)
    req=$(wrk_field "$tmp/push.out" requests); non2xx=$(wrk_field "$tmp/push.out" non2xx)
    parked=$(rkeys 'dm:*:r:*')
    echo "bench-cluster: $name push: $req answered, $parked parked, non-2xx $non2xx" >&2
    [ "$non2xx" = 0 ] || fail "$name push: $non2xx non-2xx answers"
    [ "$parked" -ge "$req" ] && [ "$parked" -le $((req + conns)) ] || fail "$name push: $parked parked for $req answered"
    R[$name:push_rps]=$(wrk_field "$tmp/push.out" rps)
    R[$name:push_p50]=$(wrk_field "$tmp/push.out" p50); R[$name:push_p99]=$(wrk_field "$tmp/push.out" p99)
    R[$name:push_dm_us]=$(per_item_us "$d0" "$d1" "$parked" 1)
    R[$name:push_redis_us]=$(per_item_us "$r0" "$r1" "$parked" 1)
    # (b) joins: the push and the build of each digest
    flush_all
    d0=$(cpu_ticks "$dm_pid"); r0=$(ticks $RPIDS)
    run_wrk "$tmp/join.out" join /
    d1=$(cpu_ticks "$dm_pid"); r1=$(ticks $RPIDS)
    req=$(wrk_field "$tmp/join.out" requests); non2xx=$(wrk_field "$tmp/join.out" non2xx)
    sleep 0.2 # requests wrk cut off at its end finish in the daemon
    edges=$(xlen_all); maps=$(rkeys 'dm:*:m:*')
    echo "bench-cluster: $name join: $req answered, $edges edges, $maps mappings, non-2xx $non2xx" >&2
    [ "$non2xx" = 0 ] || fail "$name join: $non2xx non-2xx answers"
    [ "$edges" = "$maps" ] || fail "$name join: $edges edges for $maps mappings"
    [ "$edges" -ge $((req / 2 - conns)) ] || fail "$name join: only $edges edges for $req requests"
    R[$name:join_rps]=$(wrk_field "$tmp/join.out" rps)
    R[$name:join_p50]=$(wrk_field "$tmp/join.out" p50); R[$name:join_p99]=$(wrk_field "$tmp/join.out" p99)
    R[$name:join_dm_us]=$(per_item_us "$d0" "$d1" "$req" 1)
    R[$name:join_redis_us]=$(per_item_us "$r0" "$r1" "$req" 1)
    local spooled
    spooled=$(metric digestmap_spooled_total)
    [ "$spooled" = 0 ] || fail "$name: $spooled events spooled (Redis was not keeping up?)"
    stop_pid "$dm_pid"; dm_pid=""
}

# 1. one redis-server, TCP, AOF everysec like the cluster's nodes
mkdir -p "$tmp/single"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
    --dir "$tmp/single" --logfile "$tmp/single/redis.log" & redis_pid=$!
for _ in $(seq 50); do [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
MASTERS=$redis_port RPIDS=$redis_pid
bench_setup single "redis://127.0.0.1:$redis_port" false 0
stop_pid "$redis_pid"; redis_pid=""

# 2. three masters; 3. three masters and three replicas, without and with redis.wait_replicas 1
for setup in "masters 0 $cbase" "replicated 1 $((cbase + 10))"; do
    read -r name CLUSTER_REPLICAS base <<<"$setup"
    cluster_start "$base"
    MASTERS=$(cluster_masters | paste -sd' ')
    RPIDS=$(for p in $(cluster_ports); do echo "${CLUSTER_PID[$p]}"; done | paste -sd' ')
    bench_setup "$name" "redis://127.0.0.1:$base" true 0
    [ "$name" = replicated ] && bench_setup waited "redis://127.0.0.1:$base" true 1
    cluster_stop
    CLUSTER_PID=()
done

# --- table
printf '\n%-16s %10s %10s %10s %10s %8s %8s %8s\n' figure "1 server" "3 masters" "3+3" "3+3 wait1" \
    "/1 srv" "/1 srv" "/1 srv"
for f in push_rps push_p50 push_p99 push_dm_us push_redis_us join_rps join_p50 join_p99 join_dm_us join_redis_us; do
    a=${R[single:$f]}; b=${R[masters:$f]}; c=${R[replicated:$f]}; d=${R[waited:$f]}
    awk -v f="$f" -v a="$a" -v b="$b" -v c="$c" -v d="$d" 'function r(x) { return (a + 0 > 0) ? (x + 0) / (a + 0) : 0 }
        BEGIN { printf "%-16s %10s %10s %10s %10s %8.2f %8.2f %8.2f\n", f, a, b, c, d, r(b), r(c), r(d) }'
done
echo "(rps: requests/s; p50/p99: wrk latency; dm_us / redis_us: CPU microseconds per request of" \
     "digestmapd / of every redis-server together; the ratios compare p50/p99 only when both are in the same unit)"
