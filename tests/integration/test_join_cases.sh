#!/usr/bin/env bash
# The README's join semantics table, one case each: order independence (both orders, same edge),
# redelivery, extra tag merged, window bound at exactly +-window and 1 ms outside (ms times),
# skewed event time replaced, N registries x M runs, delete recorded once with the mapping kept.
# window_seconds 60, max_clock_skew_seconds 3600; no waiting: every time is in the payloads.
. "$(dirname "$0")/lib.sh"
start_redis
CONF=$(default_config '"window_seconds": 60, "max_clock_skew_seconds": 3600')
start_daemon "$CONF"

CT=dev.digestmap.mapping.confirmed.v1
ACCEPT0='{"status":"accepted","events":1,"edges":0}'
ACCEPT1='{"status":"accepted","events":1,"edges":1}'
edges_of() { stream_events | jq -c --arg d "$1" --arg t "$CT" 'select(.subject == $d and .type == $t)'; }
n_edges() { edges_of "$1" | grep -c . || true; }
# acr timestamp with nanoseconds / build time with milliseconds, from ms since the epoch
acr_time() { local x; x=$(iso_ms "$1"); echo "${x%Z}000000Z"; }
build_time() { iso_ms "$1"; }
now_ms=$(date +%s%3N)

# ---------------------------------------------------------------- order independence
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.4.0 "$(acr_time $((now_ms - 20000)))" evt-order
build_event "$T/b.json" "$d" "$(build_time $((now_ms - 10000)))" 4001
post_acr "$T/p.json"
check "order push-first: push parks" "$ACCEPT0" "$BODY"
post_build "$T/b.json"
check "order push-first: build joins" "$ACCEPT1" "$BODY"
first=$(edges_of "$d")
rcli flushall >/dev/null
post_build "$T/b.json"
check "order build-first: build parks" "$ACCEPT0" "$BODY"
post_acr "$T/p.json"
check "order build-first: push joins" "$ACCEPT1" "$BODY"
second=$(edges_of "$d")
check "order: one edge after the flush" 1 "$(n_edges "$d")"
check "order: same edge id either way" "$(jq -r .id <<<"$first")" "$(jq -r .id <<<"$second")"
check "order: same data either way" "$(jq -c .data <<<"$first")" "$(jq -c .data <<<"$second")"
check "order: skew_ms is push minus build (push 10 s before the build)" -10000 "$(jq -r .data.skew_ms <<<"$second")"
check "order: built_at (ms)" "$(build_time $((now_ms - 10000)))" "$(jq -r .data.build.built_at <<<"$second")"
rcli flushall >/dev/null

# ---------------------------------------------------------------- redelivery
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.4.0 "$(iso_at -20)" evt-redeliver
build_event "$T/b.json" "$d" "$(iso_at -10)" 4002
post_acr "$T/p.json"
post_build "$T/b.json"
check "redelivery: first edge" "$ACCEPT1" "$BODY"
dup0=$(metric digestmap_duplicates_absorbed_total)
post_acr "$T/p.json"
check "redelivery: push again answered 202" 202 "$STATUS"
check "redelivery: push again, no edge" "$ACCEPT0" "$BODY"
check "redelivery: duplicates metric +1 (push)" $((dup0 + 1)) "$(metric digestmap_duplicates_absorbed_total)"
post_build "$T/b.json"
check "redelivery: build again, no edge" "$ACCEPT0" "$BODY"
check "redelivery: duplicates metric +1 (build)" $((dup0 + 2)) "$(metric digestmap_duplicates_absorbed_total)"
check "redelivery: one edge" 1 "$(n_edges "$d")"

# ---------------------------------------------------------------- extra tag merged
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.4.0 "$(iso_at -20)" evt-tag-1
build_event "$T/b.json" "$d" "$(iso_at -10)" 4003
post_acr "$T/p.json"
post_build "$T/b.json"
check "extra tag: first edge" "$ACCEPT1" "$BODY"
acr_push "$T/p2.json" "$d" latest "$(iso_at -19)" evt-tag-2
post_acr "$T/p2.json"
check "extra tag: second push, no edge" "$ACCEPT0" "$BODY"
check "extra tag: one edge" 1 "$(n_edges "$d")"
query_image "$d"
check "extra tag: one mapping" 1 "$(jq '.mappings | length' <<<"$BODY")"
check "extra tag: tags merged into the mapping" '["1.4.0","latest"]' "$(jq -c '.mappings[0].image.tags' <<<"$BODY")"
check "extra tag: stored mapping (Redis) has both tags" '["1.4.0","latest"]' \
    "$(rcli --raw hvals "dm:{0}:m:$d" | jq -c .image.tags)"

# ---------------------------------------------------------------- window bound, ms exact
# push at B (x.999 s, nanosecond timestamp), builds at B +- 60000 ms and B +- 60001 ms; the
# +1 ms crosses a second boundary.
B=$(( (now_ms / 1000 - 300) * 1000 + 999 ))
run=4100
bound() { # DELTA_MS ORDER EXPECTED_EDGES
    local d delta=$1 order=$2 want=$3
    d=$(random_digest)
    run=$((run + 1))
    acr_push "$T/p.json" "$d" 1.0.0 "$(acr_time "$B")" "evt-bound-$run"
    build_event "$T/b.json" "$d" "$(build_time $((B + delta)))" "$run"
    if [ "$order" == push-first ]; then post_acr "$T/p.json"; post_build "$T/b.json"
    else post_build "$T/b.json"; post_acr "$T/p.json"; fi
    check "window $order delta=${delta}ms: answer" "{\"status\":\"accepted\",\"events\":1,\"edges\":$want}" "$BODY"
    check "window $order delta=${delta}ms: edges" "$want" "$(n_edges "$d")"
}
for order in push-first build-first; do
    bound 60000 "$order" 1
    bound -60000 "$order" 1
    bound 60001 "$order" 0
    bound -60001 "$order" 0
done
check "window: the ACR timestamp has nanoseconds" 1 "$(grep -c '\.999000000Z' "$T/p.json")"
check "window: the build time has milliseconds" 1 "$(grep -cE '"built_at": "[^"]*\.[0-9]{3}Z"' "$T/b.json")"

# ---------------------------------------------------------------- skew replaced
skew0=$(metric digestmap_skew_replaced_total)
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.0.0 "$(iso_at -7200)" evt-skew
sent_at=$(date +%s%3N)
post_acr "$T/p.json"
answered_at=$(date +%s%3N)
check "skew: old push parks" "$ACCEPT0" "$BODY"
check "skew: metric +1" $((skew0 + 1)) "$(metric digestmap_skew_replaced_total)"
build_event "$T/b.json" "$d" "$(iso_at -5)" 4200
post_build "$T/b.json"
check "skew: joins the build of 5 s ago (arrival time used)" "$ACCEPT1" "$BODY"
check "skew: metric unchanged by the in-range build" $((skew0 + 1)) "$(metric digestmap_skew_replaced_total)"
pushed=$(date -u -d "$(edges_of "$d" | jq -r .data.image.pushed_at)" +%s%3N)
check "skew: pushed_at is the arrival time ($sent_at <= $pushed <= $answered_at)" 1 \
    "$(( pushed >= sent_at && pushed <= answered_at ? 1 : 0 ))"

# ---------------------------------------------------------------- N registries x M runs
d=$(random_digest)
acr_push "$T/r1.json" "$d" 1.0.0 "$(iso_at -30)" evt-nxm-1 contoso.azurecr.io
acr_push "$T/r2.json" "$d" 1.0.0 "$(iso_at -29)" evt-nxm-2 contoso-weu.azurecr.io
build_event "$T/m1.json" "$d" "$(iso_at -25)" 4301
build_event "$T/m2.json" "$d" "$(iso_at -24)" 4302
post_acr "$T/r1.json"
check "nxm: R1 parks" "$ACCEPT0" "$BODY"
post_build "$T/m1.json"
check "nxm: M1 joins R1" "$ACCEPT1" "$BODY"
post_acr "$T/r2.json"
check "nxm: R2 joins M1" "$ACCEPT1" "$BODY"
post_build "$T/m2.json"
check "nxm: M2 joins R1 and R2" '{"status":"accepted","events":1,"edges":2}' "$BODY"
check "nxm: 4 edges" 4 "$(n_edges "$d")"
check "nxm: 4 distinct edge ids" 4 "$(edges_of "$d" | jq -r .id | sort -u | wc -l)"
check "nxm: every (registry, run) pair" \
    "contoso-weu.azurecr.io 4301,contoso-weu.azurecr.io 4302,contoso.azurecr.io 4301,contoso.azurecr.io 4302" \
    "$(edges_of "$d" | jq -r '.data.image.registry + " " + .data.build.run_id' | sort | paste -sd,)"
query_image "$d"
check "nxm: 4 mappings" 4 "$(jq '.mappings | length' <<<"$BODY")"

# ---------------------------------------------------------------- delete
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.0.0 "$(iso_at -20)" evt-del-push
build_event "$T/b.json" "$d" "$(iso_at -10)" 4400
post_acr "$T/p.json"
post_build "$T/b.json"
check "delete: edge first" "$ACCEPT1" "$BODY"
del0=$(metric digestmap_deletes_recorded_total)
jq --arg d "$d" --arg t "$(iso_at -1)" '.target.digest = $d | .timestamp = $t' "$DM_FIXTURES/acr/delete.json" > "$T/del.json"
post_acr "$T/del.json"
check "delete: answered 202" 202 "$STATUS"
post_acr "$T/del.json"
check "delete: redelivered, 202" 202 "$STATUS"
check "delete: one image.deleted record" 1 \
    "$(stream_events | jq -c --arg d "$d" 'select(.subject == $d and .type == "dev.digestmap.image.deleted.v1")' | grep -c . || true)"
check "delete: metric +1" $((del0 + 1)) "$(metric digestmap_deletes_recorded_total)"
check "delete: the edge is still the only one" 1 "$(n_edges "$d")"
query_image "$d"
check "delete: mapping kept" 1 "$(jq '.mappings | length' <<<"$BODY")"
check "delete: listed once" 1 "$(jq '.deleted | length' <<<"$BODY")"
check "delete: mapping hash kept in Redis" 1 "$(rcli hlen "dm:{0}:m:$d")"
finish
