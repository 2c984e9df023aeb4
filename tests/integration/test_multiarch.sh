#!/usr/bin/env bash
# Multi-arch: a build naming an index digest and its platform manifests joins the tagged index
# push (relation image) and an untagged platform-manifest push (relation platform-manifest).
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

idx=$(random_digest)
m1=$(random_digest)
m2=$(random_digest)
cat > "$T/build.json" <<JSON
{ "images": [ { "name": "contoso.azurecr.io/team/api", "digest": "$idx", "tags": ["1.4.0"],
                "manifests": ["$m1", "$m2"] } ],
  "built_at": "$(iso_at -30)",
  "run": { "provider": "github", "repository": "acme/api", "run_id": "555", "run_attempt": "1" } }
JSON
post_build "$T/build.json"
check "build answered 202" 202 "$STATUS"
check "build parks the index and its two manifests" '{"status":"accepted","events":3,"edges":0}' "$BODY"

acr_push "$T/index.json" "$idx" 1.4.0 "$(iso_at -20)"
post_acr "$T/index.json"
check "index push joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"

# untagged platform manifest push, shaped like tests/fixtures/acr/push-platform-manifest.json
jq --arg d "$m1" --arg t "$(iso_at -21)" '.target.digest = $d | .timestamp = $t | .id = "evt-manifest-1"' \
    "$DM_FIXTURES/acr/push-platform-manifest.json" > "$T/manifest.json"
check "fixture push is untagged" null "$(jq -r .target.tag "$T/manifest.json")"
post_acr "$T/manifest.json"
check "platform manifest push joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"

check "two confirmed records" 2 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
events=$(rcli --raw xrange 'dm:{0}:out' - + | awk 'prev=="event"{print} {prev=$0}')
ie=$(jq -c --arg d "$idx" 'select(.subject == $d)' <<<"$events")
me=$(jq -c --arg d "$m1" 'select(.subject == $d)' <<<"$events")
check "index edge relation" image "$(jq -r .data.relation <<<"$ie")"
check "index edge has no index member" null "$(jq -r .data.index <<<"$ie")"
check "index edge tags" '["1.4.0"]' "$(jq -c .data.image.tags <<<"$ie")"
check "manifest edge digest" "$m1" "$(jq -r .data.digest <<<"$me")"
check "manifest edge relation" platform-manifest "$(jq -r .data.relation <<<"$me")"
check "manifest edge index" "$idx" "$(jq -r .data.index <<<"$me")"
check "manifest edge tags are []" '[]' "$(jq -c .data.image.tags <<<"$me")"
check "manifest edge run id" 555 "$(jq -r .data.build.run_id <<<"$me")"
check "edge ids differ" 2 "$(jq -r .id <<<"$events" | sort -u | wc -l)"

query_image "$m1"
check "query of the manifest digest" 200 "$STATUS"
check "manifest query: one mapping, platform-manifest of the index" "1 platform-manifest $idx" \
    "$(jq -r '"\(.mappings | length) \(.mappings[0].relation) \(.mappings[0].index)"' <<<"$BODY")"
check "manifest query: tags []" '[]' "$(jq -c '.mappings[0].image.tags' <<<"$BODY")"
query_image "$m2"
check "query of the unpushed manifest: pending build only" "200 0 1 0" \
    "$STATUS $(jq -r '"\(.mappings | length) \(.pending.build | length) \(.pending.registry | length)"' <<<"$BODY")"

# redelivering the build gives nothing new
post_build "$T/build.json"
check "redelivered multi-arch build" '{"status":"accepted","events":3,"edges":0}' "$BODY"
check "still two confirmed records" 2 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
finish
