#!/usr/bin/env bash
# Webhook sink shared by two instances: a live holder keeps a record waiting (Retry-After) for
# longer than 2 x claim_idle_ms and the other instance leaves it alone; a holder that was cut
# off (SIGSTOP) past claim_idle_ms loses the record to the other instance and, once back,
# abandons it instead of taking it back: the record is delivered by the new holder only.
# Attempts may take 2 s (timeout_ms) on a loaded machine; the Retry-After delays are long
# enough that a late retry or a late takeover still comes in the order the test expects.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

start_redis
start_sink h
conf=$(sink_config "
    {\"name\": \"h\", \"url\": \"http://127.0.0.1:$SINK_PORT/\", \"secret\": \"k\",
     \"max_inflight\": 4, \"timeout_ms\": 2000, \"claim_idle_ms\": 4000,
     \"backoff_initial_ms\": 100, \"backoff_max_ms\": 30000, \"max_attempts\": 5}")
start_daemon "$conf"
start_daemon2 "$conf"
wait_sink_started "$T/daemon.log"
wait_sink_started "$T/daemon2.log"
wait_pending() { pending digestmap:h; }
claimed() { echo $(( $(metric_at "$PORT" digestmap_sink_claimed_total) + \
                     $(metric_at "$PORT2" digestmap_sink_claimed_total) )); }
# holder: 1 or 2, the instance that holds one record (empty when none does).
holder() {
    local deadline=$((SECONDS + DM_WAIT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ "$(metric_at "$PORT" digestmap_sink_inflight)" == 1 ] && { echo 1; return; }
        [ "$(metric_at "$PORT2" digestmap_sink_inflight)" == 1 ] && { echo 2; return; }
        sleep 0.1
    done
}
# wait_until T: sleep until the unix time T (a float) has passed.
wait_until() { python3 -c "import time; time.sleep(max(0.0, $1 - time.time()))"; }

# --- A live holder waits 9 s (> 2 x claim_idle_ms) for its retry: nobody takes it over.
sink_answers h "503:9,200"
add_record "$CONFIRMED" ce-waiting >/dev/null
check "the first attempt got its 503" 1 "$(wait_count 1 60 sink_requests h)"
[ -n "$(holder)" ] || die "no instance holds the record"
check "the holder's retry comes after Retry-After" 2 "$(wait_count 2 60 sink_requests h)"
check "attempts 1 and 2 (one holder throughout)" "1 2 " \
    "$(for i in 0 1; do sink_check get h $i X-Digestmap-Attempt; done | tr '\n' ' ')"
gap=$(sink_check gaps h | sed -n 1p)
check "the retry waited the whole Retry-After, not backoff_max_ms ($gap s)" 1 \
    "$(python3 -c "print(int(8.9 <= $gap <= 29.0))")"
check "acknowledged" 0 "$(wait_count 0 60 wait_pending)"
# A takeover would have been counted when it claimed the record, claim_idle_ms after the
# first attempt, long before its acknowledgement.
check "nothing was claimed" 0 "$(claimed)"
check "no other delivery" 2 "$(sink_requests h)"

# --- The holder stops (SIGSTOP) with the record waiting 20 s; the other instance takes it
# over (its attempt gets 503, Retry-After 8), then the first one resumes, and must neither
# take the record back nor deliver it, not even when its own retry comes due.
d1=$(metric_at "$PORT" digestmap_sink_delivered_total)
d2=$(metric_at "$PORT2" digestmap_sink_delivered_total)
sink_answers h "503:20,503:8,200"
add_record "$CONFIRMED" ce-stolen >/dev/null
check "the holder's attempt got its 503" 3 "$(wait_count 3 60 sink_requests h)"
first=$(holder)
[ -n "$first" ] || die "no instance holds the second record"
if [ "$first" == 1 ]; then
    frozen=$DAEMON_PID; frozen_log=$T/daemon.log; frozen_port=$PORT; other_port=$PORT2
    frozen_d=$d1; other_d=$d2
else
    frozen=$DAEMON2_PID; frozen_log=$T/daemon2.log; frozen_port=$PORT2; other_port=$PORT
    frozen_d=$d2; other_d=$d1
fi
kill -STOP "$frozen"
check "the other instance takes it over" 4 "$(wait_count 4 60 sink_requests h)"
check "... as a claim" 1 "$(metric_at "$other_port" digestmap_sink_claimed_total)"
kill -CONT "$frozen"
check "the record is delivered" 5 "$(wait_count 5 60 sink_requests h)"
check "attempts: 1 (first holder), 1 and 2 (new holder)" "1 1 2 " \
    "$(for i in 2 3 4; do sink_check get h $i X-Digestmap-Attempt; done | tr '\n' ' ')"
check_match "the resumed instance abandons the record" \
    'level=warn msg="sink record no longer ours: abandoned" sink=h id=[0-9]+-[0-9]+ state=waiting reason="taken over by another instance" owner=' \
    "$(grep 'msg="sink record no longer ours' "$frozen_log" | head -n 1)"
check "the resumed instance holds nothing" 0 "$(metric_at "$frozen_port" digestmap_sink_inflight)"
check "the new holder delivered it" $((other_d + 1)) \
    "$(metric_at "$other_port" digestmap_sink_delivered_total)"
check "the new holder's retry waited its Retry-After" 1 \
    "$(python3 -c "print(int($(sink_check get h 4 t) - $(sink_check get h 3 t) >= 7.9))")"
# Its own retry was due 20 s after its attempt: nothing may come then.
wait_until "$(python3 -c "print($(sink_check get h 2 t) + 20.8)")"
check "the resumed instance never delivers it again" 5 "$(sink_requests h)"
check "... nor counts a delivery" "$frozen_d" "$(metric_at "$frozen_port" digestmap_sink_delivered_total)"
check "nothing pending at the end" 0 "$(wait_count 0 60 wait_pending)"
check "nothing dead-lettered" 0 "$(dead_count)"

stop_daemon2
finish
