#!/usr/bin/env bash
# Redis outage: while Redis is down, writes are spooled (202 "spooled", docs/spool.md), queries get
# 503 + Retry-After and /readyz 503 (/healthz stays 200); once Redis is back the daemon reconnects
# by itself, reloads its scripts, replays the spool (joined once) and joins again.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

d0=$(random_digest)
acr_push "$T/p0.json" "$d0" 1.0.0 "$(iso_at -20)"
post_acr "$T/p0.json"
check "push before the outage accepted" '{"status":"accepted","events":1,"edges":0}' "$BODY"

stop_redis
unavailable='{"error":"storage unavailable; retry later"}'
spooled='{"status":"accepted","events":1,"edges":0,"spooled":true}'

d1=$(random_digest)
acr_push "$T/p1.json" "$d1" 1.0.0 "$(iso_at -10)"
post_acr "$T/p1.json"
check "push during the outage: 202 spooled" "202 $spooled" "$STATUS $BODY"
build_event "$T/b1.json" "$d1" "$(iso_at -5)" 501
post_build "$T/b1.json"
check "build during the outage: 202 spooled" "202 $spooled" "$STATUS $BODY"
wait_ready 503
request GET /readyz
check "/readyz during the outage" 503 "$STATUS"
request GET /healthz
check "/healthz during the outage" 200 "$STATUS"
query_image "$d0"
check "query during the outage: 503" 503 "$STATUS"
check "query during the outage: body" "$unavailable" "$BODY"
check_match "query during the outage: Retry-After: 2" $'(^|\n)Retry-After: 2\r?(\n|$)' "$HEADERS"
# bad input and bad credentials are still 4xx, never 5xx
echo '[]' > "$T/array.json"
post_acr "$T/array.json"
check "bad body during the outage is still 400" 400 "$STATUS"
post /v1/registry/acr "$T/p1.json" -H 'Authorization: Bearer wrong'
check "bad credentials during the outage are still 401" 401 "$STATUS"
post_acr "$DM_FIXTURES/acr/ping.json"
check "ping during the outage is still ignored" '{"status":"ignored","reason":"ping"}' "$BODY"

unavail=$(metric digestmap_redis_unavailable_total)
check_match "redis_unavailable metric counts the spooled requests and the 503 ($unavail)" '^([3-9]|[1-9][0-9]+)$' "$unavail"

start_redis # same socket, empty data set (no persistence)
wait_ready 200
# Once /readyz says 200, Redis must be usable by whichever worker answers the next requests
# (connections are spread over the workers): every one of a burst of /readyz must be 200.
codes=$(for _ in $(seq 1 20); do
    curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$PORT/readyz"
done)
check "a burst of /readyz right after the first 200 is all 200" "$(printf '200 %.0s' $(seq 1 20))" "$codes"
# (if not, wait until it is, so that the join checks below test the join, not the above)
ten_ready() {
    [ "$(for _ in $(seq 1 10); do curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$PORT/readyz"; done)" \
        == "$(printf '200 %.0s' $(seq 1 10))" ]
}
poll_until "$DM_WAIT" ten_ready || true

check "the spooled push and build are replayed" 2 "$(wait_count 2 60 metric digestmap_spool_replayed_total)"
check "and joined" 1 "$(wait_count 1 60 stream_count dev.digestmap.mapping.confirmed.v1)"
post_acr "$T/p1.json"
check "push again after the restart: accepted, nothing new" '{"status":"accepted","events":1,"edges":0}' "$BODY"
post_build "$T/b1.json"
check "build again after the restart: no second edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"
d2=$(random_digest)
build_event "$T/b2.json" "$d2" "$(iso_at -10)" 502
post_build_hmac "$T/b2.json"
check "build-first after the restart" '{"status":"accepted","events":1,"edges":0}' "$BODY"
acr_push "$T/p2.json" "$d2" 2.0.0 "$(iso_at -5)"
post_acr "$T/p2.json"
check "push-second after the restart joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"
check "two confirmed records after the restart" 2 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
query_image "$d2"
check "query after the restart" 200 "$STATUS"
check "query mapping after the restart" 502 "$(jq -r '.mappings[0].build.run_id' <<<"$BODY")"
check "redis_unavailable metric stops growing" "$unavail" "$(metric digestmap_redis_unavailable_total)"
# every connection compares digestmapd's clock with Redis's TIME (docs/park-path.md "Whose
# clock"): one machine, one clock, so the gauge is there and within a second, and no warning
off=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1 == "digestmap_redis_clock_offset_ms" { print $2 }')
check_match "clock offset gauge exported" '^-?[0-9]+$' "$off"
check "clock offset within a second of Redis's" 1 "$(( off < 1000 && off > -1000 ? 1 : 0 ))"
check "no clock warning" 0 "$(grep -c "clock and redis's differ" "$T/daemon.log")"
# the measurement is made on every connection (so the gauge is not just its initial 0): each
# "redis ready" line, the reconnection after the outage included, carries the offset it found
check_match "offset measured at each connection" '^[2-9][0-9]*$|^[1-9][0-9]+$' \
    "$(grep -c 'redis ready.*clock_offset_ms=-\?[0-9]' "$T/daemon.log")"
finish
