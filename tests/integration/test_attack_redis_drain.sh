#!/usr/bin/env bash
# The drain with commands queued on a slow Redis: SIGTERM while requests wait on a paused
# Redis. Their commands reach the deadline during the drain; the teardown fails them one by
# one, and the last answer ends the worker, which frees the Redis client from inside that
# teardown's callbacks. Every request gets its 503 with Retry-After, the daemon exits 0, and
# under ASan nothing touches freed memory (before the fix: heap-use-after-free in dm_redis.c).
. "$(dirname "$0")/lib.sh"
start_redis
N=24
start_daemon "$(default_config | jq '.workers = 1 | .redis.command_timeout_ms = 4000')"
d=$(random_digest)

# Nothing reaches Redis for 60 s (far longer than the test): every command waits.
rcli client pause 60000 ALL > /dev/null
pids=()
for i in $(seq 1 $N); do
    curl -s -o "$T/body$i" -D "$T/head$i" -w '%{http_code}\n' --max-time 60 \
        -H 'Authorization: Bearer api-token' "http://127.0.0.1:$PORT/v1/images/$d" > "$T/code$i" &
    pids+=($!)
done
# All in flight (/metrics never waits on Redis); SIGTERM before the 4 s deadlines (a generous
# bound: the requests were sent at once).
for _ in $(seq 1 300); do
    [ "$(metric digestmap_inflight_requests)" == "$N" ] && break
    sleep 0.01
done
check "$N requests wait on Redis" "$N" "$(metric digestmap_inflight_requests)"
kill -TERM "$DAEMON_PID"
for p in "${pids[@]}"; do wait "$p" || true; done

codes=$(cat "$T"/code* | sort | uniq -c | awk '{$1=$1; print}')
check "every request answered 503" "$N 503" "$codes"
check "each with Retry-After" "$N" "$(cat "$T"/head* | grep -ci '^retry-after: ' || true)"
check "each with the storage reason" "$N" \
    "$(cat "$T"/body* | grep -c '^{"error":"storage unavailable; retry later"}$' || true)"
# The deadlines, not the drain timeout, ended them, and after the SIGTERM.
check "the command deadline tore the connection down during the drain" yes \
    "$(awk '/msg="shutting down"/ { s = 1 } s && /conn=worker-1 reason="command timeout"/ { print "yes"; exit }' "$T/daemon.log")"
check "no drain timeout" 0 "$(grep -c 'drain timeout' "$T/daemon.log" || true)"
stop_daemon # waits for the exit: status 0, no sanitizer report
finish
