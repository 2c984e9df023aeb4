#!/usr/bin/env bash
# Webhook sink shared by two digestmapd instances (one consumer group): each record is
# delivered once; a record held by an instance killed with SIGKILL is taken over by the other
# after claim_idle_ms and delivered.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

start_redis
start_sink shared
# A long backoff keeps a failed record waiting in its holder's memory (not retried) until the
# holder is killed; claim_idle_ms is small so the takeover comes quickly, and timeout_ms (3 s)
# long enough that no delivery times out on a loaded machine.
conf=$(sink_config "
    {\"name\": \"shared\", \"url\": \"http://127.0.0.1:$SINK_PORT/\", \"secret\": \"k\",
     \"max_inflight\": 4, \"timeout_ms\": 3000, \"claim_idle_ms\": 6000,
     \"backoff_initial_ms\": 20000}")
start_daemon "$conf"
start_daemon2 "$conf"
wait_sink_started "$T/daemon.log"
wait_sink_started "$T/daemon2.log"

# --- N records, each delivered exactly once across the two instances.
N=40
for i in $(seq 1 $N); do
    printf 'XADD dm:{0}:out * type %s digest sha256:%064d event '"'"'{"specversion":"1.0","id":"ce-%d","type":"%s"}'"'"'\n' \
        "$CONFIRMED" "$i" "$i" "$CONFIRMED"
done | rcli >/dev/null
check "all $N records delivered" "$N" "$(wait_count "$N" 60 sink_requests shared)"
wait_pending() { pending digestmap:shared; }
check "nothing pending afterwards" 0 "$(wait_count 0 60 wait_pending)"
# A duplicate would come from a retry or a takeover: neither was counted.
check "no retry, no takeover" "0 0" "$(( $(metric_at "$PORT" digestmap_sink_retries_total) + \
    $(metric_at "$PORT2" digestmap_sink_retries_total) )) $(( $(metric_at "$PORT" digestmap_sink_claimed_total) + \
    $(metric_at "$PORT2" digestmap_sink_claimed_total) ))"
check "exactly $N requests" "$N" "$(sink_requests shared)"
check "$N distinct idempotency keys" "$N" "$(sink_check ids shared | sort -u | grep -c .)"
d1=$(metric_at "$PORT" digestmap_sink_delivered_total)
d2=$(metric_at "$PORT2" digestmap_sink_delivered_total)
check "the two instances' deliveries add up to $N (first $d1, second $d2)" "$N" "$((d1 + d2))"
check "two consumers in the group" 2 \
    "$(rcli --raw XINFO CONSUMERS 'dm:{0}:out' digestmap:shared | grep -c ':[0-9]*$' || true)"

# --- A record held by an instance that dies.
sink_answers shared hang
add_record "$CONFIRMED" ce-orphan >/dev/null
check "the hanging attempt reached the sink" $((N + 1)) "$(wait_count $((N + 1)) 60 sink_requests shared)"
holder=""
deadline=$((SECONDS + DM_WAIT))
while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(metric_at "$PORT" digestmap_sink_inflight)" == 1 ] && { holder=1; break; }
    [ "$(metric_at "$PORT2" digestmap_sink_inflight)" == 1 ] && { holder=2; break; }
    sleep 0.1
done
[ -n "$holder" ] || die "no instance holds the record"
if [ "$holder" == 1 ]; then
    victim=$DAEMON_PID; DAEMON_PID=""; survivor_log=$T/daemon2.log; survivor_port=$PORT2
else
    victim=$DAEMON2_PID; DAEMON2_PID=""; survivor_log=$T/daemon.log; survivor_port=$PORT
fi
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
killed_at=$(date +%s%N)
check "the record is pending in the dead instance's name" 1 "$(pending digestmap:shared)"
check "the survivor delivers it" $((N + 2)) "$(wait_count $((N + 2)) 60 sink_requests shared)"
took=$(python3 -c "print(int($(sink_check get shared -1 t) * 1000 - $killed_at / 1e6))")
check "same record (idempotency key)" ce-orphan "$(sink_check get shared -1 Idempotency-Key)"
check "the takeover counts attempts from 1 again" 1 "$(sink_check get shared -1 X-Digestmap-Attempt)"
# The holder refreshed its claim at most claim_idle_ms/3 before it died, so the record cannot be
# idle for claim_idle_ms before ~4000 ms after the kill (3800: timer slack); it should be taken
# over after claim_idle_ms + claim_idle_ms/2 + a read block = 9250 ms, and 30 s (5 x
# claim_idle_ms) is a takeover that does not work as it should, not a loaded machine.
check "not taken over before its claim went idle ($took ms >= 3800)" 1 "$(( took >= 3800 ? 1 : 0 ))"
check "taken over within claim_idle_ms + a claim period + a read block ($took ms <= 30000)" 1 \
    "$(( took <= 30000 ? 1 : 0 ))"
check "nothing pending at the end" 0 "$(wait_count 0 60 wait_pending)"
check "the survivor counted the claim" 1 "$(metric_at "$survivor_port" digestmap_sink_claimed_total)"
check_match "the survivor logged the claim" 'msg="sink record claimed" sink=shared id=' \
    "$(grep 'msg="sink record claimed"' "$survivor_log")"

if [ "$holder" == 1 ]; then stop_daemon2; fi
finish
