#!/usr/bin/env bash
# redis.wait_replicas with the replica gone (docs/spool.md, "Durability"): WAIT blocks the
# connection it is sent on, so a worker keeps at most one in flight per connection and the
# requests whose writes completed meanwhile share the next one. 8 concurrent requests on one
# worker (one connection): every one is answered 202 "spooled" (never a plain 202), no command
# deadline fires because of the WAITs (before, each request sent its own WAIT, they queued
# behind each other, and the third one's deadline tore the connection down), and fewer WAITs
# than requests reach Redis.
. "$(dirname "$0")/lib.sh"

start_redis
# WAIT timeout: half of command_timeout_ms (2 s).
start_daemon "$(default_config | jq '.workers = 1 | .redis.wait_replicas = 1 | .redis.command_timeout_ms = 4000')"
rcli config resetstat >/dev/null
for i in $(seq 1 8); do
    acr_push "$T/p$i.json" "$(random_digest)" "1.$i" "$(iso_at -20)"
done
for i in $(seq 1 8); do
    curl -s -o "$T/out$i" -w '%{http_code}' -X POST -H 'Authorization: Bearer acr-token' \
        -H 'Content-Type: application/json' --data-binary @"$T/p$i.json" \
        "http://127.0.0.1:$PORT/v1/registry/acr" > "$T/code$i" &
done
wait_all() { for i in $(seq 1 8); do [ -s "$T/code$i" ] || return 1; done; }
poll_until "$DM_WAIT" wait_all || fail "not every request was answered"
answers=$(for i in $(seq 1 8); do echo "$(cat "$T/code$i") $(cat "$T/out$i")"; done | sort | uniq -c | sed 's/^ *//')
check "8 concurrent requests: all 202 spooled" \
    '8 202 {"status":"accepted","events":1,"edges":0,"spooled":true}' "$answers"
check "no command deadline fired" "" "$(grep 'command timeout' "$T/daemon.log" || true)"
check "counted as short" 8 "$(metric digestmap_redis_wait_short_total)"
check "all spooled" 8 "$(metric digestmap_spooled_total)"
waits=$(rcli info commandstats | sed -n 's/^cmdstat_wait:calls=\([0-9]*\),.*/\1/p' | tr -d '\r')
check "the requests shared WAITs (fewer WAITs than requests)" yes "$([ "${waits:-0}" -lt 8 ] && echo yes || echo "no: $waits")"
finish
