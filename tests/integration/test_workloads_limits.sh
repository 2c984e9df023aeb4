#!/usr/bin/env bash
# What one snapshot may cost (docs/workloads.md "Bounds"): a workload's images are stored once
# per shard in its cluster's inventory, not in each w:<digest> (one workload of 128 digests
# would copy its whole list 128 times), and GET /v1/images still answers them all; a digest run
# by more than 100 workloads answers the first 100 with "workloads_truncated" and the count;
# limits.max_snapshot_items, limits.max_workloads_per_snapshot and
# limits.max_snapshot_workload_images refuse bigger snapshots with 413 (logged, counted).
. "$(dirname "$0")/lib.sh"

start_redis
K8S='.sources += [{type: "k8s", auth: [{type: "header", name: "Authorization", value: "Bearer k8s-token"}]}]'
start_daemon "$(default_config | jq ".redis.shards = 4 | .limits.max_body_bytes = 1048576 | $K8S")"
post_k8s() { post /v1/workloads "$1" -H 'Authorization: Bearer k8s-token'; }
api() { request GET "$1" -H 'Authorization: Bearer api-token'; }
pods() { # FIRST COUNT DIGEST...: pods p<FIRST>..p<FIRST+COUNT-1>, each running the digests
    jq -nc --argjson f "$1" --argjson n "$2" --args '[range($f; $f + $n) as $i | {kind: "Pod", apiVersion: "v1",
        metadata: {name: "p\($i)", namespace: "ns"},
        status: {containerStatuses: [$ARGS.positional | to_entries[] | {name: "c\(.key)", imageID: ("r.io/x@" + .value)}]}}]' \
        "${@:3}"
}
snap() { # CLUSTER TAKEN_AT ITEMS_JSON_FILE
    jq -c --arg c "$1" --arg t "$2" '{cluster: $c, taken_at: $t, items: .}' "$3" >"$T/s.json"
    post_k8s "$T/s.json"
}

# --- one workload of 128 digests: each w: value is small, the images come back whole
ds=()
for i in $(seq 128); do ds+=("$(random_digest)"); done
pods 0 1 "${ds[@]}" >"$T/big.json"
snap C "$(iso_at -10)" "$T/big.json"
check "128-digest workload: 202" '202 {"status":"accepted","workloads":1}' "$STATUS $BODY"
D0=${ds[0]}
w=$(rcli hget "dm:{$(shard_of "$D0" 4)}:w:$D0" C/ns/Pod/p0)
check "w: value without the images list" '{"cluster":"C","namespace":"ns","kind":"Pod","name":"p0","exposure":"cluster"}' "$w"
total=0
for d in "${ds[@]}"; do total=$((total + $(rcli hstrlen "dm:{$(shard_of "$d" 4)}:w:$d" C/ns/Pod/p0))); done
check "w: values of the 128 digests: under 16 KB together (were ~1.2 MB)" 1 "$((total < 16384))"
api "/v1/images/$D0"
check "images: the workload's 128 images, sorted" "$(printf '%s\n' "${ds[@]}" | sort | jq -R . | jq -sc .)" \
    "$(jq -c '.workloads[0].images' <<<"$BODY")"
check "images: not truncated" null "$(jq -c .workloads_truncated <<<"$BODY")"

# --- a digest run by 150 workloads: the first 100 by key, and the count
S=$(random_digest)
pods 0 150 "$S" >"$T/many.json"
snap M "$(iso_at -10)" "$T/many.json"
check "150 workloads: 202" 202 "$STATUS"
api "/v1/images/$S"
want=$(printf 'M/ns/Pod/p%d\n' $(seq 0 149) | LC_ALL=C sort | sed -n '1p;100p' | xargs)
check "images: 100 workloads answered, the first by key" "100 $want" \
    "$(jq -r '"\(.workloads | length) \(.workloads[0] | "\(.cluster)/\(.namespace)/\(.kind)/\(.name)") \(.workloads[99] | "\(.cluster)/\(.namespace)/\(.kind)/\(.name)")"' <<<"$BODY")"
check "images: truncated, with the count" "true 150" "$(jq -r '"\(.workloads_truncated) \(.workloads_total)"' <<<"$BODY")"

# --- the bounds: 413, logged, counted
stop_daemon
start_daemon "$(default_config | jq ".redis.shards = 4 | .limits.max_body_bytes = 1048576 |
    .limits.max_snapshot_items = 20 | .limits.max_workloads_per_snapshot = 5 |
    .limits.max_snapshot_workload_images = 300 | $K8S")"
big0=$(metric digestmap_body_too_large_total)
pods 0 21 "$S" >"$T/items.json"
snap L "$(iso_at -10)" "$T/items.json"
check "21 items over max_snapshot_items 20: 413" '413 items: must hold at most 20 items' \
    "$STATUS $(jq -r .error <<<"$BODY")"
pods 0 6 "$S" >"$T/wl.json"
snap L "$(iso_at -10)" "$T/wl.json"
check "6 workloads over max_workloads_per_snapshot 5: 413" '413 items: must make at most 5 workloads' \
    "$STATUS $(jq -r .error <<<"$BODY")"
pods 0 3 "${ds[@]}" >"$T/pairs.json"
snap L "$(iso_at -10)" "$T/pairs.json"
check "3 x 128 pairs over max_snapshot_workload_images 300: 413" \
    '413 items: the workloads run 384 (workload, image) pairs, more than limits.max_snapshot_workload_images (300)' \
    "$STATUS $(jq -r .error <<<"$BODY")"
check_match "pairs: logged" 'msg="request refused" status=413 route=/v1/workloads field="items"' \
    "$(await_log 'status=413 route=/v1/workloads field="items" reason="the workloads run')"
check "413s counted" $((big0 + 3)) "$(metric digestmap_body_too_large_total)"
check "nothing of L stored" 0 "$(rcli --scan --pattern 'dm:*:wc:L' | wc -l)"
pods 0 2 "${ds[@]}" >"$T/ok.json"
snap L "$(iso_at -10)" "$T/ok.json"
check "2 x 128 pairs within the bounds: 202" 202 "$STATUS"

finish
