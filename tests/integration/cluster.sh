# cluster.sh - a Redis Cluster of 3 masters and 3 replicas on 127.0.0.1 for the tests that run
# digestmapd with `redis.cluster: true` (README.md, "Running on Redis Cluster"). Sourced after
# lib.sh (it uses T, DM_WAIT, poll_until, die and at_exit; bench/cluster.sh defines the same few).
#
# Every node is a child of this shell (never --daemonize: a daemon escapes the test's process
# group and lib.sh's watchdog), stopped by cluster_stop, which cluster_start registers with
# at_exit: nothing outlives a failed test either.
#
# Port ranges. A node listens on PORT and on its cluster bus PORT + 10000. Both must lie below
# Linux's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default):
# a port in it may be held at any moment by some client's connection (curl, redis-cli, a daemon;
# in TIME_WAIT for a minute after), and redis-server then fails to bind it ("Address already in
# use": seen with 46020 + 10000). So PORT is at most 22767 (bus <= 32767). Each test has its own
# range, so tests run in parallel (ctest -j2):
#   22000-22005  test_cluster_join.sh
#   22010-22015  test_cluster_outputs.sh
#   22020-22025  test_cluster_failover.sh
#   22030-22035  test_cluster_failover_wait.sh
#   22100-22115  bench/cluster.sh (BENCH_CLUSTER_PORT: 22100-22102, then 22110-22115)
#   43000-43005  test_redis_cluster_router.sh   (helper "router"; in the ephemeral range)
#   44000-44099  the spool tests                 (helper "spool"; in the ephemeral range)
#   45000-45005  test_cluster_readers.sh         (helper "readers"; in the ephemeral range)
# cluster_start refuses a port something listens on, with its number, rather than share it; a
# node that cannot bind its port (a client connection holds it) fails the test naming the port.

CLUSTER_BASE=""
declare -A CLUSTER_PID=()
# CLUSTER_REPLICAS=0 before cluster_start: three masters and no replica (bench/cluster.sh
# measures routing alone that way); the tests keep the default, one replica per master.
CLUSTER_REPLICAS=${CLUSTER_REPLICAS:-1}

# cluster_ports: the node ports (six; three without replicas).
cluster_ports() { seq "$CLUSTER_BASE" $((CLUSTER_BASE + 3 * (CLUSTER_REPLICAS + 1) - 1)); }

# ccli PORT ARGS...: redis-cli against one node (no redirects followed).
ccli() {
    local p=$1
    shift
    redis-cli -h 127.0.0.1 -p "$p" "$@"
}

# cluster_alive PORT: the node started there still runs.
cluster_alive() { [ -n "${CLUSTER_PID[$1]:-}" ] && kill -0 "${CLUSTER_PID[$1]}" 2>/dev/null; }

# cluster_live_port: a port whose node runs and answers.
cluster_live_port() {
    local p
    for p in $(cluster_ports); do
        cluster_alive "$p" && [ "$(ccli "$p" ping 2>/dev/null)" == PONG ] && { echo "$p"; return 0; }
    done
    return 1
}

# cluster_cli ARGS...: redis-cli -c through a live node: follows MOVED, so a command on one key
# reaches the node serving it (cluster_cli --raw xlen 'dm:{3}:out').
cluster_cli() { redis-cli -c -h 127.0.0.1 -p "$(cluster_live_port)" "$@"; }

# _port_busy PORT: something listens on 127.0.0.1:PORT.
_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# _cluster_spawn PORT: start (or restart: same node file and data) the node of PORT, with the
# words of CLUSTER_NODE_ARGS added (e.g. "--cluster-require-full-coverage no").
_cluster_spawn() {
    local p=$1
    # shellcheck disable=SC2086 # CLUSTER_NODE_ARGS: words on purpose
    mkdir -p "$T/node-$p"
    redis-server --port "$p" --bind 127.0.0.1 --daemonize no \
        --cluster-enabled yes --cluster-node-timeout 1500 \
        --cluster-config-file "$T/nodes-$p.conf" \
        --appendonly yes --appendfsync everysec --save '' \
        --dir "$T/node-$p" --logfile "$T/node-$p/redis.log" ${CLUSTER_NODE_ARGS:-} \
        </dev/null >/dev/null 2>&1 &
    CLUSTER_PID[$p]=$!
}

# _node_up PORT: the node of PORT answers PING (dies when it exited).
_node_up() {
    local busy
    if ! cluster_alive "$1"; then
        busy=$(sed -n 's/.*Could not create server TCP listening socket [^ ]*:\([0-9]*\).*/\1/p' \
            "$T/node-$1/redis.log" 2>/dev/null | head -n 1)
        [ -n "$busy" ] && die "cluster node $1: port $busy is busy (held by another socket:" \
            "$(ss -Htan "( sport = :$busy )" 2>/dev/null | head -n 3 | tr -s ' ' | tr '\n' ';'))"
        die "redis-server on port $1 exited: $(tail -n 3 "$T/node-$1/redis.log" 2>/dev/null)"
    fi
    [ "$(ccli "$1" ping 2>/dev/null)" == PONG ]
}

# cluster_start BASEPORT: six nodes on BASEPORT..BASEPORT+5, the cluster created with one
# replica per master (CLUSTER_REPLICAS), and returns once every node reports cluster_state:ok, knows all 16384
# slots and all 6 nodes, and every replica's link to its master is up.
cluster_start() {
    local base=$1 p b
    [[ "$base" =~ ^[0-9]+$ ]] && [ "$base" -ge 1024 ] && [ "$base" -lt 55000 ] ||
        die "cluster_start: base port $base: must be 1024..54999 (the bus port is port + 10000)"
    local eph
    eph=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ $((base + 10005)) -lt "$eph" ] ||
        echo "# cluster_start: ports $base.. (bus $((base + 10000)).. ) reach into the ephemeral range" \
            "(from $eph): a client connection may hold one" >&2
    CLUSTER_BASE=$base
    for p in $(cluster_ports); do
        for b in "$p" $((p + 10000)); do
            _port_busy "$b" && die "cluster_start: port $b is busy (another test or server uses it)"
        done
    done
    at_exit cluster_stop
    for p in $(cluster_ports); do _cluster_spawn "$p"; done
    for p in $(cluster_ports); do
        poll_until "$DM_WAIT" _node_up "$p" || die "redis-server on port $p did not start"
    done
    local nodes=()
    for p in $(cluster_ports); do nodes+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$CLUSTER_REPLICAS" --cluster-yes \
        >"$T/cluster-create.log" 2>&1 || die "redis-cli --cluster create: $(tail -n 5 "$T/cluster-create.log")"
    cluster_wait_ok
}

# _node_ok PORT: the node reports cluster_state:ok, 16384 slots, every node known, and (a
# replica) its link to the master up or (a master, when there are replicas) a replica online.
_node_ok() {
    local info
    info=$(ccli "$1" cluster info 2>/dev/null | tr -d '\r')
    grep -qx 'cluster_state:ok' <<<"$info" && grep -qx 'cluster_slots_ok:16384' <<<"$info" &&
        grep -qx "cluster_known_nodes:$((3 * (CLUSTER_REPLICAS + 1)))" <<<"$info" || return 1
    [ "$CLUSTER_REPLICAS" -gt 0 ] || return 0
    info=$(ccli "$1" info replication 2>/dev/null | tr -d '\r')
    if grep -qx 'role:master' <<<"$info"; then
        grep -qE '^slave0:.*state=online' <<<"$info"
    else
        grep -qx 'master_link_status:up' <<<"$info"
    fi
}

# cluster_wait_ok: wait until every node is _node_ok (all running).
cluster_wait_ok() {
    local p
    for p in $(cluster_ports); do
        poll_until "$DM_WAIT" _node_ok "$p" || {
            ccli "$p" cluster info >&2 || true
            die "cluster node $p is not ready"
        }
    done
}

# cluster_nodes [PORT]: CLUSTER NODES as one node (default: a live one) sees it.
cluster_nodes() { ccli "${1:-$(cluster_live_port)}" cluster nodes 2>/dev/null | tr -d '\r'; }

# cluster_masters [PORT]: the ports of the masters that serve slots and are not failed, as
# PORT (default: a live node) sees them, one a line, sorted.
cluster_masters() {
    cluster_nodes "${1:-}" | awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8 {
        split($2, a, "[:@]"); print a[2] }' | sort -n
}

# cluster_slot_of KEY: the key's slot (CRC16 of its hash tag, as the server computes it).
cluster_slot_of() { ccli "$(cluster_live_port)" cluster keyslot "$1"; }

# cluster_master_of_slot SLOT [PORT]: the port of the master serving SLOT, as PORT (default: a
# live node) sees it; empty when none does.
cluster_master_of_slot() {
    cluster_nodes "${2:-}" | awk -v s="$1" '$3 ~ /master/ && $3 !~ /fail/ {
        split($2, a, "[:@]")
        for (i = 9; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-")
            lo = r[1] + 0; hi = (n > 1 ? r[2] : r[1]) + 0
            if (s + 0 >= lo && s + 0 <= hi) { print a[2]; exit }
        }
    }'
}

# cluster_master_of KEY: the port of the master serving KEY (for a shard s: KEY = "{s}").
cluster_master_of() { cluster_master_of_slot "$(cluster_slot_of "$1")"; }

# cluster_replica_of PORT: the port of the replica of the master on PORT.
cluster_replica_of() {
    local id
    id=$(ccli "$1" cluster myid | tr -d '\r')
    cluster_nodes "$1" | awk -v m="$id" '$4 == m && $3 !~ /fail/ { split($2, a, "[:@]"); print a[2]; exit }'
}

# cluster_shards_of PORT N: the shards (0..N-1) whose tag {s} the master on PORT serves, one a line.
cluster_shards_of() {
    local s
    for s in $(seq 0 $(($2 - 1))); do
        [ "$(cluster_master_of "{$s}")" == "$1" ] && echo "$s"
    done
    return 0
}

# cluster_kill_master PORT: kill -9 the master on PORT (and reap it). Its replica's port goes to
# CLUSTER_PROMOTE, one of its slots to CLUSTER_KILLED_SLOT, the time (ms) to CLUSTER_KILLED_MS.
cluster_kill_master() {
    local p=$1 slots
    CLUSTER_PROMOTE=$(cluster_replica_of "$p")
    [ -n "$CLUSTER_PROMOTE" ] || die "cluster_kill_master: the master on $p has no replica"
    slots=$(cluster_nodes "$p" | awk '$3 ~ /myself/ { print $9 }')
    CLUSTER_KILLED_SLOT=${slots%%-*}
    [ -n "$CLUSTER_KILLED_SLOT" ] || die "cluster_kill_master: $p serves no slot"
    CLUSTER_KILLED_MS=$(date +%s%3N)
    kill -KILL "${CLUSTER_PID[$p]}"
    wait "${CLUSTER_PID[$p]}" 2>/dev/null || true
    CLUSTER_PID[$p]=""
}

# _promoted: every running node sees CLUSTER_PROMOTE as the master of CLUSTER_KILLED_SLOT and
# reports cluster_state:ok.
_promoted() {
    local p
    for p in $(cluster_ports); do
        cluster_alive "$p" || continue
        [ "$(cluster_master_of_slot "$CLUSTER_KILLED_SLOT" "$p")" == "$CLUSTER_PROMOTE" ] || return 1
        ccli "$p" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok' || return 1
    done
}

# cluster_wait_promoted: wait until the killed master's replica took over (every running node
# agrees); prints the milliseconds from the kill until this was seen.
cluster_wait_promoted() {
    poll_until "$DM_WAIT" _promoted || die "replica $CLUSTER_PROMOTE did not take over slot $CLUSTER_KILLED_SLOT"
    echo $(($(date +%s%3N) - CLUSTER_KILLED_MS))
}

# cluster_freeze PORT / cluster_thaw PORT: SIGSTOP / SIGCONT the node of PORT (a replica frozen
# this way stops replicating, as a lagging one would; cluster_stop thaws it to stop it).
cluster_freeze() { kill -STOP "${CLUSTER_PID[$1]}"; }
cluster_thaw() { kill -CONT "${CLUSTER_PID[$1]}"; }

# cluster_restart_node PORT: start the node killed on PORT again, with its node file and data (as
# an orchestrator restarts a crashed pod); a former master rejoins as a replica of the node that
# took its slots. Returns once every node is ready again (cluster_wait_ok).
cluster_restart_node() {
    cluster_alive "$1" && die "cluster_restart_node: the node on $1 still runs"
    _cluster_spawn "$1"
    poll_until "$DM_WAIT" _node_up "$1" || die "redis-server on port $1 did not restart"
    cluster_wait_ok
}

# cluster_count_keys PATTERN: "PORT COUNT" for each master serving slots, keys matching
# PATTERN (SCAN on that master only).
cluster_count_keys() {
    local p
    for p in $(cluster_masters); do
        echo "$p $(ccli "$p" --scan --pattern "$1" | grep -c . || true)"
    done
}

# cluster_stop: SIGTERM every node still running and wait for it (SIGKILL after DM_WAIT).
cluster_stop() {
    local p pid
    for p in "${!CLUSTER_PID[@]}"; do
        pid=${CLUSTER_PID[$p]}
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && kill -CONT "$pid" 2>/dev/null
    done
    for p in "${!CLUSTER_PID[@]}"; do
        pid=${CLUSTER_PID[$p]}
        [ -n "$pid" ] || continue
        poll_until "$DM_WAIT" eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        CLUSTER_PID[$p]=""
    done
    return 0
}

# cluster_config [CORRELATION]: lib.sh's default_config on this cluster: redis.url a node of it,
# redis.cluster true, 16 shards.
cluster_config() {
    default_config "${1:-}" | jq --arg url "redis://127.0.0.1:$CLUSTER_BASE" \
        '.redis = {"url": $url, "cluster": true, "shards": 16,
                   "command_timeout_ms": 5000, "connect_timeout_ms": 1000}'
}
