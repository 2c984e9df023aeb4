#!/usr/bin/env bash
# Attack: a leaked CI token floods one digest with builds, a leaked registry token with
# locations and tags. The work per event stays bounded (limits.max_builds_per_digest,
# max_locations_per_digest, max_tags_per_location; docs/internet-redis.md): the push after
# 2,000 builds answers 202 well under a second, no script call reaches Redis's slow log at
# 250 ms, the stored hashes hold at most the bound (the most recent), the rest is counted in
# digestmap_items_evicted_total and never reported unmatched, and GET /v1/images pages the
# mappings (every one exactly once across the pages).
. "$(dirname "$0")/lib.sh"
REDIS_EXTRA_ARGS="--slowlog-log-slower-than 250000 --slowlog-max-len 128"
start_redis

# flood PORT N DIGEST FIRST_RUN [KIND]: POST N events over one keep-alive connection; prints
# "<status> <count>" lines. KIND "build" (default): builds of DIGEST with run ids FIRST_RUN..;
# "location": pushes of DIGEST to repositories team/r<i>; "tags": pushes of DIGEST to team/api
# with tag t<i>.
flood() {
    python3 - "$@" <<'EOF'
import http.client, json, sys, datetime
port, n, digest, first = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
kind = sys.argv[5] if len(sys.argv) > 5 else "build"
now = datetime.datetime.now(datetime.timezone.utc)
at = (now - datetime.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
codes = {}
for i in range(first, first + n):
    if kind == "build":
        path, tok = "/v1/builds", "ci-token"
        body = {"images": [{"name": "contoso.azurecr.io/team/api", "digest": digest, "tags": ["1.4.0"]}],
                "built_at": at,
                "run": {"provider": "github", "repository": "acme/api", "run_id": str(i), "run_attempt": "1"}}
    else:
        path, tok = "/v1/registry/acr", "acr-token"
        repo, tag = ("team/r%d" % i, "v1") if kind == "location" else ("team/api", "t%d" % i)
        body = {"id": "evt-%s-%d" % (kind, i), "timestamp": at, "action": "push",
                "target": {"mediaType": "application/vnd.oci.image.index.v1+json", "size": 1,
                           "digest": digest, "length": 1, "repository": repo, "tag": tag},
                "request": {"id": "r", "host": "contoso.azurecr.io", "method": "PUT"}}
    c.request("POST", path, json.dumps(body),
              {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    codes[r.status] = codes.get(r.status, 0) + 1
for k in sorted(codes):
    print(k, codes[k])
EOF
}

conf=$(default_config | jq '.limits += {"max_builds_per_digest": 256, "max_locations_per_digest": 16,
                                        "max_tags_per_location": 8}')
start_daemon "$conf"

# ---------------------------------------------------------------- 2,000 builds, then a push
d=$(random_digest)
check "2000 builds of one digest: all 202" "202 2000" "$(flood "$PORT" 2000 "$d" 1)"
check "at most 256 builds stored" 256 "$(rcli hlen "dm:{0}:b:$d")"
check "the most recent are kept" "1 0" \
    "$(rcli hexists "dm:{0}:b:$d" github/2000/1) $(rcli hexists "dm:{0}:b:$d" github/1744/1)"
check "the oldest kept is run 1745" 1 "$(rcli hexists "dm:{0}:b:$d" github/1745/1)"
check "evictions counted" 1744 "$(metric digestmap_items_evicted_total)"
check "parked-build counter follows the evictions" 256 "$(rcli hget 'dm:{0}:stats' b)"

acr_push "$T/p.json" "$d" 1.4.0 "$(iso_at -20)"
t=$(curl -s -o "$T/p.out" -w '%{http_code} %{time_total}' -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer acr-token' --data-binary "@$T/p.json" \
    "http://127.0.0.1:$PORT/v1/registry/acr")
check "the push: 202 with one edge per kept build" '202 {"status":"accepted","events":1,"edges":256}' \
    "${t% *} $(cat "$T/p.out")"
check "the push answers within 1 s (took ${t#* } s)" yes "$(awk -v s="${t#* }" 'BEGIN { print (s < 1.0) ? "yes" : "no" }')"
check "no script call in the slow log (>= 250 ms)" 0 "$(rcli slowlog len)"
[ "$(rcli slowlog len)" == 0 ] || rcli slowlog get 3 | head -20 >&2

# ---------------------------------------------------------------- GET /v1/images pages
# walk DIGEST: every page of 100; the run ids into $T/runs, the page sizes into $sizes.
walk() {
    local cursor="" pages=0 q
    : > "$T/runs"
    sizes=""
    while :; do
        q="limit=100"
        [ -n "$cursor" ] && q="$q&cursor=$cursor"
        request GET "/v1/images/$1?$q" -H 'Authorization: Bearer api-token'
        [ "$STATUS" == 200 ] || { fail "page $pages: status $STATUS $BODY"; break; }
        pages=$((pages + 1))
        sizes="$sizes $(jq '.mappings | length' <<<"$BODY")"
        jq -r '.mappings[].build.run_id' <<<"$BODY" >> "$T/runs"
        [ "${#BODY}" -lt 1000000 ] || fail "page $pages is ${#BODY} bytes"
        cursor=$(jq -r '.next_cursor // empty' <<<"$BODY")
        [ -n "$cursor" ] && [ "$pages" -lt 10 ] || break
    done
}
walk "$d"
check "three pages of 100, 100, 56" " 100 100 56" "$sizes"
check "every mapping once across the pages" "256 256" \
    "$(wc -l < "$T/runs") $(sort -u "$T/runs" | wc -l)"
check "exactly the kept builds' runs" "1745 2000" "$(sort -n "$T/runs" | sed -n '1p;$p' | paste -sd' ')"
cp "$T/runs" "$T/runs.indexed"
# Mappings stored before the id index existed (or with the index lost): the same walk.
rcli del "dm:{0}:mi:$d" > /dev/null
walk "$d"
check "without the id index: the same pages, the same order" " 100 100 56 same" \
    "$sizes $(cmp -s "$T/runs" "$T/runs.indexed" && echo same || echo different)"
request GET "/v1/images/$d" -H 'Authorization: Bearer api-token'
check "default page: 100 mappings, a next_cursor" "100 true" \
    "$(jq -r '"\(.mappings | length) \(.next_cursor != null)"' <<<"$BODY")"
check "every page lists the pending events" "256 1" \
    "$(jq -r '"\(.pending.build | length) \(.pending.registry | length)"' <<<"$BODY")"
request GET "/v1/images/$d?limit=500" -H 'Authorization: Bearer api-token'
check "limit 500: all 256 in one page, next_cursor null" "256 null" \
    "$(jq -r '"\(.mappings | length) \(.next_cursor)"' <<<"$BODY")"
E=$(jq -c '.mappings[0]' <<<"$BODY")
request GET "/v1/images/$d?limit=1" -H 'Authorization: Bearer api-token'
check "limit 1: the first of the sorted order" "$E" "$(jq -c '.mappings[0]' <<<"$BODY")"

bad() {
    request GET "/v1/images/$d?$1" -H 'Authorization: Bearer api-token'
    check "[$1]: 400 $2" "400 {\"error\":\"$2\"}" "$STATUS $BODY"
}
bad "limit=0" "limit: must be an integer from 1 to 500"
bad "limit=501" "limit: must be an integer from 1 to 500"
bad "limit=1x" "limit: must be an integer from 1 to 500"
bad "limit=" "limit: must not be empty"
bad "limit=5&limit=6" "limit: given more than once"
bad "cursor=abc" "cursor: not a next_cursor returned by this API"
bad "cursor=$(printf 'x%.0s' $(seq 1 56))" "cursor: not a next_cursor returned by this API"
bad "repository=acme/api" "unknown parameter(s): repository (known: limit, cursor, findings_limit, findings_cursor)"
bad "limit=5&x=1&y=2" "unknown parameter(s): x, y (known: limit, cursor, findings_limit, findings_cursor)"
bad "%00=1" "parameters must not contain NUL bytes (%00)"
invalid=$(metric digestmap_invalid_requests_total)
check "each refusal counted" 10 "$invalid"
check "each refusal logged" 10 "$(grep -c 'msg="request refused" status=400 route=/v1/images ' "$T/daemon.log")"

# ---------------------------------------------------------------- locations and tags
d2=$(random_digest)
check "40 locations of one digest: all 202" "202 40" "$(flood "$PORT" 40 "$d2" 1 location)"
check "at most 16 locations stored" 16 "$(rcli hlen "dm:{0}:r:$d2")"
check "the most recent locations are kept" "1 0" \
    "$(rcli hexists "dm:{0}:r:$d2" contoso.azurecr.io/team/r40) $(rcli hexists "dm:{0}:r:$d2" contoso.azurecr.io/team/r24)"
check "evictions counted (builds and locations)" $((1744 + 24)) "$(metric digestmap_items_evicted_total)"

d3=$(random_digest)
check "100 tags at one location: all 202" "202 100" "$(flood "$PORT" 100 "$d3" 1 tags)"
check "at most 8 tags stored, the most recent" '["t93","t94","t95","t96","t97","t98","t99","t100"]' \
    "$(rcli hget "dm:{0}:r:$d3" contoso.azurecr.io/team/api | jq -c .g)"
build_event "$T/b3.json" "$d3" "$(iso_at -10)" 9001
post_build "$T/b3.json"
check "a build joins" 1 "$(jq .edges <<<"$BODY")"
flood "$PORT" 5 "$d3" 101 tags > /dev/null
query_image "$d3"
check "the mapping keeps the 8 most recent tags" '["t98","t99","t100","t101","t102","t103","t104","t105"]' \
    "$(jq -c '.mappings[0].image.tags' <<<"$BODY")"
jq --arg d "$(random_digest)" '.images[0].digest = $d | .images[0].tags = [range(0; 50) | "b\(.)"]' \
    "$T/b3.json" > "$T/b4.json"
post_build "$T/b4.json"
d4=$(jq -r '.images[0].digest' "$T/b4.json")
check "a build's 50 tags: the last 8 stored" '["b42","b43","b44","b45","b46","b47","b48","b49"]' \
    "$(rcli hget "dm:{0}:b:$d4" github/9001/1 | jq -c .g)"
stop_daemon

# ---------------------------------------------------------------- evicted items are never reported
conf=$(default_config '"window_seconds": 1, "grace_seconds": 0, "sweep_interval_ms": 50' |
    jq '.limits += {"max_builds_per_digest": 4}')
start_daemon "$conf"
d5=$(random_digest)
check "10 builds of one digest" "202 10" "$(flood "$PORT" 10 "$d5" 1)"
check "4 kept" 4 "$(rcli hlen "dm:{0}:b:$d5")"
# Wait until the sweeper is done with the digest: nothing parked, nothing scheduled.
swept() { echo "$(rcli exists "dm:{0}:b:$d5") $(rcli zscore 'dm:{0}:due' "b${d5#sha256:}")"; }
for _ in $(seq 1 300); do
    [ "$(swept)" == "0 " ] && break
    sleep 0.1
done
check "swept" "0 " "$(swept)"
check "only the 4 kept builds reported unmatched" 4 \
    "$(stream_events | jq -r --arg d "$d5" 'select(.subject == $d and .type == "dev.digestmap.mapping.unmatched.v1") | .data.build.run_id' | sort -u | wc -l)"
check "the reported are the most recent" "7 8 9 10" \
    "$(stream_events | jq -r --arg d "$d5" 'select(.subject == $d) | .data.build.run_id' | sort -n | paste -sd' ')"
finish
