# bench/lib.sh - shared by the bench scripts (sourced, after `cd` to the top of the tree; by
# bench/ceiling.sh from anywhere). The caller sets BENCH_NAME (prefix of messages) and tmp (its
# temp dir) first.
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# bench_deps: the run-time packages plus the benchmark tools, installing what is missing.
bench_deps() {
    scripts/deps.sh run
    local missing=() p
    for p in nginx-light wrk redis-server redis-tools curl python3; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "$BENCH_NAME: installing missing packages: ${missing[*]}" >&2
    local sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

fail() { echo "$BENCH_NAME: FAIL: $*" >&2; exit 1; }

stop_pid() { # pid: SIGTERM, wait at most 12 s, then SIGKILL
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

free_port() { # first port from $1 on that nothing listens on (another bench may be running)
    local p
    for p in $(seq "$1" $(( $1 + 99 ))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    fail "no free port from $1"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime of a process

per_item_us() { # ticks-before ticks-after items [decimals]: CPU microseconds per item
    awk -v a="$1" -v b="$2" -v n="$3" -v d="${4:-0}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.*f", d, (n > 0) ? (b - a) * 1e6 / hz / n : 0}'
}

# bench_build: build digestmapd (Release) from the working tree, or from BENCH_REV exported
# with git archive into $tmp/src; sets src and daemon. BENCH_DAEMON=<binary> skips the build and
# uses that one (scripts/test runs the smoke mode with the build/ it has just built and tested).
bench_build() {
    src=$PWD
    if [ -n "${BENCH_DAEMON:-}" ]; then
        [ -x "$BENCH_DAEMON" ] || fail "BENCH_DAEMON=$BENCH_DAEMON is not an executable"
        daemon=$(cd "$(dirname "$BENCH_DAEMON")" && pwd)/$(basename "$BENCH_DAEMON")
        return 0
    fi
    if [ -n "${BENCH_REV:-}" ]; then
        src=$tmp/src; mkdir "$src"
        git archive "$BENCH_REV" | tar -x -C "$src"
        echo "$BENCH_NAME: building $BENCH_REV ($(git rev-parse --short "$BENCH_REV"))" >&2
    fi
    cmake -S "$src" -B "$src/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$src/build-bench" -j"$(nproc)" --target digestmapd >/dev/null
    daemon=$src/build-bench/bin/digestmapd
}

# bench_tool NAME: the bench's own C tool bench/NAME.c (evhttp204, rategen), compiled with cc
# -O2 -Werror into build-bench/bench/NAME when missing or older than its source (not a CMake
# target: the default build never sees them); prints its path.
bench_tool() {
    local c=$bench_dir/$1.c out=$bench_dir/../build-bench/bench/$1
    if [ ! -x "$out" ] || [ "$c" -nt "$out" ]; then
        mkdir -p "${out%/*}"
        # shellcheck disable=SC2046 # pkg-config prints several words on purpose
        cc -std=c11 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror \
            -o "$out.$$" "$c" $(pkg-config --cflags --libs libevent_core libevent_extra) -lhttp_parser \
            || fail "cannot compile $c"
        mv -f "$out.$$" "$out"   # atomic: another bench may be using the old one
    fi
    echo "$out"
}

# --- a private redis-server and digestmapd (run.sh, latency.sh, rss.sh) --------------------------
# The caller calls bench_begin, sets port, daemon (bench_build), acr_auth and ci_auth, conns and
# secs (for wrk). Redis listens on $tmp/redis.sock only.
redis_pid=""; dm_pid=""

# bench_begin NAME: a temp dir $tmp for this bench; on exit (or ^C) the profilers, digestmapd and
# redis-server it started are stopped and the dir removed.
bench_begin() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/dm-$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    bench_perf_stop
    [ -n "$dm_pid" ] && stop_pid "$dm_pid"
    [ -n "$redis_pid" ] && stop_pid "$redis_pid"
    rm -rf "$tmp"
}
rcli() { redis-cli -s "$tmp/redis.sock" "$@"; }

bench_redis_start() { # [redis-server options...]: no persistence unless the options say so
    redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save "" \
        --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" "$@" & redis_pid=$!
    for _ in $(seq 50); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
    [ "$(rcli ping)" = PONG ] || fail "redis-server did not start"
}

# bench_daemon_start WORKERS [EXTRA]: digestmapd with one ACR and one build source (header auth),
# log_level warn, max_inflight 100000, a 30 s Redis command deadline (a busy machine must not
# turn into 503s), data_dir $tmp (its spool: not the tree's var/, which one digestmapd at a time
# may lock, so that two benches can run side by side), waits (10 s at most) for /readyz.
# EXTRA: top-level JSON members, each followed by a comma (e.g. a "correlation" object);
# BENCH_STREAM_MAXLEN sets outputs.stream_maxlen.
bench_daemon_start() {
    cat > "$tmp/config.json" <<JSON
{
  "listen": "127.0.0.1:$port",
  "workers": $1,
  "log_level": "warn",
  "data_dir": "$tmp",
  "redis": {"url": "unix://$tmp/redis.sock", "command_timeout_ms": 30000},
  "limits": {"max_inflight": 100000},
  "outputs": {"stream_maxlen": ${BENCH_STREAM_MAXLEN:-1000000000}},
  ${2:-}
  "sources": [
    {"type": "acr", "path": "/v1/registry/acr",
     "auth": [{"type": "header", "name": "Authorization", "value": "$acr_auth"}]},
    {"type": "build", "path": "/v1/builds",
     "auth": [{"type": "header", "name": "Authorization", "value": "$ci_auth"}]}
  ]
}
JSON
    "$daemon" --config "$tmp/config.json" 2>>"$tmp/digestmapd.log" & dm_pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$dm_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$tmp/digestmapd.log" >&2; fail "digestmapd (workers $1) did not become ready"
}
bench_daemon_stop() { local p=$dm_pid; dm_pid=""; [ -n "$p" ] && stop_pid "$p"; return 0; }

metric() { # name: the daemon's counter (sum over labels)
    curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}
bench_quiet() { # wait (30 s at most) until the daemon has no request in flight
    for _ in $(seq 300); do [ "$(metric digestmap_inflight_requests)" = 0 ] && return 0; sleep 0.1; done
    fail "digestmapd still has requests in flight after 30 s"
}
run_wrk() { # out-file mode path: wrk -t1 with $conns connections for $secs, bench/push.lua
    SALT=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n') MODE=$2 AUTH=$acr_auth BUILD_AUTH=$ci_auth \
        wrk -t1 -c"$conns" -d"${secs}s" --timeout 30s --latency -s "$bench_dir/push.lua" \
        "http://127.0.0.1:$port$3" > "$1"
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
# join_counts: "EDGES PAIRS MAPPINGS" read in one script, i.e. at one instant: XLEN dm:{0}:out,
# the digests whose push and build are both parked (each such pair must have produced one edge),
# the mapping hashes. A script that parks the second event writes the edge in the same step, so
# the three agree even while requests are still being served.
join_counts() {
    rcli --raw eval "local n = 0
        for _, k in ipairs(redis.call('KEYS', 'dm:{0}:r:*')) do
          if redis.call('EXISTS', 'dm:{0}:b:' .. string.sub(k, 10)) == 1 then n = n + 1 end
        end
        return redis.call('XLEN', 'dm:{0}:out') .. ' ' .. n .. ' ' .. #redis.call('KEYS', 'dm:{0}:m:*')" 0
}

# --- rategen (bench/rategen.c) ---------------------------------------------------------------------
rategen_run() { # out-file mode rate seconds [more rategen options]: against the daemon on $port
    local out=$1 mode=$2 rate=$3 s=$4; shift 4
    "$rategen" -p "$port" -c "$conns" -m "$mode" -r "$rate" -d "$s" -a "$acr_auth" -b "$ci_auth" \
        "$@" > "$out" || fail "rategen failed: $(cat "$out")"
}
rg() { awk -F': ' -v k="$2" '$1 == k {print $2}' "$1"; } # out-file name: a rategen figure
# rategen_check out-file: every scheduled request sent and answered 2xx, nothing lost; in join
# mode the edges in dm:{0}:out (flushed before the run) = the pairs = the mappings = the pairs
# rategen saw answered; in push mode the parked pushes = the answers. Counts only, no speed.
rategen_check() {
    local f=$1 sched sent ok
    sched=$(rg "$f" scheduled); sent=$(rg "$f" sent); ok=$(rg "$f" 2xx)
    echo "$BENCH_NAME: rategen $(rg "$f" mode) at $(rg "$f" rate)/s: scheduled $sched, sent $sent," \
         "2xx $ok, non-2xx $(rg "$f" non-2xx), errors $(rg "$f" errors), late $(rg "$f" late)," \
         "unanswered $(rg "$f" unanswered)" >&2
    [ -n "$sched" ] && [ "$sched" -gt 0 ] || fail "rategen: nothing scheduled"
    [ "$(rg "$f" non-2xx)" = 0 ] || fail "rategen: $(rg "$f" non-2xx) non-2xx answers"
    [ "$(rg "$f" errors)" = 0 ] || fail "rategen: $(rg "$f" errors) connection errors"
    [ "$sent" = "$sched" ] && [ "$ok" = "$sched" ] || fail "rategen: $ok answered of $sent sent of $sched"
    bench_quiet
    if [ "$(rg "$f" mode)" = join ]; then
        local counts edges pairs maps
        counts=$(join_counts); read -r edges pairs maps <<< "$counts"
        echo "$BENCH_NAME: rategen join: $(rg "$f" "pairs answered") pairs answered, $pairs pairs parked," \
             "$edges edges in dm:{0}:out, $maps mappings" >&2
        [ "$edges" = "$(rg "$f" "pairs answered")" ] && [ "$pairs" = "$edges" ] && [ "$maps" = "$edges" ] \
            && [ "$edges" = $(( sched / 2 )) ] || fail "rategen join: $edges edges, $pairs pairs, $maps mappings for $(( sched / 2 )) pairs sent"
    else
        local parked; parked=$(count_keys r)
        [ "$parked" = "$ok" ] || fail "rategen push: $parked digests parked for $ok answers"
    fi
}

# --- perf (BENCH_PERF=1) ----------------------------------------------------------------------------
# Hardware counters are not available on these machines: sample cpu-clock (a software event)
# instead, or the profile is empty. One perf per process (-p: all its threads), so each profile's
# shares are of that process's own CPU time.
perf_pids=()
bench_perf_start() { # seconds name:pid...: profile each process for that long, in the background
    local np
    command -v perf >/dev/null || { echo "$BENCH_NAME: perf is missing (linux-perf): no profile" >&2; return 0; }
    for np in "${@:2}"; do
        perf record -e cpu-clock -F 999 -g -p "${np#*:}" -o "$tmp/perf.${np%%:*}.data" \
            -- sleep "$1" >/dev/null 2>&1 & perf_pids+=($!)
    done
}
bench_perf_wait() { local p; for p in "${perf_pids[@]}"; do wait "$p" || true; done; perf_pids=(); }
bench_perf_stop() { local p; for p in "${perf_pids[@]}"; do stop_pid "$p"; done; perf_pids=(); }
# bench_perf_report name...: for each profile, "perf <name> <group>: NN.N %" per library group
# (kernel, libc, jansson, libevent, hiredis, openssl, jemalloc, the program itself, other: each
# other library of 0.5 % or more is named) and the top 15
# symbols, on stderr. BENCH_PERF_KEEP=<dir> keeps the perf.data files (with call graphs) there.
bench_perf_report() {
    local name f
    for name in "$@"; do
        f=$tmp/perf.$name.data
        [ -s "$f" ] || { echo "$BENCH_NAME: no perf profile of $name" >&2; continue; }
        [ -n "${BENCH_PERF_KEEP:-}" ] && mkdir -p "$BENCH_PERF_KEEP" && cp "$f" "$BENCH_PERF_KEEP/"
        perf report -i "$f" --no-children --sort dso -g none --stdio 2>/dev/null | awk -v n="$name" '
            /^#/ || !/%/ {next}
            {   p = $1; sub("%", "", p); d = $2
                if (d ~ /kernel/) g = "kernel"
                else if (d ~ /^libc[.-]/) g = "libc"
                else if (d ~ /jansson/) g = "jansson"
                else if (d ~ /libevent/) g = "libevent"
                else if (d ~ /hiredis/) g = "hiredis"
                else if (d ~ /libcrypto|libssl/) g = "openssl"
                else if (d ~ /jemalloc/) g = "jemalloc"
                # Debian installs redis-server as a link to redis-check-rdb (Lua built in)
                else if (d == n || (n == "redis-server" && d ~ /^redis-/)) g = n
                else g = "other"
                s[g] += p; if (g == "other") o[d] += p }
            END {
                split("kernel libc jansson libevent hiredis openssl jemalloc " n " other", order, " ")
                for (i = 1; i <= 9; i++) if (order[i] in s) printf "perf %s %s: %.1f %%\n", n, order[i], s[order[i]]
                for (d in o) if (o[d] >= 0.5) printf "perf %s   other: %s %.1f %%\n", n, d, o[d]
            }' >&2
        echo "--- perf $name: top symbols" >&2
        perf report -i "$f" --no-children --sort dso,sym -g none --stdio 2>/dev/null \
            | grep -v '^#' | grep '%' | head -15 >&2 || true
    done
}
