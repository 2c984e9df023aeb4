#!/usr/bin/env bash
# Webhook sink consumers of stopped instances do not pile up: the consumer of an instance
# stopped with SIGTERM leaves the group once idle for 10 x claim_idle_ms, the live instances'
# consumers stay, and the consumer of an instance killed while holding a record stays as long
# as the record is pending in its name (it goes only after another instance took the record
# over and delivered it).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

start_redis
start_sink shared
# claim_idle_ms 2000: a consumer goes once idle for more than 20 s, checked every 5 s
# (dm_sink.h, "Consumers"). max_inflight 1 and a long backoff: an instance holding a record
# that failed once cannot take over another one (no room) until the test lets it.
conf=$(sink_config "
    {\"name\": \"shared\", \"url\": \"http://127.0.0.1:$SINK_PORT/\", \"secret\": \"k\",
     \"max_inflight\": 1, \"timeout_ms\": 1000, \"claim_idle_ms\": 2000,
     \"backoff_initial_ms\": 60000, \"backoff_max_ms\": 60000}")
G=digestmap:shared
host=$(hostname)
now_ms() { echo $(($(date +%s%N) / 1000000)); }
consumer_count() { consumers "$G" | grep -c . || true; }

start_daemon "$conf"
start_daemon2 "$conf"
wait_sink_started "$T/daemon.log"
wait_sink_started "$T/daemon2.log"
c1="$host:$DAEMON_PID"
old="$host:$DAEMON2_PID"
# Redis (7.0) creates a consumer when a read first returns an entry to it: records until both
# instances got some.
n=0
while [ "$(consumer_count)" != 2 ] && [ $n -lt 40 ]; do
    n=$((n + 1))
    add_record "$CONFIRMED" "ce-first-$n" >/dev/null
    got=$(wait_count $n 60 sink_requests shared)
    [ "$got" == $n ] || die "record $n was not delivered"
done
check "both instances are consumers of the group" 2 "$(consumer_count)"
wait_pending() { pending "$G"; }
check "nothing pending after $n records" 0 "$(wait_count 0 60 wait_pending)"

# --- A restart: the stopped instance's consumer is left behind, then removed. Its idle time
# counts from the last read that returned an entry to it.
# The clock is read before XINFO answers: on a busy machine redis-cli can take a few hundred ms to
# start, and reading it after would place the last read later than it was (a removal on time then
# looked early).
before_xinfo=$(now_ms)
old_idle=$(consumer_field "$G" "$old" idle)
old_seen=$((before_xinfo - old_idle))
stop_daemon2
cp "$T/daemon2.log" "$T/daemon2-first.log"
start_daemon2 "$conf"
wait_sink_started "$T/daemon2.log"
c2="$host:$DAEMON2_PID"

# --- Two records, one held by each instance (max_inflight 1), both attempts hanging.
sink_answers shared hang,hang
id_a=$(add_record "$CONFIRMED" ce-a)
check "the first record reached the sink" $((n + 1)) "$(wait_count $((n + 1)) 60 sink_requests shared)"
holder=""
deadline=$((SECONDS + DM_WAIT))
while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(metric_at "$PORT" digestmap_sink_inflight)" == 1 ] && { holder=1; break; }
    [ "$(metric_at "$PORT2" digestmap_sink_inflight)" == 1 ] && { holder=2; break; }
    sleep 0.1
done
[ -n "$holder" ] || die "no instance holds the first record"
add_record "$CONFIRMED" ce-b >/dev/null
check "the second record reached the sink" $((n + 2)) "$(wait_count $((n + 2)) 60 sink_requests shared)"
check "the other instance holds it" ce-b "$(sink_check get shared -1 Idempotency-Key)"
if [ "$holder" == 1 ]; then
    victim=$DAEMON2_PID; DAEMON2_PID=""; cv=$c2; cs=$c1
    survivor_log=$T/daemon.log; survivor_port=$PORT
else
    victim=$DAEMON_PID; DAEMON_PID=""; cv=$c1; cs=$c2
    survivor_log=$T/daemon2.log; survivor_port=$PORT2
fi
check "the victim holds its record" 1 "$(consumer_field "$G" "$cv" pending)"
check "the survivor holds its record" 1 "$(consumer_field "$G" "$cs" pending)"
check "the stopped instance's consumer is still there" 0 "$(consumer_field "$G" "$old" pending)"
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true

# --- The stopped instance's consumer goes once idle for more than 10 x claim_idle_ms: 20 s + a
# check period (5 s) + a claim tick after its last read.
gone_old() { consumer_field "$G" "$old" pending; }
check "the stopped instance's consumer is removed" gone "$(wait_count gone 60 gone_old)"
took=$(($(now_ms) - old_seen))
check "not removed before it was idle for 10 x claim_idle_ms ($took ms >= 19800)" 1 \
    "$(( took >= 19800 ? 1 : 0 ))"
# 60 s would be a removal that does not work as it should (30 x claim_idle_ms), not a loaded machine
check "removed within 10 x claim_idle_ms + a check period ($took ms <= 60000)" 1 \
    "$(( took <= 60000 ? 1 : 0 ))"
check_match "its removal was logged" "msg=\"sink consumer removed\" sink=shared consumer=\"$old\" idle_ms=[0-9]+" \
    "$(cat "$T/daemon.log" "$T/daemon2.log" "$T/daemon2-first.log")"
check "the live instance's consumer stays" 1 "$(consumer_field "$G" "$cs" pending)"

# --- The killed instance's consumer holds a record nobody can take over (the survivor has no
# room): idle far beyond the limit, it stays.
kept() { grep -c "msg=\"sink consumer idle with entries pending: kept\" sink=shared consumer=\"$cv\"" \
    "$survivor_log" || true; }
poll_until "$DM_WAIT" eval '[ "$(kept)" -ge 1 ]' || true
check "the survivor saw the killed instance's consumer idle with a record pending" 1 \
    "$(( $(kept) >= 1 ? 1 : 0 ))"
idle=$(consumer_field "$G" "$cv" idle)
check "that consumer is still there, idle for more than 10 x claim_idle_ms ($idle ms)" 1 \
    "$(( ${idle/gone/0} > 20000 ? 1 : 0 ))"
check "its record is still pending in its name" 1 "$(consumer_field "$G" "$cv" pending)"
check "no removal of it was logged" 0 \
    "$(grep -c "msg=\"sink consumer removed\" sink=shared consumer=\"$cv\"" "$survivor_log" || true)"

# --- Make room: the survivor's own record is acknowledged behind its back (it abandons it),
# so it takes over the killed instance's record, delivers it, and then removes the consumer.
rcli XACK 'dm:{0}:out' "$G" "$id_a" >/dev/null
check "the survivor delivers the taken-over record" $((n + 3)) \
    "$(wait_count $((n + 3)) 60 sink_requests shared)"
check "it is the killed instance's record" ce-b "$(sink_check get shared -1 Idempotency-Key)"
check "nothing pending afterwards" 0 "$(wait_count 0 60 wait_pending)"
gone_victim() { consumer_field "$G" "$cv" pending; }
check "then the killed instance's consumer is removed" gone "$(wait_count gone 60 gone_victim)"
claimed_line=$(grep -n 'msg="sink record claimed" sink=shared' "$survivor_log" | head -n 1 | cut -d: -f1)
removed_line=$(grep -n "msg=\"sink consumer removed\" sink=shared consumer=\"$cv\"" "$survivor_log" |
    head -n 1 | cut -d: -f1)
check "removed only after its record was claimed (lines ${claimed_line:-none} < ${removed_line:-none})" 1 \
    "$(( ${claimed_line:-999999} < ${removed_line:-0} ? 1 : 0 ))"
check "only the survivor's consumer is left" "$cs 0" \
    "$(consumers "$G" | awk '{ print $1, $2 }')"
check_match "the survivor abandoned its acknowledged record" 'msg="sink record no longer ours: abandoned" sink=shared' \
    "$(grep 'msg="sink record no longer ours' "$survivor_log")"

if [ "$holder" == 2 ]; then stop_daemon2; fi
finish
