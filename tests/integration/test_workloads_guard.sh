#!/usr/bin/env bash
# Who may replace a cluster's workloads (docs/workloads.md "Who may report a cluster"): a k8s
# source with "clusters" refuses a snapshot of another cluster (403, logged, counted, nothing
# written); a taken_at later than now + correlation.max_clock_skew_seconds is a 400 (it would
# make the real reporter's snapshots stale until then), one within the skew is stored. A
# snapshot that some shards call stale and others store is 202, the mix logged.
. "$(dirname "$0")/lib.sh"

SNAP="$DM_FIXTURES/k8s/snapshot.json"
start_redis
start_daemon "$(default_config '"max_clock_skew_seconds": 300' | jq '
  .redis.shards = 4 | .limits.max_body_bytes = 262144 |
  .sources += [{type: "k8s", clusters: ["prod-weu", "prod-neu"],
                auth: [{type: "header", name: "Authorization", value: "Bearer k8s-token"}]},
               {type: "k8s", path: "/v1/workloads-any",
                auth: [{type: "header", name: "Authorization", value: "Bearer any-token"}]}]')"

post_k8s() { post /v1/workloads "$1" -H 'Authorization: Bearer k8s-token'; }
api() { request GET "$1" -H 'Authorization: Bearer api-token'; }
# snapshot CLUSTER TAKEN_AT [JQ FILTER ON .items]
snapshot() { jq --arg c "$1" --arg t "$2" ".cluster = \$c | .taken_at = \$t | .items |= (${3:-.})" "$SNAP"; }
EF=sha256:ef753fa4375575b7fbfbd1baf8830903c6da5e3da67f54dfed25aae2bcb8185c
names() { api "/v1/images/$EF"; jq -c '[.workloads[] | "\(.cluster)/\(.namespace)/\(.name)"]' <<<"$BODY"; }

snapshot prod-weu 2026-12-06T10:00:00Z >"$T/s1.json"
post_k8s "$T/s1.json"
check "listed cluster: 202" 202 "$STATUS"

# --- another cluster's snapshot on a source restricted to prod-weu/prod-neu
auth0=$(metric digestmap_auth_failures_total)
snapshot staging 2026-12-06T10:00:00Z >"$T/other.json"
post_k8s "$T/other.json"
check "unlisted cluster: 403" '403 cluster: "staging" is not a cluster this source may report' \
    "$STATUS $(jq -r .error <<<"$BODY")"
check_match "unlisted cluster: logged" 'msg="request refused" status=403 route=/v1/workloads cluster="staging"' \
    "$(await_log 'status=403 route=/v1/workloads')"
check "unlisted cluster: counted" $((auth0 + 1)) "$(metric digestmap_auth_failures_total)"
check "unlisted cluster: nothing written" 0 "$(rcli --scan --pattern 'dm:*:wc:staging' | wc -l)"
check "unlisted cluster: no workload" '["prod-weu/shop/api"]' "$(names)"
post /v1/workloads-any "$T/other.json" -H 'Authorization: Bearer any-token'
check "a source without clusters takes any: 202" 202 "$STATUS"

# --- taken_at in the future
inv0=$(metric digestmap_invalid_requests_total)
snapshot prod-weu 9999-12-31T23:59:59Z '[]' >"$T/future.json"
post_k8s "$T/future.json"
check "taken_at 9999: 400" '400 taken_at: later than now + correlation.max_clock_skew_seconds (300 s)' \
    "$STATUS $(jq -r .error <<<"$BODY")"
check_match "future taken_at: logged" 'status=400 route=/v1/workloads field="taken_at"' \
    "$(await_log 'status=400 route=/v1/workloads field="taken_at"')"
check "future taken_at: counted" $((inv0 + 1)) "$(metric digestmap_invalid_requests_total)"
check "future taken_at: nothing written" "1796551200000 1796551200000 1796551200000 1796551200000" \
    "$(for s in 0 1 2 3; do rcli hget "dm:{$s}:wc:prod-weu" $'\t'; done | xargs)"
snapshot prod-weu "$(iso_at 3600)" '[]' >"$T/future.json"
post_k8s "$T/future.json"
check "taken_at now + 1 h: 400" 400 "$STATUS"
check "the workloads stay" '["prod-weu/shop/api","staging/shop/api"]' "$(names)"
snapshot prod-weu "$(iso_at -60)" >"$T/now.json"
post_k8s "$T/now.json"
check "the real reporter's snapshot: 202" 202 "$STATUS"
snapshot prod-weu "$(iso_at 120)" >"$T/ahead.json"
post_k8s "$T/ahead.json"
check "taken_at within the skew: 202" 202 "$STATUS"

# --- a snapshot some shards call stale: a newer one reached only shard 0 and then failed
now_ms=$(( $(date +%s) * 1000 ))
rcli hset 'dm:{0}:wc:prod-neu' $'\t' $((now_ms + 200000)) >/dev/null
snapshot prod-neu "$(iso_at 0)" >"$T/mixed.json"
post_k8s "$T/mixed.json"
check "mixed stale/applied: 202 (shards were written)" '202 {"status":"accepted","workloads":7}' "$STATUS $BODY"
check_match "mixed: logged" 'msg="snapshot partly stale" route=/v1/workloads cluster="prod-neu" .*applied_shards=3 stale_shards=1' \
    "$(await_log 'msg="snapshot partly stale"')"
check "mixed: counted as stored" 1 "$(( $(metric digestmap_k8s_snapshots_total) >= 4 ))"
check "mixed: the applied shards hold it" 1 "$(rcli hexists 'dm:{1}:wc:prod-neu' shop/Deployment/api)"
stale0=$(metric digestmap_k8s_snapshots_stale_total)
snapshot prod-neu 2026-12-06T09:00:00Z >"$T/old.json"
post_k8s "$T/old.json"
check "stale in every shard: 200 ignored" '200 {"status":"ignored","reason":"stale"}' "$STATUS $BODY"
check "stale: counted" $((stale0 + 1)) "$(metric digestmap_k8s_snapshots_stale_total)"

finish
