#!/usr/bin/env bash
# The spool's replayer (docs/spool.md, "Replay" and "Tokens"), on hand-written segments:
#  1. Two spooled uses of one OIDC token whose expiry is long past at replay: the first parks,
#     the second is refused and counted; the jti marker set at replay outlives the token.
#  2. An interrupted replay goes on from its last checkpoint (every 256 records), not from the
#     segment's start, in the same process and after kill -9 (the cursor file); the records
#     before the checkpoint are not parked again.
#  3. The replayer reads events back from their JSON form (dm_event_from_json) for park.lua,
#     which takes arguments: a build as the previous version spooled it (every member: platform
#     manifest, index, name, tags, verified identity) joins a live push into the same record as
#     ever; a record whose event is not one (an unknown side) is dead-lettered, "not an event",
#     and the records after it park.
. "$(dirname "$0")/lib.sh"

SPOOL=$T/var/spool
segments() { find "$SPOOL" -name 'segment-*.jsonl' | sort; }

# A push record to copy: spooled for real.
start_redis
start_daemon
stop_redis
acr_push "$T/p.json" "$(random_digest)" 1.0 "$(iso_at -20)"
post_acr "$T/p.json"
check "template push spooled" 202 "$STATUS"
stop_daemon
head -n 1 "$(segments | tail -n 1)" > "$T/template.jsonl"
rm -f "$SPOOL"/segment-*.jsonl
now=$(date +%s000)
# records [--jti KEY RID PXAT] DIGEST...: push records of these digests, one a line.
records() {
    python3 - "$T/template.jsonl" "$now" "$@" <<'PY'
import json, sys
tpl = json.loads(open(sys.argv[1]).readline())
now, args = int(sys.argv[2]), sys.argv[3:]
jti = None
if args[0] == "--jti":
    jti, args = args[1:4], args[4:]
for d in args:
    r = json.loads(json.dumps(tpl))
    old = r["ev"]["digest"]
    r["at"] = now - 20000
    r["ev"] = json.loads(json.dumps(r["ev"]).replace(old, d))
    if jti:
        r["jti"], r["rid"], r["pxat"] = jti[0], jti[1], int(jti[2])
    print(json.dumps(r, separators=(",", ":")))
PY
}
hexd() { printf 'sha256:%s%060x' "$1" "$2"; } # a digest on the shard of its first 4 digits

# ---------------------------------------------------------------- 1. expired token
start_redis
X=$(random_digest)
Y=$(random_digest)
KEY="dm:jti:$(printf '%064x' 12345)"
{
    records --jti "$KEY" rid-first $((now - 3600000)) "$X"
    records --jti "$KEY" rid-second $((now - 3600000)) "$Y"
} > "$SPOOL/segment-00000000000000000100.jsonl"
start_daemon
check "expired token: the spool drains" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
check "expired token: the first use parked" 1 "$(rcli hexists "dm:{0}:r:$X" contoso.azurecr.io/team/api)"
check "expired token: the second use refused" 0 "$(rcli hexists "dm:{0}:r:$Y" contoso.azurecr.io/team/api)"
check "expired token: counted" 1 "$(metric digestmap_spool_replay_refused_total)"
check "expired token: the marker holds the first use" rid-first "$(rcli get "$KEY")"
check "expired token: the marker lives about a day" yes \
    "$(ttl=$(rcli pttl "$KEY"); [ "$ttl" -gt 86000000 ] && [ "$ttl" -le 86400000 ] && echo yes || echo "no: $ttl")"
stop_daemon

# ---------------------------------------------------------------- 2. checkpoints
# 300 records of shard 0, then one of shard 1, which Redis refuses (NOPERM: an ACL) until the
# end: every pass is interrupted there.
records $(for i in $(seq 1 300); do hexd 0000 "$i"; echo; done) > "$SPOOL/segment-00000000000000000200.jsonl"
records "$(hexd 0001 1)" >> "$SPOOL/segment-00000000000000000200.jsonl"
check "hand-written segment" 301 "$(wc -l < "$SPOOL/segment-00000000000000000200.jsonl")"
ckpt=$(head -n 256 "$SPOOL/segment-00000000000000000200.jsonl" | wc -c)
rcli acl setuser default resetkeys '~dm:{0}:*' '~dm:jti:*' >/dev/null
start_daemon "$(default_config | jq '.redis.shards = 2')"
interrupted() { grep -c 'msg="spool: replay interrupted' "$T/daemon.log" || true; }
wait_count 2 60 interrupted >/dev/null
check "first pass: parks everything before the refused record" "parked=300" \
    "$(grep -m1 'msg="spool: replay interrupted' "$T/daemon.log" | grep -o 'parked=[0-9]*')"
check "second pass: goes on from the checkpoint" "parked=44" \
    "$(grep 'msg="spool: replay interrupted' "$T/daemon.log" | sed -n 2p | grep -o 'parked=[0-9]*')"
check_match "second pass: logged from where" "from=$ckpt( |\$)" \
    "$(grep 'msg="spool: replaying a segment' "$T/daemon.log" | sed -n 2p)"
check "the cursor is kept on disk" "$(printf '%020d %020d' 200 "$ckpt")" "$(head -c 41 "$SPOOL/cursor")"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
start_daemon "$(default_config | jq '.redis.shards = 2')"
wait_count 1 60 interrupted >/dev/null
check "after kill -9: goes on from the kept cursor" "parked=44" \
    "$(grep -m1 'msg="spool: replay interrupted' "$T/daemon.log" | grep -o 'parked=[0-9]*')"
rcli acl setuser default allkeys >/dev/null
check "refusal lifted: the spool drains" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
check "every record parked" 301 \
    "$(( $(rcli --scan --pattern 'dm:{0}:r:sha256:00000000000000*' | wc -l) + $(rcli --scan --pattern 'dm:{1}:r:sha256:00010000000000*' | wc -l) ))"

# ---------------------------------------------------------------- 3. events read back
stop_daemon
rm -f "$SPOOL"/segment-*.jsonl "$SPOOL/cursor"
P=$(random_digest)
I=$(random_digest)
Q=$(random_digest)
t_build=$(( now - 10000 ))
{
    echo "{\"at\":$((now - 5000)),\"ev\":{\"side\":\"elsewhere\",\"action\":\"build\",\"source\":\"github\",\"event_id\":\"x\",\"t\":$t_build,\"digest\":\"$Q\"}}"
    echo "{\"at\":$((now - 5000)),\"ev\":{\"side\":\"build\",\"action\":\"build\",\"source\":\"github\",\"event_id\":\"github/9001/2/$P\",\"t\":$t_build,\"digest\":\"$P\",\"relation\":\"platform-manifest\",\"index\":\"$I\",\"name\":\"contoso.azurecr.io/team/api\",\"tags\":[\"1.4.0\",\"latest\"],\"build\":{\"provider\":\"github\",\"repository\":\"acme/api\",\"workflow\":\"release\",\"run_id\":\"9001\",\"run_attempt\":\"2\",\"commit\":\"abc\",\"actor\":\"mona\",\"issuer\":\"https://token.actions.githubusercontent.com\",\"verified\":true,\"verified_fields\":[\"repository\",\"run_id\"]}}}"
} > "$SPOOL/segment-00000000000000000300.jsonl"
dead0=$(metric digestmap_spool_dead_letter_total)
start_daemon
check "read back: the spool drains" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
check "read back: the build parked" 1 "$(rcli hexists "dm:{0}:b:$P" github/9001/2)"
check "read back: the odd record dead-lettered, not parked" "1 0" \
    "$(( $(metric digestmap_spool_dead_letter_total) - dead0 )) $(rcli exists "dm:{0}:b:$Q")"
check "read back: the dead-letter file says why" "$Q not an event" \
    "$(tail -n 1 "$SPOOL/dead-letter.jsonl" | jq -r '"\(.record.ev.digest) \(.reason)"')"
acr_push "$T/pp.json" "$P" "" "$(date -u -d "@$(( now / 1000 - 15 ))" +%Y-%m-%dT%H:%M:%S.000000000Z)"
post_acr "$T/pp.json"
check "read back: a live push joins it" '202 1' "$STATUS $(jq -r .edges <<<"$BODY")"
check "read back: the record's relation, index and build" \
    "platform-manifest $I {\"provider\":\"github\",\"repository\":\"acme/api\",\"workflow\":\"release\",\"run_id\":\"9001\",\"run_attempt\":\"2\",\"commit\":\"abc\",\"actor\":\"mona\",\"built_at\":\"$(date -u -d "@$(( t_build / 1000 ))" +%Y-%m-%dT%H:%M:%S).$(printf '%03d' $(( t_build % 1000 )))Z\",\"verified\":true,\"issuer\":\"https://token.actions.githubusercontent.com\",\"verified_fields\":[\"repository\",\"run_id\"]}" \
    "$(rcli --raw hvals "dm:{0}:m:$P" | jq -c -r '"\(.relation) \(.index) \(.build | tojson)"')"
finish
