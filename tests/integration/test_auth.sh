#!/usr/bin/env bash
# Authentication: every refused request is a 401 with the exact body and a WWW-Authenticate
# header, is counted, and writes nothing to Redis; a correct HMAC is accepted.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

d=$(random_digest)
acr_push "$T/push.json" "$d" 1.4.0 "$(iso_at -20)"
build_event "$T/build.json" "$d" "$(iso_at -10)" 77
good=$(hmac_sig "$T/build.json")

n=0
refused() { # DESCRIPTION EXPECTED_ERROR then request args
    local what=$1 err=$2
    shift 2
    "$@"
    n=$((n + 1))
    check "$what: status" 401 "$STATUS"
    check "$what: body" "{\"error\":\"$err\"}" "$BODY"
    check_match "$what: WWW-Authenticate header" $'(^|\n)[Ww][Ww][Ww]-[Aa]uthenticate: [^\r\n]+' "$HEADERS"
}

refused "acr without Authorization" "missing credentials" post /v1/registry/acr "$T/push.json"
refused "acr with a wrong token" "bad credentials" post /v1/registry/acr "$T/push.json" -H 'Authorization: Bearer wrong'
refused "acr with the token of /v1/builds" "bad credentials" post /v1/registry/acr "$T/push.json" -H 'Authorization: Bearer ci-token'
refused "acr with the API token" "bad credentials" post /v1/registry/acr "$T/push.json" -H 'Authorization: Bearer api-token'
refused "acr token without Bearer" "bad credentials" post /v1/registry/acr "$T/push.json" -H 'Authorization: acr-token'
refused "build without credentials" "missing credentials" post /v1/builds "$T/build.json"
refused "build with the token of /v1/registry/acr" "bad credentials" post /v1/builds "$T/build.json" -H 'Authorization: Bearer acr-token'
refused "build with an HMAC of another secret" "bad credentials" post /v1/builds "$T/build.json" \
    -H "X-Digestmap-Signature: $(hmac_sig "$T/build.json" wrong-secret)"
jq -c '.run.run_id = "78"' "$T/build.json" > "$T/tampered.json"
refused "build body changed after signing" "bad credentials" post /v1/builds "$T/tampered.json" \
    -H "X-Digestmap-Signature: $good"
refused "signature without the sha256= prefix" "bad credentials" post /v1/builds "$T/build.json" \
    -H "X-Digestmap-Signature: ${good#sha256=}"
refused "signature one hex digit short" "bad credentials" post /v1/builds "$T/build.json" \
    -H "X-Digestmap-Signature: ${good%?}"
refused "signature one hex digit long" "bad credentials" post /v1/builds "$T/build.json" \
    -H "X-Digestmap-Signature: ${good}0"
refused "signature with another prefix" "bad credentials" post /v1/builds "$T/build.json" \
    -H "X-Digestmap-Signature: sha1=${good#sha256=}"
refused "signature not hex" "bad credentials" post /v1/builds "$T/build.json" \
    -H "X-Digestmap-Signature: sha256=$(printf 'z%.0s' $(seq 1 64))"

check "nothing in Redis after refused requests" 0 "$(rcli dbsize)"
check "auth failures metric" "$n" "$(metric digestmap_auth_failures_total)"
check "no event parked" 0 "$(metric 'digestmap_events_parked_total{source="acr"}')"

post /v1/builds "$T/build.json" -H "X-Digestmap-Signature: $good"
check "correct HMAC accepted" 202 "$STATUS"
check "correct HMAC answer" '{"status":"accepted","events":1,"edges":0}' "$BODY"
post_acr "$T/push.json"
check "correct header token accepted and joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"
check "auth failures metric unchanged" "$n" "$(metric digestmap_auth_failures_total)"

# query API
refused "query without credentials" "missing credentials" request GET "/v1/images/$d"
refused "query with a wrong token" "bad credentials" request GET "/v1/images/$d" -H 'Authorization: Bearer wrong'
refused "query with a source token" "bad credentials" request GET "/v1/images/$d" -H 'Authorization: Bearer acr-token'
query_image "$d"
check "query with the API token" 200 "$STATUS"
check "query answer has the mapping" 1 "$(jq '.mappings | length' <<<"$BODY")"
check "auth failures metric after queries" "$n" "$(metric digestmap_auth_failures_total)"
finish
