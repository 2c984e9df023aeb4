# bench/lib.sh - shared by bench/run.sh and bench/sink.sh (sourced, after `cd` to the top of
# the tree). The caller sets BENCH_NAME (prefix of messages) and tmp (its temp dir) first.

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
# with git archive into $tmp/src; sets src and daemon.
bench_build() {
    src=$PWD
    if [ -n "${BENCH_REV:-}" ]; then
        src=$tmp/src; mkdir "$src"
        git archive "$BENCH_REV" | tar -x -C "$src"
        echo "$BENCH_NAME: building $BENCH_REV ($(git rev-parse --short "$BENCH_REV"))" >&2
    fi
    cmake -S "$src" -B "$src/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$src/build-bench" -j"$(nproc)" --target digestmapd >/dev/null
    daemon=$src/build-bench/bin/digestmapd
}
