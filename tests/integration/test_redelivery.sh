#!/usr/bin/env bash
# Redelivery: the same ACR push three times, a second push of the same digest and location with
# another tag, and the same build twice (header auth, then HMAC) give exactly one edge; the tags
# are merged into the stored mapping.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

d=$(random_digest)
pushed=$(iso_at -20)
acr_push "$T/push.json" "$d" 1.4.0 "$pushed" evt-redeliver-1
for i in 1 2 3; do
    post_acr "$T/push.json"
    check "push delivery $i answered 202" 202 "$STATUS"
    check "push delivery $i answer" '{"status":"accepted","events":1,"edges":0}' "$BODY"
done

build_event "$T/build.json" "$d" "$(iso_at -10)" 4242
post_build "$T/build.json"
check "build (header auth) answered 202" 202 "$STATUS"
check "build (header auth) makes the edge" '{"status":"accepted","events":1,"edges":1}' "$BODY"

post_build_hmac "$T/build.json"
check "build redelivered (HMAC auth) answered 202" 202 "$STATUS"
check "build redelivered gives no second edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"

# same digest and location, another tag (ACR sends one webhook per tag)
acr_push "$T/push-latest.json" "$d" latest "$(iso_at -19)" evt-redeliver-2
post_acr "$T/push-latest.json"
check "second tag push answered 202" 202 "$STATUS"
check "second tag push gives no second edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"

post_acr "$T/push.json"
check "first push redelivered after the edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"

check "exactly one confirmed record" 1 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
check "stream holds nothing else" 1 "$(rcli xlen 'dm:{0}:out')"
check "edges metric" 1 "$(metric digestmap_edges_emitted_total)"

query_image "$d"
check "query answers 200" 200 "$STATUS"
check "query has one mapping" 1 "$(jq '.mappings | length' <<<"$BODY")"
check "tags merged into the mapping" '["1.4.0","latest"]' "$(jq -c '.mappings[0].image.tags' <<<"$BODY")"
check "mapping run id" 4242 "$(jq -r '.mappings[0].build.run_id' <<<"$BODY")"
check "one pending registry location" 1 "$(jq '.pending.registry | length' <<<"$BODY")"
check "one pending build run" 1 "$(jq '.pending.build | length' <<<"$BODY")"

dups=$(metric digestmap_duplicates_absorbed_total)
check_match "duplicates metric counts the redeliveries ($dups)" '^[1-9][0-9]*$' "$dups"

finish
