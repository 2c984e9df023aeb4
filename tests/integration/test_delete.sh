#!/usr/bin/env bash
# ACR delete: one image.deleted record per (registry, repository, digest), however often it is
# delivered; stored mappings are kept and the query API lists the delete.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

A=$DM_FIXTURES/acr
d=$(jq -r .target.digest "$A/delete.json")
check "fixture push and delete name the same digest" "$d" "$(jq -r .target.digest "$A/push.json")"

# a mapping before the delete (the fixture times are far from now: replaced by arrival time)
post_acr "$A/push.json"
check "push accepted" '{"status":"accepted","events":1,"edges":0}' "$BODY"
build_event "$T/b.json" "$d" "$(iso_at -5)" 31337
post_build "$T/b.json"
check "build joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"

post_acr "$A/delete.json"
check "delete answered 202" 202 "$STATUS"
check "delete answer" '{"status":"accepted","events":1,"edges":0}' "$BODY"
check "one image.deleted record" 1 "$(stream_count dev.digestmap.image.deleted.v1)"
check "mapping record still the only confirmed one" 1 "$(stream_count dev.digestmap.mapping.confirmed.v1)"

ev=$(rcli --raw xrange 'dm:{0}:out' - + | awk 'prev=="event"{print} {prev=$0}' |
    jq -c 'select(.type == "dev.digestmap.image.deleted.v1")')
check "deleted record subject" "$d" "$(jq -r .subject <<<"$ev")"
check "deleted record data.digest" "$d" "$(jq -r .data.digest <<<"$ev")"
check "deleted record data.image.registry" contoso.azurecr.io "$(jq -r .data.image.registry <<<"$ev")"
check "deleted record data.image.repository" team/api "$(jq -r .data.image.repository <<<"$ev")"
check "deleted record specversion" 1.0 "$(jq -r .specversion <<<"$ev")"
check_match "deleted record id is a hash" '^[0-9a-f]{40}$' "$(jq -r .id <<<"$ev")"
check "stream entry type field" dev.digestmap.image.deleted.v1 \
    "$(rcli --raw xrange 'dm:{0}:out' - + | awk 'prev=="type"{print} {prev=$0}' | tail -n 1)"

post_acr "$A/delete.json"
check "redelivered delete answered 202" 202 "$STATUS"
post_acr "$A/delete.json"
check "still one image.deleted record after redeliveries" 1 "$(stream_count dev.digestmap.image.deleted.v1)"
jq '.id = "another-delete-id" | .timestamp = "'"$(iso_at -1)"'"' "$A/delete.json" > "$T/del2.json"
post_acr "$T/del2.json"
check "a second delete webhook of the same location" 202 "$STATUS"
check "still one image.deleted record for that location" 1 "$(stream_count dev.digestmap.image.deleted.v1)"
check "deletes metric" 1 "$(metric digestmap_deletes_recorded_total)"

query_image "$d"
check "query after the delete: 200" 200 "$STATUS"
check "mapping kept after the delete" 1 "$(jq '.mappings | length' <<<"$BODY")"
check "kept mapping run id" 31337 "$(jq -r '.mappings[0].build.run_id' <<<"$BODY")"
check "query lists one delete" 1 "$(jq '.deleted | length' <<<"$BODY")"
check "query delete digest" "$d" "$(jq -r '.deleted[0].digest' <<<"$BODY")"
check "query delete location" contoso.azurecr.io/team/api \
    "$(jq -r '.deleted[0].image.registry + "/" + .deleted[0].image.repository' <<<"$BODY")"

# another repository is another location: a second record
jq '.id = "delete-other-repo" | .target.repository = "team/api-old"' "$A/delete.json" > "$T/del3.json"
post_acr "$T/del3.json"
check "delete in another repository accepted" 202 "$STATUS"
check "two image.deleted records" 2 "$(stream_count dev.digestmap.image.deleted.v1)"
check "deletes metric counts both" 2 "$(metric digestmap_deletes_recorded_total)"
query_image "$d"
check "query lists two deletes" 2 "$(jq '.deleted | length' <<<"$BODY")"
check "query still one mapping" 1 "$(jq '.mappings | length' <<<"$BODY")"

# a delete of a digest never pushed is still recorded
d2=$(random_digest)
jq --arg d "$d2" '.id = "delete-unknown" | .target.digest = $d' "$A/delete.json" > "$T/del4.json"
post_acr "$T/del4.json"
check "delete of an unknown digest accepted" '{"status":"accepted","events":1,"edges":0}' "$BODY"
check "three image.deleted records" 3 "$(stream_count dev.digestmap.image.deleted.v1)"
query_image "$d2"
check "query of the deleted unknown digest" 200 "$STATUS"
check "its query answer: no mapping, one delete" '0 1' "$(jq -r '"\(.mappings | length) \(.deleted | length)"' <<<"$BODY")"
finish
