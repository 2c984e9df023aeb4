#!/usr/bin/env bash
# limits.max_inflight: past the cap a webhook is refused at once with 503 + Retry-After (shed
# load) rather than queued without bound; the admitted ones still complete. Redis stays paused
# until both admitted requests are seen in flight and the third was refused (no sleep), with a
# command deadline far beyond that.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon "$(default_config | jq '.workers = 1 | .limits.max_inflight = 2 | .redis.command_timeout_ms = 60000')"

rcli client pause 60000 WRITE >/dev/null
pids=()
for i in 1 2; do
    acr_push "$T/p$i.json" "$(random_digest)" "t$i" "$(iso_at -1)"
    curl -s -o "$T/out$i" -w '%{http_code}' -X POST -H 'Authorization: Bearer acr-token' \
        --data-binary "@$T/p$i.json" "http://127.0.0.1:$PORT/v1/registry/acr" > "$T/code$i" &
    pids+=($!)
done
check "both admitted and waiting on the paused Redis" 2 "$(wait_count 2 60 metric digestmap_inflight_requests)"
acr_push "$T/p3.json" "$(random_digest)" t3 "$(iso_at -1)"
post_acr "$T/p3.json"
check "third request over the cap: 503" 503 "$STATUS"
check "third request: overload reason" '{"error":"too many requests in flight; retry later"}' "$BODY"
rcli client unpause >/dev/null
wait "${pids[@]}"
check "first admitted request completes" 202 "$(cat "$T/code1")"
check "second admitted request completes" 202 "$(cat "$T/code2")"
check_match "overload counted" 'digestmap_overloaded_total 1' "$(curl -s "http://127.0.0.1:$PORT/metrics")"
check "only the admitted pushes are parked" 2 "$(rcli --scan --pattern 'dm:{0}:r:*' | wc -l)"
finish
