#!/usr/bin/env bash
# Webhook sink when Redis loses its data (FLUSHALL, a restart without persistence): the
# consumer group is created again from the start of the stream (0, not $), so the records
# written before the sink noticed are delivered; after a reconnection the group is back at once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

start_redis
start_sink lost
start_daemon "$(sink_config "
    {\"name\": \"lost\", \"url\": \"http://127.0.0.1:$SINK_PORT/\", \"secret\": \"k\",
     \"timeout_ms\": 3000, \"claim_idle_ms\": 6000}")"
wait_sink_started
wait_pending() { pending digestmap:lost; }
has_group() { rcli --raw XINFO GROUPS 'dm:{0}:out' 2>/dev/null | grep -c '^digestmap:lost$' || true; }

add_record "$CONFIRMED" ce-before >/dev/null
check "a record before the loss is delivered" 1 "$(wait_count 1 60 sink_requests lost)"

# --- FLUSHALL: the streams and the group are gone; records are XADDed at once (the sink's
# blocking read notices only later), recreating the stream without the group.
rcli FLUSHALL >/dev/null
for i in 1 2 3; do add_record "$CONFIRMED" "ce-flush-$i" >/dev/null; done
check "every record written after FLUSHALL is delivered" 4 "$(wait_count 4 60 sink_requests lost)"
check "each of them once (deliveries run in parallel: any order)" \
    "ce-before ce-flush-1 ce-flush-2 ce-flush-3 " "$(sink_check ids lost | sort | tr '\n' ' ')"
check "the group exists again" 1 "$(has_group)"
check_match "the missing group is logged" \
    'level=warn msg="sink consumer group missing: creat(ing|ed) it again" sink=lost group=digestmap:lost' \
    "$(grep 'msg="sink consumer group missing' "$T/daemon.log" | head -n 1)"
check "nothing pending after FLUSHALL" 0 "$(wait_count 0 60 wait_pending)"

# --- Redis restarts empty: records written right after the restart, before the daemon
# reconnected, are delivered too.
stop_redis
start_redis
for i in 1 2 3; do add_record "$CONFIRMED" "ce-restart-$i" >/dev/null; done
check "the group is created again after the reconnection" 1 "$(wait_count 1 60 has_group)"
check "every record written after the restart is delivered" 7 \
    "$(wait_count 7 60 sink_requests lost)"
check "exactly once each" "ce-restart-1 ce-restart-2 ce-restart-3 " \
    "$(sink_check ids lost | tail -n 3 | sort | tr '\n' ' ')"
check "every delivery is signed" "ok ok ok ok ok ok ok " "$(sink_check verify lost k | tr '\n' ' ')"
check "nothing pending after the restart" 0 "$(wait_count 0 60 wait_pending)"
check "nothing dead-lettered" 0 "$(dead_count)"
add_record "$CONFIRMED" ce-after >/dev/null
check "later records are delivered as usual" 8 "$(wait_count 8 60 sink_requests lost)"

finish
