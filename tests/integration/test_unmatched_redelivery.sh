#!/usr/bin/env bash
# A push reported unmatched and then redelivered (same ACR event id), or a build posted again
# after its report, is parked again but not reported a second time; a new push of the same
# digest (new event id) is news and is reported. Retention 3 s; nothing is slept for: the
# redelivered items are awaited until the sweeper removed them (schedule empty, no item left).
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon "$(default_config '"window_seconds": 2, "grace_seconds": 1, "mapping_ttl_seconds": 60' |
    jq '.correlation.sweep_interval_ms = 100')"
UT=dev.digestmap.mapping.unmatched.v1

d=$(random_digest)
acr_push "$T/p.json" "$d" v1 "$(iso_at 0)" evt-first
post_acr "$T/p.json"
check "push accepted" 202 "$STATUS"
b=$(random_digest)
build_event "$T/b.json" "$b" "$(iso_at 0)" 4242
post_build "$T/b.json"
check "build accepted" 202 "$STATUS"
check "both reported once" 2 "$(wait_count 2 60 stream_type_count "$UT")"
id1=$(stream_events | jq -r "select(.type == \"$UT\" and .subject == \"$d\") | .id")

post_acr "$T/p.json"   # redelivery of the reported push
post_build "$T/b.json" # the same build again
check "redeliveries accepted" 202 "$STATUS"
check "both parked again" "1 1" "$(rcli hmget 'dm:{0}:stats' r b | paste -sd' ' -)"
# the sweeper removes them once expired: their schedule entries go last
check "the sweeper went through them" 0 "$(wait_count 0 60 rcli zcard 'dm:{0}:due')"
check "redelivered push and build parked, expired, not reported again" 2 "$(stream_type_count "$UT")"
check "their items were removed" "" "$(rcli keys 'dm:*:[rb]:*')"

acr_push "$T/p2.json" "$d" v2 "$(iso_at 0)" evt-second
post_acr "$T/p2.json"
check "a new push of the digest is reported" 3 "$(wait_count 3 60 stream_type_count "$UT")"
ids=$(stream_events | jq -r "select(.type == \"$UT\" and .subject == \"$d\") | .id" | sort -u | wc -l)
check "the two push reports have distinct ids" 2 "$ids"
check_match "first report id unchanged" "$id1" "$(stream_events | jq -r "select(.type == \"$UT\") | .id")"
finish
