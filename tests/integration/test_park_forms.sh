#!/usr/bin/env bash
# park.lua's arguments and stored forms (docs/park-path.md):
#  1. The records are the bytes the JSON-in-Lua park.lua wrote: a build's record object comes
#     pre-encoded from C (dm_event_park.c) with cjson's escapes, a push's image object from Lua,
#     in both arrival orders, with quotes, backslashes, control characters, DEL, '/' and
#     non-ASCII in the strings. (The expected texts were checked against the previous version:
#     DIGESTMAPD=<its binary> passes parts 1 and 2 too.)
#  2. Items parked by the previous version (a build with its identity as the object "b", one
#     with "built_at" inside it) are still joined, listed pending, marked matched and reported
#     unmatched as before.
#  3. The common call's short reply: a push that joins nothing is counted parked, not skewed or
#     duplicate; one whose event time is replaced is counted skewed.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon "$(default_config '"window_seconds": 60, "grace_seconds": 1, "sweep_interval_ms": 100')"

CT=dev.digestmap.mapping.confirmed.v1
UT=dev.digestmap.mapping.unmatched.v1
base=$(date +%s)
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.123Z; }           # what park.lua writes of it
ns() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.123456789Z; }      # what the sender sends
# data TYPE DIGEST: the "data" of the first record of TYPE about DIGEST, its bytes as stored.
data() {
    local doc
    doc=$(rcli --raw xrange 'dm:{0}:out' - + | grep -F "\"type\":\"$1\",\"subject\":\"$2\"" | head -n 1)
    doc=${doc#*\"datacontenttype\":\"application/json\",\"data\":}
    printf '%s' "${doc%\}}"
}

# ---------------------------------------------------------------- 1. the records' bytes
# A tab, \u0001 and DEL in ref and workflow, a quote and a backslash in actor and the event id.
odd_build() { # FILE DIGEST TIME RUN_ID
    cat > "$1" <<EOF
{ "images": [ { "name": "contoso.azurecr.io/team/api", "digest": "$2", "tags": ["1.4.0"] } ],
  "built_at": "$3",
  "run": { "provider": "github", "repository": "acme/api", "run_id": "$4", "run_attempt": "1",
           "run_url": "https://example.com/runs/$4?a=1&b=<2>", "commit": "abc123",
           "ref": "refs/heads/a\tb", "workflow": "rel/ease \u00e9 \u0001\u007f",
           "actor": "mo\"na\\\\" } }
EOF
}
want_data() { # DIGEST RUN_ID: the confirmed record's data for a push at base-20, build at base-10
    printf '%s' "{\"digest\":\"$1\",\"relation\":\"image\",\"image\":{\"registry\":\"contoso.azurecr.io\",\"repository\":\"team/api\",\"tags\":[\"1.4.0\"],\"source\":\"acr\",\"event_id\":\"evt/a\\\"b\\\\c\",\"pushed_at\":\"$(iso $((base - 20)))\",\"media_type\":\"application/vnd.oci.image.index.v1+json\"},\"build\":{\"provider\":\"github\",\"repository\":\"acme/api\",\"workflow\":\"rel/ease é \\u0001\\u007f\",\"run_id\":\"$2\",\"run_attempt\":\"1\",\"run_url\":\"https://example.com/runs/$2?a=1&b=<2>\",\"commit\":\"abc123\",\"ref\":\"refs/heads/a\\tb\",\"actor\":\"mo\\\"na\\\\\",\"built_at\":\"$(iso $((base - 10)))\",\"verified\":false},\"skew_ms\":-10000}"
}
A=$(random_digest)
B=$(random_digest)
acr_push "$T/pa.json" "$A" 1.4.0 "$(ns $((base - 20)))" 'evt/a\"b\\c'
acr_push "$T/pb.json" "$B" 1.4.0 "$(ns $((base - 20)))" 'evt/a\"b\\c'
odd_build "$T/ba.json" "$A" "$(ns $((base - 10)))" 7001
odd_build "$T/bb.json" "$B" "$(ns $((base - 10)))" 7002
post_acr "$T/pa.json"
check "push, then build: push parked" 202 "$STATUS"
post_build "$T/ba.json"
check "push, then build: one edge" '202 1' "$STATUS $(jq -r .edges <<<"$BODY")"
check "push, then build: the record's data, byte for byte" "$(want_data "$A" 7001)" "$(data "$CT" "$A")"
post_build "$T/bb.json"
check "build, then push: build parked" 202 "$STATUS"
post_acr "$T/pb.json"
check "build, then push: one edge" 202 "$STATUS"
check "build, then push: the record's data, byte for byte" "$(want_data "$B" 7002)" "$(data "$CT" "$B")"
check "the mapping stored is the record's data" "$(want_data "$B" 7002)" \
    "$(rcli --raw hvals "dm:{0}:m:$B")"

# ---------------------------------------------------------------- 2. items of the previous version
now_ms=$(date +%s%3N)
# park_old DIGEST RUN_ID EXPIRY_MS IDENTITY_MEMBERS: a build as the previous park.lua stored it
park_old() {
    rcli hset "dm:{0}:b:$1" "github/$2/1" \
        "{\"t\":$(( (base - 10) * 1000 + 123 )),\"x\":$3,\"b\":{$4},\"g\":[\"1.0\"],\"n\":\"contoso.azurecr.io/team/old\"}" >/dev/null
    rcli zadd 'dm:{0}:due' "$3" "b${1#sha256:}" >/dev/null
    rcli hincrby 'dm:{0}:stats' b 1 >/dev/null
}
# old_identity RUN_ID: its identity as the previous version stored it (cjson's key order)
old_identity() {
    echo "\"actor\":\"mona\",\"run_url\":\"https://ci/$1\",\"verified\":false,\"repository\":\"acme/old\",\"run_attempt\":\"1\",\"run_id\":\"$1\",\"provider\":\"github\""
}
want_build='{"provider":"github","repository":"acme/old","run_id":"555","run_attempt":"1","run_url":"https://ci/555","actor":"mona","built_at":"'$(iso $((base - 10)))'","verified":false}'
C=$(random_digest)
park_old "$C" 555 $((now_ms + 600000)) "$(old_identity 555),\"built_at\":\"2020-01-01T00:00:00.000Z\""
query_image "$C"
check "old build: listed pending, its identity without the stored built_at" \
    '{"provider":"github","repository":"acme/old","run_id":"555","run_attempt":"1","run_url":"https://ci/555","actor":"mona","verified":false}' \
    "$(jq -c '.pending.build[0].build' <<<"$BODY")"
check "old build: its built_at from its event time" "$(iso $((base - 10)))" \
    "$(jq -r '.pending.build[0].built_at' <<<"$BODY")"
acr_push "$T/pc.json" "$C" 1.4.0 "$(ns $((base - 20)))"
post_acr "$T/pc.json"
check "old build joined by a new push" '202 1' "$STATUS $(jq -r .edges <<<"$BODY")"
check "old build: the record's build object" "$want_build" "$(data "$CT" "$C" | jq -c .build)"
check "old build: its indexes written" "1 1" \
    "$(rcli zcard 'dm:{0}:ix:repo:acme/old') $(rcli zcard 'dm:{0}:ix:run:github/555')"
check "old build: marked matched, its identity kept" "1 acme/old" \
    "$(rcli --raw hget "dm:{0}:b:$C" github/555/1 | jq -r '"\(.k) \(.b.repository)"')"
query_image "$C"
check "old build: now pending and matched" true "$(jq -r '.pending.build[0].matched' <<<"$BODY")"

# An old build that expired unmatched is reported with its identity.
U=$(random_digest)
park_old "$U" 556 $(( $(date +%s%3N) - 1000 )) "$(old_identity 556)"
want_unmatched=$(jq -c -n --arg d "$U" --arg at "$(iso $((base - 10)))" \
    '{side: "build", digest: $d, relation: "image", name: "contoso.azurecr.io/team/old",
      build: {provider: "github", repository: "acme/old", run_id: "556", run_attempt: "1",
              run_url: "https://ci/556", actor: "mona", built_at: $at, verified: false},
      window_seconds: 60}')
unmatched_of_u() { data "$UT" "$U"; }
poll_until "$DM_WAIT" eval '[ -n "$(unmatched_of_u)" ]' || true
check "old build expired: reported unmatched with its identity" "$want_unmatched" "$(unmatched_of_u)"
check "old build expired: removed" 0 "$(rcli exists "dm:{0}:b:$U")"

# ---------------------------------------------------------------- 3. the common call's reply
parked0=$(metric 'digestmap_events_parked_total{source="acr"}')
skewed0=$(metric digestmap_skew_replaced_total)
dups0=$(metric digestmap_duplicates_absorbed_total)
E=$(random_digest)
acr_push "$T/pe.json" "$E" 1.4.0 "$(ns $((base - 20)))"
post_acr "$T/pe.json"
check "new push alone: 202, parked, not skewed, not a duplicate" "202 1 0 0" \
    "$STATUS $(( $(metric 'digestmap_events_parked_total{source="acr"}') - parked0 )) $(( $(metric digestmap_skew_replaced_total) - skewed0 )) $(( $(metric digestmap_duplicates_absorbed_total) - dups0 ))"
check "new push alone: stored as the event's members" \
    "$(( (base - 20) * 1000 + 123 )) acr oi [\"1.4.0\"]" \
    "$(rcli --raw hget "dm:{0}:r:$E" contoso.azurecr.io/team/api | jq -c -r '"\(.t) \(.s) \(.m) \(.g)"')"
F=$(random_digest)
acr_push "$T/pf.json" "$F" 1.4.0 "$(ns $((base - 3600)))"
post_acr "$T/pf.json"
check "new push an hour old: skewed (its time replaced)" "202 1" \
    "$STATUS $(( $(metric digestmap_skew_replaced_total) - skewed0 ))"
finish
