#!/usr/bin/env bash
# Per-command deadline: when Redis stops answering (CLIENT PAUSE), a webhook is answered within
# the configured command timeout (1 s) instead of hanging: spooled (202, docs/spool.md), and
# parked by the replayer once Redis answers again; the daemon recovers by itself afterwards. Redis stays paused until the test unpauses it (60 s at most), so a loaded machine
# cannot blur "at the deadline" and "after the pause".
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon "$(default_config | jq '.redis.command_timeout_ms = 1000')"

d=$(random_digest)
acr_push "$T/push.json" "$d" 1.0 "$(iso_at -1)"
rcli client pause 60000 WRITE >/dev/null
start=$(date +%s%N)
post_acr "$T/push.json"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "paused Redis: webhook answered 202 spooled" \
    '202 {"status":"accepted","events":1,"edges":0,"spooled":true}' "$STATUS $BODY"
check "answered at the 1000 ms deadline, not after the 60 s pause ($elapsed_ms ms)" 1 \
    "$(( elapsed_ms >= 950 && elapsed_ms < 30000 ? 1 : 0 ))"
check_match "timeout counted" 'digestmap_redis_timeouts_total [1-9]' "$(curl -s "http://127.0.0.1:$PORT/metrics")"

rcli client unpause >/dev/null
wait_ready 200
check "after the pause: the spooled push is replayed" 1 "$(wait_count 1 60 metric digestmap_spool_replayed_total)"
check "after the pause: the spooled push is parked" 1 "$(rcli hexists "dm:{0}:r:$d" contoso.azurecr.io/team/api)"
post_acr "$T/push.json"
check "after the pause: accepted again without a restart" 202 "$STATUS"
finish
