#!/usr/bin/env bash
# Output-stream trimming (dm_trim, trim.lua): streams are cut to outputs.stream_maxlen, but an
# entry that a protected consumer group (outputs.stream_groups, the sinks' groups) has not
# acknowledged is never removed; the lag is logged and exported. Unprotected groups do not hold
# trimming back; every "digestmap:…" group (a sink's, configured here or not) is protected.
# Then outputs.max_group_lag: a protected group further behind stops holding trimming back (its
# lost records logged and counted), whether Redis gives its lag or not, and a dead webhook sink
# cannot grow a stream without end; and the dead-letter stream is capped, logged and counted.
# Entries are added with XADD directly: trimming does not care who wrote them. Nothing is slept
# for: a negative check ("nothing trimmed") comes after a full trim round (full_tick).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sink/sink_lib.sh"
start_redis

S0='dm:{0}:out'
S1='dm:{1}:out'
S2='dm:{2}:out'
S3='dm:{3}:out'
# add STREAM N: append N records (CloudEvents with unique ids, which a sink would deliver) in
# one atomic script: no trim sees a part of them.
add() {
    rcli eval "local t = redis.call('TIME')
      for i = 1, tonumber(ARGV[1]) do
        local ce = 'ce-' .. t[1] .. t[2] .. '-' .. i
        redis.call('XADD', KEYS[1], '*', 'type', 'dev.digestmap.mapping.confirmed.v1',
                   'digest', 'sha256:' .. i, 'event',
                   '{\"specversion\":\"1.0\",\"id\":\"' .. ce .. '\",\"type\":\"dev.digestmap.mapping.confirmed.v1\"}')
      end" 1 "$1" "$2" >/dev/null
}
# wait_len STREAM N: poll until XLEN is N; prints the final length.
wait_len() { wait_count "$2" 60 rcli xlen "$1"; }
# nth_id STREAM N: id of the N-th entry (1-based) currently in the stream.
nth_id() { rcli --raw xrange "$1" - + count "$2" | awk 'NR % 7 == 1' | sed -n "${2}p"; }
# full_tick: return once the trimmer went through every shard after this call. The sentinel
# stream SENTINEL (the last shard's, no group) gets one entry past stream_maxlen, twice: its
# second trim belongs to a round that started after the first one was seen, so that round's
# earlier shards were trimmed after this call. SENTINEL_TRIMS counts what it removed.
SENTINEL_TRIMS=0
full_tick() {
    local _
    for _ in 1 2; do
        add "$SENTINEL" 1
        [ "$(wait_len "$SENTINEL" "$SENTINEL_LEN")" == "$SENTINEL_LEN" ] || die "the trimmer stopped"
        SENTINEL_TRIMS=$((SENTINEL_TRIMS + 1))
    done
}

# Groups exist before the records, reading from the start (as a consumer created with "0").
rcli xgroup create "$S0" siem 0 mkstream >/dev/null
rcli xgroup create "$S1" other 0 mkstream >/dev/null
rcli xgroup create "$S2" digestmap:elsewhere 0 mkstream >/dev/null
add "$S0" 30
add "$S1" 30
add "$S2" 30
SENTINEL=$S3 SENTINEL_LEN=10
add "$S3" 10
id26=$(rcli --raw xrange "$S0" - + count 26 | awk 'NR % 7 == 1' | sed -n 26p)

# max_group_lag far above the backlogs here: the groups hold trimming back whatever they lag.
conf=$(default_config | jq '.redis.shards = 4
    | .outputs = {"stream_maxlen": 10, "trim_interval_ms": 100, "stream_groups": ["siem"],
                  "max_group_lag": 1000}')
start_daemon "$conf"

# Shard 1: its only group ("other") is not protected, so the stream is cut to 10.
check "unprotected stream trimmed to stream_maxlen" 10 "$(wait_len "$S1" 10)"
# Shard 0: "siem" has read nothing, so nothing may go.
full_tick
check "nothing trimmed while the protected group has read nothing" 30 "$(rcli xlen "$S0")"
check "a sink group configured elsewhere is protected too" 30 "$(rcli xlen "$S2")"
check_match "lagging protected group logged" 'msg="consumer group lagging" group=siem shard=0 backlog=30 stream_maxlen=10 effect="stream kept past stream_maxlen"' \
    "$(await_log 'msg="consumer group lagging" group=siem shard=0')"
check "lag gauge" 30 "$(metric digestmap_stream_group_lag)"

# siem reads and acknowledges 3: exactly those 3 may go (its last-delivered id bounds it).
ids=$(rcli --raw xreadgroup group siem c1 count 3 streams "$S0" '>' | grep -E '^[0-9]+-[0-9]+$')
rcli xack "$S0" siem $ids >/dev/null
check "trimmed up to the last delivered entry, inclusive" 27 "$(wait_len "$S0" 27)"
full_tick
check "and no further" 27 "$(rcli xlen "$S0")"
# siem reads and acknowledges 22 more: now 17 more may go (length 10, all unread or later).
ids=$(rcli --raw xreadgroup group siem c1 count 22 streams "$S0" '>' | grep -E '^[0-9]+-[0-9]+$')
check "siem read 22 entries" 22 "$(echo "$ids" | wc -l)"
rcli xack "$S0" siem $ids >/dev/null
check "trimmed to stream_maxlen once acknowledged" 10 "$(wait_len "$S0" 10)"

# siem reads 5 more without acknowledging them, 10 records arrive: the 5 acknowledged ones
# may go, the 5 pending ones may not (length 15 > maxlen 10).
pend=$(rcli --raw xreadgroup group siem c1 count 5 streams "$S0" '>' | grep -E '^[0-9]+-[0-9]+$')
check "siem holds 5 pending" 5 "$(echo "$pend" | wc -l)"
check "the 26th entry of the original 30 is the first pending" "$id26" "$(echo "$pend" | head -n 1)"
add "$S0" 10
check "pending entries are kept" 15 "$(wait_len "$S0" 15)"
check "the oldest entry left is the oldest pending one" "$id26" "$(nth_id "$S0" 1)"
rcli xack "$S0" siem $pend >/dev/null
check "trimmed once the pending entries are acknowledged" 10 "$(wait_len "$S0" 10)"
# The counter is added after the last shard's answer: poll it.
check "trimmed entries: 20 (shard 1) + 3 + 17 + 5 + 5 (shard 0) + the sentinel's" \
    $((50 + SENTINEL_TRIMS)) "$(wait_count $((50 + SENTINEL_TRIMS)) 60 metric digestmap_stream_trimmed_total)"
check "the sink group's stream still untouched" 30 "$(rcli xlen "$S2")"

# A protected group for which Redis has no lag figure (an entry deleted after its position makes
# XINFO's lag nil): the warning comes from its holding trimming back, with the number of entries
# from its position on (12 added, 1 deleted).
# The 12 entries and the deletion are one atomic script, so no trim sees a partial state.
last1=$(rcli --raw xrevrange "$S1" + - count 1 | head -n 1)
rcli xgroup create "$S1" digestmap:mid "$last1" >/dev/null
rcli eval "for i = 1, 12 do
    local id = redis.call('XADD', KEYS[1], '*', 'type', 't', 'digest', 'd', 'event', '{}')
    if i == 6 then redis.call('XDEL', KEYS[1], id) end
  end" 1 "$S1" >/dev/null
check "Redis has no lag figure for it" "" \
    "$(rcli --raw xinfo groups "$S1" |
       awk '/^digestmap:mid$/ {f = 1} f && /^lag$/ {getline; print; seen = 1; exit}
            END {if (!seen) print "no lag field"}')"
check_match "a group without a lag figure that holds trimming back is logged" \
    'msg="consumer group lagging" group=digestmap:mid shard=1 backlog=11 stream_maxlen=10' \
    "$(await_log 'group=digestmap:mid shard=1')"
check "only what it has read goes" 11 "$(wait_len "$S1" 11)"
full_tick
check "nothing was dropped for a lagging group (max_group_lag 1000)" 0 \
    "$(metric digestmap_group_lag_dropped_total)"
check "no drop logged" 0 "$(grep -c 'too far behind' "$T/daemon.log" || true)"
stop_daemon


# ------------------------------------------------------------ max_group_lag 20, stream_maxlen 10
# A group more than 20 entries behind no longer holds trimming back: the stream is cut to 10
# past it, the entries it loses are counted and logged; back within 20, it holds trimming again.
# Shard 0: "abandoned" (outputs.stream_groups) reads nothing. Shard 1: a sink group for which
# Redis has no lag figure. Shard 2: the sentinel. The dead-letter stream of shard 0 is capped.
rcli flushall >/dev/null
rcli xgroup create "$S0" abandoned 0 mkstream >/dev/null
SENTINEL=$S2 SENTINEL_LEN=10 SENTINEL_TRIMS=0
add "$S2" 10
conf=$(default_config | jq '.redis.shards = 3
    | .outputs = {"stream_maxlen": 10, "trim_interval_ms": 100, "stream_groups": ["abandoned"],
                  "max_group_lag": 20}')
start_daemon "$conf"
DROPPED=digestmap_group_lag_dropped_total

add "$S0" 25
check "a group 25 behind (> 20) no longer holds trimming back: cut to stream_maxlen" 10 \
    "$(wait_len "$S0" 10)"
check "the 15 entries it had not read are counted" 15 "$(wait_count 15 60 metric "$DROPPED")"
check_match "and logged, with the group, the shard and the count" \
    'level=warn msg="consumer group too far behind: records trimmed" group=abandoned shard=0 backlog=25 max_group_lag=20 dropped=15 stream=dm:\{0\}:out' \
    "$(await_log 'too far behind: records trimmed" group=abandoned')"
check_match "the lagging warning says what happens" \
    'msg="consumer group lagging" group=abandoned shard=0 backlog=25 stream_maxlen=10 effect="oldest unacknowledged records trimmed \(max_group_lag\)"' \
    "$(await_log 'consumer group lagging" group=abandoned')"
add "$S0" 10
full_tick
check "20 behind: within max_group_lag, it holds trimming back again" 20 "$(rcli xlen "$S0")"
check "nothing more dropped" 15 "$(metric "$DROPPED")"
add "$S0" 1
check "21 behind: cut again" 10 "$(wait_len "$S0" 10)"
check "11 more dropped" 26 "$(wait_count 26 60 metric "$DROPPED")"
check "one drop line a minute per group and shard" 1 \
    "$(grep -c 'too far behind: records trimmed" group=abandoned shard=0' "$T/daemon.log")"

# Shard 1, no lag figure (an entry deleted after the group's position): the group holds the
# first entry only, so its backlog is the 29 entries after it.
e0=$(rcli xadd "$S1" '*' type t digest d event '{}')
rcli xgroup create "$S1" digestmap:nolag "$e0" >/dev/null
rcli eval "for i = 1, 30 do
    local id = redis.call('XADD', KEYS[1], '*', 'type', 't', 'digest', 'd', 'event', '{}')
    if i == 6 then redis.call('XDEL', KEYS[1], id) end
  end" 1 "$S1" >/dev/null
check "no lag figure, 29 behind (> 20): cut to stream_maxlen" 10 "$(wait_len "$S1" 10)"
check "the 19 entries after its position are counted" 45 "$(wait_count 45 60 metric "$DROPPED")"
check_match "and logged" 'msg="consumer group too far behind: records trimmed" group=digestmap:nolag shard=1 backlog=29 max_group_lag=20 dropped=19' \
    "$(await_log 'records trimmed" group=digestmap:nolag')"

# The dead-letter stream: sink_dead.lua appends, the trimmer keeps the newest stream_maxlen.
rcli eval "for i = 1, 15 do
    redis.call('XADD', KEYS[1], '*', 'type', 't', 'digest', 'd', 'event', '{}', 'sink', 's',
               'stream_id', '1-' .. i, 'attempts', '1', 'error', 'e', 'failed_at', '1')
  end" 1 'dm:{0}:dead' >/dev/null
check "dead-letter stream cut to stream_maxlen" 10 "$(wait_len 'dm:{0}:dead' 10)"
check "the newest are kept" "1-6" "$(rcli --raw xrange 'dm:{0}:dead' - + count 1 |
    awk 'prev == "stream_id" {print} {prev = $0}')"
check "dead-letter entries dropped are counted" 5 "$(wait_count 5 60 metric digestmap_sink_dead_dropped_total)"
check_match "and logged" 'level=warn msg="dead-letter stream capped: oldest entries dropped" stream=dm:\{0\}:dead dropped=5 stream_maxlen=10' \
    "$(await_log 'dead-letter stream capped')"
stop_daemon

# ------------------------------------------------------------ a dead webhook sink
# A sink whose every attempt fails (connection refused) and is retried much later holds what
# it read pending and reads no more: its group lags without end. With max_group_lag 20 the
# stream stays within stream_maxlen + max_group_lag; every entry trimmed is one it had not
# acknowledged.
rcli flushall >/dev/null
hold_closed_port
SENTINEL=$S1 SENTINEL_LEN=10 SENTINEL_TRIMS=0
add "$S1" 10
conf=$(sink_config "{\"name\": \"dead\", \"url\": \"http://127.0.0.1:$CLOSED_PORT/\", \"secret\": \"k\",
    \"max_inflight\": 2, \"max_attempts\": 1000, \"backoff_initial_ms\": 600000,
    \"backoff_max_ms\": 600000}" | jq '.redis.shards = 2 | .outputs += {"stream_maxlen": 10,
    "trim_interval_ms": 100, "max_group_lag": 20}')
start_daemon "$conf"
wait_sink_started
longest=0
for batch in $(seq 1 10); do
    add "$S0" 10
    n=$(rcli xlen "$S0")
    [ "$n" -gt "$longest" ] && longest=$n
    # within a trim round the stream is back to at most max(stream_maxlen, max_group_lag)
    poll_until "$DM_WAIT" eval '[ "$(rcli xlen "$S0")" -le 20 ]' || fail "batch $batch: still $(rcli xlen "$S0") entries"
done
check "100 records for a dead sink: the stream never held more than stream_maxlen + max_group_lag ($longest)" \
    1 "$(( longest <= 30 ? 1 : 0 ))"
full_tick # (the sink group's position on the sentinel is past the sentinel's first entries)
left=$(rcli xlen "$S0")
check "the dead sink still holds max_inflight records" 2 "$(wait_count 2 60 metric digestmap_sink_inflight)"
check "entries trimmed: all but the $left left" $((100 - left + SENTINEL_TRIMS)) \
    "$(wait_count $((100 - left + SENTINEL_TRIMS)) 60 metric digestmap_stream_trimmed_total)"
check "every one of them is counted as dropped for the dead sink" $((100 - left)) "$(metric "$DROPPED")"
check_match "the dead sink's group is logged" \
    'msg="consumer group too far behind: records trimmed" group=digestmap:dead shard=0 backlog=[0-9]+ max_group_lag=20 dropped=[0-9]+' \
    "$(await_log 'records trimmed" group=digestmap:dead')"
check "nothing delivered" 0 "$(metric digestmap_sink_delivered_total)"
finish
