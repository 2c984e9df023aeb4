#!/usr/bin/env bash
# Redis loses its script cache (SCRIPT FLUSH, or a restart the connection did not notice):
# EVALSHA answers NOSCRIPT and the daemon retries transparently with EVAL; nothing is refused.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

d=$(random_digest)
acr_push "$T/push.json" "$d" 1.0 "$(iso_at -5)"
post_acr "$T/push.json"
check "before the flush: accepted" 202 "$STATUS"
rcli script flush >/dev/null
build_event "$T/build.json" "$d" "$(iso_at -1)" 77
post_build "$T/build.json"
check "after SCRIPT FLUSH: accepted" 202 "$STATUS"
check "after SCRIPT FLUSH: the join still happens" '{"status":"accepted","events":1,"edges":1}' "$BODY"
rcli script flush >/dev/null
query_image "$d"
check "after SCRIPT FLUSH: the query script runs too" 200 "$STATUS"
check "one confirmed record" 1 "$(stream_count dev.digestmap.mapping.confirmed.v1)"
finish
