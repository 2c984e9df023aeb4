# lib.sh - shared fixture for the integration tests: a private redis-server on a unix socket in
# a temp dir, the real digestmapd on 127.0.0.1 with a free port, curl and redis-cli against them.
# Sourced by tests/integration/test_*.sh (run by ctest with DIGESTMAPD and DM_FIXTURES set).
#
# Tests must hold on a busy machine (docs/internet-tests.md): no wall-clock margins. Drive time
# through the event times in the payloads, and wait on observable state (a log line, a metric, a
# Redis key) with poll_until / wait_count / await_log, whose bounds (DM_WAIT, 60 s) are reached
# only when the test fails anyway.
set -euo pipefail

: "${DIGESTMAPD:?DIGESTMAPD must point at the digestmapd binary}"
: "${DM_FIXTURES:?DM_FIXTURES must point at tests/fixtures}"

# Nothing a test starts outlives it. Every process (redis-server, digestmapd, helper servers,
# curl) is a child of this shell, in its process group. ctest ends a test that runs past its
# TIMEOUT with SIGKILL to this shell alone, which runs no trap: so the test runs in a process
# group of its own (setsid when it is not a group leader already, as under ctest; PID and
# arguments are kept), and a watchdog outside that group kills the whole group and removes $T
# as soon as this shell is gone, however it ended. A normal exit stops everything in cleanup.
read -r -a _dm_stat <<<"$(sed 's/^.*) //' "/proc/$$/stat")"
if [ "${_dm_stat[2]}" != "$$" ] && [ -z "${DM_SETSID:-}" ]; then
    exec env DM_SETSID=1 setsid bash "$0" "$@"
fi
DM_OWN_GROUP=${DM_SETSID:-} # 1: the group is this test's alone (cleanup may signal all of it)
unset DM_SETSID _dm_stat

# DM_WAIT: seconds any wait on observable state may take before the test fails (startup of a
# daemon under ASan on a loaded machine included). Only a failing test ever waits that long.
DM_WAIT=${DM_WAIT:-60}

T=$(mktemp -d "${TMPDIR:-/tmp}/dmtest.XXXXXX")
setsid bash -c 'tail --pid="$1" -s 0.2 -f /dev/null; kill -KILL -- "-$1"; sleep 0.5; rm -rf "$2"' \
    dm-watchdog "$$" "$T" </dev/null >/dev/null 2>&1 &
DM_WATCHDOG=$!
DAEMON_PID=""
DAEMON2_PID=""
REDIS_PID=""
PORT=""
STATUS=""
BODY=""
HEADERS=""
FAILURES=0
CHECKS=0

fail() {
    echo "FAIL: $*" >&2
    FAILURES=$((FAILURES + 1))
}

die() {
    echo "FATAL: $*" >&2
    [ -f "$T/daemon.log" ] && { echo "--- daemon log (tail)" >&2; tail -n 30 "$T/daemon.log" >&2; }
    exit 1
}

# check DESCRIPTION EXPECTED ACTUAL
check() {
    CHECKS=$((CHECKS + 1))
    if [ "$2" == "$3" ]; then
        echo "ok - $1"
    else
        fail "$1: expected [$2], got [$3]"
    fi
}

# check_match DESCRIPTION REGEX ACTUAL
check_match() {
    CHECKS=$((CHECKS + 1))
    if [[ "$3" =~ $2 ]]; then
        echo "ok - $1"
    else
        fail "$1: [$3] does not match /$2/"
    fi
}

# poll_until SECONDS CMD...: run CMD (every 0.1 s) until it succeeds; 1 after SECONDS.
poll_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# spawn_redis SOCKET LOG [redis-server args...]: a private redis-server on a unix socket (no
# TCP), a child of this shell (never --daemonize: a daemon escapes the test's process group);
# its pid goes to SPAWNED_PID and to SOCKET.pid (so stop_redis_at finds one started in a
# subshell too). Returns once it answers PING (or asks for a password: --requirepass).
spawn_redis() {
    local sock=$1 log=$2
    shift 2
    rm -f "$sock"
    redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --daemonize no \
        --dir "$T" --save '' --appendonly no --logfile "$log" "$@" </dev/null >/dev/null 2>&1 &
    SPAWNED_PID=$!
    echo "$SPAWNED_PID" > "$sock.pid"
    _redis_up() { kill -0 "$SPAWNED_PID" 2>/dev/null || die "redis-server ($sock) exited: $(tail -n 5 "$log")"
                  [ -S "$1" ] && redis-cli -s "$1" ping 2>&1 | grep -qE 'PONG|NOAUTH'; }
    poll_until "$DM_WAIT" _redis_up "$sock" || die "redis-server ($sock) did not start"
}

# stop_redis_at SOCKET: SIGTERM the redis-server spawn_redis started there and wait until it is
# gone (SIGKILL if it takes longer than DM_WAIT).
stop_redis_at() {
    [ -f "$1.pid" ] || return 0
    local pid
    pid=$(cat "$1.pid")
    rm -f "$1.pid"
    kill "$pid" 2>/dev/null || true
    poll_until "$DM_WAIT" eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

start_redis() {
    # shellcheck disable=SC2086 # REDIS_EXTRA_ARGS: words on purpose
    spawn_redis "$T/redis.sock" "$T/redis.log" ${REDIS_EXTRA_ARGS:-}
    REDIS_PID=$SPAWNED_PID
}

stop_redis() {
    stop_redis_at "$T/redis.sock"
    REDIS_PID=""
}

rcli() {
    redis-cli -s "$T/redis.sock" "$@"
}

# A config with one ACR source, one build source and the query API; $1 may add JSON members to
# "correlation" (e.g. '"window_seconds": 5'). The embedded Redis is not used: tests own theirs.
default_config() {
    local corr=${1:-}
    cat <<EOF
{
  "listen": "127.0.0.1:0",
  "workers": 2,
  "data_dir": "$T/var",
  "log_level": "debug",
  "redis": { "url": "unix://$T/redis.sock", "command_timeout_ms": 5000, "connect_timeout_ms": 1000 },
  "correlation": { ${corr} },
  "limits": { "max_body_bytes": 65536 },
  "sources": [
    { "type": "acr", "path": "/v1/registry/acr",
      "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer acr-token"} ] },
    { "type": "build", "path": "/v1/builds",
      "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer ci-token"},
                {"type": "hmac-sha256", "header": "X-Digestmap-Signature", "secret": "ci-secret"} ] }
  ],
  "api": { "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer api-token"} ] }
}
EOF
}

# launch SUFFIX WHAT CONFIG_JSON: start digestmapd with $T/configSUFFIX.json, logging to
# $T/daemonSUFFIX.log, and wait until it listens and /readyz says 200; sets LAUNCHED_PID and
# LAUNCHED_PORT. WHAT names it in failures.
launch() {
    local sfx=$1 what=$2
    printf '%s\n' "$3" > "$T/config$sfx.json"
    : > "$T/daemon$sfx.log"
    "$DIGESTMAPD" --config "$T/config$sfx.json" </dev/null >/dev/null 2>>"$T/daemon$sfx.log" &
    LAUNCHED_PID=$!
    LAUNCHED_PORT=""
    _listening() {
        LAUNCHED_PORT=$(sed -n 's/.*msg="listening" addr=[^ ]*:\([0-9]*\) .*/\1/p' "$1" | tail -n 1)
        [ -n "$LAUNCHED_PORT" ] && return 0
        kill -0 "$LAUNCHED_PID" 2>/dev/null || die "$2 exited during startup"
        return 1
    }
    poll_until "$DM_WAIT" _listening "$T/daemon$sfx.log" "$what" || die "$what did not report its port"
    wait_ready 200 "$LAUNCHED_PORT" "$what"
}

# start_daemon [CONFIG_JSON]: start digestmapd (PORT, DAEMON_PID, log $T/daemon.log) and wait
# until it listens and /readyz says 200.
start_daemon() {
    launch "" digestmapd "${1:-$(default_config)}"
    DAEMON_PID=$LAUNCHED_PID
    PORT=$LAUNCHED_PORT
}

# wait_ready CODE [PORT [WHAT]]: poll /readyz (of PORT, default $PORT) until it answers CODE
# (DM_WAIT at most).
wait_ready() {
    local port=${2:-$PORT}
    _readyz_is() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/readyz")" == "$1" ]; }
    poll_until "$DM_WAIT" _readyz_is "$1" "$port" || die "${3:-digestmapd}: /readyz never answered $1"
}

# halt PID LOG WHAT: SIGTERM, expect exit status 0 within DM_WAIT (else SIGKILL) and no
# sanitizer report in LOG.
halt() {
    kill -TERM "$1" 2>/dev/null || true
    local rc=0
    poll_until "$DM_WAIT" eval "! kill -0 $1 2>/dev/null" ||
        { fail "$3 still running $DM_WAIT s after SIGTERM"; kill -KILL "$1" 2>/dev/null || true; }
    wait "$1" || rc=$?
    check "$3 exits 0 on SIGTERM" 0 "$rc"
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$2"; then
        fail "sanitizer report in the log of $3"
        grep -E -A20 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$2" >&2 | head -40
    fi
}

# stop_daemon: SIGTERM, expect exit status 0 and no sanitizer report in the log.
stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    local pid=$DAEMON_PID
    DAEMON_PID=""
    halt "$pid" "$T/daemon.log" digestmapd
}

# request METHOD PATH [curl args...]: sets STATUS, BODY and HEADERS.
request() {
    local method=$1 path=$2
    shift 2
    BODY=$(curl -s -X "$method" -D "$T/headers" -o - -w '\n%{http_code}' "$@" \
        "http://127.0.0.1:$PORT$path") || true
    STATUS=${BODY##*$'\n'}
    BODY=${BODY%$'\n'*}
    BODY=${BODY%$'\n'} # the daemon ends JSON answers with a newline
    HEADERS=$(cat "$T/headers" 2>/dev/null || true)
}

# post PATH FILE [curl args...]
post() {
    local path=$1 file=$2
    shift 2
    request POST "$path" -H 'Content-Type: application/json' --data-binary "@$file" "$@"
}

post_acr() { post /v1/registry/acr "$1" -H 'Authorization: Bearer acr-token'; }
post_build() { post /v1/builds "$1" -H 'Authorization: Bearer ci-token'; }
query_image() { request GET "/v1/images/$1" -H 'Authorization: Bearer api-token'; }

# iso_at SECONDS_FROM_NOW: an RFC 3339 timestamp with nanoseconds.
iso_at() {
    date -u -d "@$(( $(date +%s) + $1 ))" +%Y-%m-%dT%H:%M:%S.123456789Z
}

# acr_push FILE DIGEST TAG TIME [EVENT_ID] [HOST]: write an ACR push body to FILE.
acr_push() {
    local tagjson=""
    [ -n "$3" ] && tagjson=", \"tag\": \"$3\""
    cat > "$1" <<EOF
{ "id": "${5:-evt-$RANDOM$RANDOM}", "timestamp": "$4", "action": "push",
  "target": { "mediaType": "application/vnd.oci.image.index.v1+json", "size": 1609,
              "digest": "$2", "length": 1609, "repository": "team/api"$tagjson },
  "request": { "id": "req-1", "host": "${6:-contoso.azurecr.io}", "method": "PUT",
               "useragent": "buildkit/v0.16" } }
EOF
}

# build_event FILE DIGEST TIME RUN_ID [ATTEMPT]: write a build event body to FILE.
build_event() {
    cat > "$1" <<EOF
{ "images": [ { "name": "contoso.azurecr.io/team/api", "digest": "$2", "tags": ["1.4.0"] } ],
  "built_at": "$3",
  "run": { "provider": "github", "repository": "acme/api", "run_id": "$4",
           "run_attempt": "${5:-1}", "commit": "3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
           "ref": "refs/heads/main", "workflow": "release", "actor": "mona" } }
EOF
}

# random_digest: a fresh valid digest.
random_digest() {
    echo "sha256:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
}

# stream_count TYPE: entries of that type in dm:{0}:out.
stream_count() {
    rcli --raw xrange 'dm:{0}:out' - + | grep -c "^$1\$" || true
}

finish() {
    stop_daemon
    echo "$((CHECKS - FAILURES)) passed, $FAILURES failed"
    [ "$FAILURES" -eq 0 ]
}

# at_exit COMMAND: eval COMMAND when the test ends (first thing cleanup does), e.g. to stop a
# helper server politely; whatever is left is killed anyway.
DM_AT_EXIT=()
at_exit() { DM_AT_EXIT+=("$1"); }

# cleanup (EXIT trap): stop everything this test started and remove $T. The daemons get SIGKILL
# (finish already stopped them with the checks that go with it); Redis servers SIGTERM; every
# other process in the test's process group SIGTERM; then the watchdog is no longer needed.
cleanup() {
    set +e
    local c s
    for c in "${DM_AT_EXIT[@]}"; do eval "$c"; done
    for c in "$DAEMON_PID" "$DAEMON2_PID"; do
        [ -n "$c" ] && kill -KILL "$c" 2>/dev/null
    done
    for s in "$T"/*.sock "$T"/*/*.sock; do stop_redis_at "$s"; done
    if [ -n "$DM_OWN_GROUP" ]; then
        trap '' TERM
        kill -TERM -- "-$$" 2>/dev/null
    else
        for c in $(jobs -p); do [ "$c" == "$DM_WATCHDOG" ] || kill -TERM "$c" 2>/dev/null; done
    fi
    kill -KILL -- "-$DM_WATCHDOG" 2>/dev/null
    if [ -n "${DM_KEEP:-}" ]; then echo "# kept $T (DM_KEEP)"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# metric NAME: the value of one sample of /metrics (NAME includes any labels, e.g.
# 'digestmap_requests_total{route="/readyz",status="200"}'); 0 when the sample is absent.
metric() {
    local v
    v=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }' | tail -n 1)
    echo "${v:-0}"
}

# hmac_sig FILE [SECRET]: "sha256=<hex>" of HMAC-SHA256(SECRET, contents of FILE).
hmac_sig() {
    echo "sha256=$(openssl dgst -sha256 -hmac "${2:-ci-secret}" -r "$1" | cut -d' ' -f1)"
}

# post_build_hmac FILE: post a build event authenticated by HMAC (secret "ci-secret").
post_build_hmac() { post /v1/builds "$1" -H "X-Digestmap-Signature: $(hmac_sig "$1")"; }

# --- Helpers for the sweeper, multi-instance and shard tests (test_unmatched, test_two_instances,
# test_shards, test_memory, test_join_cases).

PORT2=""

# start_daemon2 [CONFIG_JSON]: a second digestmapd on its own port (PORT2, log $T/daemon2.log),
# normally sharing the first one's Redis. Stopped by stop_daemon2 (or killed at exit).
start_daemon2() {
    # Its own spool directory: a spool is one process's (docs/spool.md).
    launch 2 "second digestmapd" "$(jq --arg d "$T/spool2" '.spool.dir = $d' <<<"${1:-$(default_config)}")"
    DAEMON2_PID=$LAUNCHED_PID
    PORT2=$LAUNCHED_PORT
}

# cleanup_daemon2: kill the second daemon (cleanup does it too; kept for tests that set their
# own EXIT trap).
cleanup_daemon2() {
    if [ -n "$DAEMON2_PID" ]; then kill -KILL "$DAEMON2_PID" 2>/dev/null || true; fi
}

# stop_daemon2: SIGTERM the second daemon, expect exit status 0 and no sanitizer report.
stop_daemon2() {
    [ -n "$DAEMON2_PID" ] || return 0
    local pid=$DAEMON2_PID
    DAEMON2_PID=""
    halt "$pid" "$T/daemon2.log" "second digestmapd"
}

# metric_at PORT NAME: like metric, against the daemon listening on PORT.
metric_at() {
    local v
    v=$(curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }' | tail -n 1)
    echo "${v:-0}"
}

# stream_events [STREAM]: the CloudEvents documents of a stream (default dm:{0}:out), one a line.
stream_events() {
    local s='dm:{0}:out'
    [ $# -ge 1 ] && s=$1
    rcli --raw xrange "$s" - + | awk 'prev=="event"{print} {prev=$0}'
}

# stream_type_count TYPE [STREAM]: entries of that type in STREAM (default dm:{0}:out).
stream_type_count() {
    local s='dm:{0}:out'
    [ $# -ge 2 ] && s=$2
    rcli --raw xrange "$s" - + | grep -c "^$1\$" || true
}

# wait_count WANT SECONDS CMD...: poll (every 0.1 s) until CMD prints WANT; prints the last
# value seen. SECONDS is raised to DM_WAIT: a bound is only ever reached when the test fails, so
# a short one only makes a loaded machine fail it. Use: got=$(wait_count 3 60 stream_type_count TYPE).
wait_count() {
    local want=$1 secs=$2 got="" deadline
    shift 2
    [ "$secs" -ge "$DM_WAIT" ] || secs=$DM_WAIT
    deadline=$((SECONDS + secs))
    while :; do
        got=$("$@")
        [ "$got" == "$want" ] && break
        [ "$SECONDS" -lt "$deadline" ] || break
        sleep 0.1
    done
    echo "$got"
}

# await_log REGEX [LOG]: wait (DM_WAIT at most) until LOG (default $T/daemon.log) has a line
# matching the extended REGEX; prints the first such line (nothing if none came).
await_log() {
    local log=${2:-$T/daemon.log}
    _log_has() { grep -qE -- "$1" "$2" 2>/dev/null; }
    poll_until "$DM_WAIT" _log_has "$1" "$log" || true
    grep -E -m1 -- "$1" "$log" 2>/dev/null || true
}

# iso_ms MS_SINCE_EPOCH: an RFC 3339 timestamp with milliseconds.
iso_ms() {
    date -u -d "@$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ
}

# shard_of DIGEST N: the digest's shard (first 4 hex digits mod N).
shard_of() {
    local hex=${1#sha256:}
    echo $((16#${hex:0:4} % $2))
}
