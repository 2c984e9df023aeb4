#!/usr/bin/env bash
# Webhook sink with 4 shards: every read names one shard's stream (Redis Cluster refuses a
# command whose keys are in several slots: docs/cluster-readers.md), each shard is read on a
# connection of its own, and with max_inflight (2) below the shard count the shards are read
# in turn: the records of every shard are delivered, each once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

start_redis
# Every command the server runs, to look at the sink's reads.
rcli monitor >"$T/monitor.log" 2>/dev/null &
poll_until "$DM_WAIT" test -s "$T/monitor.log" || rcli ping >/dev/null
start_sink s
start_daemon "$(sink_config "
    {\"name\": \"s\", \"url\": \"http://127.0.0.1:$SINK_PORT/\", \"secret\": \"k\",
     \"max_inflight\": 2, \"timeout_ms\": 3000}" | jq '.redis.shards = 4')"
wait_sink_started

# blocked_reads: the sink's XREADGROUPs blocked on the server now.
blocked_reads() { rcli client list | grep -c 'cmd=xreadgroup' || true; }
check "two shards read at a time (max_inflight 2 of 4 shards), each on its own connection" 2 \
    "$(wait_count 2 60 blocked_reads)"

N=3
for s in 0 1 2 3; do
    for i in $(seq 1 $N); do add_record "$CONFIRMED" "ce-$s-$i" "$(random_digest)" "$s" >/dev/null; done
done
check "every shard's records are delivered" $((4 * N)) "$(wait_count $((4 * N)) 60 sink_requests s)"
check "each once" $((4 * N)) "$(sink_check ids s | sort -u | grep -c .)"
pending_all() { local n=0 s; for s in 0 1 2 3; do n=$((n + $(pending digestmap:s "$s"))); done; echo $n; }
check "nothing left pending" 0 "$(wait_count 0 60 pending_all)"

# Every XREADGROUP the sink sent names one stream: "STREAMS" <key> ">" end the command.
reads=$(grep -c '"XREADGROUP"' "$T/monitor.log" || true)
[ "$reads" -gt 0 ] || fail "no XREADGROUP seen"
check "every XREADGROUP names one shard's stream" 0 \
    "$(grep '"XREADGROUP"' "$T/monitor.log" | grep -cvE '"STREAMS" "dm:\{[0-3]\}:out" ">"$' || true)"
check "every shard is read" "0 1 2 3" \
    "$(grep -oE '"STREAMS" "dm:\{[0-3]\}:out"' "$T/monitor.log" | grep -oE '[0-3]' | sort -u | tr '\n' ' ' | sed 's/ $//')"
finish
