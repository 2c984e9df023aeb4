#!/usr/bin/env bash
# End to end: an ACR push and a CI build event of one digest give exactly one confirmed edge,
# in the stream and from the query API, whichever side arrives first.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

# push first, then build
d1=$(random_digest)
acr_push "$T/push.json" "$d1" 1.4.0 "$(iso_at -20)"
post_acr "$T/push.json"
check "push answered 202" 202 "$STATUS"
check "push answer body" '{"status":"accepted","events":1,"edges":0}' "$BODY"
build_event "$T/build.json" "$d1" "$(iso_at -10)" 1001
post_build "$T/build.json"
check "build answered 202" 202 "$STATUS"
check "build answer reports one edge" '{"status":"accepted","events":1,"edges":1}' "$BODY"

# build first, then push
d2=$(random_digest)
build_event "$T/build2.json" "$d2" "$(iso_at -30)" 1002
post_build "$T/build2.json"
check "build-first answer" '{"status":"accepted","events":1,"edges":0}' "$BODY"
acr_push "$T/push2.json" "$d2" 2.0.0 "$(iso_at -5)"
post_acr "$T/push2.json"
check "push-second answer reports one edge" '{"status":"accepted","events":1,"edges":1}' "$BODY"

check "two confirmed records in the stream" 2 "$(stream_count dev.digestmap.mapping.confirmed.v1)"

# the record's shape (README "Output records")
ev=$(rcli --raw xrange 'dm:{0}:out' - + | awk 'prev=="event"{print} {prev=$0}' | head -n 1)
check "record type" dev.digestmap.mapping.confirmed.v1 "$(jq -r .type <<<"$ev")"
check "record specversion" 1.0 "$(jq -r .specversion <<<"$ev")"
check "record subject" "$d1" "$(jq -r .subject <<<"$ev")"
check "record registry" contoso.azurecr.io "$(jq -r .data.image.registry <<<"$ev")"
check "record repository" team/api "$(jq -r .data.image.repository <<<"$ev")"
check "record tags" '["1.4.0"]' "$(jq -c .data.image.tags <<<"$ev")"
check "record build repository" acme/api "$(jq -r .data.build.repository <<<"$ev")"
check "record run id" 1001 "$(jq -r .data.build.run_id <<<"$ev")"
check "record verified false" false "$(jq -r .data.build.verified <<<"$ev")"
check "record relation" image "$(jq -r .data.relation <<<"$ev")"
check_match "record id is a hash" '^[0-9a-f]{40}$' "$(jq -r .id <<<"$ev")"
check "stream entry digest field" "$d1" "$(rcli --raw xrange 'dm:{0}:out' - + | awk 'prev=="digest"{print} {prev=$0}' | head -n 1)"

# query API
query_image "$d1"
check "query answers 200" 200 "$STATUS"
check "query has one mapping" 1 "$(jq '.mappings | length' <<<"$BODY")"
check "query mapping run id" 1001 "$(jq -r '.mappings[0].build.run_id' <<<"$BODY")"
check "query pending registry" 1 "$(jq '.pending.registry | length' <<<"$BODY")"
check "query pending build" 1 "$(jq '.pending.build | length' <<<"$BODY")"
query_image "$(random_digest)"
check "unknown digest answers 404" 404 "$STATUS"
query_image "sha256:ABC"
check "bad digest answers 400" 400 "$STATUS"
check "bad digest names the field" '{"error":"digest: must be sha256: followed by 64 lowercase hex digits"}' "$BODY"
request GET "/v1/images/$d1"
check "query without credentials answers 401" 401 "$STATUS"

finish
