#!/usr/bin/env bash
# Webhook sink: dead-lettering after max_attempts (5xx, connection refused), at once for a 4xx
# and for an entry that is not a record; the dead-letter entry's content; the original acked.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

start_redis
start_sink five --default 500
PORT_FIVE=$SINK_PORT
start_sink four --default 400
PORT_FOUR=$SINK_PORT
# A port nobody listens on, held (bound, not listening) for the whole test.
hold_closed_port
CLOSED=$CLOSED_PORT
start_daemon "$(sink_config "
    {\"name\": \"five\", \"url\": \"http://127.0.0.1:$PORT_FIVE/\", \"secret\": \"k5\",
     \"types\": [\"$CONFIRMED\"], \"max_attempts\": 3, \"backoff_initial_ms\": 50},
    {\"name\": \"four\", \"url\": \"http://127.0.0.1:$PORT_FOUR/\", \"secret\": \"k4\",
     \"types\": [\"$DELETED\"], \"max_attempts\": 3, \"backoff_initial_ms\": 50},
    {\"name\": \"refused\", \"url\": \"http://127.0.0.1:$CLOSED/\", \"secret\": \"kr\",
     \"types\": [\"$UNMATCHED\"], \"max_attempts\": 2, \"backoff_initial_ms\": 50}")"
wait_sink_started "$T/daemon.log" 3

# --- 500 every time: three attempts, then dead-lettered.
digest=$(random_digest)
added=$(date +%s%3N)
id5=$(add_record "$CONFIRMED" ce-five "$digest")
check "max_attempts attempts" 3 "$(wait_count 3 60 sink_requests five)"
check "dead-lettered" "$id5" "$(wait_count "$id5" 60 dead_field "$id5" stream_id)"
check "dead entry: type" "$CONFIRMED" "$(dead_field "$id5" type)"
check "dead entry: digest" "$digest" "$(dead_field "$id5" digest)"
check "dead entry: event, byte for byte" "$(out_field "$id5" event)" "$(dead_field "$id5" event)"
check "dead entry: sink" five "$(dead_field "$id5" sink)"
check "dead entry: attempts" 3 "$(dead_field "$id5" attempts)"
check "dead entry: error" "HTTP 500" "$(dead_field "$id5" error)"
now=$(date +%s%3N)
failed_at=$(dead_field "$id5" failed_at)
check "dead entry: failed_at is a time in ms, after the record was added" 1 \
    "$(( failed_at <= now && failed_at >= added ? 1 : 0 ))"
wait_pending() { pending "$1"; }
check "the original is acknowledged" 0 "$(wait_count 0 60 wait_pending digestmap:five)"
check "the original stays in the output stream" "ce-five" \
    "$(out_field "$id5" event | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
check_match "dead-lettering is logged" \
    "level=warn msg=\"record dead-lettered\" sink=five id=$id5 attempts=3 error=\"HTTP 500\"" \
    "$(grep 'msg="record dead-lettered" sink=five' "$T/daemon.log")"
check_match "the last failed attempt says no retry" \
    'msg="sink delivery failed" sink=five .* attempt=3 status=500 error="HTTP 500" retry_in_ms=none' \
    "$(grep 'msg="sink delivery failed" sink=five' "$T/daemon.log" | tail -n 1)"

# --- 400: permanent, dead-lettered after one attempt.
id4=$(add_record "$DELETED" ce-four)
check "dead-lettered at once" "$id4" "$(wait_count "$id4" 60 dead_field "$id4" stream_id)"
check "a 400 is not retried" 1 "$(sink_requests four)"
check "dead entry: attempts 1" 1 "$(dead_field "$id4" attempts)"
check "dead entry: error HTTP 400" "HTTP 400" "$(dead_field "$id4" error)"
check "acknowledged" 0 "$(wait_count 0 60 wait_pending digestmap:four)"

# --- Connection refused: retried, then dead-lettered with the transport error.
idr=$(add_record "$UNMATCHED" ce-refused)
check "dead-lettered after 2 attempts" "$idr" "$(wait_count "$idr" 60 dead_field "$idr" stream_id)"
check "dead entry: attempts 2" 2 "$(dead_field "$idr" attempts)"
check_match "dead entry: the connection error" "^connection failed.*[Rr]efused" \
    "$(dead_field "$idr" error)"
check "acknowledged" 0 "$(wait_count 0 60 wait_pending digestmap:refused)"

# --- An entry that is not a record (no event field): dead-lettered without an attempt.
idm=$(rcli XADD 'dm:{0}:out' '*' type "$CONFIRMED" digest "$digest")
check "malformed entry dead-lettered" "$idm" "$(wait_count "$idm" 60 dead_field "$idm" stream_id)"
check "malformed entry: the reason" "malformed record: no event field" "$(dead_field "$idm" error)"
check "malformed entry: no attempt" 3 "$(sink_requests five)"
check "all four dead-lettered exactly once" 4 "$(dead_count)"
check "dead-letter counter" 4 "$(metric digestmap_sink_dead_lettered_total)"
check "nothing delivered" 0 "$(metric digestmap_sink_delivered_total)"

# --- sink_dead.lua is idempotent: a second call for an acknowledged entry writes nothing.
check "sink_dead.lua again for an acknowledged entry" 0 \
    "$(rcli EVAL "$(cat "$DM_SRC/outputs/lua/sink_dead.lua")" 2 'dm:{0}:out' 'dm:{0}:dead' \
        digestmap:five "$id5" 1000 t d e five 3 err 1)"
check "still four dead entries" 4 "$(dead_count)"

finish
