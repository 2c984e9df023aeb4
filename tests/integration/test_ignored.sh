#!/usr/bin/env bash
# ACR events that are not image pushes or deletes are acknowledged with 200 and the exact
# "ignored" answer, and touch nothing in Redis.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

A=$DM_FIXTURES/acr
ignored() { # FILE REASON
    post_acr "$1"
    check "$(basename "$1") answered 200" 200 "$STATUS"
    check "$(basename "$1") answer" "{\"status\":\"ignored\",\"reason\":\"$2\"}" "$BODY"
}

ignored "$A/ping.json" ping
ignored "$A/chart_push.json" chart_push
ignored "$A/chart_delete.json" chart_delete
ignored "$A/quarantine.json" quarantine
jq '.action = "rename"' "$A/push.json" > "$T/unknown.json"
ignored "$T/unknown.json" "unknown action"
# a redelivered ping is ignored again
ignored "$A/ping.json" ping

check "nothing written to Redis" 0 "$(rcli dbsize)"
check "ignored metric" 6 "$(metric digestmap_ignored_total)"
check "no event parked" 0 "$(metric 'digestmap_events_parked_total{source="acr"}')"
check "no invalid request counted" 0 "$(metric digestmap_invalid_requests_total)"
check "requests metric by status 200" 6 "$(metric 'digestmap_requests_total{route="/v1/registry/acr",status="200"}')"

# a real push afterwards still works
acr_push "$T/push.json" "$(random_digest)" 1.0.0 "$(iso_at -5)"
post_acr "$T/push.json"
check "push after ignored events" '{"status":"accepted","events":1,"edges":0}' "$BODY"
finish
