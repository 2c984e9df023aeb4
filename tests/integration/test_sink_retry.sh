#!/usr/bin/env bash
# Webhook sink: retries after 5xx and timeouts with backoff, Retry-After honoured (delta-seconds
# and HTTP-date), then success: acknowledged, nothing left pending. Delays are checked from below
# exactly and from above only against what a bug would give (backoff_max_ms, no timeout): a
# loaded machine delivers late, never early.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

start_redis
start_sink r
start_daemon "$(sink_config "
    {\"name\": \"r\", \"url\": \"http://127.0.0.1:$SINK_PORT/\", \"secret\": \"k\",
     \"timeout_ms\": 3000, \"max_attempts\": 5, \"backoff_initial_ms\": 100,
     \"backoff_max_ms\": 8000, \"claim_idle_ms\": 6000}")"
wait_sink_started
wait_pending() { pending digestmap:r; }

# --- 500, 500, then 200.
sink_answers r "500,500,200"
add_record "$CONFIRMED" ce-retry >/dev/null
check "three attempts reach the sink" 3 "$(wait_count 3 60 sink_requests r)"
check "attempt numbers" "1 2 3" "$(for i in 0 1 2; do sink_check get r $i X-Digestmap-Attempt; done | tr '\n' ' ' | sed 's/ $//')"
check "every attempt carries the same idempotency key" "ce-retry ce-retry ce-retry " \
    "$(sink_check ids r | tr '\n' ' ')"
check "every attempt is signed" "ok ok ok " "$(sink_check verify r k | tr '\n' ' ')"
check "acknowledged after the 200: nothing pending" 0 "$(wait_count 0 60 wait_pending)"
check "two retries counted" 2 "$(metric digestmap_sink_retries_total)"
check "one delivery counted" 1 "$(metric digestmap_sink_delivered_total)"
check_match "a failed attempt is logged with its status and delay" \
    'level=warn msg="sink delivery failed" sink=r id=[0-9]+-[0-9]+ attempt=1 status=500 error="HTTP 500" retry_in_ms=[0-9]+' \
    "$(grep 'msg="sink delivery failed"' "$T/daemon.log" | head -n 1)"
# First delay in [50, 100] ms, second in [100, 200] ms, + scheduling; under 3.5 s: the
# backoff_max_ms (8 s, with jitter at least 4 s) would be a bug.
gap1=$(sink_check gaps r | sed -n 1p)
gap2=$(sink_check gaps r | sed -n 2p)
check "first backoff within [0.05, 3.5] s ($gap1)" 1 \
    "$(python3 -c "print(int(0.045 <= $gap1 <= 3.5))")"
check "second backoff within [0.1, 3.5] s ($gap2)" 1 \
    "$(python3 -c "print(int(0.095 <= $gap2 <= 3.5))")"

# --- 429 with Retry-After: 2 (delta-seconds) outweighs the 50..100 ms backoff.
sink_answers r "429:2,200"
add_record "$CONFIRMED" ce-retry-after >/dev/null
check "429 then 200" 5 "$(wait_count 5 60 sink_requests r)"
gap=$(sink_check gaps r | sed -n 4p)
check "Retry-After: 2 is honoured, not exceeded by more than the 8 s cap ($gap s)" 1 \
    "$(python3 -c "print(int(1.95 <= $gap <= 8.0))")"
check "acknowledged after Retry-After" 0 "$(wait_count 0 60 wait_pending)"

# --- 503 with an HTTP-date (asctime form) 5 to 6 s ahead, written by the sink when it answers
# (the date has whole seconds, so the retry is due at that second itself; under backoff_max_ms).
sink_answers r "503:date+4,200"
add_record "$CONFIRMED" ce-retry-date >/dev/null
check "503 then 200" 7 "$(wait_count 7 60 sink_requests r)"
t503=$(sink_check get r 5 t)
t200=$(sink_check get r 6 t)
when_s=$(sink_check get r 5 retry_at)
check "Retry-After as an HTTP-date is honoured (503 at $t503, retry at $t200, date $when_s)" 1 \
    "$(python3 -c "print(int($t503 < $when_s and $when_s - 0.05 <= $t200 <= $t503 + 8.0))")"

# --- A sink that does not answer: the attempt times out after timeout_ms, then succeeds.
sink_answers r "hang,200"
add_record "$CONFIRMED" ce-timeout >/dev/null
check "timed out, then delivered" 9 "$(wait_count 9 60 sink_requests r)"
gap=$(sink_check gaps r | sed -n 8p)
check "the attempt lasted timeout_ms (3 s), not until the sink gave up (60 s) ($gap s)" 1 \
    "$(python3 -c "print(int(2.5 <= $gap <= 30.0))")"
# (libevent's own timer, armed with the same deadline, may fire first on a loaded machine and
# add the socket's error text: "timeout: …")
check_match "the timeout is logged" 'msg="sink delivery failed" sink=r .* attempt=1 status=0 error="timeout(: [^"]*)?"' \
    "$(grep 'error="timeout' "$T/daemon.log" | head -n 1)"
check "acknowledged after the timeout" 0 "$(wait_count 0 60 wait_pending)"
check "retries counted" 5 "$(metric digestmap_sink_retries_total)"
check "deliveries counted" 4 "$(metric digestmap_sink_delivered_total)"
check "nothing dead-lettered" 0 "$(dead_count)"

finish
