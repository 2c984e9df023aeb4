#!/usr/bin/env bash
# GET /v1/images/<digest> answers in full as README "Query API" says: mappings with merged
# tags, pending registry and build events with their expiry (expires_at, RFC 3339), deletes;
# 404 for an unknown digest, 400 for malformed ones, 401 without the API token; pending items
# leave the answer when they expire.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

RFC3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
now_ms() { date +%s%3N; }
# expires_within BEFORE AFTER SECONDS TIMESTAMP: "yes" when TIMESTAMP (ms) is SECONDS after an
# arrival between BEFORE and AFTER (ms, taken around the request): exact on any machine.
expires_within() {
    local t
    t=$(date -u -d "$4" +%s%3N)
    if [ "$t" -ge $(($1 + $3 * 1000)) ] && [ "$t" -le $(($2 + $3 * 1000)) ]; then echo yes
    else echo "no: $((t - $1 - $3 * 1000)) ms after BEFORE + $3 s, $((t - $2 - $3 * 1000)) after AFTER + $3 s"; fi
}

# ---------------------------------------------------------------- a push, parked
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.4.0 "$(iso_at -20)" evt-q-1
before=$(now_ms)
post_acr "$T/p.json"
after=$(now_ms)
check "push parked" 202 "$STATUS"
query_image "$d"
check "pending push: 200" 200 "$STATUS"
check "answer members" '["deleted","digest","findings","mappings","next_cursor","pending","workloads"]' "$(jq -c 'keys' <<<"$BODY")"
check "pending members" '["build","registry"]' "$(jq -c '.pending | keys' <<<"$BODY")"
check "digest echoed" "$d" "$(jq -r .digest <<<"$BODY")"
check "no mapping yet, one pending push, no build, no delete" "0 1 0 0" \
    "$(jq -r '"\(.mappings | length) \(.pending.registry | length) \(.pending.build | length) \(.deleted | length)"' <<<"$BODY")"
check "pending push fields" \
    'contoso.azurecr.io team/api ["1.4.0"] acr evt-q-1 application/vnd.oci.image.index.v1+json false' \
    "$(jq -r '.pending.registry[0] | "\(.registry) \(.repository) \(.tags | tojson) \(.source) \(.event_id) \(.media_type) \(.matched)"' <<<"$BODY")"
exp=$(jq -r '.pending.registry[0].expires_at' <<<"$BODY")
check_match "pending push expires_at is RFC 3339" "$RFC3339" "$exp"
# retention = window 1800 s + grace 60 s from arrival
check "pending push expires window + grace after arrival" yes "$(expires_within "$before" "$after" 1860 "$exp")"
check_match "pending push pushed_at is RFC 3339" "$RFC3339" "$(jq -r '.pending.registry[0].pushed_at' <<<"$BODY")"

# ---------------------------------------------------------------- joined, then another tag
build_event "$T/b.json" "$d" "$(iso_at -10)" 7001
bbefore=$(now_ms)
post_build "$T/b.json"
bafter=$(now_ms)
check "build joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"
acr_push "$T/p2.json" "$d" latest "$(iso_at -5)" evt-q-2
post_acr "$T/p2.json"
check "second tag: no new edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"
query_image "$d"
check "one mapping" 1 "$(jq '.mappings | length' <<<"$BODY")"
check "mapping tags merged" '["1.4.0","latest"]' "$(jq -c '.mappings[0].image.tags' <<<"$BODY")"
rec=$(stream_events | jq -c --arg d "$d" 'select(.subject == $d) | .data | del(.image.tags)')
check "mapping is the record's data (tags aside)" "$rec" "$(jq -c '.mappings[0] | del(.image.tags)' <<<"$BODY")"
check "pending push now matched, tags merged" 'true ["1.4.0","latest"]' \
    "$(jq -r '.pending.registry[0] | "\(.matched) \(.tags | tojson)"' <<<"$BODY")"
check "pending build fields" 'github acme/api 7001 1 image true' \
    "$(jq -r '.pending.build[0] | "\(.build.provider) \(.build.repository) \(.build.run_id) \(.build.run_attempt) \(.relation) \(.matched)"' <<<"$BODY")"
bexp=$(jq -r '.pending.build[0].expires_at' <<<"$BODY")
check_match "pending build expires_at is RFC 3339" "$RFC3339" "$bexp"
check "pending build expires window + grace after arrival" yes "$(expires_within "$bbefore" "$bafter" 1860 "$bexp")"
check_match "pending build built_at is RFC 3339" "$RFC3339" "$(jq -r '.pending.build[0].built_at' <<<"$BODY")"

# ---------------------------------------------------------------- deleted
request POST /v1/registry/acr -H 'Authorization: Bearer acr-token' -H 'Content-Type: application/json' \
    --data-binary "$(jq --arg d "$d" '.action = "delete" | .id = "evt-q-del" | del(.target.tag) | .target.digest = $d' "$T/p.json")"
check "delete accepted" 202 "$STATUS"
query_image "$d"
check "delete listed, mapping kept" "1 1" "$(jq -r '"\(.deleted | length) \(.mappings | length)"' <<<"$BODY")"
check "delete fields" "$d contoso.azurecr.io team/api acr evt-q-del" \
    "$(jq -r '.deleted[0] | "\(.digest) \(.image.registry) \(.image.repository) \(.image.source) \(.image.event_id)"' <<<"$BODY")"
check_match "delete deleted_at is RFC 3339" "$RFC3339" "$(jq -r '.deleted[0].image.deleted_at' <<<"$BODY")"

# ---------------------------------------------------------------- a build, parked
db=$(random_digest)
build_event "$T/b2.json" "$db" "$(iso_at -3)" 7002
post_build "$T/b2.json"
query_image "$db"
check "pending build only: 200, nothing else" "200 0 0 1 0" \
    "$STATUS $(jq -r '"\(.mappings | length) \(.pending.registry | length) \(.pending.build | length) \(.deleted | length)"' <<<"$BODY")"
check "pending build: not matched, name and tags" 'false contoso.azurecr.io/team/api ["1.4.0"]' \
    "$(jq -r '.pending.build[0] | "\(.matched) \(.name) \(.tags | tojson)"' <<<"$BODY")"

# ---------------------------------------------------------------- unknown, malformed, auth
u=$(random_digest)
query_image "$u"
check "unknown digest: 404" 404 "$STATUS"
check "unknown digest: empty answer with an error" "{\"digest\":\"$u\",\"mappings\":[],\"next_cursor\":null,\"pending\":{\"registry\":[],\"build\":[]},\"deleted\":[],\"findings\":{\"summary\":{\"critical\":0,\"high\":0,\"medium\":0,\"low\":0,\"unknown\":0,\"by_scanner\":{}},\"items\":[],\"next_cursor\":null},\"workloads\":[],\"error\":\"nothing is known about this digest\"}" "$BODY"
query_image "sha256%3A${d#sha256:}"
check "percent-encoded colon: the same digest" "200 $d" "$STATUS $(jq -r .digest <<<"$BODY")"
E='{"error":"digest: must be sha256: followed by 64 lowercase hex digits"}'
hex=${d#sha256:}
for bad in "sha256:ABC" "sha256:${hex^^}" "sha512:$hex" "$hex" "sha256:${hex}0" "sha256:${hex:1}" \
           "sha256:${hex:0:63}g" "$d/" "%20$d" "sha256:$hex%00"; do
    query_image "$bad"
    check "malformed digest [$bad]: 400" "400 $E" "$STATUS $BODY"
done
request GET /v1/images/ -H 'Authorization: Bearer api-token'
check "empty digest: 400" "400 $E" "$STATUS $BODY"
request GET "/v1/images/$d"
check "no credentials: 401" 401 "$STATUS"
request GET "/v1/images/$d" -H 'Authorization: Bearer acr-token'
check "another source's token: 401" 401 "$STATUS"
request GET "/v1/images/sha256:ABC"
check "credentials checked before the digest" 401 "$STATUS"
request POST "/v1/images/$d" -H 'Authorization: Bearer api-token'
check "POST: 405" 405 "$STATUS"
stop_daemon

# ---------------------------------------------------------------- pending items expire
# retention 10 s: slack for the query right after the push; then the expiry is awaited.
start_daemon "$(default_config '"window_seconds": 1, "grace_seconds": 9, "mapping_ttl_seconds": 10')"
de=$(random_digest)
acr_push "$T/p3.json" "$de" 3.0 "$(iso_at 0)"
before=$(now_ms)
post_acr "$T/p3.json"
after=$(now_ms)
query_image "$de"
check "short retention: pending push listed" "200 1" "$STATUS $(jq '.pending.registry | length' <<<"$BODY")"
check "short retention: expires_at 10 s after arrival" yes \
    "$(expires_within "$before" "$after" 10 "$(jq -r '.pending.registry[0].expires_at' <<<"$BODY")")"
gone_404() { query_image "$de"; [ "$STATUS" == 404 ]; }
poll_until "$DM_WAIT" gone_404 || true
check "expired pending push leaves the answer" 404 "$STATUS"

finish
