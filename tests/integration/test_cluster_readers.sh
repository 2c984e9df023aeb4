#!/usr/bin/env bash
# The readers of the output streams on a real Redis Cluster (3 masters + 3 replicas on
# 127.0.0.1:20500-20505, bus ports 30500-30505: below the ephemeral range 32768-60999, where an
# outgoing connection of another program, e.g. another test's cluster bus, may hold a port for
# as long as it lives), redis.cluster true and 16 shards: every read names one shard's stream
# (docs/cluster-readers.md).
# - digestmap tail, plain and through a group, prints the records of all 16 shards, which live
#   on several masters, following MOVED from the seed;
# - a following `tail --group` goes on after kill -9 of a master: the replica takes over, the
#   lost connections are made again through the seed, and every record written afterwards is
#   printed (at least once);
# - digestmapd with a webhook sink: every confirmed record of pushes + builds, on several
#   masters, reaches the sink exactly once, and tail prints them. This part needs the daemon's
#   Cluster router (dm_redis with redis.cluster).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

CLI="$(dirname "$DIGESTMAPD")/digestmap"
[ -x "$CLI" ] || die "no client binary at $CLI"
CL_PORTS=(20500 20501 20502 20503 20504 20505)
SEED=${CL_PORTS[0]}

# cl_start: the six nodes as children of this shell, then the cluster; waits for
# cluster_state:ok on every node, and for every replica to be in sync with its master (a
# replica that never synced cannot take over).
cl_start() {
    local p
    for p in "${CL_PORTS[@]}"; do cl_node "$p"; done
    _node_up() { redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; }
    for p in "${CL_PORTS[@]}"; do
        poll_until "$DM_WAIT" _node_up "$p" || die "cluster node $p did not start"
    done
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CL_PORTS[@]}") \
        --cluster-replicas 1 --cluster-yes >"$T/cl-create.log" 2>&1 ||
        die "redis-cli --cluster create failed: $(tail -n 5 "$T/cl-create.log")"
    _cluster_ok() { redis-cli -p "$1" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; }
    for p in "${CL_PORTS[@]}"; do
        poll_until "$DM_WAIT" _cluster_ok "$p" || die "cluster node $p never reached cluster_state:ok"
    done
    _synced() {
        local info
        info=$(redis-cli -p "$1" info replication 2>/dev/null)
        grep -q 'role:master' <<<"$info" || grep -q 'master_link_status:up' <<<"$info"
    }
    for p in "${CL_PORTS[@]}"; do
        poll_until "$DM_WAIT" _synced "$p" || die "cluster replica $p never synced with its master"
    done
}

# cl_node PORT: start one node; one that exits at once (its port held for a moment by another
# program) is started again.
cl_node() {
    local p=$1 try pid
    mkdir -p "$T/cl-$p"
    for try in 1 2 3 4 5 6 7 8 9 10; do
        redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-node-timeout 1500 --cluster-config-file "$T/cl-$p/nodes-$p.conf" \
            --dir "$T/cl-$p" --save '' --appendonly no --daemonize no \
            --repl-diskless-sync-delay 0 \
            --logfile "$T/cl-$p/redis.log" </dev/null >/dev/null 2>&1 &
        pid=$!
        echo "$pid" > "$T/cl-$p.pid"
        _up_or_gone() { redis-cli -p "$1" ping 2>/dev/null | grep -q PONG || ! kill -0 "$2" 2>/dev/null; }
        poll_until "$DM_WAIT" _up_or_gone "$p" "$pid" || true
        kill -0 "$pid" 2>/dev/null && return 0
        wait "$pid" 2>/dev/null || true
        echo "# cluster node $p exited at start (try $try): $(tail -n 1 "$T/cl-$p/redis.log")"
        rm -f "$T/cl-$p/nodes-$p.conf"
        sleep 0.5
    done
    die "cluster node $p cannot start: $(tail -n 3 "$T/cl-$p/redis.log")"
}

# cl_kill PORT: kill -9 one node.
cl_kill() {
    local pid
    pid=$(cat "$T/cl-$1.pid")
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$T/cl-$1.pid"
}

cl_stop() {
    local p pid
    for p in "${CL_PORTS[@]}"; do
        [ -f "$T/cl-$p.pid" ] || continue
        pid=$(cat "$T/cl-$p.pid")
        kill -TERM "$pid" 2>/dev/null || true
    done
    for p in "${CL_PORTS[@]}"; do
        [ -f "$T/cl-$p.pid" ] || continue
        pid=$(cat "$T/cl-$p.pid")
        poll_until "$DM_WAIT" eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
        rm -f "$T/cl-$p.pid"
    done
}
at_exit cl_stop

ccli() { redis-cli -c -p "$SEED" "$@"; }

# master_of SHARD: the port of the master that serves dm:{SHARD}:out (the node whose
# answer to a key of that slot is not MOVED).
master_of() {
    local p
    for p in "${CL_PORTS[@]}"; do
        [ -f "$T/cl-$p.pid" ] || continue
        if redis-cli -p "$p" exists "dm:{$1}:out" 2>/dev/null | grep -qE '^[0-9]+$'; then
            echo "$p"
            return
        fi
    done
}

# masters_used: how many masters serve the 16 shards.
masters_used() { for s in $(seq 0 15); do master_of "$s"; done | sort -u | grep -c .; }

# pending_all GROUP: entries pending in GROUP over the 16 shards.
pending_all() {
    local s n=0 v
    for s in $(seq 0 15); do
        v=$(ccli xpending "dm:{$s}:out" "$1" 2>/dev/null | head -n 1)
        [[ "$v" =~ ^[0-9]+$ ]] && n=$((n + v))
    done
    echo "$n"
}

# add_round NAME: one record on each of the 16 shards, ids ce-NAME-<shard>.
add_round() {
    local s
    for s in $(seq 0 15); do
        ccli xadd "dm:{$s}:out" '*' type "$CONFIRMED" digest "sha256:$s" \
            event "$(cloudevent "ce-$1-$s" "$CONFIRMED" "sha256:$s")" >/dev/null
    done
}

# ids FILE [PREFIX]: the CloudEvent ids in FILE (one JSON document a line) starting with PREFIX,
# sorted, with repeats.
ids() { jq -r .id <"$1" | grep "^${2:-}" | sort || true; }
expected() { for s in $(seq 0 15); do echo "ce-$1-$s"; done | sort; }
lines() { grep -c . "$1" 2>/dev/null || true; }

cl_start
CONF=$T/cluster.json
default_config | jq ".redis = {\"url\": \"redis://127.0.0.1:$SEED\", \"cluster\": true,
    \"shards\": 16, \"command_timeout_ms\": 5000, \"connect_timeout_ms\": 1000}" >"$CONF"

# --- tail: the records of 16 shards on several masters.
add_round a
check "the 16 shards' streams live on several masters" 3 "$(masters_used)"
"$CLI" --config "$CONF" tail --from-start --count 16 >"$T/plain.out" 2>"$T/plain.err" ||
    fail "plain tail failed: $(cat "$T/plain.err")"
check "plain tail prints every shard's record once" "$(expected a)" "$(ids "$T/plain.out")"
"$CLI" --config "$CONF" tail --group g --from-start --count 16 >"$T/group.out" 2>"$T/group.err" ||
    fail "group tail failed: $(cat "$T/group.err")"
check "group tail prints every shard's record once" "$(expected a)" "$(ids "$T/group.out")"
check "group tail acknowledged them all" 0 "$(pending_all g)"

# --- a following group consumer through a master failover.
"$CLI" --config "$CONF" tail --group f --block-ms 1000 >"$T/follow.out" 2>"$T/follow.err" &
FOLLOW=$!
# blocked on the 16 shards: one read per shard, each on the master of its slot
_blocked() {
    local p n=0 c
    for p in "${CL_PORTS[@]}"; do
        [ -f "$T/cl-$p.pid" ] || continue
        c=$(redis-cli -p "$p" client list | grep -c 'cmd=xreadgroup' || true)
        n=$((n + c))
    done
    [ "$n" -ge 16 ]
}
poll_until "$DM_WAIT" _blocked || fail "the follower never blocked on the 16 shards"
add_round b
check "the follower prints every shard's new record" 16 "$(wait_count 16 60 lines "$T/follow.out")"
check "... each once" "$(expected b)" "$(ids "$T/follow.out" ce-b)"
check "... and acknowledged them" 0 "$(wait_count 0 60 pending_all f)"
# kill -9 a master that is not the seed
victim=""
for s in $(seq 0 15); do
    m=$(master_of "$s")
    [ "$m" != "$SEED" ] && { victim=$m; victim_shard=$s; break; }
done
[ -n "$victim" ] || die "no shard on a master other than the seed"
cl_kill "$victim"
_served() { ccli exists "dm:{$victim_shard}:out" 2>/dev/null | grep -q '^1$'; }
poll_until "$DM_WAIT" _served || die "shard $victim_shard was never served again after the failover"
check "a replica took over the killed master's shards" yes \
    "$([ "$(master_of "$victim_shard")" != "$victim" ] && echo yes || echo no)"
add_round c
_all_c() { [ "$(ids "$T/follow.out" ce-c | sort -u | grep -c .)" == 16 ]; }
poll_until "$DM_WAIT" _all_c || true
check "after the failover the follower prints every new record (at least once)" "$(expected c)" \
    "$(ids "$T/follow.out" ce-c | sort -u)"
check "the follower is still running" yes "$(kill -0 "$FOLLOW" 2>/dev/null && echo yes || echo no)"
kill -TERM "$FOLLOW"
rc=0
wait "$FOLLOW" || rc=$?
check "the follower exits 0 on SIGTERM" 0 "$rc"

# --- digestmapd with a webhook sink (needs the daemon's Cluster router).
start_sink all
start_daemon "$(jq ".outputs = {\"webhooks\": [{\"name\": \"all\",
    \"url\": \"http://127.0.0.1:$SINK_PORT/\", \"secret\": \"k\", \"types\": [\"$CONFIRMED\"]}]}" \
    "$CONF")"
wait_sink_started
N=20
rest=$(head -c 30 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
DIGESTS=()
for i in $(seq 0 $((N - 1))); do
    d=$(printf 'sha256:%04x%s' "$i" "$rest") # shard i mod 16: every shard, some twice
    DIGESTS+=("$d")
    acr_push "$T/push.json" "$d" "1.$i" "$(iso_at 0)"
    post_acr "$T/push.json"
    [ "$STATUS" == 202 ] || fail "push $i: HTTP $STATUS $BODY"
    build_event "$T/build.json" "$d" "$(iso_at 0)" "run-$i"
    post_build "$T/build.json"
    [ "$STATUS" == 202 ] || fail "build $i: HTTP $STATUS $BODY"
done
check "the sink gets every confirmed record" $N "$(wait_count $N 60 sink_requests all)"
check "... each once" $N "$(sink_check ids all | sort -u | grep -c .)"
check "nothing left pending in the sink's group" 0 "$(wait_count 0 60 pending_all digestmap:all)"
check "still exactly $N deliveries" $N "$(sink_requests all)"
subjects=$(printf '%s\n' "${DIGESTS[@]}" | sort)
total=0
for s in $(seq 0 15); do total=$((total + $(ccli xlen "dm:{$s}:out"))); done
"$CLI" --config "$CONF" tail --from-start --count "$total" >"$T/all.out" 2>"$T/all.err" ||
    fail "tail of the daemon's records failed: $(cat "$T/all.err")"
# (the records added by hand above have short subjects "sha256:<shard>")
check "tail prints the daemon's confirmed records" "$subjects" \
    "$(jq -r "select(.type == \"$CONFIRMED\" and (.subject | length) == 71) | .subject" \
        <"$T/all.out" | sort)"
finish
