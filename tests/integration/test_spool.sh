#!/usr/bin/env bash
# The spool (docs/spool.md): nothing acknowledged is lost while Redis is away.
#  1. Redis stopped: pushes and builds get 202 "spooled"; once Redis is back they are replayed
#     and joined exactly once.
#  2. kill -9 of digestmapd with a non-empty spool (Redis still down), Redis up, restart: the
#     spool is replayed and joined once; a torn last line (written by hand, as a crash in the
#     middle of a write leaves it) is logged and dropped, the good records replay.
#  3. A second digestmapd on the same spool directory refuses to start.
#  4. A spooled event replayed long after it arrived keeps its event time: the window applies as
#     of its arrival (driven by the arrival and event times in hand-written records).
#  5. A full spool (spool.max_bytes): 503 + Retry-After, counted; every 202 is joined later.
. "$(dirname "$0")/lib.sh"

SPOOL=$T/var/spool
spooled='{"status":"accepted","events":1,"edges":0,"spooled":true}'
confirmed() { stream_count dev.digestmap.mapping.confirmed.v1; }
segments() { find "$SPOOL" -name 'segment-*.jsonl' | sort; }

# ---------------------------------------------------------------- 1. Redis stopped
start_redis
start_daemon
stop_redis
declare -a D
for i in 1 2 3; do
    D[$i]=$(random_digest)
    acr_push "$T/p$i.json" "${D[$i]}" "1.$i" "$(iso_at -20)"
    post_acr "$T/p$i.json"
    check "push $i with Redis stopped: 202 spooled" "202 $spooled" "$STATUS $BODY"
    build_event "$T/b$i.json" "${D[$i]}" "$(iso_at -10)" "60$i"
    post_build "$T/b$i.json"
    check "build $i with Redis stopped: 202 spooled" "202 $spooled" "$STATUS $BODY"
done
check "spooled events counted" 6 "$(metric digestmap_spooled_total)"
check "spool depth" 6 "$(metric digestmap_spool_events)"
check_match "spool bytes" '^[1-9][0-9]*$' "$(metric digestmap_spool_bytes)"
check_match "spool oldest age" '^[0-9]+\.[0-9]+$' "$(metric digestmap_spool_oldest_age_seconds)"
check "no joins yet" 0 "$(metric digestmap_edges_total)"
start_redis
check "Redis back: the spool is replayed" 6 "$(wait_count 6 60 metric digestmap_spool_replayed_total)"
check "every pair joined once" 3 "$(wait_count 3 60 confirmed)"
check "spool empty again" "0 0" "$(wait_count "0 0" 60 eval 'echo $(metric digestmap_spool_events) $(metric digestmap_spool_bytes)')"
check "no segment left" "" "$(segments)"
check "spool oldest age back to 0" "0.000" "$(metric digestmap_spool_oldest_age_seconds)"
query_image "${D[2]}"
check "the replayed pair is queryable" 602 "$(jq -r '.mappings[0].build.run_id' <<<"$BODY")"
# Redelivered now: nothing new.
post_build "$T/b1.json"
check "a redelivery after the replay joins nothing new" '{"status":"accepted","events":1,"edges":0}' "$BODY"
check "still one edge per pair" 3 "$(confirmed)"

# ---------------------------------------------------------------- 2. kill -9, torn tail
stop_redis
E=$(random_digest)
acr_push "$T/pe.json" "$E" 2.0 "$(iso_at -20)"
post_acr "$T/pe.json"
check "push before the crash: spooled" "202 $spooled" "$STATUS $BODY"
build_event "$T/be.json" "$E" "$(iso_at -10)" 700
post_build "$T/be.json"
check "build before the crash: spooled" "202 $spooled" "$STATUS $BODY"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
seg=$(segments | tail -n 1)
check "the spool survived kill -9" 2 "$(cat $(segments) | wc -l)"
cp "$seg" "$T/template.jsonl" # a push and a build record, for part 4
# A crash in the middle of a write: a record cut short, no newline (never acknowledged).
printf '{"at":%s,"ev":{"side":"registry","dig' "$(date +%s000)" >> "$seg"
start_redis
start_daemon
check "restart: the torn record is logged" 1 \
    "$(await_log 'msg="spool: torn last record dropped' | grep -c "segment=$seg")"
check "restart: the good records are replayed" 2 "$(wait_count 2 60 metric digestmap_spool_replayed_total)"
check "restart: joined once" 1 "$(wait_count 1 60 confirmed)"
check "restart: the torn record counted as dropped" 1 "$(metric digestmap_spool_dropped_total)"
check "restart: spool empty" 0 "$(wait_count 0 60 metric digestmap_spool_events)"

# ---------------------------------------------------------------- 3. one process per spool
rc=0
timeout 60 "$DIGESTMAPD" --config "$T/config.json" >/dev/null 2>"$T/second.log" || rc=$?
check "a second digestmapd on the same spool directory exits 1" 1 "$rc"
check_match "and says why" "spool.dir $SPOOL is in use by another digestmapd" "$(cat "$T/second.log")"

# ---------------------------------------------------------------- 4. event time kept
# Hand-written records (the daemon stopped): a push that arrived two hours ago, event time 5 s
# before its arrival, and a build that arrived 20 s after it (event time 10 s after the push's),
# both beyond max_clock_skew (300 s) from now and outside the 60 s window's retention as of now.
stop_daemon
F=$(random_digest)
A=$(( $(date +%s) * 1000 - 7200000 ))
rec() { sed -n "${1}p" "$T/template.jsonl" | jq -c --arg d "$F" --argjson a "$2" --argjson t "$3" \
    '.at = $a | .ev.digest = $d | .ev.t = $t | if .ev.event_id then .ev.event_id |= sub("sha256:[0-9a-f]+"; $d) else . end'; }
{ rec 1 "$A" $((A - 5000)); rec 2 $((A + 20000)) $((A + 5000)); } > "$SPOOL/segment-00000000000000000900.jsonl"
start_daemon "$(default_config '"window_seconds": 60, "grace_seconds": 0')"
check "hand-written records replayed" 2 "$(wait_count 2 60 metric digestmap_spool_replayed_total)"
check "joined as of their arrival" 1 "$(wait_count 1 60 eval "rcli hlen 'dm:{0}:m:$F'")"
check "no event time replaced" 0 "$(metric digestmap_skew_replaced_total)"
query_image "$F"
check "the push keeps its event time" "$(iso_ms $((A - 5000)))" "$(jq -r '.mappings[0].image.pushed_at' <<<"$BODY")"
check "the build keeps its event time" "$(iso_ms $((A + 5000)))" "$(jq -r '.mappings[0].build.built_at' <<<"$BODY")"
stop_daemon

# ---------------------------------------------------------------- 5. a full spool
start_daemon "$(default_config | jq '.spool.max_bytes = 1024')"
stop_redis
: > "$T/full"
for i in 1 2 3 4 5 6; do
    G[$i]=$(random_digest)
    acr_push "$T/g$i.json" "${G[$i]}" "3.$i" "$(iso_at -20)"
    post_acr "$T/g$i.json"
    echo "$i $STATUS" >> "$T/full"
    if [ "$STATUS" == 503 ]; then
        check "spool full: the body says so" '{"error":"storage unavailable and the spool is full; retry later"}' "$BODY"
        check_match "spool full: Retry-After" $'(^|\n)Retry-After: 2\r?(\n|$)' "$HEADERS"
    fi
done
accepted=$(grep -c ' 202$' "$T/full" || true)
refused=$(grep -c ' 503$' "$T/full" || true)
check "spool full: the first pushes are spooled, then 503" "yes" \
    "$([ "$accepted" -ge 1 ] && [ "$refused" -ge 1 ] && [ "$((accepted + refused))" -eq 6 ] && echo yes || cat "$T/full")"
check "spool full: counted" "$refused" "$(metric digestmap_spool_full_total)"
check "spool full: logged" "$refused" "$(grep -c 'reason="redis unavailable and the spool is full' "$T/daemon.log")"
start_redis
check "every accepted push is replayed" "$accepted" "$(wait_count "$accepted" 60 metric digestmap_spool_replayed_total)"
parked=0
while read -r i st; do
    [ "$st" == 202 ] && parked=$((parked + $(rcli hexists "dm:{0}:r:${G[$i]}" contoso.azurecr.io/team/api)))
done < "$T/full"
check "nothing accepted is lost" "$accepted" "$parked"
finish
