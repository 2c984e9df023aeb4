#!/usr/bin/env bash
# Cardinality: 2 pushes of one digest (two registry hosts, e.g. geo-replication) × 2 builds
# (run ids 1 and 2) within the window give 2×2 = 4 edges with 4 distinct ids.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

d=$(random_digest)
acr_push "$T/p1.json" "$d" 1.4.0 "$(iso_at -40)" evt-host-1 contoso.azurecr.io
acr_push "$T/p2.json" "$d" 1.4.0 "$(iso_at -39)" evt-host-2 contosoeu.azurecr.io
build_event "$T/b1.json" "$d" "$(iso_at -30)" 1
build_event "$T/b2.json" "$d" "$(iso_at -29)" 2

post_acr "$T/p1.json"
check "push 1 (contoso)" '{"status":"accepted","events":1,"edges":0}' "$BODY"
post_build "$T/b1.json"
check "build run 1 joins push 1" '{"status":"accepted","events":1,"edges":1}' "$BODY"
post_acr "$T/p2.json"
check "push 2 (contosoeu) joins build 1" '{"status":"accepted","events":1,"edges":1}' "$BODY"
post_build "$T/b2.json"
check "build run 2 joins both pushes" '{"status":"accepted","events":1,"edges":2}' "$BODY"

# redeliveries of all four add nothing
for f in p1 p2 b1 b2; do
    case $f in p*) post_acr "$T/$f.json" ;; *) post_build "$T/$f.json" ;; esac
    check "redelivered $f adds no edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"
done

check "four confirmed records" 4 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
events=$(rcli --raw xrange 'dm:{0}:out' - + | awk 'prev=="event"{print} {prev=$0}')
check "four distinct edge ids" 4 "$(jq -r .id <<<"$events" | sort -u | wc -l)"
check "every (registry, run) pair once" \
    "contoso.azurecr.io 1,contoso.azurecr.io 2,contosoeu.azurecr.io 1,contosoeu.azurecr.io 2" \
    "$(jq -r '"\(.data.image.registry) \(.data.build.run_id)"' <<<"$events" | sort | paste -sd, -)"
check "edges metric" 4 "$(metric digestmap_edges_emitted_total)"

query_image "$d"
check "query: four mappings" 4 "$(jq '.mappings | length' <<<"$BODY")"
check "query: every (registry, run) pair once" \
    "contoso.azurecr.io 1,contoso.azurecr.io 2,contosoeu.azurecr.io 1,contosoeu.azurecr.io 2" \
    "$(jq -r '.mappings[] | "\(.image.registry) \(.build.run_id)"' <<<"$BODY" | sort | paste -sd, -)"
check "query: two pending locations, two pending runs" "2 2" \
    "$(jq -r '"\(.pending.registry | length) \(.pending.build | length)"' <<<"$BODY")"
finish
