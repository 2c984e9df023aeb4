#!/usr/bin/env bash
# redis.wait_replicas (docs/spool.md): every ingest answers only after WAIT confirms that many
# replicas. With the replica up: a plain 202. With it stopped: the event is in Redis but not
# safely, so it is spooled too and the answer is 202 "spooled" (never a plain 202), counted; the
# replayer keeps it until a replica confirms it again. Master and replica talk over TCP, on two
# ports of 21910-21999 that no socket uses (not even one in TIME_WAIT).
. "$(dirname "$0")/lib.sh"
read -r MPORT RPORT < <(python3 - <<'EOF'
used = set()
for f in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(f).readlines()[1:]:
        used.add(int(line.split()[1].rsplit(":", 1)[1], 16))
print(*[p for p in range(21910, 22000) if p not in used][:2])
EOF
)
[ -n "$RPORT" ] || die "no free ports in 21910-21999"
REDIS_EXTRA_ARGS="--port $MPORT --bind 127.0.0.1"
start_redis
start_replica() {
    spawn_redis "$T/replica.sock" "$T/replica.log" --port "$RPORT" --bind 127.0.0.1 \
        --replicaof 127.0.0.1 "$MPORT"
    _linked() { rcli info replication | grep -q '^slave0:.*state=online'; }
    poll_until "$DM_WAIT" _linked || die "the replica did not come online"
}
start_replica
start_daemon "$(default_config | jq '.redis.wait_replicas = 1')"

d=$(random_digest)
acr_push "$T/p.json" "$d" 1.0 "$(iso_at -20)"
post_acr "$T/p.json"
check "replica up: a plain 202" '202 {"status":"accepted","events":1,"edges":0}' "$STATUS $BODY"
check "replica up: nothing short" 0 "$(metric digestmap_redis_wait_short_total)"
check "replica up: on the replica too" 1 \
    "$(redis-cli -s "$T/replica.sock" hexists "dm:{0}:r:$d" contoso.azurecr.io/team/api)"

stop_redis_at "$T/replica.sock"
_unlinked() { rcli info replication | grep -q '^connected_slaves:0'; }
poll_until "$DM_WAIT" _unlinked || die "the master still sees its replica"
e=$(random_digest)
build_event "$T/b.json" "$e" "$(iso_at -10)" 801
post_build "$T/b.json"
check "replica stopped: 202 spooled, never a plain 202" \
    '202 {"status":"accepted","events":1,"edges":0,"spooled":true}' "$STATUS $BODY"
check "replica stopped: counted" 1 "$(metric digestmap_redis_wait_short_total)"
check "replica stopped: the build is in Redis" 1 "$(rcli hexists "dm:{0}:b:$e" github/801/1)"
check "replica stopped: and spooled" 1 "$(metric digestmap_spooled_total)"
await_log 'msg="spool: replay interrupted.*fewer replicas' >/dev/null
check "replica stopped: the replayer keeps it" 1 "$(metric digestmap_spool_events)"

start_replica
check "replica back: the spool is replayed and let go" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
check "replica back: the build is on the replica" 1 \
    "$(redis-cli -s "$T/replica.sock" hexists "dm:{0}:b:$e" github/801/1)"
finish
