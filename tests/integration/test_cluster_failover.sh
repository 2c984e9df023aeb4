#!/usr/bin/env bash
# kill -9 of a Redis Cluster master during a stream of pushes and builds (cluster.sh; redis.cluster
# true, 16 shards, the default spool and wait_replicas 0). A sender (cluster/pairs.py: 4 threads,
# each pair a push then its build, every request retried on 503 + Retry-After) posts throughout.
# After the master of shard 0 is killed its replica takes over, and:
# - every request is eventually accepted; meanwhile only 503 + Retry-After or a 202 with
#   "spooled": true is answered, never another 5xx, nor a refused connection;
# - every pair joins exactly once: exactly one confirmed record per pair sent, no other;
# - the spool drains back to 0.
# It prints the failover time (from the kill to the first accepted, not spooled request on the
# killed master's shards) and the requests refused, spooled and accepted meanwhile.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cluster.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
N=16
CT=dev.digestmap.mapping.confirmed.v1
cluster_start 22020
start_daemon "$(cluster_config)"

pairs() { python3 "$HERE/cluster/pairs.py" "$@"; }
pairs send --port "$PORT" --log "$T/sent.log" --digests "$T/digests" --threads 4 --rate 20 \
    --until-file "$T/stop" --watch-pid $$ 2> "$T/sender.err" &
SENDER=$!
done_pairs() { if [ -f "$T/digests" ]; then grep -c . "$T/digests" || true; else echo 0; fi; }
_at_least() { [ "$("$2")" -ge "$1" ]; }
poll_until "$DM_WAIT" _at_least 40 done_pairs || die "the sender did not get going: $(cat "$T/sender.err")"

victim=$(cluster_master_of '{0}')
shards=$(cluster_shards_of "$victim" "$N" | paste -sd,)
echo "# killing master $victim (shards $shards) after $(done_pairs) pairs"
cluster_kill_master "$victim"
promoted_ms=$(cluster_wait_promoted)
echo "# replica $CLUSTER_PROMOTE took over: every node agrees $promoted_ms ms after the kill"

report() { pairs report --log "$T/sent.log" --kill-ms "$CLUSTER_KILLED_MS" --shards "$shards" --nshards "$N" 2>/dev/null; }
field() { awk -v k="$1" '$1 == k {print $2}' <<<"$REPORT"; }
_back() { REPORT=$(report); [ "$(field failover_ms)" -ge 0 ]; }
poll_until "$DM_WAIT" _back || fail "no request of shards $shards accepted (not spooled) after the kill"
# and the stream goes on a little on the new master: 20 more pairs
target=$(($(done_pairs) + 20))
poll_until "$DM_WAIT" _at_least "$target" done_pairs || fail "the sender stalled after the failover"
touch "$T/stop"
rc=0
wait "$SENDER" || rc=$?
check "the sender got every request accepted in the end" 0 "$rc"
REPORT=$(report)
# the answers every half second from the kill (k: shards $shards, o: the others; a accepted,
# s spooled, r refused), then the first few unexpected answers, if any
pairs report --log "$T/sent.log" --kill-ms "$CLUSTER_KILLED_MS" --shards "$shards" --nshards "$N" \
    --timeline 2>&1 >/dev/null | sed 's/^/# /' | grep -v '^# bad_answer' || true
pairs report --log "$T/sent.log" --kill-ms "$CLUSTER_KILLED_MS" --shards "$shards" --nshards "$N" \
    2>&1 >/dev/null | head -n 5 >&2 || true
echo "# failover: master $victim killed, replica $CLUSTER_PROMOTE promoted after $promoted_ms ms;" \
    "first accepted (not spooled) request on shards $shards after $(field failover_ms) ms;" \
    "meanwhile on those shards: refused $(field window_refused), spooled $(field window_spooled)," \
    "accepted $(field window_accepted); on the other shards: refused $(field others_refused)," \
    "spooled $(field others_spooled), accepted $(field others_accepted)"
echo "# whole run: $(field requests) requests: $(field accepted) accepted, $(field spooled) spooled," \
    "$(field refused) refused (503 + Retry-After), $(field bad) other answers"
check "no answer but 202, spooled 202 or 503 + Retry-After (no other 5xx, no lost connection)" 0 "$(field bad)"
check "every event accepted once" "$(($(grep -c '^pair ' "$T/digests") * 2 + $(grep -c '^solo ' "$T/digests" || true)))" \
    "$(field events)"
check_match "failover timed" '^[0-9]+$' "$(field failover_ms)"

# every pair joins exactly once (spooled events are replayed: wait for the count)
NP=$(grep -c '^pair ' "$T/digests")
confirmed() {
    local s
    for s in $(seq 0 $((N - 1))); do
        cluster_cli --raw xrange "dm:{$s}:out" - + | awk 'prev=="type"{t=$0} prev=="digest"{print t, $0} {prev=$0}'
    done | awk -v t="$CT" '$1 == t {print $2}'
}
confirmed_count() { confirmed | wc -l; }
check "exactly one confirmed record per pair ($NP pairs)" "$NP" "$(wait_count "$NP" 60 confirmed_count)"
check "the confirmed digests are the pairs' digests, each once" \
    "$(awk '$1 == "pair" {print $2}' "$T/digests" | sort)" "$(confirmed | sort)"
check "edges metric" "$NP" "$(metric digestmap_edges_emitted_total)"
check "the spool drained" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
echo "# events spooled: $(metric digestmap_spooled_total), replayed: $(metric digestmap_spool_replayed_total)"
finish
