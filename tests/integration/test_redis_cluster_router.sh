#!/usr/bin/env bash
# The Redis Cluster router (correlator/dm_redis.h, docs/redis-cluster-router.md) against a real
# cluster of 3 masters and 3 replicas on 127.0.0.1:21000-21005 (bus 31000-31005): the probe
# (tests/integration/cluster_router/probe.c) keeps one dm_redis, seeded by the host name
# "localhost", through routing by slot, an ASK and a MOVED of a slot migrated by hand, a
# NOSCRIPT retry, and the kill -9 of a master until its replica serves its slots; node 21006
# joins as a master without slots, the target of an ASK whose command must outlive a topology
# read. Then two small clusters of their own: 21010-21012 built while a router already runs
# (slots assigned after it started), one of whose masters is killed and started again; and
# 21020-21021, one shard whose master (the seed) dies and whose replica takes over. Every node
# is a child of this shell (a unix socket beside the TCP port, pid in $T/nPORT.sock.pid), so
# cleanup stops each one however the test ends.
. "$(dirname "$0")/lib.sh"

: "${DM_CLUSTER_PROBE:?DM_CLUSTER_PROBE must point at the dm_cluster_probe binary}"
PORTS=(21000 21001 21002 21003 21004 21005)
EMPTY=21006
PARTIAL=(21010 21011 21012)
SHARD=(21020 21021)

# start_node PORT: a cluster node, a child of this shell (pid in $T/nPORT.sock.pid, as
# spawn_redis does, so cleanup stops it). The ports and their bus ports lie below the kernel's
# ephemeral range (32768-60999 on Debian), yet something else may hold one: a node that cannot
# bind is started again (TIME_WAIT of such a socket lasts 60 s; the test gives up after
# twice DM_WAIT).
start_node() {
    local p=$1 sock="$T/n$1.sock" log="$T/n$1.log" deadline=$((SECONDS + 2 * DM_WAIT)) pid
    while :; do
        rm -f "$sock" "$T/nodes-$p.conf"
        redis-server --port "$p" --bind 127.0.0.1 --unixsocket "$sock" --unixsocketperm 700 \
            --daemonize no --dir "$T" --save '' --appendonly no --logfile "$log" \
            --cluster-enabled yes --cluster-node-timeout 1500 \
            --cluster-config-file "nodes-$p.conf" </dev/null >/dev/null 2>&1 &
        pid=$!
        echo "$pid" >"$sock.pid"
        _node_up() { kill -0 "$pid" 2>/dev/null && [ -S "$sock" ] && redis-cli -s "$sock" ping 2>&1 | grep -q PONG; }
        _node_settled() { _node_up || ! kill -0 "$pid" 2>/dev/null; }
        poll_until "$DM_WAIT" _node_settled
        _node_up && return 0
        wait "$pid" 2>/dev/null || true
        grep -q 'Address already in use' "$log" && [ "$SECONDS" -lt "$deadline" ] ||
            die "cluster node $p did not start: $(tail -n 3 "$log")"
        [ "${_busy_said:-}" == "$p" ] || echo "# port $p (or its bus port) held by another socket; starting the node again until it is free"
        _busy_said=$p
        sleep 0.5
    done
}
for p in "${PORTS[@]}"; do start_node "$p"; done
addrs=()
for p in "${PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$T/create.log" 2>&1 ||
    die "cluster create failed: $(tail -n 5 "$T/create.log")"
_cluster_ok() {
    local p
    for p in "${PORTS[@]}"; do
        redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
}
poll_until "$DM_WAIT" _cluster_ok || die "cluster_state never ok on every node"
# Every node must also agree on the three masters before the probe reads the map.
_three_masters() {
    local p
    for p in "${PORTS[@]}"; do
        [ "$(redis-cli -p "$p" cluster nodes | grep -cE '[ ,]master ')" -eq 3 ] || return 1
    done
}
poll_until "$DM_WAIT" _three_masters || die "the nodes never agreed on 3 masters"
echo "ok - cluster of 3 masters + 3 replicas on ${PORTS[0]}-${PORTS[5]}"

for p in "$EMPTY" "${PARTIAL[@]}" "${SHARD[@]}"; do start_node "$p"; done
# restart.sh PORT: the probe starts a killed node again on its port, with its nodes.conf (so it
# is the same cluster node); pid in $T/nPORT.sock.pid as for the others.
cat >"$T/restart.sh" <<EOF
#!/usr/bin/env bash
p=\$1
rm -f "$T/n\$p.sock"
redis-server --port "\$p" --bind 127.0.0.1 --unixsocket "$T/n\$p.sock" --unixsocketperm 700 \\
    --daemonize no --dir "$T" --save '' --appendonly no --logfile "$T/n\$p.log" \\
    --cluster-enabled yes --cluster-node-timeout 1500 \\
    --cluster-config-file "nodes-\$p.conf" </dev/null >/dev/null 2>&1 &
echo \$! >"$T/n\$p.sock.pid"
for i in \$(seq 1 600); do redis-cli -p "\$p" ping 2>/dev/null | grep -q PONG && exit 0; sleep 0.1; done
exit 1
EOF
chmod +x "$T/restart.sh"

# run_probe NAME ARGS...: one probe run; its "ok -"/"FAIL" lines count as checks here.
run_probe() {
    local name=$1 rc=0
    shift
    "$DM_CLUSTER_PROBE" "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
    cat "$T/$name.out"
    CHECKS=$((CHECKS + $(grep -c '^ok - ' "$T/$name.out" || true)))
    FAILURES=$((FAILURES + $(grep -c '^FAIL' "$T/$name.out" || true)))
    check "probe $name exit status" 0 "$rc"
    if grep -q '^FAIL' "$T/$name.out"; then
        echo "--- $name log (tail)"
        tail -n 40 "$T/$name.err"
    fi
}

run_probe probe localhost "${PORTS[0]}" "$T" "$EMPTY"
check_match "the seed name was resolved (log line)" 'msg="redis host name resolved" conn=probe@localhost:21000 host="localhost" addr=127\.0\.0\.1' "$(cat "$T/probe.err")"
check_match "the failover is logged as a topology change" 'msg="redis cluster master" conn=probe node="127\.0\.0\.1":[0-9]+ change=removed' "$(cat "$T/probe.err")"

run_probe partial partial "${PARTIAL[@]}" "$T"
run_probe takeover takeover "${SHARD[@]}" "$T"
finish
