#!/usr/bin/env bash
# The Redis Cluster router (correlator/dm_redis.h, docs/redis-cluster-router.md) against a real
# cluster of 3 masters and 3 replicas on 127.0.0.1:21000-21005 (bus 31000-31005): the probe
# (tests/integration/cluster_router/probe.c) keeps one dm_redis, seeded by the host name
# "localhost", through routing by slot, an ASK and a MOVED of a slot migrated by hand, a
# NOSCRIPT retry, and the kill -9 of a master until its replica serves its slots. Every node is
# a child of this shell (lib.sh's spawn_redis, a unix socket beside the TCP port), so cleanup
# stops each one however the test ends.
. "$(dirname "$0")/lib.sh"

: "${DM_CLUSTER_PROBE:?DM_CLUSTER_PROBE must point at the dm_cluster_probe binary}"
PORTS=(21000 21001 21002 21003 21004 21005)

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

RC=0
"$DM_CLUSTER_PROBE" localhost "${PORTS[0]}" "$T" >"$T/probe.out" 2>"$T/probe.err" || RC=$?
cat "$T/probe.out"
CHECKS=$((CHECKS + $(grep -c '^ok - ' "$T/probe.out" || true)))
FAILURES=$((FAILURES + $(grep -c '^FAIL' "$T/probe.out" || true)))
check "probe exit status" 0 "$RC"
check_match "the seed name was resolved (log line)" 'msg="redis host name resolved" conn=probe@localhost:21000 host="localhost" addr=127\.0\.0\.1' "$(cat "$T/probe.err")"
check_match "the failover is logged as a topology change" 'msg="redis cluster master" conn=probe node="127\.0\.0\.1":[0-9]+ change=removed' "$(cat "$T/probe.err")"
[ "$FAILURES" -eq 0 ] || { echo "--- probe log (tail)"; tail -n 40 "$T/probe.err"; }
finish
