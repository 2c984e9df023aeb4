#!/usr/bin/env bash
# redis.wait_replicas 1: nothing acknowledged is lost by a failover (cluster.sh; redis.cluster
# true, 16 shards, the default spool). A sender (cluster/pairs.py) posts pairs (a push, then its
# build) and, every third time, a push alone, throughout. The replica of shard 0's master is cut
# off (frozen with SIGSTOP, and its link killed on the master: the master goes on taking writes
# the replica never gets, as when a replica lags), then the master is killed with -9, the replica
# thawed and promoted with the data it has, and the old master restarted (it rejoins as the new
# master's replica, as an orchestrator would restart it). Then every event that got a 2xx is
# there: each pair's edge exactly once, each lone push parked. With wait_replicas 0 the writes
# taken while the replica was cut off are acknowledged and lost, and this test fails.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cluster.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
N=16
CT=dev.digestmap.mapping.confirmed.v1
WAIT_REPLICAS=${WAIT_REPLICAS:-1} # 0 only to see this test fail
cluster_start 22030
start_daemon "$(cluster_config | jq --argjson w "$WAIT_REPLICAS" \
    '.redis.wait_replicas = $w | .redis.command_timeout_ms = 2000')"

pairs() { python3 "$HERE/cluster/pairs.py" "$@"; }
pairs send --port "$PORT" --log "$T/sent.log" --digests "$T/digests" --threads 4 --rate 20 \
    --solo-every 3 --until-file "$T/stop" --watch-pid $$ 2> "$T/sender.err" &
SENDER=$!
done_pairs() { if [ -f "$T/digests" ]; then grep -c . "$T/digests" || true; else echo 0; fi; }
_at_least() { [ "$("$2")" -ge "$1" ]; }
poll_until "$DM_WAIT" _at_least 30 done_pairs || die "the sender did not get going: $(cat "$T/sender.err")"

victim=$(cluster_master_of '{0}')
replica=$(cluster_replica_of "$victim")
shards=$(cluster_shards_of "$victim" "$N" | paste -sd,)
repl_offset() { ccli "$victim" info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p'; }
slaves() { ccli "$victim" info replication | tr -d '\r' | sed -n 's/^connected_slaves://p'; }
cluster_freeze "$replica"
ccli "$victim" client kill type replica >/dev/null
check "the master of shards $shards lost its replica" 0 "$(wait_count 0 60 slaves)"
cut_ms=$(date +%s%3N)
offset0=$(repl_offset)
# the master takes writes its replica never gets (Redis counts them in its replication offset)
_grew() { [ "$(repl_offset)" -ge $((offset0 + 2000)) ]; }
poll_until "$DM_WAIT" _grew || die "the master took no write while its replica was cut off"
echo "# master $victim took $(($(repl_offset) - offset0)) bytes of writes its replica $replica never got"
cluster_kill_master "$victim"
cluster_thaw "$replica"
promoted_ms=$(cluster_wait_promoted)
echo "# replica $CLUSTER_PROMOTE took over $promoted_ms ms after the kill"
cluster_restart_node "$victim"
echo "# old master $victim back as a replica $(($(date +%s%3N) - CLUSTER_KILLED_MS)) ms after the kill"

report() { pairs report --log "$T/sent.log" --kill-ms "$1" --shards "$shards" --nshards "$N" 2>/dev/null; }
field() { awk -v k="$1" '$1 == k {print $2}' <<<"$REPORT"; }
_back() { REPORT=$(report "$CLUSTER_KILLED_MS"); [ "$(field failover_ms)" -ge 0 ]; }
poll_until "$DM_WAIT" _back || fail "no request of shards $shards accepted (not spooled) after the kill"
target=$(($(done_pairs) + 20))
poll_until "$DM_WAIT" _at_least "$target" done_pairs || fail "the sender stalled after the failover"
touch "$T/stop"
rc=0
wait "$SENDER" || rc=$?
check "the sender got every request accepted in the end" 0 "$rc"
REPORT=$(report "$CLUSTER_KILLED_MS")
echo "# failover: first accepted (not spooled) request on shards $shards $(field failover_ms) ms after the kill;" \
    "meanwhile on those shards: refused $(field window_refused), spooled $(field window_spooled);" \
    "on the other shards: refused $(field others_refused), spooled $(field others_spooled)," \
    "accepted $(field others_accepted)"
echo "# whole run: $(field requests) requests: $(field accepted) accepted, $(field spooled) spooled," \
    "$(field refused) refused, $(field bad) other answers"
check "no answer but 202, spooled 202 or 503 + Retry-After" 0 "$(field bad)"
REPORT=$(report "$cut_ms")
echo "# from the replica's cut-off to the failover on shards $shards: refused $(field window_refused)," \
    "spooled $(field window_spooled), accepted $(field window_accepted)"

# every acknowledged event is there
NP=$(grep -c '^pair ' "$T/digests")
NS=$(grep -c '^solo ' "$T/digests" || true)
confirmed() {
    local s
    for s in $(seq 0 $((N - 1))); do
        cluster_cli --raw xrange "dm:{$s}:out" - + | awk 'prev=="type"{t=$0} prev=="digest"{print t, $0} {prev=$0}'
    done | awk -v t="$CT" '$1 == t {print $2}'
}
confirmed_count() { confirmed | wc -l; }
got=$(wait_count "$NP" 60 confirmed_count)
check "every acknowledged pair joined ($NP pairs)" "$NP" "$got"
check "each pair exactly once, no other edge" "$(awk '$1 == "pair" {print $2}' "$T/digests" | sort)" \
    "$(confirmed | sort)"
parked=0
while read -r _ d; do
    [ "$(cluster_cli exists "dm:{$(shard_of "$d" "$N")}:r:$d")" == 1 ] && parked=$((parked + 1)) ||
        echo "# acknowledged push $d is not parked" >&2
done < <(grep '^solo ' "$T/digests")
check "every acknowledged lone push parked ($NS)" "$NS" "$parked"
echo "# acknowledged: $NP pairs ($((NP * 2)) events) and $NS lone pushes; after the failover: $got edges, $parked parked"
check "the spool drained" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
finish
