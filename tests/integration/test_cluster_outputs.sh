#!/usr/bin/env bash
# Everything that reads or keeps the output on Redis Cluster (cluster.sh; redis.cluster true, 16
# shards spread over 3 masters): 32 pairs (2 per shard), 8 pushes and 4 builds never matched.
# - the sweeper reports the 12 unmatched ones (window 2 s + grace 8 s: the two sides of a pair
#   are posted back to back, 10 s of retention is slack, and the reports are awaited) and
#   empties every shard's schedule;
# - a webhook sink, an event stream (GET /v1/events/stream, opened before the first record) and
#   `digestmap tail --group` (started before the first record) each get the 44 records once;
#   `digestmap tail --from-start` afterwards prints them all;
# - GET /v1/images finds each pair's mapping, GET /v1/mappings pages through all 32;
# - restarted with outputs.stream_maxlen 1, every shard's stream is trimmed to 1 entry.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cluster.sh"
. "$(dirname "$0")/sink/sink_lib.sh"
N=16
CLI="$(dirname "$DIGESTMAPD")/digestmap"
AUTH='Authorization: Bearer api-token'
CORR='"window_seconds": 2, "grace_seconds": 8, "mapping_ttl_seconds": 60, "sweep_interval_ms": 100'
cluster_start 22010
start_sink soc

# config [OUTPUTS_JSON]: the cluster config with the sink "soc" and OUTPUTS merged in.
config() {
    local o=${1:-'{}'}
    cluster_config "$CORR" | jq --arg url "http://127.0.0.1:$SINK_PORT/hook" --argjson o "$o" \
        '.outputs = ({"webhooks": [{"name": "soc", "url": $url, "secret": "s3cret",
                                    "backoff_initial_ms": 100}]} + $o)'
}
start_daemon "$(config)"
wait_sink_started

# the event stream, new records only, open before the first record
curl -sN --max-time 600 -H "$AUTH" "http://127.0.0.1:$PORT/v1/events/stream" > "$T/sse.out" 2>/dev/null &
_has() { grep -qE "$2" "$1" 2>/dev/null; }
SSE_PID=$!
_sse_settled() { _has "$T/sse.out" '^retry: ' || ! kill -0 "$SSE_PID" 2>/dev/null; }
poll_until "$DM_WAIT" _sse_settled || true
SSE_OK=1
_has "$T/sse.out" '^retry: ' || { SSE_OK=""; fail "the event stream did not start"; }
# a consumer group read by the client, created at the start of every stream
"$CLI" --config "$T/config.json" tail --group cli --from-start --count 44 --block-ms 200 \
    > "$T/tail.out" 2> "$T/tail.err" &
TAIL_PID=$!

rest=$(head -c 1500 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
PAIRS=()
for i in $(seq 0 31); do
    PAIRS+=("sha256:$(printf '%04x' $(((i * 4099) % 65536)))${rest:$((i * 30 * 2)):60}")
done
t=$(iso_at 0)
edges=0 solo=0
for i in "${!PAIRS[@]}"; do
    acr_push "$T/p.json" "${PAIRS[$i]}" "2.0.$i" "$t"
    post_acr "$T/p.json"
    [ "$STATUS" == 202 ] || echo "# push $i: $STATUS $BODY" >&2
    build_event "$T/b.json" "${PAIRS[$i]}" "$t" "$((900 + i))"
    post_build "$T/b.json"
    [ "$BODY" == '{"status":"accepted","events":1,"edges":1}' ] && edges=$((edges + 1)) ||
        echo "# build $i: $STATUS $BODY" >&2
done
check "32 builds answered with an edge" 32 "$edges"
UNMATCHED=()
for i in $(seq 0 11); do
    d=$(random_digest)
    UNMATCHED+=("$d")
    if [ "$i" -lt 8 ]; then
        acr_push "$T/p.json" "$d" "3.0.$i" "$t"
        post_acr "$T/p.json"
    else
        build_event "$T/b.json" "$d" "$t" "$((990 + i))"
        post_build "$T/b.json"
    fi
    [ "$STATUS" == 202 ] && solo=$((solo + 1)) || echo "# unmatched $i: $STATUS $BODY" >&2
done
check "12 events without a match accepted" 12 "$solo"
# (retention is 10 s after arrival: the push is still parked, as the pairs' pushes were)
query_image "${UNMATCHED[0]}"
check "GET /v1/images of an unmatched push: pending, no mapping" "200 0 1" \
    "$STATUS $(jq -r '"\(.mappings | length) \(.pending.registry | length)"' <<<"$BODY")"

# --- sweeper: 12 unmatched records (8 pushes, 4 builds), every schedule emptied
check "8 pushes reported unmatched" 8 "$(wait_count 8 60 metric digestmap_unmatched_registry_total)"
check "4 builds reported unmatched" 4 "$(wait_count 4 60 metric digestmap_unmatched_build_total)"
due_total() {
    local s n=0
    for s in $(seq 0 $((N - 1))); do n=$((n + $(cluster_cli zcard "dm:{$s}:due"))); done
    echo "$n"
}
check "every shard's schedule swept empty" 0 "$(wait_count 0 60 due_total)"
check "parked pushes gauge back to 0" 0 "$(wait_count 0 60 metric digestmap_parked_registry_items)"

# every record of every shard's stream: "<type> <digest> <CloudEvent id>"
all_records() {
    local s
    for s in $(seq 0 $((N - 1))); do
        cluster_cli --raw xrange "dm:{$s}:out" - + |
            awk 'prev=="type"{t=$0} prev=="digest"{d=$0} prev=="event"{print t, d, $0} {prev=$0}'
    done | while read -r ty d ev; do echo "$ty $d $(jq -r .id <<<"$ev")"; done
}
all_records > "$T/records"
check "44 records in the streams" 44 "$(wc -l < "$T/records")"
check "the unmatched records are the 12 unmatched digests" "$(printf '%s\n' "${UNMATCHED[@]}" | sort)" \
    "$(awk '$1 == "dev.digestmap.mapping.unmatched.v1" {print $2}' "$T/records" | sort)"
IDS=$(awk '{print $3}' "$T/records" | sort)

# --- webhook sink
sink_ids() { sink_check ids soc | sort -u | grep -c . || true; }
check "the sink got 44 distinct records" 44 "$(wait_count 44 60 sink_ids)"
check "the sink got exactly the streams' records" "$IDS" "$(sink_check ids soc | sort -u)"
check "every delivery well-formed and signed" "" "$(sink_check verify soc s3cret | grep -v '^ok$' || true)"

# --- event stream
sse_ids() { sed -n 's/^data: //p' "$T/sse.out" | jq -r .id; }
sse_count() { sse_ids | grep -c . || true; }
if [ -n "$SSE_OK" ]; then
    check "the event stream sent 44 records" 44 "$(wait_count 44 60 sse_count)"
    check "the event stream sent each record once" "$IDS" "$(sse_ids | sort)"
fi

# --- digestmap tail through a group, then from the start
rc=0
poll_until "$DM_WAIT" eval "! kill -0 $TAIL_PID 2>/dev/null" || { kill "$TAIL_PID"; fail "tail --group did not end"; }
wait "$TAIL_PID" || rc=$?
check "tail --group --count 44 exits 0" 0 "$rc"
check "tail --group printed each record once" "$IDS" "$(jq -r .id "$T/tail.out" | sort)"
check "tail --group: no error" "" "$(cat "$T/tail.err")"
timeout 120 "$CLI" --config "$T/config.json" tail --from-start --count 44 --block-ms 200 \
    > "$T/tail2.out" 2> "$T/tail2.err" && rc=0 || rc=$?
check "tail --from-start exits 0" 0 "$rc"
check "tail --from-start printed every record once" "$IDS" "$(jq -r .id "$T/tail2.out" | sort)"
check "tail --from-start: no error" "" "$(cat "$T/tail2.err")"

# --- queries
found=0
for d in "${PAIRS[@]}"; do
    query_image "$d"
    [ "$STATUS $(jq -c '[.mappings[].digest]' <<<"$BODY")" == "200 [\"$d\"]" ] && found=$((found + 1)) ||
        echo "# GET /v1/images/$d: $STATUS $BODY" >&2
done
check "GET /v1/images: each pair's mapping, on every shard" 32 "$found"
query_image "${UNMATCHED[0]}"
check "GET /v1/images of a push swept unmatched: nothing known any more" 404 "$STATUS"
walked=""
cursor=""
pages=0
while :; do
    request GET "/v1/mappings?repository=acme/api&limit=10${cursor:+&cursor=$cursor}" -H "$AUTH"
    [ "$STATUS" == 200 ] || { fail "GET /v1/mappings page $pages: $STATUS $BODY"; break; }
    walked+=$(jq -r '.mappings[] | .digest + "\n"' <<<"$BODY")$'\n'
    cursor=$(jq -r '.next_cursor // empty' <<<"$BODY")
    pages=$((pages + 1))
    [ -n "$cursor" ] && [ "$pages" -lt 100 ] || break
done
check "GET /v1/mappings pages through the 32 mappings of every shard" \
    "$(printf '%s\n' "${PAIRS[@]}" | sort)" "$(grep . <<<"$walked" | sort)"
request GET "/v1/mappings?run=github/905" -H "$AUTH"
check "GET /v1/mappings by run" "200 ${PAIRS[5]}" "$STATUS $(jq -r '.mappings[].digest' <<<"$BODY")"

# --- trimming: the sink acknowledged everything, so nothing holds it back
check "nothing pending for the sink" 0 "$(wait_count 0 60 metric digestmap_sink_inflight)"
stop_daemon
start_daemon "$(config '{"stream_maxlen": 1, "trim_interval_ms": 100}')"
lens() {
    local s
    for s in $(seq 0 $((N - 1))); do printf '%s ' "$(cluster_cli xlen "dm:{$s}:out")"; done
}
want=$(for _ in $(seq 1 $N); do printf '1 '; done)
check "every shard's stream trimmed to stream_maxlen 1" "$want" "$(wait_count "$want" 60 lens)"
check "trimmed entries counted" 28 "$(metric digestmap_stream_trimmed_total)"
finish
