#!/usr/bin/env bash
# A cluster that stops reporting fades out although other clusters run the same digest
# (docs/workloads.md "A cluster that stops reporting"): clusters A and B run digests D and E;
# A's inventory (wc:A) expires while B keeps the shared w:<digest> and xw keys alive. Then
# GET /v1/images no longer answers A's workload (its w: field is still there: the query does
# not write), GET /v1/exposure neither (and removes the index member and the w: field it met),
# and the next snapshot of B removes A's ghosts under the digests it writes.
# The expiry of wc:A is Redis's own: its TTL is shortened and the test waits for the key to
# go (with findings_ttl_seconds of seconds, B's keys would race it on a busy machine).
. "$(dirname "$0")/lib.sh"

start_redis
start_daemon "$(default_config '"findings_ttl_seconds": 5000' | jq '
  .redis.shards = 4 |
  .sources += [{type: "k8s", auth: [{type: "header", name: "Authorization", value: "Bearer k8s-token"}]}]')"
post_k8s() { post /v1/workloads "$1" -H 'Authorization: Bearer k8s-token'; }
api() { request GET "$1" -H 'Authorization: Bearer api-token'; }
pod() { # NAME DIGEST...: a bare pod (exposure "cluster") running the digests
    local n=$1
    shift
    jq -nc --arg n "$n" --args '{kind: "Pod", apiVersion: "v1", metadata: {name: $n, namespace: "ns"},
        status: {containerStatuses: [$ARGS.positional | to_entries[] | {name: "c\(.key)", imageID: ("r.io/x@" + .value)}]}}' "$@"
}
snap() { # CLUSTER TAKEN_AT ITEMS_JSON
    jq -nc --arg c "$1" --arg t "$2" --argjson i "$3" '{cluster: $c, taken_at: $t, items: $i}' >"$T/s.json"
    post_k8s "$T/s.json"
}
names() { api "/v1/images/$1"; jq -c '[.workloads[] | "\(.cluster)/\(.name):\(.images | length)"]' <<<"$BODY"; }
D=$(random_digest)
E=$(random_digest)
SD=$(shard_of "$D" 4)
SE=$(shard_of "$E" 4)
no_wc_a() { [ "$(rcli --scan --pattern 'dm:*:wc:A' | wc -l)" == 0 ]; }
expire_a() { # A stops reporting: its inventory expires
    for k in $(rcli --scan --pattern 'dm:*:wc:A'); do rcli pexpire "$k" 50 >/dev/null; done
    poll_until "$DM_WAIT" no_wc_a || fail "wc:A did not expire"
}

snap A "$(iso_at -30)" "[$(pod a1 "$D" "$E")]"
check "A: 202" 202 "$STATUS"
snap B "$(iso_at -30)" "[$(pod b1 "$D" "$E")]"
check "B: 202" 202 "$STATUS"
check "both under D" '["A/a1:2","B/b1:2"]' "$(names "$D")"
expire_a
check "A's w: field outlives its inventory (B keeps the key)" 1 "$(rcli hexists "dm:{$SD}:w:$D" A/ns/Pod/a1)"
check "images D: A's workload no longer answered" '["B/b1:2"]' "$(names "$D")"
check "images E: A's workload no longer answered" '["B/b1:2"]' "$(names "$E")"
check "the query wrote nothing" 1 "$(rcli hexists "dm:{$SD}:w:$D" A/ns/Pod/a1)"

# exposure: findings for D; A's index member is a ghost
rcli set "dm:{$SD}:fs:$D" '{"critical":1,"high":0,"medium":0,"low":0,"unknown":0,"by_scanner":{}}' >/dev/null
api "/v1/exposure?exposure=cluster&min_severity=low"
check "exposure: only B's workload" "[\"B/ns/Pod/b1:$D\"]" \
    "$(jq -c '[.workloads[] | "\(.cluster)/\(.namespace)/\(.kind)/\(.name):\(.images[].digest)"]' <<<"$BODY")"
check "exposure removed A's index member" "" "$(rcli zscore "dm:{$SD}:xw:cluster" "A/ns/Pod/a1|$D")"
check "exposure removed A's w: field" 0 "$(rcli hexists "dm:{$SD}:w:$D" A/ns/Pod/a1)"
check "B's stay" 1 "$(rcli hexists "dm:{$SD}:w:$D" B/ns/Pod/b1)"

# the next snapshot of B removes A's ghosts under the digests it writes
snap A "$(iso_at -20)" "[$(pod a1 "$D" "$E")]"
check "A again: 202" 202 "$STATUS"
expire_a
check "ghosts again" "1 1" "$(rcli hexists "dm:{$SD}:w:$D" A/ns/Pod/a1) $(rcli hexists "dm:{$SE}:w:$E" A/ns/Pod/a1)"
snap B "$(iso_at -10)" "[$(pod b1 "$D" "$E")]"
check "B again: 202" 202 "$STATUS"
check_match "B's snapshot removed A's two ghosts" 'msg="snapshot stored" route=/v1/workloads cluster="B" .*removed=2' \
    "$(await_log 'msg="snapshot stored" route=/v1/workloads cluster="B" .*removed=2')"
check "w: fields: B's only" "B/ns/Pod/b1 B/ns/Pod/b1" \
    "$(rcli hkeys "dm:{$SD}:w:$D" | xargs) $(rcli hkeys "dm:{$SE}:w:$E" | xargs)"
check "index: B's only" "B/ns/Pod/b1|$D B/ns/Pod/b1|$E" \
    "$(rcli zrange "dm:{$SD}:xw:cluster" 0 -1 | grep "$D" | xargs) $(rcli zrange "dm:{$SE}:xw:cluster" 0 -1 | grep "$E" | xargs)"

finish
