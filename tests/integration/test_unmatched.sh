#!/usr/bin/env bash
# Sweeper: expired parked items that never joined give exactly one mapping.unmatched record
# (side registry or build); matched items, untagged platform manifests (by default) and deleted
# untagged pushes are not reported; late events only give unmatched records; the sweeper
# removes what it reports, and the metrics and gauges agree.
# window 2 s + grace 8 s = 10 s retention, sweeps every 100 ms. No wall-clock margin: joins are
# decided by the event times in the payloads; the two sides of a pair are posted back to back
# (10 s of retention is slack, not a margin a loaded machine eats); expiry is read from the
# schedule (Redis's clock) and reports are awaited, never slept for.
. "$(dirname "$0")/lib.sh"
start_redis

UT=dev.digestmap.mapping.unmatched.v1
CT=dev.digestmap.mapping.confirmed.v1
RETENTION_MS=10000
CORR='"window_seconds": 2, "grace_seconds": 8, "mapping_ttl_seconds": 60, "sweep_interval_ms": 100'
start_daemon "$(default_config "$CORR")"

now_ms() { date +%s%3N; }
# expiry_of SIDE DIGEST [FIELD]: the expiry (ms, Redis clock) of a parked item: its schedule
# entry, or with FIELD (a push's location) the item itself, which a redelivery extends.
expiry_of() {
    if [ $# -ge 3 ]; then
        rcli --raw hget "dm:{0}:$1:$2" "$3" | jq -r .x
    else
        rcli zscore 'dm:{0}:due' "$1${2#sha256:}"
    fi
}
# iso_to_ms TIME: an RFC 3339 time with milliseconds as ms since the epoch.
iso_to_ms() { date -u -d "$1" +%s%3N; }
# records TYPE DIGEST: how many records of TYPE have that subject.
records() { stream_events | jq -c --arg t "$1" --arg d "$2" 'select(.type == $t and .subject == $d)' | grep -c . || true; }
# record TYPE DIGEST: the (first) record of TYPE with that subject.
record() { stream_events | jq -c -s --arg t "$1" --arg d "$2" '[.[] | select(.type == $t and .subject == $d)][0] // empty'; }
# untagged platform-manifest push FILE DIGEST TIME EVENT_ID
manifest_push() {
    jq --arg d "$2" --arg t "$3" --arg id "$4" '.target.digest = $d | .timestamp = $t | .id = $id' \
        "$DM_FIXTURES/acr/push-platform-manifest.json" > "$1"
}
# build with an index and two platform manifests: FILE INDEX M1 M2 TIME RUN_ID
multiarch_build() {
    cat > "$1" <<JSON
{ "images": [ { "name": "contoso.azurecr.io/team/api", "digest": "$2", "tags": ["2.0.0"],
                "manifests": ["$3", "$4"] } ],
  "built_at": "$5",
  "run": { "provider": "github", "repository": "acme/api", "run_id": "$6", "run_attempt": "1" } }
JSON
}

# ---------------------------------------------------------------- phase 1: report_untagged false
dA=$(random_digest) # tagged push, never built             -> unmatched registry
dB=$(random_digest) # build, never pushed                  -> unmatched build
dC=$(random_digest) # push + build at once                 -> edge, never reported
dD=$(random_digest) # push, build 1 s later by event time   -> edge, never reported
dE=$(random_digest) # untagged platform-manifest push      -> not reported by default
dI=$(random_digest) # untagged index push                  -> reported (indexes always are)
dJ=$(random_digest) # build of an index + 2 manifests      -> only the index reported
mJ1=$(random_digest)
mJ2=$(random_digest)
dG=$(random_digest) # build now, push (event time in window) after the build expired
dR=$(random_digest) # tagged push, redelivered later        -> one report, retention after the redelivery
dM=$(random_digest) # docker v2 manifest push with an empty tag -> untagged, not reported

tA=$(iso_at 0)
acr_push "$T/a.json" "$dA" 1.0.0 "$tA" evt-unmatched-a
beforeA=$(now_ms)
post_acr "$T/a.json"
afterA=$(now_ms)
check "A push parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"
expA=$(expiry_of r "$dA")
check "A expires window + grace after its arrival (Redis clock; arrival $beforeA..$afterA, expiry $expA)" 1 \
    "$(( expA >= beforeA + RETENTION_MS && expA <= afterA + RETENTION_MS ? 1 : 0 ))"

tB=$(iso_at -1)
build_event "$T/b.json" "$dB" "$tB" 2001
post_build "$T/b.json"
check "B build parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"

acr_push "$T/c.json" "$dC" 1.0.0 "$(iso_at 0)"
post_acr "$T/c.json"
build_event "$T/cb.json" "$dC" "$(iso_at 0)" 2002
post_build "$T/cb.json"
check "C joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"

# D: the build was built 1 s after the push (event times), inside the 2 s window.
tD=$(date +%s)
acr_push "$T/d.json" "$dD" 1.0.0 "$(date -u -d "@$tD" +%Y-%m-%dT%H:%M:%S.000Z)"
post_acr "$T/d.json"
check "D push parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"
build_event "$T/db.json" "$dD" "$(date -u -d "@$((tD + 1))" +%Y-%m-%dT%H:%M:%S.000Z)" 2005
post_build "$T/db.json"
check "D build, 1 s later by event time (in window), joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"

manifest_push "$T/e.json" "$dE" "$(iso_at 0)" evt-untagged-e
post_acr "$T/e.json"
check "E untagged manifest push parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"

acr_push "$T/i.json" "$dI" "" "$(iso_at 0)" evt-untagged-index
post_acr "$T/i.json"
check "I untagged index push parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"

multiarch_build "$T/j.json" "$dJ" "$mJ1" "$mJ2" "$(iso_at 0)" 2003
post_build "$T/j.json"
check "J build parks index and manifests" '{"status":"accepted","events":3,"edges":0}' "$BODY"

tG=$(date +%s)
build_event "$T/g.json" "$dG" "$(date -u -d "@$tG" +%Y-%m-%dT%H:%M:%S.000Z)" 2004
post_build "$T/g.json"
check "G build parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"

acr_push "$T/r.json" "$dR" 1.0.0 "$(iso_at 0)" evt-redelivered-r
post_acr "$T/r.json"
check "R push parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"
expR1=$(expiry_of r "$dR" contoso.azurecr.io/team/api)

jq --arg d "$dM" --arg t "$(iso_at 0)" '.target.digest = $d | .timestamp = $t | .id = "evt-empty-tag-m"
    | .target.mediaType = "application/vnd.docker.distribution.manifest.v2+json"' \
    "$DM_FIXTURES/acr/push-untagged-empty-tag.json" > "$T/m.json"
post_acr "$T/m.json"
check "M empty-tag manifest push parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"

# parked: pushes A C D E I R M; builds B C D J J1 J2 G
check "parked registry gauge" 7 "$(wait_count 7 60 metric digestmap_parked_registry_items)"
check "parked build gauge" 7 "$(wait_count 7 60 metric digestmap_parked_build_items)"
check "redis stats hash" "7 7" "$(rcli hmget 'dm:{0}:stats' r b | tr '\n' ' ' | sed 's/ $//')"

# R: redelivered; the redelivery moves its expiry (the item's, the schedule keeps the earlier
# one and the sweeper reschedules it).
while [ "$(now_ms)" -le $((expR1 - RETENTION_MS)) ]; do sleep 0.01; done # a later ms than the first
beforeR=$(now_ms)
post_acr "$T/r.json"
afterR=$(now_ms)
check "R redelivered (extends its retention)" '{"status":"accepted","events":1,"edges":0}' "$BODY"
expR=$(expiry_of r "$dR" contoso.azurecr.io/team/api)
check "R's expiry moved to window + grace after the redelivery ($expR1 -> $expR, arrival $beforeR..$afterR)" 1 \
    "$(( expR > expR1 && expR >= beforeR + RETENTION_MS && expR <= afterR + RETENTION_MS ? 1 : 0 ))"

# expected unmatched so far: registry A I R, build B J G
check "six unmatched records" 6 "$(wait_count 6 60 stream_type_count "$UT")"
# G: once the build's unmatched record is out, push with an event time 1 s after the build
# (inside the window): the build is gone, so no edge; the push is reported later on its own.
check "G build reported unmatched" 1 "$(records "$UT" "$dG")"
acr_push "$T/gp.json" "$dG" 3.0.0 "$(date -u -d "@$((tG + 1))" +%Y-%m-%dT%H:%M:%S.000Z)" evt-late-g
post_acr "$T/gp.json"
check "G late push parked, no edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"
check "G late push: skew not replaced (event time kept)" 0 "$(metric digestmap_skew_replaced_total)"

# expected unmatched: registry A I G R, build B J G
check "seven unmatched records" 7 "$(wait_count 7 60 stream_type_count "$UT")"
# Everything expired: the sweeper removed every parked item (G's push expires last; once the
# gauges are 0 and the schedule is empty, every sweep since the reports had its chance to
# report something twice).
check "parked registry gauge back to 0" 0 "$(wait_count 0 60 metric digestmap_parked_registry_items)"
check "parked build gauge back to 0" 0 "$(wait_count 0 60 metric digestmap_parked_build_items)"
check "schedule empty" 0 "$(wait_count 0 60 rcli zcard 'dm:{0}:due')"
check "still seven unmatched records: nothing is reported twice" 7 "$(stream_type_count "$UT")"
check "two confirmed records (C, D)" 2 "$(stream_type_count "$CT")"
for d in "$dA" "$dB" "$dI" "$dJ" "$dR"; do
    check "one unmatched record for ${d:7:8}" 1 "$(records "$UT" "$d")"
done
check "G: two unmatched records (build, then push)" "build registry" \
    "$(stream_events | jq -r --arg d "$dG" 'select(.subject == $d) | .data.side' | tr '\n' ' ' | sed 's/ $//')"
check "G: no edge" 0 "$(records "$CT" "$dG")"
for d in "$dC" "$dD"; do
    check "matched ${d:7:8}: one edge" 1 "$(records "$CT" "$d")"
    check "matched ${d:7:8}: never unmatched" 0 "$(records "$UT" "$d")"
done
check "E untagged manifest push not reported" 0 "$(records "$UT" "$dE")"
check "M empty-tag manifest push not reported" 0 "$(records "$UT" "$dM")"
timeR=$(iso_to_ms "$(record "$UT" "$dR" | jq -r .time)")
check "R reported once its redelivery expired ($timeR >= $expR), not at its first expiry ($expR1)" 1 \
    "$(( timeR >= expR ? 1 : 0 ))"
check "J manifest 1 not reported" 0 "$(records "$UT" "$mJ1")"
check "J manifest 2 not reported" 0 "$(records "$UT" "$mJ2")"

# the registry record, field by field
ev=$(record "$UT" "$dA")
check "A specversion" 1.0 "$(jq -r .specversion <<<"$ev")"
check "A source" digestmap "$(jq -r .source <<<"$ev")"
check "A type" "$UT" "$(jq -r .type <<<"$ev")"
check "A subject" "$dA" "$(jq -r .subject <<<"$ev")"
check "A datacontenttype" application/json "$(jq -r .datacontenttype <<<"$ev")"
check_match "A id is a hash" '^[0-9a-f]{40}$' "$(jq -r .id <<<"$ev")"
check_match "A time has ms" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' "$(jq -r .time <<<"$ev")"
timeA=$(iso_to_ms "$(jq -r .time <<<"$ev")")
check "A reported at its expiry or after, never before ($timeA >= $expA)" 1 "$(( timeA >= expA ? 1 : 0 ))"
# sweeps every 100 ms: 30 s late would be a stalled sweeper, not a loaded machine
check "A reported soon after its expiry ($((timeA - expA)) ms <= 30000)" 1 "$(( timeA - expA <= 30000 ? 1 : 0 ))"
check "A data members" '["side","digest","image","window_seconds"]' "$(jq -c '.data | keys_unsorted' <<<"$ev")"
check "A side" registry "$(jq -r .data.side <<<"$ev")"
check "A digest" "$dA" "$(jq -r .data.digest <<<"$ev")"
check "A window_seconds" 2 "$(jq -c .data.window_seconds <<<"$ev")"
check "A image members" '["registry","repository","tags","source","event_id","pushed_at","media_type"]' \
    "$(jq -c '.data.image | keys_unsorted' <<<"$ev")"
check "A registry" contoso.azurecr.io "$(jq -r .data.image.registry <<<"$ev")"
check "A repository" team/api "$(jq -r .data.image.repository <<<"$ev")"
check "A tags" '["1.0.0"]' "$(jq -c .data.image.tags <<<"$ev")"
check "A source" acr "$(jq -r .data.image.source <<<"$ev")"
check "A event_id" evt-unmatched-a "$(jq -r .data.image.event_id <<<"$ev")"
check "A pushed_at (ms)" "${tA%??????Z}Z" "$(jq -r .data.image.pushed_at <<<"$ev")"
check "A media_type" application/vnd.oci.image.index.v1+json "$(jq -r .data.image.media_type <<<"$ev")"
check "A stream entry type/digest fields" 1 \
    "$(rcli --raw xrange 'dm:{0}:out' - + | awk 'prev=="type"{t=$0} prev=="digest"{print t, $0} {prev=$0}' |
        grep -c "^$UT $dA\$" || true)"

# the build record
ev=$(record "$UT" "$dB")
check "B data members" '["side","digest","relation","name","build","window_seconds"]' "$(jq -c '.data | keys_unsorted' <<<"$ev")"
check "B side" build "$(jq -r .data.side <<<"$ev")"
check "B digest" "$dB" "$(jq -r .data.digest <<<"$ev")"
check "B relation" image "$(jq -r .data.relation <<<"$ev")"
check "B name" contoso.azurecr.io/team/api "$(jq -r .data.name <<<"$ev")"
check "B window_seconds" 2 "$(jq -c .data.window_seconds <<<"$ev")"
check "B build" "{\"provider\":\"github\",\"repository\":\"acme/api\",\"run_id\":\"2001\",\"run_attempt\":\"1\",\"commit\":\"3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d\",\"ref\":\"refs/heads/main\",\"actor\":\"mona\",\"built_at\":\"${tB%??????Z}Z\",\"verified\":false}" \
    "$(jq -c '.data.build | del(.workflow)' <<<"$ev")"
check "B workflow" release "$(jq -r .data.build.workflow <<<"$ev")"

ev=$(record "$UT" "$dI")
check "I untagged index: tags empty" '[]' "$(jq -c .data.image.tags <<<"$ev")"
ev=$(record "$UT" "$dJ")
check "J index record relation" image "$(jq -r .data.relation <<<"$ev")"
check "J index record has no index member" null "$(jq -r .data.index <<<"$ev")"
ev=$(record "$UT" "$dG")
check "G first record is the build" build "$(jq -r .data.side <<<"$ev")"
ev=$(stream_events | jq -c --arg d "$dG" 'select(.subject == $d and .data.side == "registry")')
check "G push record event_id" evt-late-g "$(jq -r .data.image.event_id <<<"$ev")"

check "unmatched registry metric" 4 "$(wait_count 4 60 metric digestmap_unmatched_registry_total)"
check "unmatched build metric" 3 "$(metric digestmap_unmatched_build_total)"
check "edges metric" 2 "$(metric digestmap_edges_emitted_total)"

check "no parked push keys" "" "$(rcli keys 'dm:*:r:*')"
check "no parked build keys" "" "$(rcli keys 'dm:*:b:*')"
check "mappings kept" 2 "$(rcli keys 'dm:*:m:*' | grep -c . || true)"
check_match "sweep lag gauge is small (< 10 s; sweeps every 100 ms)" '^[0-9]{1,4}$' "$(metric digestmap_sweep_lag_ms)"
stop_daemon

# ---------------------------------------------------------------- phase 2: report_untagged true
rcli flushall >/dev/null
start_daemon "$(default_config "$CORR, \"report_untagged\": true")"
dE2=$(random_digest) # untagged platform-manifest push -> reported now
dF=$(random_digest)  # untagged platform-manifest push, then deleted -> not reported
dK=$(random_digest)  # build of an index + 2 manifests -> three build records
mK1=$(random_digest)
mK2=$(random_digest)

tE2=$(iso_at 0)
manifest_push "$T/e2.json" "$dE2" "$tE2" evt-untagged-e2
post_acr "$T/e2.json"
check "E2 parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"
manifest_push "$T/f.json" "$dF" "$(iso_at 0)" evt-untagged-f
post_acr "$T/f.json"
check "F parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"
jq --arg d "$dF" --arg t "$(iso_at 0)" \
    '.target.digest = $d | .timestamp = $t | .target.mediaType = "application/vnd.oci.image.manifest.v1+json"' \
    "$DM_FIXTURES/acr/delete.json" > "$T/fdel.json"
post_acr "$T/fdel.json"
check "F delete accepted" 202 "$STATUS"
multiarch_build "$T/k.json" "$dK" "$mK1" "$mK2" "$(iso_at 0)" 3001
post_build "$T/k.json"
check "K parked" '{"status":"accepted","events":3,"edges":0}' "$BODY"

check "four unmatched records" 4 "$(wait_count 4 60 stream_type_count "$UT")"
check "phase 2 parked registry gauge 0" 0 "$(wait_count 0 60 metric digestmap_parked_registry_items)"
check "phase 2 parked build gauge 0" 0 "$(wait_count 0 60 metric digestmap_parked_build_items)"
check "phase 2 schedule empty" 0 "$(wait_count 0 60 rcli zcard 'dm:{0}:due')"
check "still four unmatched records" 4 "$(stream_type_count "$UT")"
ev=$(record "$UT" "$dE2")
check "E2 side" registry "$(jq -r .data.side <<<"$ev")"
check "E2 tags" '[]' "$(jq -c .data.image.tags <<<"$ev")"
check "E2 media_type" application/vnd.oci.image.manifest.v1+json "$(jq -r .data.image.media_type <<<"$ev")"
check "E2 pushed_at" "${tE2%??????Z}Z" "$(jq -r .data.image.pushed_at <<<"$ev")"
check "F deleted: no unmatched record" 0 "$(records "$UT" "$dF")"
check "F deleted: one image.deleted record" 1 "$(records dev.digestmap.image.deleted.v1 "$dF")"
check "K index reported" 1 "$(records "$UT" "$dK")"
for m in "$mK1" "$mK2"; do
    ev=$(record "$UT" "$m")
    check "K manifest ${m:7:8} reported once" 1 "$(records "$UT" "$m")"
    check "K manifest ${m:7:8} relation" platform-manifest "$(jq -r .data.relation <<<"$ev")"
    check "K manifest ${m:7:8} index" "$dK" "$(jq -r .data.index <<<"$ev")"
    check "K manifest ${m:7:8} run id" 3001 "$(jq -r .data.build.run_id <<<"$ev")"
    check "K manifest ${m:7:8} members" '["side","digest","relation","index","name","build","window_seconds"]' \
        "$(jq -c '.data | keys_unsorted' <<<"$ev")"
done
check "phase 2 unmatched registry metric" 1 "$(wait_count 1 60 metric digestmap_unmatched_registry_total)"
check "phase 2 unmatched build metric" 3 "$(metric digestmap_unmatched_build_total)"
check "phase 2 no parked keys" "" "$(rcli keys 'dm:*:[rb]:*')"
finish
