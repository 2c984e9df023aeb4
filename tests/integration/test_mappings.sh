#!/usr/bin/env bash
# GET /v1/mappings: the three query indexes (code repository, run, registry repository), newest
# first, cursor pagination that walks every mapping exactly once (with 1 and with 4 shards, also
# when a shard stops at its work budget or its share of the page), precise 400s, 401, lazy
# removal of entries whose mapping is gone, the longest indexable name, and expiry with
# mapping_ttl_seconds.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

API=(-H 'Authorization: Bearer api-token')
mappings() { request GET "/v1/mappings?$1" "${API[@]}"; }

# push_body FILE DIGEST TAG TIME IMAGE_REPOSITORY [HOST]
push_body() {
    cat > "$1" <<EOF
{ "id": "evt-$RANDOM$RANDOM$RANDOM", "timestamp": "$4", "action": "push",
  "target": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1609,
              "digest": "$2", "length": 1609, "repository": "$5", "tag": "$3" },
  "request": { "id": "req-1", "host": "${6:-contoso.azurecr.io}", "method": "PUT",
               "useragent": "buildkit/v0.16" } }
EOF
}

# build_body FILE DIGEST TIME CODE_REPOSITORY RUN_ID
build_body() {
    cat > "$1" <<EOF
{ "images": [ { "digest": "$2" } ], "built_at": "$3",
  "run": { "provider": "github", "repository": "$4", "run_id": "$5", "run_attempt": "1",
           "commit": "3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d", "ref": "refs/heads/main" } }
EOF
}

# edge DIGEST CODE_REPOSITORY RUN_ID IMAGE_REPOSITORY [HOST] [TAG]: push, then the build that
# confirms it (one edge per request, so every edge has its own confirmation time).
edge() {
    local now
    now=$(iso_at 0)
    push_body "$T/p.json" "$1" "${6:-1.0}" "$now" "$4" "${5:-contoso.azurecr.io}"
    post_acr "$T/p.json"
    [ "$STATUS" == 202 ] || fail "push of $1 answered $STATUS $BODY"
    build_body "$T/b.json" "$1" "$now" "$2" "$3"
    post_build "$T/b.json"
    [ "$BODY" == '{"status":"accepted","events":1,"edges":1}' ] ||
        fail "build of $1 ($2 run $3) did not make one edge: $STATUS $BODY"
}

# walk QUERY LIMIT: follow next_cursor from the start; WALK = one line per mapping
# ("<digest> <registry>/<repository> <provider>/<run id>"); sets PAGES and SIZES too.
walk() {
    local cursor="" lines
    PAGES=0
    SIZES=""
    WALK=""
    while :; do
        if [ -n "$cursor" ]; then mappings "$1&limit=$2&cursor=$cursor"; else mappings "$1&limit=$2"; fi
        [ "$STATUS" == 200 ] || { fail "walk $1: page $PAGES answered $STATUS $BODY"; return; }
        lines=$(jq -r '.mappings[] | "\(.digest) \(.image.registry)/\(.image.repository) \(.build.provider)/\(.build.run_id)"' <<<"$BODY")
        [ -n "$lines" ] && WALK+="${WALK:+$'\n'}$lines"
        PAGES=$((PAGES + 1))
        SIZES="$SIZES$(jq '.mappings | length' <<<"$BODY") "
        cursor=$(jq -r '.next_cursor // empty' <<<"$BODY")
        [ -n "$cursor" ] || break
        [ "$PAGES" -lt 100 ] || { fail "walk $1: more than 100 pages"; return; }
    done
}

# ask QUERY: like mappings, and DIGS = the answer's digests in order, space separated.
ask() { mappings "$1"; DIGS=$(jq -r '[.mappings[].digest] | join(" ")' <<<"$BODY"); }

# digest_in SHARD SHARDS: a fresh digest that lives in that shard.
digest_in() {
    local d
    while :; do
        d=$(random_digest)
        [ "$(shard_of "$d" "$2")" == "$1" ] && { echo "$d"; return; }
    done
}

# digest_trimming YES|NO IMAGE_REPOSITORY RUN_ID: a fresh digest of shard 0 whose edge (edge
# DIGEST … RUN_ID IMAGE_REPOSITORY) trims its indexes (YES) or not (NO): park.lua trims on every
# 16th edge of a shard, counted in dm:{0}:ixn, so the counter is set for the next edge to be the
# 16th (YES: 15, INCR gives 16) or not (NO: 0, INCR gives 1).
digest_trimming() {
    if [ "$1" == YES ]; then rcli set 'dm:{0}:ixn' 15 >/dev/null; else rcli set 'dm:{0}:ixn' 0 >/dev/null; fi
    random_digest
}

# walked: the digests of the last walk, in order, space separated.
walked() { cut -d' ' -f1 <<<"$WALK" | paste -sd' ' -; }

# ---------------------------------------------------------------- one shard
for i in 1 2 3 4 5 6 7; do eval "d$i=\$(random_digest)"; done
edge "$d1" acme/api 101 team/api                         # 1
edge "$d2" acme/api 101 team/api                         # 2
edge "$d3" acme/web 201 team/web                         # 3
edge "$d4" acme/api 102 team/api                         # 4
edge "$d5" acme/web 201 team/web                         # 5
edge "$d6" acme/web 202 team/api                         # 6: web pipeline, api image repo
build_body "$T/b.json" "$d7" "$(iso_at 0)" acme/api 103  # 7: build first, the push joins
post_build "$T/b.json"
push_body "$T/p.json" "$d7" 2.0 "$(iso_at 0)" team/api
post_acr "$T/p.json"
check "build-first edge" '{"status":"accepted","events":1,"edges":1}' "$BODY"
# 8: d1 replicated to a second registry joins the still parked build of run 101
push_body "$T/p.json" "$d1" 1.0 "$(iso_at 0)" team/api contosoeu.azurecr.io
post_acr "$T/p.json"
check "geo-replica edge" '{"status":"accepted","events":1,"edges":1}' "$BODY"

mappings "repository=acme/api"
check "by repository: 200" 200 "$STATUS"
check "by repository: newest first" "$d1 $d7 $d4 $d2 $d1" "$(jq -r '[.mappings[].digest] | join(" ")' <<<"$BODY")"
check "by repository: newest is the replica" "contosoeu.azurecr.io 101" \
    "$(jq -r '.mappings[0] | "\(.image.registry) \(.build.run_id)"' <<<"$BODY")"
check "by repository: query echoed" '{"repository":"acme/api","limit":50}' "$(jq -c .query <<<"$BODY")"
check "by repository: no next cursor" null "$(jq -c .next_cursor <<<"$BODY")"
check "by repository: mapping data as in the record" "image team/api acme/api false" \
    "$(jq -r '.mappings[1] | "\(.relation) \(.image.repository) \(.build.repository) \(.build.verified)"' <<<"$BODY")"
check "confirmed_at never increases down the list" true \
    "$(jq '[.mappings[].confirmed_at] | . == (sort | reverse)' <<<"$BODY")"
check_match "confirmed_at is RFC 3339" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' \
    "$(jq -r '.mappings[0].confirmed_at' <<<"$BODY")"
rec=$(stream_events | jq -c --arg d "$d4" 'select(.subject == $d) | .data')
check "a mapping equals its record's data (plus confirmed_at)" "$rec" \
    "$(mappings "repository=acme/api"; jq -c --arg d "$d4" '.mappings[] | select(.digest == $d) | del(.confirmed_at)' <<<"$BODY")"
ask "repository=acme/web"
check "by the other repository" "$d6 $d5 $d3" "$DIGS"
ask "run=github/101"
check "by run" "$d1 $d2 $d1" "$DIGS"
check "by run: registries" "contosoeu.azurecr.io contoso.azurecr.io contoso.azurecr.io" \
    "$(jq -r '[.mappings[].image.registry] | join(" ")' <<<"$BODY")"
check "by run: query echoed" '{"run":"github/101","limit":50}' "$(jq -c .query <<<"$BODY")"
ask "run=github/201"
check "by another run" "$d5 $d3" "$DIGS"
ask "registry=contoso.azurecr.io&image_repository=team/api"
check "by registry repository" "$d7 $d6 $d4 $d2 $d1" "$DIGS"
check "by registry repository: query echoed" \
    '{"registry":"contoso.azurecr.io","image_repository":"team/api","limit":50}' "$(jq -c .query <<<"$BODY")"
check "by registry repository: pipelines that fed it" "acme/api acme/web" \
    "$(jq -r '[.mappings[].build.repository] | unique | join(" ")' <<<"$BODY")"
ask "registry=contosoeu.azurecr.io&image_repository=team/api"
check "by the replica's registry" "$d1" "$DIGS"
ask "registry=contoso.azurecr.io&image_repository=team/web"
check "by the other registry repository" "$d5 $d3" "$DIGS"
ask "registry=contoso.azurecr.io&image_repository=team%2Fweb"
check "percent-encoded names" "$d5 $d3" "$DIGS"
mappings "repository=acme/none"
check "no results: 200 with an empty list" '200 {"query":{"repository":"acme/none","limit":50},"mappings":[],"next_cursor":null}' "$STATUS $BODY"
ask "run=github/10"
check "nothing for a half-matching run" "" "$DIGS"

# tags merged later show in the index answers (they read the current mapping)
push_body "$T/p.json" "$d2" latest "$(iso_at 0)" team/api
post_acr "$T/p.json"
check "extra tag: no new edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"
mappings "run=github/101"
check "extra tag merged into the listed mapping" '["1.0","latest"]' \
    "$(jq -c --arg d "$d2" '.mappings[] | select(.digest == $d) | .image.tags' <<<"$BODY")"

# pagination: limit=2 walks every mapping exactly once
walk "repository=acme/api" 2; all=$WALK
check "walk limit=2: pages" "3 / 2 2 1 " "$PAGES / $SIZES"
check "walk limit=2: every mapping once, newest first" \
    "$d1 contosoeu.azurecr.io/team/api github/101,$d7 contoso.azurecr.io/team/api github/103,$d4 contoso.azurecr.io/team/api github/102,$d2 contoso.azurecr.io/team/api github/101,$d1 contoso.azurecr.io/team/api github/101" \
    "$(paste -sd, - <<<"$all")"
walk "registry=contoso.azurecr.io&image_repository=team/api" 1; all=$WALK
check "walk limit=1: five pages of one" "5 / 1 1 1 1 1 " "$PAGES / $SIZES"
check "walk limit=1: in order" "$d7 $d6 $d4 $d2 $d1" "$(cut -d' ' -f1 <<<"$all" | paste -sd' ' -)"
mappings "run=github/201&limit=2"
check "exactly limit results: no next cursor" "2 null" "$(jq -c '"\(.mappings | length) \(.next_cursor)"' <<<"$BODY" | tr -d '"')"
mappings "repository=acme/api&limit=2"
c1=$(jq -r .next_cursor <<<"$BODY")
check_match "cursor is base64url" '^[A-Za-z0-9_-]{168}$' "$c1"
# a new edge while walking lands before the walk's position: the walk neither repeats nor skips
d8=$(random_digest)
edge "$d8" acme/api 104 team/api
mappings "repository=acme/api&limit=10&cursor=$c1"
check "new edges do not shift a walk" "$d4 $d2 $d1" "$(jq -r '[.mappings[].digest] | join(" ")' <<<"$BODY")"
ask "repository=acme/api&limit=1"
check "the new edge is first from the start" "$d8" "$DIGS"

# entries whose mapping is gone (expired, evicted) are skipped and removed when read
dx=$(random_digest)
edge "$dx" acme/tmp 301 team/tmp
check "index entry written" 1 "$(rcli zcard 'dm:{0}:ix:repo:acme/tmp')"
rcli del "dm:{0}:m:$dx" >/dev/null
ask "repository=acme/tmp"
check "dead entry skipped" "" "$DIGS"
check "dead entry removed from the index" 0 "$(rcli zcard 'dm:{0}:ix:repo:acme/tmp')"
# more dead entries than one call examines (4 x limit): a short page, the cursor goes on
live=$(random_digest)
edge "$live" acme/many 401 team/many
dead=()
for i in 1 2 3 4 5 6; do
    dead[$i]=$(random_digest)
    edge "${dead[$i]}" acme/many 40$((i + 1)) team/many
done
for i in 1 2 3 4 5 6; do rcli del "dm:{0}:m:${dead[$i]}" >/dev/null; done
mappings "repository=acme/many&limit=1"
check "budget spent on dead entries: empty page with a cursor" "0 true" \
    "$(jq -r '"\(.mappings | length) \(.next_cursor != null)"' <<<"$BODY")"
check "4 dead entries removed by that call" 3 "$(rcli zcard 'dm:{0}:ix:repo:acme/many')"
walk "repository=acme/many" 1; all=$WALK
check "the walk still finds the live mapping" "$live" "$(cut -d' ' -f1 <<<"$all")"

# the longest code repository a build may name (run.repository, 2048 bytes) is indexed and can
# be asked for; UTF-8 names are echoed as they are
long=$(printf 'r%.0s' $(seq 2048))
dl=$(random_digest)
edge "$dl" "$long" 701 team/long
ask "repository=$long"
check "a 2048-byte repository can be queried" "$dl $long" "$DIGS $(jq -r .query.repository <<<"$BODY")"
mappings "repository=%C3%A9quipe/api"
check "a UTF-8 name is echoed" '200 {"repository":"équipe/api","limit":50}' "$STATUS $(jq -c .query <<<"$BODY")"

# expired entries are trimmed at most 1000 per call, and those left over are never answered,
# even when their mapping still exists (here: 1200 entries 91 days old pointing at a live one)
dold=$(random_digest)
edge "$dold" acme/old 801 team/old
id=$(rcli --raw hkeys "dm:{0}:m:$dold")
old_ms=$(( $(date +%s%3N) - 91 * 86400000 ))
args=()
for k in $(seq 1 1200); do args+=(0 "$(printf '%013d' $((9999999999999 - old_ms + k)))|$dold|$id"); done
rcli zadd 'dm:{0}:ix:repo:acme/old' "${args[@]}" >/dev/null
ask "repository=acme/old"
check "expired entries are not answered, though their mapping lives" "$dold" "$DIGS"
check "one read trims 1000 expired entries" 201 "$(rcli zcard 'dm:{0}:ix:repo:acme/old')"
ask "repository=acme/old&limit=1"
check "the next read trims the rest" "$dold 1" "$DIGS $(rcli zcard 'dm:{0}:ix:repo:acme/old')"
# and writes: every 16th edge of a shard (dm:{0}:ixn) trims each of its indexes, at most 1000
# expired entries each, so a backlog far larger than the 16 entries those writes add goes too;
# the other writes leave expired entries to it and to the reads
args=()
for k in $(seq 1 1200); do args+=(0 "$(printf '%013d' $((9999999999999 - old_ms + k)))|$dold|$id"); done
rcli zadd 'dm:{0}:ix:repo:acme/old2' "${args[@]}" >/dev/null
dw=$(digest_trimming NO team/old2 811)
edge "$dw" acme/old2 811 team/old2
check "a write that is not its shard's 16th edge trims nothing" 1201 "$(rcli zcard 'dm:{0}:ix:repo:acme/old2')"
dt=$(digest_trimming YES team/old2 812)
edge "$dt" acme/old2 812 team/old2
check "the shard's 16th edge's write trims 1000 expired entries" 202 "$(rcli zcard 'dm:{0}:ix:repo:acme/old2')"
dt2=$(digest_trimming YES team/old2 813)
edge "$dt2" acme/old2 813 team/old2
check "the next such write trims the rest" 3 "$(rcli zcard 'dm:{0}:ix:repo:acme/old2')"
ask "repository=acme/old2"
check "the writes' edges are answered" "$dt2 $dt $dw" "$DIGS"

# index keys: score 0, member layout, TTL
check "index member layout" 1 "$(rcli --raw zrange 'dm:{0}:ix:run:github/101' 0 0 | grep -cE '^[0-9]{13}\|sha256:[0-9a-f]{64}\|[0-9a-f]{40}$')"
check "scores are 0" 0 "$(rcli --raw zrange 'dm:{0}:ix:img:contoso.azurecr.io/team/api' 0 0 withscores | tail -n 1)"
ttl=$(rcli pttl 'dm:{0}:ix:repo:acme/api')
check_match "index keys expire with mapping_ttl (90 days by default)" '^77[0-9]{8}$' "$ttl"

# ---------------------------------------------------------------- bad requests
inv0=$(metric digestmap_invalid_requests_total)
NBAD=0
bad() { # bad DESCRIPTION QUERY EXPECTED_ERROR
    request GET "/v1/mappings$2" "${API[@]}"
    check "$1" "400 {\"error\":\"$3\"}" "$STATUS $BODY"
    NBAD=$((NBAD + 1))
}
Q='one of repository=<code repository>, run=<provider>/<run id>, or registry=<host>&image_repository=<path> is required'
bad "no parameters" "" "$Q"
bad "only a limit" "?limit=5" "$Q"
bad "two questions" "?repository=acme/api&run=github/1" \
    "ambiguous: give only one of repository, run, or registry with image_repository"
bad "three questions" "?repository=a&run=github/1&registry=r&image_repository=x" \
    "ambiguous: give only one of repository, run, or registry with image_repository"
bad "run without /" "?run=github" "run: must be <provider>/<run id>, e.g. github/9876543210"
bad "run with an empty id" "?run=github/" "run: must be <provider>/<run id>, e.g. github/9876543210"
bad "run with two /" "?run=github/1/2" "run: must be <provider>/<run id>, e.g. github/9876543210"
bad "registry alone" "?registry=contoso.azurecr.io" "image_repository: is required with registry"
bad "image_repository alone" "?image_repository=team/api" "registry: is required with image_repository"
bad "registry with a path" "?registry=contoso.azurecr.io/team&image_repository=api" \
    "registry: must be a registry host without '/', e.g. contoso.azurecr.io; the path goes in image_repository"
for l in 0 501 abc -1 1.5 1000000000000 ""; do
    if [ -z "$l" ]; then
        bad "limit empty" "?repository=a&limit=" "limit: must not be empty"
    else
        bad "limit $l" "?repository=a&limit=$l" "limit: must be an integer from 1 to 500"
    fi
done
bad "garbage cursor" "?repository=a&cursor=garbage" "cursor: not a next_cursor returned by this API"
bad "cursor with padding" "?repository=a&cursor=${c1:0:164}====" "cursor: not a next_cursor returned by this API"
bad "cursor in the standard alphabet" "?repository=a&cursor=%2B${c1:1}" \
    "cursor: not a next_cursor returned by this API"
bad "cursor cut short" "?repository=a&cursor=${c1:0:164}" "cursor: not a next_cursor returned by this API"
forged=$(printf '%s' "9999999999999|sha256:$(printf 'a%.0s' $(seq 64))|$(printf 'z%.0s' $(seq 40))" |
    base64 -w0 | tr '+/' '-_')
check_match "forged cursor has a cursor's shape" '^[A-Za-z0-9_-]{168}$' "$forged"
bad "cursor of a malformed member" "?repository=a&cursor=$forged" "cursor: not a next_cursor returned by this API"
bad "unknown parameter" "?repository=a&sort=asc&x=1" \
    "unknown parameter(s): sort, x (known: repository, run, registry, image_repository, limit, cursor)"
bad "names are case-sensitive" "?Repository=a" \
    "unknown parameter(s): Repository (known: repository, run, registry, image_repository, limit, cursor)"
bad "repeated parameter" "?repository=a&repository=b" "repository: given more than once"
bad "empty value" "?repository=" "repository: must not be empty"
bad "parameter without =" "?repository" "malformed query string: every parameter must be name=value, separated by &"
bad "NUL byte" "?repository=a%00b" "parameters must not contain NUL bytes (%00)"
bad "name too long" "?repository=$(printf 'a%.0s' $(seq 2049))" "repository: longer than 2048 bytes"
bad "name not UTF-8" "?repository=acme/ap%FF" "repository: must be UTF-8"
bad "run not UTF-8" "?run=github/1%C3" "run: must be UTF-8"
bad "image repository not UTF-8" "?registry=r&image_repository=team/%C0%AF" "image_repository: must be UTF-8"
check "every 400 counted" $((inv0 + NBAD)) "$(metric digestmap_invalid_requests_total)"
check "400s are logged with the field and reason" yes \
    "$(grep -q 'status=400 route=/v1/mappings field="limit" reason="must be an integer from 1 to 500"' "$T/daemon.log" && echo yes)"

request GET "/v1/mappings?repository=acme/api"
check "no credentials: 401" 401 "$STATUS"
request GET "/v1/mappings?repository=acme/api" -H 'Authorization: Bearer wrong'
check "bad credentials: 401" 401 "$STATUS"
request GET "/v1/mappings?bogus" -H 'Authorization: Bearer wrong'
check "credentials are checked before parameters" 401 "$STATUS"
request POST "/v1/mappings?repository=acme/api" "${API[@]}"
check "POST: 405" 405 "$STATUS"

# Redis down: 503 with Retry-After
stop_redis
answers_503() { mappings "repository=acme/api"; [ "$STATUS" == 503 ]; }
poll_until "$DM_WAIT" answers_503 || true
check "Redis down: 503" 503 "$STATUS"
check_match "Redis down: Retry-After" 'Retry-After: [0-9]+' "$HEADERS"
stop_daemon
start_redis

# ---------------------------------------------------------------- four shards
rcli flushall >/dev/null
start_daemon "$(default_config | jq '.redis.shards = 4')"
expected=()
for i in $(seq 1 12); do
    d=$(random_digest)
    edge "$d" acme/sharded $((500 + i % 3)) team/sharded
    expected=("$d" "${expected[@]}")
done
shards_used=$(rcli --scan --pattern 'dm:{*}:ix:repo:acme/sharded' | wc -l)
check_match "index entries spread over several shards" '^[234]$' "$shards_used"
want=$(printf '%s\n' "${expected[@]}" | paste -sd' ' -)
ask "repository=acme/sharded&limit=500"
check "4 shards: one page, newest first across shards" "$want" "$DIGS"
walk "repository=acme/sharded" 2; all=$WALK
check "4 shards: walk limit=2 pages" "6 / 2 2 2 2 2 2 " "$PAGES / $SIZES"
check "4 shards: walk limit=2 yields every mapping once, in order" "$want" "$(cut -d' ' -f1 <<<"$all" | paste -sd' ' -)"
walk "repository=acme/sharded" 5; all=$WALK
check "4 shards: walk limit=5" "3 / 5 5 2 | $want" "$PAGES / $SIZES| $(cut -d' ' -f1 <<<"$all" | paste -sd' ' -)"
walk "run=github/501" 3; all=$WALK
check "4 shards: by run" 4 "$(wc -l <<<"$all")"
check "4 shards: by registry repository" 12 \
    "$(mappings "registry=contoso.azurecr.io&image_repository=team/sharded"; jq '.mappings | length' <<<"$BODY")"

# Each shard is asked for its share of a page (limit 20 over 4 shards: 10), not the whole
# limit: with 12 of 16 mappings in shard 0, the first page stops at shard 0's 10th (the 14th
# overall) and the next page goes on from there. Oldest first: every 4th in shards 1-3.
expected=()
for i in $(seq 1 16); do
    if [ $((i % 4)) == 0 ]; then d=$(digest_in $((i / 4 % 3 + 1)) 4); else d=$(digest_in 0 4); fi
    edge "$d" acme/crowded $((800 + i)) team/crowded
    expected=("$d" "${expected[@]}")
done
want=$(printf '%s\n' "${expected[@]}" | paste -sd' ' -)
check "crowded shard holds 12" 12 "$(rcli zcard 'dm:{0}:ix:repo:acme/crowded')"
walk "repository=acme/crowded" 20
check "4 shards, limit 20: a page stops at the crowded shard's share" "2 / 14 2 | $want" "$PAGES / $SIZES| $(walked)"
walk "repository=acme/crowded" 3
check "4 shards, limit 3: every mapping once, in order" "$want" "$(walked)"
walk "repository=acme/crowded" 500
check "4 shards, limit 500: one page" "1 / 16 | $want" "$PAGES / $SIZES| $(walked)"

# A shard that spends its work budget (4 x limit) on dead entries stops the page at the last
# entry it examined: the other shard's older mappings must not overtake its live one. Shard 1
# holds older mappings (o1, o2); shard 0 one live mapping (la) under five newer dead ones.
o1=$(digest_in 1 4); edge "$o1" acme/frontier 901 team/frontier
o2=$(digest_in 1 4); edge "$o2" acme/frontier 902 team/frontier
la=$(digest_in 0 4); edge "$la" acme/frontier 903 team/frontier
for i in 1 2 3 4 5; do
    d=$(digest_in 0 4)
    edge "$d" acme/frontier $((903 + i)) team/frontier
    rcli del "dm:{0}:m:$d" >/dev/null
done
check "frontier case: 6 entries in shard 0, 2 in shard 1" "6 2" \
    "$(rcli zcard 'dm:{0}:ix:repo:acme/frontier') $(rcli zcard 'dm:{1}:ix:repo:acme/frontier')"
walk "repository=acme/frontier" 1
check "a shard's unfinished budget bounds the page: every live mapping once, in order" \
    "$la $o2 $o1" "$(walked)"
check "the dead entries were removed on the way" 1 "$(rcli zcard 'dm:{0}:ix:repo:acme/frontier')"
stop_daemon

# ---------------------------------------------------------------- expiry
# mapping_ttl_seconds 12: an edge leaves the indexes 12 s after it was confirmed, trimmed on the
# index's next write and on every read; quiet indexes vanish. No edge is waited for to age: edge
# a is made old by rewriting the confirmation time in its index entry (the member's first field,
# inverted ms, see above) to mapping_ttl + 1 s ago; b and c are fresh, with 12 s of slack. Only
# the last step waits, on observable state, for the index to expire.
rcli flushall >/dev/null
start_daemon "$(default_config '"window_seconds": 1, "grace_seconds": 9, "mapping_ttl_seconds": 12')"
TTL_MS=12000
ix='dm:{0}:ix:repo:acme/short'
redis_ms() { local t; t=($(rcli --raw time)); echo $((t[0] * 1000 + t[1] / 1000)); }
ea=$(random_digest)
before=$(redis_ms)
edge "$ea" acme/short 601 team/short
pttl=$(rcli pttl "$ix")
since=$(( $(redis_ms) - before ))
check "index key TTL is mapping_ttl (${pttl} ms, ${since} ms after the edge was made)" 1 \
    "$(( pttl <= TTL_MS && pttl >= TTL_MS - since - 1 ? 1 : 0 ))"
ask "repository=acme/short"
check "fresh edge listed" "$ea" "$DIGS"
eb=$(random_digest)
edge "$eb" acme/short 602 team/short
ask "repository=acme/short"
check "two edges listed" "$eb $ea" "$DIGS"
# the first edge ages past mapping_ttl while the key lives on (its TTL follows the second)
ma=$(rcli --raw zrange "$ix" 0 -1 | grep -F "|$ea|")
aged=$(( $(redis_ms) - TTL_MS - 1000 ))
rcli zrem "$ix" "$ma" >/dev/null
rcli zadd "$ix" 0 "$(printf '%013d' $((9999999999999 - aged)))|${ma#*|}" >/dev/null
check "expired entry still stored until a trimming write or a read" 2 "$(rcli zcard "$ix")"
ed=$(digest_trimming NO team/short 604)
edge "$ed" acme/short 604 team/short
check "a write that is not its shard's 16th edge leaves it" 3 "$(rcli zcard "$ix")"
ec=$(digest_trimming YES team/short 603)
edge "$ec" acme/short 603 team/short
check "the shard's 16th edge's write trims expired entries" 3 "$(rcli zcard "$ix")"
ask "repository=acme/short"
check "trimmed entry gone from the answer" "$ec $ed $eb" "$DIGS"
answers_empty() { ask "repository=acme/short"; [ "$STATUS $DIGS" == "200 " ]; }
poll_until "$DM_WAIT" answers_empty || true
check "after mapping_ttl the index answers empty" "200 " "$STATUS $DIGS"
check "and its key is gone" 0 "$(rcli exists "$ix" 'dm:{0}:ix:run:github/603' 'dm:{0}:ix:run:github/604' 'dm:{0}:ix:img:contoso.azurecr.io/team/short')"

finish
