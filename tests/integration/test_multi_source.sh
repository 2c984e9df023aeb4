#!/usr/bin/env bash
# Two ACR sources on two paths with different tokens: each token opens only its own path, and
# both paths park events that join the same build.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon "$(cat <<JSON
{
  "listen": "127.0.0.1:0",
  "workers": 2,
  "data_dir": "$T/var",
  "redis": { "url": "unix://$T/redis.sock" },
  "limits": { "max_body_bytes": 65536 },
  "sources": [
    { "type": "acr", "path": "/v1/registry/acr",
      "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer acr-token"} ] },
    { "type": "acr", "path": "/v1/registry/acr-eu",
      "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer acr-eu-token"} ] },
    { "type": "build", "path": "/v1/builds",
      "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer ci-token"} ] }
  ],
  "api": { "auth": [ {"type": "header", "name": "Authorization", "value": "Bearer api-token"} ] }
}
JSON
)"

d=$(random_digest)
acr_push "$T/us.json" "$d" 1.4.0 "$(iso_at -20)" evt-us contoso.azurecr.io
acr_push "$T/eu.json" "$d" 1.4.0 "$(iso_at -19)" evt-eu contosoeu.azurecr.io

post /v1/registry/acr-eu "$T/eu.json" -H 'Authorization: Bearer acr-token'
check "first source's token on the second path: 401" 401 "$STATUS"
check "first source's token on the second path: body" '{"error":"bad credentials"}' "$BODY"
post /v1/registry/acr "$T/us.json" -H 'Authorization: Bearer acr-eu-token'
check "second source's token on the first path: 401" 401 "$STATUS"
check "second source's token on the first path: body" '{"error":"bad credentials"}' "$BODY"
post /v1/registry/acr-eu "$T/eu.json"
check "second path without credentials" '401 {"error":"missing credentials"}' "$STATUS $BODY"
check "nothing parked by refused requests" 0 "$(rcli dbsize)"
check "auth failures metric" 3 "$(metric digestmap_auth_failures_total)"

post /v1/registry/acr "$T/us.json" -H 'Authorization: Bearer acr-token'
check "first path with its token" '202 {"status":"accepted","events":1,"edges":0}' "$STATUS $BODY"
post /v1/registry/acr-eu "$T/eu.json" -H 'Authorization: Bearer acr-eu-token'
check "second path with its token" '202 {"status":"accepted","events":1,"edges":0}' "$STATUS $BODY"
check "both parked as acr events" 2 "$(metric 'digestmap_events_parked_total{source="acr"}')"

query_image "$d"
check "query: two pending registry locations" \
    "contoso.azurecr.io,contosoeu.azurecr.io" \
    "$(jq -r '.pending.registry[].registry' <<<"$BODY" | sort | paste -sd, -)"

build_event "$T/b.json" "$d" "$(iso_at -10)" 808
post_build "$T/b.json"
check "a build joins the pushes of both sources" '{"status":"accepted","events":1,"edges":2}' "$BODY"
check "two confirmed records" 2 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
check "requests metric of the second route" 1 \
    "$(metric 'digestmap_requests_total{route="/v1/registry/acr-eu",status="202"}')"

post /v1/registry/acr-eu "$DM_FIXTURES/acr/ping.json" -H 'Authorization: Bearer acr-eu-token'
check "second path ignores a ping" '200 {"status":"ignored","reason":"ping"}' "$STATUS $BODY"
request GET /v1/registry/acr-eu
check "GET on the second path: 405" 405 "$STATUS"
finish
