#!/usr/bin/env bash
# Webhook sink: signed delivery of records added to the output stream, the types filter, and
# end to end (registry push + build over HTTP -> confirmed record -> delivered).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

start_redis
start_sink all
PORT_ALL=$SINK_PORT
start_sink confirmed
PORT_CONF=$SINK_PORT
start_daemon "$(sink_config "
    {\"name\": \"all\", \"url\": \"http://127.0.0.1:$PORT_ALL/hook/tok-Pa55?x=1\", \"secret\": \"s3cret-all\"},
    {\"name\": \"confirmed\", \"url\": \"http://127.0.0.1:$PORT_CONF/in\", \"secret\": \"other\",
     \"types\": [\"$CONFIRMED\"]}")"
wait_sink_started "$T/daemon.log" 2

groups=$(rcli --raw XINFO GROUPS 'dm:{0}:out' | grep '^digestmap:' | sort | tr '\n' ' ')
check "consumer groups digestmap:<name> exist" "digestmap:all digestmap:confirmed " "$groups"
check_match "sink started is logged with the url's origin only, and the group" \
    "msg=\"sink started\" sink=all origin=\"http://127.0.0.1:$PORT_ALL\" group=digestmap:all" \
    "$(grep 'msg="sink started" sink=all' "$T/daemon.log")"

# --- Records put into the stream directly, one of each type.
add_record "$CONFIRMED" ce-confirmed-1 >/dev/null
add_record "$UNMATCHED" ce-unmatched-1 >/dev/null
add_record "$DELETED" ce-deleted-1 >/dev/null
check "sink 'all' got the three records" 3 "$(wait_count 3 60 sink_requests all)"
check "sink 'confirmed' got one record" 1 "$(wait_count 1 60 sink_requests confirmed)"
check "every delivery to 'all' is signed and well-formed" "ok ok ok " \
    "$(sink_check verify all s3cret-all | tr '\n' ' ')"
check "the delivery to 'confirmed' is signed with its own secret" "ok" \
    "$(sink_check verify confirmed other)"
check "a signature with the wrong secret does not verify" "bad" \
    "$(sink_check verify confirmed s3cret-all | cut -c1-3)"
check "'confirmed' got the confirmed record" ce-confirmed-1 \
    "$(sink_check get confirmed 0 Idempotency-Key)"
check "idempotency keys are the CloudEvent ids, in stream order" \
    "ce-confirmed-1 ce-unmatched-1 ce-deleted-1 " "$(sink_check ids all | tr '\n' ' ')"
check "the body is the stream's event field byte for byte" \
    "$(stream_events | sed -n 2p)" "$(sink_check get all 1 body)"
check "the URL path and query are kept" "/hook/tok-Pa55?x=1" "$(sink_check get all 0 path)"
check "first attempt is attempt 1" 1 "$(sink_check get all 0 X-Digestmap-Attempt)"
check_match "Host header names the sink" "^127.0.0.1:$PORT_ALL\$" "$(sink_check get all 0 Host)"

wait_pending() { pending "$1"; }
check "nothing pending for 'all' after delivery" 0 "$(wait_count 0 60 wait_pending digestmap:all)"
check "nothing pending for 'confirmed' (filtered records acknowledged)" 0 \
    "$(wait_count 0 60 wait_pending digestmap:confirmed)"
check "delivered counter" 4 "$(metric digestmap_sink_delivered_total)"
check "filtered counter" 2 "$(metric digestmap_sink_filtered_total)"
check "nothing held any more" 0 "$(metric digestmap_sink_inflight)"

# --- End to end: the join's own record reaches both sinks.
digest=$(random_digest)
acr_push "$T/push.json" "$digest" 1.4.0 "$(iso_at 0)"
post_acr "$T/push.json"
check "ACR push accepted" 202 "$STATUS"
build_event "$T/build.json" "$digest" "$(iso_at 0)" 777
post_build "$T/build.json"
check "build event accepted" 202 "$STATUS"
check "the confirmed record reached 'all'" 4 "$(wait_count 4 60 sink_requests all)"
check "the confirmed record reached 'confirmed'" 2 "$(wait_count 2 60 sink_requests confirmed)"
check "the end-to-end delivery verifies" "ok" "$(sink_check verify confirmed other | tail -n 1)"
edge_event=$(stream_events | tail -n 1)
check "its body is the record the join wrote" "$edge_event" "$(sink_check get confirmed -1 body)"
check_match "the record is a confirmed mapping of the digest" \
    "\"type\":\"$CONFIRMED\".*\"subject\":\"$digest\"" "$(sink_check get confirmed -1 body)"
check "nothing pending for 'confirmed' at the end" 0 \
    "$(wait_count 0 60 wait_pending digestmap:confirmed)"
check "the url's path (it may hold credentials) is never logged" 0 \
    "$(grep -c 'tok-Pa55' "$T/daemon.log" || true)"

finish
