#!/usr/bin/env bash
# Join window (inclusive, payload times) and clock-skew replacement, with window_seconds 60 and
# max_clock_skew_seconds 3600. No waiting: every time is written into the payloads.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon "$(default_config '"window_seconds": 60, "max_clock_skew_seconds": 3600')"

# One base second for every timestamp, so that differences are exact (same fraction).
base=$(date +%s)
at() { date -u -d "@$((base + $1))" +%Y-%m-%dT%H:%M:%S.123456789Z; }

run=100
# pair ORDER DELTA EXPECTED_EDGES: push at base-200, build at base-200+DELTA (DELTA may be < 0);
# ORDER is push-first or build-first.
pair() {
    local order=$1 delta=$2 want=$3 d
    d=$(random_digest)
    run=$((run + 1))
    acr_push "$T/p.json" "$d" 1.0.0 "$(at -200)"
    build_event "$T/b.json" "$d" "$(at $((-200 + delta)))" "$run"
    if [ "$order" == push-first ]; then
        post_acr "$T/p.json"
        check "$order delta=$delta: first answer" '{"status":"accepted","events":1,"edges":0}' "$BODY"
        post_build "$T/b.json"
    else
        post_build "$T/b.json"
        check "$order delta=$delta: first answer" '{"status":"accepted","events":1,"edges":0}' "$BODY"
        post_acr "$T/p.json"
    fi
    check "$order delta=$delta: second answered 202" 202 "$STATUS"
    check "$order delta=$delta: second answer" "{\"status\":\"accepted\",\"events\":1,\"edges\":$want}" "$BODY"
    query_image "$d"
    check "$order delta=$delta: mappings in the query answer" "$want" "$(jq '.mappings | length' <<<"$BODY")"
}

for order in push-first build-first; do
    pair "$order" 59 1
    pair "$order" -59 1
    pair "$order" 60 1
    pair "$order" -60 1
    pair "$order" 61 0
    pair "$order" -61 0
done
check "edges from the window pairs" 8 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
check "no skew replacement so far" 0 "$(metric digestmap_skew_replaced_total)"

# Skew: a push time 2 h old (beyond max_clock_skew 3600) is replaced by the arrival time, so it
# joins a build of 10 s ago; without the replacement the gap would be ~7190 s > window.
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.0.0 "$(at -7200)"
post_acr "$T/p.json"
check "old push answered" '{"status":"accepted","events":1,"edges":0}' "$BODY"
check "skew metric counts the old push" 1 "$(metric digestmap_skew_replaced_total)"
build_event "$T/b.json" "$d" "$(at -10)" 900
post_build "$T/b.json"
check "build joins the push whose time was replaced" '{"status":"accepted","events":1,"edges":1}' "$BODY"
check "skew metric unchanged by an in-range build" 1 "$(metric digestmap_skew_replaced_total)"

# Control: 30 min old is within max_clock_skew, so it is kept and stays outside the window.
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.0.0 "$(at -1800)"
post_acr "$T/p.json"
build_event "$T/b.json" "$d" "$(at -10)" 901
post_build "$T/b.json"
check "30 min old push is not replaced and does not join" '{"status":"accepted","events":1,"edges":0}' "$BODY"
check "skew metric unchanged for a 30 min old push" 1 "$(metric digestmap_skew_replaced_total)"

# Build side: built_at 2 h in the future is replaced too, and joins a push of 5 s ago.
d=$(random_digest)
acr_push "$T/p.json" "$d" 1.0.0 "$(at -5)"
post_acr "$T/p.json"
build_event "$T/b.json" "$d" "$(at 7200)" 902
post_build "$T/b.json"
check "future build time replaced, joins" '{"status":"accepted","events":1,"edges":1}' "$BODY"
check "skew metric counts the future build" 2 "$(metric digestmap_skew_replaced_total)"

check "total confirmed records" 10 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
check "edges metric" 10 "$(metric digestmap_edges_emitted_total)"
finish
