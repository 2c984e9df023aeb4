#!/usr/bin/env bash
# Workloads (docs/workloads.md) through the real daemon on 4 shards: the fixture snapshot
# posted to a k8s source gives the expected workloads in GET /v1/images; a second snapshot
# without a workload removes it (its w: field and index entry), an older one is ignored
# (200 stale), the same one again is applied; findings (f:/fs: keys in the layout of README.md
# "Redis layout") appear in GET /v1/images, paged; GET /v1/exposure filters by exposure and
# severity, merges a workload whose digests are in different shards, pages with limit 1 across
# shards, answers the builds; 400s for bad snapshots and parameters; an empty snapshot removes
# everything; Redis down: 503 + Retry-After.
. "$(dirname "$0")/lib.sh"

SNAP="$DM_FIXTURES/k8s/snapshot.json"
EXPECTED="$DM_FIXTURES/k8s/expected-workloads.json"
start_redis
start_daemon "$(default_config '"findings_ttl_seconds": 5000' | jq '
  .redis.shards = 4 | .limits.max_body_bytes = 262144 |
  .sources += [{type: "k8s", auth: [{type: "header", name: "Authorization", value: "Bearer k8s-token"}]}]')"

post_k8s() { post /v1/workloads "$1" -H 'Authorization: Bearer k8s-token'; }
api() { request GET "$1" -H 'Authorization: Bearer api-token'; }
# snapshot TAKEN_AT [JQ FILTER ON .items]: the fixture with another taken_at (and items).
snapshot() { jq --arg t "$1" ".taken_at = \$t | .items |= (${2:-.})" "$SNAP"; }

# --- the fixture: every expected workload, under each of its digests
snapshot 2026-12-06T10:00:00Z >"$T/s1.json"
post_k8s "$T/s1.json"
check "snapshot: 202" 202 "$STATUS"
check "snapshot: answer" '{"status":"accepted","workloads":7}' "$BODY"
for d in $(jq -r '.[].digests[]' "$EXPECTED" | sort -u); do
    want=$(jq -c --arg d "$d" '[.[] | select(.digests | index($d)) | {cluster: "prod-weu",
        namespace, kind, name, exposure, images: .digests}] | sort_by(.namespace, .kind, .name)' "$EXPECTED")
    api "/v1/images/$d"
    check "$d known only by workloads: 200" 200 "$STATUS"
    check "$d: its workloads" "$want" "$(jq -c '.workloads' <<<"$BODY")"
done
API=sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600
EF=sha256:ef753fa4375575b7fbfbd1baf8830903c6da5e3da67f54dfed25aae2bcb8185c
BATCH=sha256:83fd5620d7be78aa79d4d1658c84310f774b2b443a86ee4dcf04e6a197252e69
check "shop/api spans shards 3 and 1" "3 1" "$(shard_of $API 4) $(shard_of $EF 4)"
check "index entry in the digest's shard" 1 \
    "$(rcli zscore 'dm:{1}:xw:node' "prod-weu/ops/Deployment/batch|$BATCH" | grep -c 0)"
ttl=$(rcli pttl "dm:{1}:w:$BATCH")
check "w: key expires after findings_ttl_seconds" 1 "$(( ttl > 4900000 && ttl <= 5000000 ))"
check "every shard holds its taken_at" "1796551200000 1796551200000 1796551200000 1796551200000" \
    "$(for s in 0 1 2 3; do rcli hget "dm:{$s}:wc:prod-weu" $'\t'; done | xargs)"
check "metric: snapshots" 1 "$(metric digestmap_k8s_snapshots_total)"

# --- a second snapshot without ops/batch: gone from its digest and the index
snapshot 2026-12-06T10:05:00Z 'map(select((.kind == "Pod" and .metadata.namespace == "ops"
    and ((.metadata.name // "") | startswith("batch-"))) | not))' >"$T/s2.json"
post_k8s "$T/s2.json"
check "second snapshot: 202" '202 {"status":"accepted","workloads":6}' "$STATUS $BODY"
api "/v1/images/$BATCH"
check "removed workload: its digest is unknown now" 404 "$STATUS"
check "removed workload: w: key gone" 0 "$(rcli exists "dm:{1}:w:$BATCH")"
check "removed workload: index entry gone" "" \
    "$(rcli zscore 'dm:{1}:xw:node' "prod-weu/ops/Deployment/batch|$BATCH")"
check "removed workload: inventory field gone" 0 "$(rcli hexists 'dm:{1}:wc:prod-weu' ops/Deployment/batch)"
api "/v1/images/$EF"
check "the others stay" '["prod-weu/shop/Deployment/api"]' \
    "$(jq -c '[.workloads[] | "\(.cluster)/\(.namespace)/\(.kind)/\(.name)"]' <<<"$BODY")"

# --- an older snapshot is ignored; the same one again is applied (a retry)
post_k8s "$T/s1.json"
check "stale snapshot: 200 ignored" '200 {"status":"ignored","reason":"stale"}' "$STATUS $BODY"
api "/v1/images/$BATCH"
check "stale snapshot: changed nothing" 404 "$STATUS"
check "metric: stale" 1 "$(metric digestmap_k8s_snapshots_stale_total)"
check_match "stale: logged" 'msg="snapshot ignored" route=/v1/workloads cluster="prod-weu" reason=stale' \
    "$(await_log 'msg="snapshot ignored"')"
post_k8s "$T/s2.json"
check "same snapshot again: 202" 202 "$STATUS"

# --- findings of the digests, in the layout the findings ingest writes (README "Redis layout")
sum() { # CRITICAL HIGH MEDIUM LOW: a summary with trivy's counts
    printf '{"critical":%d,"high":%d,"medium":%d,"low":%d,"unknown":0,"by_scanner":{"trivy":{"critical":%d,"high":%d,"medium":%d,"low":%d,"unknown":0}}}' \
        "$1" "$2" "$3" "$4" "$1" "$2" "$3" "$4"
}
WEB=sha256:7cfeb49edad264b1b30942ecd6970344c841a50b52560b9f3842c7a7d526d401
NODE=sha256:d26c0533fdee1aa3404179b1df9765e1e3540c131e99bfae83258107c7dcb41b
rcli set "dm:{3}:fs:$API" "$(sum 1 0 0 0)" >/dev/null
rcli set "dm:{1}:fs:$EF" "$(sum 0 2 0 0)" >/dev/null
rcli set "dm:{2}:fs:$WEB" "$(sum 0 0 1 0)" >/dev/null
rcli set "dm:{0}:fs:$NODE" "$(sum 0 0 0 1)" >/dev/null
rcli hset "dm:{3}:f:$API" trivy '[{"id":"CVE-2026-1","package":"openssl","installed":"3.0.1","fixed":"3.0.9","status":"fixed","severity":"critical"},{"id":"CVE-2026-2","package":"zlib","installed":"1.2","severity":"low"}]' \
    grype '[{"id":"CVE-2026-1","package":"openssl","installed":"3.0.1","severity":"high"}]' \
    'ecr-basic#counts' '{"critical":1}' >/dev/null
api "/v1/images/$API"
check "findings: the stored summary" "$(sum 1 0 0 0)" "$(jq -c .findings.summary <<<"$BODY")"
check "findings: items most severe first, one per scanner" \
    '["critical CVE-2026-1 openssl trivy","high CVE-2026-1 openssl grype","low CVE-2026-2 zlib trivy"]' \
    "$(jq -c '[.findings.items[] | "\(.severity) \(.id) \(.package) \(.scanner)"]' <<<"$BODY")"
check "findings: an item's members" \
    '{"id":"CVE-2026-1","package":"openssl","severity":"critical","installed":"3.0.1","fixed":"3.0.9","status":"fixed","scanner":"trivy"}' \
    "$(jq -c '.findings.items[0]' <<<"$BODY")"
check "findings: one page" null "$(jq -c .findings.next_cursor <<<"$BODY")"
seen=""
cursor=""
for page in 1 2 3; do
    api "/v1/images/$API?findings_limit=1${cursor:+&findings_cursor=$cursor}"
    seen+="$(jq -r '.findings.items[] | .id + "/" + .scanner' <<<"$BODY") "
    cursor=$(jq -r '.findings.next_cursor // empty' <<<"$BODY")
    [ -n "$cursor" ] || break
done
check "findings paged by findings_limit=1: each once, in order" \
    "CVE-2026-1/trivy CVE-2026-1/grype CVE-2026-2/trivy " "$seen"
check "findings: last page has no cursor" "3 " "$page $cursor"
api "/v1/images/$API?findings_cursor=AAAA"
check "bad findings_cursor: 400" '400 findings_cursor: not a findings.next_cursor returned by this API' \
    "$STATUS $(jq -r .error <<<"$BODY")"
api "/v1/images/$API?findings_limit=0"
check "bad findings_limit: 400" '400 findings_limit: must be an integer from 1 to 500' \
    "$STATUS $(jq -r .error <<<"$BODY")"
D404=$(random_digest)
rcli set "dm:{$(shard_of "$D404" 4)}:fs:$D404" "$(sum 0 1 0 0)" >/dev/null
api "/v1/images/$D404"
check "a digest known only by its findings: 200" 200 "$STATUS"

# --- a mapping for shop/api's first image: the build that produced it
acr_push "$T/push.json" "$API" 1.4.0 "$(iso_at 0)"
build_event "$T/build.json" "$API" "$(iso_at 0)" 9876543210
post_acr "$T/push.json"
post_build "$T/build.json"
check "mapping confirmed" 1 "$(wait_count 1 60 stream_type_count dev.digestmap.mapping.confirmed.v1 'dm:{3}:out')"

# --- GET /v1/exposure
api "/v1/exposure"
check "exposure: 200" 200 "$STATUS"
check "exposure: defaults echoed" '{"exposure":"internet","min_severity":"high","limit":50}' \
    "$(jq -c .query <<<"$BODY")"
check "exposure internet/high: shop/api with both images (two shards merged), web left out" \
    "[[\"prod-weu/shop/Deployment/api/internet\",[\"$API\",\"$EF\"]]]" \
    "$(jq -c '[.workloads[] | ["\(.cluster)/\(.namespace)/\(.kind)/\(.name)/\(.exposure)", [.images[].digest]]]' <<<"$BODY")"
check "exposure: an image's summary" "$(sum 0 2 0 0)" "$(jq -c '.workloads[0].images[1].findings.summary' <<<"$BODY")"
check "exposure: the build of the image" "acme/api 9876543210 contoso.azurecr.io team/api" \
    "$(jq -r '.workloads[0].images[0].mappings[0] | "\(.build.repository) \(.build.run_id) \(.image.registry) \(.image.repository)"' <<<"$BODY")"
check "exposure: an image without a mapping" '[]' "$(jq -c '.workloads[0].images[1].mappings' <<<"$BODY")"
check "exposure: last page" null "$(jq -c .next_cursor <<<"$BODY")"
api "/v1/exposure?min_severity=critical"
check "min_severity=critical: only the critical image" "[\"$API\"]" "$(jq -c '[.workloads[].images[].digest]' <<<"$BODY")"
api "/v1/exposure?exposure=node&min_severity=low"
check "exposure=node&min_severity=low" '["monitoring/node-exporter"]' \
    "$(jq -c '[.workloads[] | "\(.namespace)/\(.name)"]' <<<"$BODY")"
api "/v1/exposure?exposure=node"
check "exposure=node at high: none" '[]' "$(jq -c .workloads <<<"$BODY")"
# limit 1 across shards: every workload once, in order
seen=""
cursor=""
pages=0
while :; do
    api "/v1/exposure?min_severity=medium&limit=1${cursor:+&cursor=$cursor}"
    [ "$STATUS" == 200 ] || break
    pages=$((pages + 1))
    seen+="$(jq -r '.workloads[] | .namespace + "/" + .name + ":" + ([.images[].digest[7:11]] | join(","))' <<<"$BODY") "
    cursor=$(jq -r '.next_cursor // empty' <<<"$BODY")
    [ -n "$cursor" ] && [ "$pages" -lt 10 ] || break
done
check "paging limit=1: each workload once, with its images" \
    "billing/web:7cfe shop/api:49e7,ef75 " "$seen"
check "paging limit=1: ends" "" "$cursor"
# 400s and 401
bad() {
    api "/v1/exposure?$1"
    check "exposure $1: 400" "400 $2" "$STATUS $(jq -r .error <<<"$BODY")"
}
bad exposure=public 'exposure: must be internet, node or cluster'
bad min_severity=severe 'min_severity: must be critical, high, medium, low or unknown'
bad limit=0 'limit: must be an integer from 1 to 500'
bad limit=501 'limit: must be an integer from 1 to 500'
bad cursor=bm90LWEta2V5 'cursor: not a next_cursor returned by this API'
bad 'limit=1&limit=2' 'limit: given more than once'
bad 'namespace=shop' 'unknown parameter(s): namespace (known: exposure, min_severity, limit, cursor)'
request GET /v1/exposure
check "exposure without credentials: 401" 401 "$STATUS"

# --- bad snapshots: precise 400 / 413, logged and counted
inv0=$(metric digestmap_requests_invalid_total)
printf '{"cluster":"prod-weu","taken_at":"yesterday","items":[]}' >"$T/bad.json"
post_k8s "$T/bad.json"
check "bad taken_at: 400" 400 "$STATUS"
check_match "bad taken_at: precise" '^taken_at: ' "$(jq -r .error <<<"$BODY")"
printf '{"cluster":"prod-weu",' >"$T/bad.json"
post_k8s "$T/bad.json"
check "malformed JSON: 400" 400 "$STATUS"
check_match "bad snapshot: logged" 'msg="request refused" status=400 route=/v1/workloads' \
    "$(await_log 'status=400 route=/v1/workloads')"
head -c 300000 /dev/zero | tr '\0' ' ' >"$T/big.json"
post_k8s "$T/big.json"
check "body over max_body_bytes: 413" 413 "$STATUS"
post /v1/workloads "$T/s2.json" -H 'Authorization: Bearer wrong'
check "wrong token: 401" 401 "$STATUS"

# --- an empty snapshot removes the cluster's every workload, in every shard
snapshot 2026-12-06T10:10:00Z '[]' >"$T/s3.json"
post_k8s "$T/s3.json"
check "empty snapshot: 202" '202 {"status":"accepted","workloads":0}' "$STATUS $BODY"
api "/v1/images/$EF"
check "empty snapshot: workloads gone" '[]' "$(jq -c .workloads <<<"$BODY")"
api "/v1/exposure?min_severity=low"
check "empty snapshot: nothing exposed" '[]' "$(jq -c .workloads <<<"$BODY")"
check "empty snapshot: no index left" 0 "$(rcli --scan --pattern 'dm:*:xw:*' | wc -l)"

# --- Redis down: 503 + Retry-After, no spool for snapshots
stop_redis
post_k8s "$T/s2.json"
check "Redis down: 503" 503 "$STATUS"
check_match "Redis down: Retry-After" $'Retry-After: [0-9]+' "$HEADERS"

finish
