#!/usr/bin/env bash
# The spool (docs/spool.md) when Redis answers with an error reply instead of going away.
#  1. Redis back as a read-only replica (a failover not finished): every error reply but the
#     join script's own is temporary. The replayer keeps the spooled events (nothing dropped,
#     nothing dead-lettered) and retries; a live ingest meanwhile is spooled (202), not 503;
#     once Redis is writable again everything is joined exactly once.
#  2. The join script itself fails on a spooled event (here WRONGTYPE: a key of its digest was
#     overwritten by something else): the record goes to the spool's dead-letter file (kept,
#     counted, logged), the other records of the segment are parked, the segment goes.
#  3. redis.wait_replicas with a request that Redis takes in part (one digest's shard refused:
#     NOPERM, an ACL): every event of it is spooled, the parked ones too (no WAIT confirmed
#     them), never only the rest.
. "$(dirname "$0")/lib.sh"

SPOOL=$T/var/spool
spooled='{"status":"accepted","events":1,"edges":0,"spooled":true}'
confirmed() { stream_count dev.digestmap.mapping.confirmed.v1; }

# ---------------------------------------------------------------- 1. READONLY
start_redis
start_daemon
stop_redis
D=$(random_digest)
acr_push "$T/p.json" "$D" 1.0 "$(iso_at -20)"
post_acr "$T/p.json"
check "push with Redis stopped: spooled" "202 $spooled" "$STATUS $BODY"
build_event "$T/b.json" "$D" "$(iso_at -10)" 901
post_build "$T/b.json"
check "build with Redis stopped: spooled" "202 $spooled" "$STATUS $BODY"
# Back as a replica of a master that does not exist: it answers, but refuses every write.
REDIS_EXTRA_ARGS="--replicaof 127.0.0.1 1" start_redis
check_match "read-only Redis: the refusal is logged with its reply" 'reply="READONLY' \
    "$(await_log 'msg="redis refused events for now')"
check_match "read-only Redis: the replay is interrupted, not finished" 'segment=' \
    "$(await_log 'msg="spool: replay interrupted')"
check "read-only Redis: both events still spooled" 2 "$(metric digestmap_spool_events)"
check "read-only Redis: nothing dropped" 0 "$(metric digestmap_spool_dropped_total)"
check "read-only Redis: nothing dead-lettered" 0 "$(metric digestmap_spool_dead_letter_total)"
check "read-only Redis: nothing replayed" 0 "$(metric digestmap_spool_replayed_total)"
E=$(random_digest)
acr_push "$T/pe.json" "$E" 1.1 "$(iso_at -20)"
post_acr "$T/pe.json"
check "read-only Redis: a live push is spooled, not refused" "202 $spooled" "$STATUS $BODY"
rcli replicaof no one >/dev/null
check "writable again: all three replayed" 3 "$(wait_count 3 60 metric digestmap_spool_replayed_total)"
check "writable again: the pair joined once" 1 "$(wait_count 1 60 confirmed)"
check "writable again: the live push parked" 1 "$(rcli hexists "dm:{0}:r:$E" contoso.azurecr.io/team/api)"
check "writable again: spool empty" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
check "writable again: no dead letter" "" "$(cat "$SPOOL/dead-letter.jsonl" 2>/dev/null)"

# ---------------------------------------------------------------- 2. script error
stop_redis
F=$(random_digest)
G=$(random_digest)
acr_push "$T/pf.json" "$F" 2.0 "$(iso_at -20)"
post_acr "$T/pf.json"
check "push F spooled" "202 $spooled" "$STATUS $BODY"
acr_push "$T/pg.json" "$G" 2.1 "$(iso_at -20)"
post_acr "$T/pg.json"
check "push G spooled" "202 $spooled" "$STATUS $BODY"
stop_daemon
start_redis
rcli set "dm:{0}:r:$F" not-a-hash >/dev/null # park.lua's HSET on it fails: WRONGTYPE
start_daemon
check "script error: one record dead-lettered" 1 "$(wait_count 1 60 metric digestmap_spool_dead_letter_total)"
check "script error: the other one parked" 1 "$(wait_count 1 60 eval "rcli hexists 'dm:{0}:r:$G' contoso.azurecr.io/team/api")"
check "script error: the segment goes" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
check "script error: nothing dropped" 0 "$(metric digestmap_spool_dropped_total)"
check_match "script error: logged" "reason=\"the join script refused it\"" \
    "$(await_log 'msg="spool: a spooled record can never be parked; moved to the dead-letter file')"
check "script error: the dead-letter file holds the record and why" \
    "1 $F the join script refused it" \
    "$(wc -l < "$SPOOL/dead-letter.jsonl") $(jq -r '"\(.record.ev.digest) \(.reason)"' "$SPOOL/dead-letter.jsonl")"

# ---------------------------------------------------------------- 3. partial, wait_replicas
stop_daemon
start_daemon "$(default_config | jq '.redis.shards = 2 | .redis.wait_replicas = 1')"
# dm_digest_shard: the first four hex digits modulo the shards.
A="sha256:0000$(random_digest | cut -c12-)"
B="sha256:0001$(random_digest | cut -c12-)"
jq --arg a "$A" --arg b "$B" '.images = [(.images[0] | .digest = $a), (.images[0] | .digest = $b)]' \
    <(build_event /dev/stdout x "$(iso_at -10)" 950) > "$T/two.json"
rcli acl setuser default resetkeys '~dm:{0}:*' >/dev/null # shard 1 refused: NOPERM
before=$(metric digestmap_spooled_total)
post_build "$T/two.json"
check "partial with wait_replicas: 202 spooled" \
    '202 {"status":"accepted","events":2,"edges":0,"spooled":true}' "$STATUS $BODY"
check "partial with wait_replicas: the shard-0 build is in Redis" 1 "$(rcli hexists "dm:{0}:b:$A" github/950/1)"
check "partial with wait_replicas: both events spooled, the parked one too" 2 \
    "$(( $(metric digestmap_spooled_total) - before ))"
rcli acl setuser default allkeys >/dev/null
finish
