#!/usr/bin/env bash
# Two digestmapd instances on one Redis (start_daemon + start_daemon2, same unix socket).
# How it is run: every request body is written to a file first; a job list names (port, route,
# token, body file) per request; the list is shuffled (shuf) and sent with `xargs -P 16 curl`,
# so requests of one digest race each other on both daemons and both workers of each.
# (a) 300 digests x (push, build), each request sent twice, the two copies of each to different
#     daemons: exactly 300 confirmed records with 300 distinct ids, every answer 202.
# (b) window 2 s, both instances sweeping every 100 ms: 100 pushes (no builds) spread over both
#     daemons give exactly 100 unmatched records, one per digest.
. "$(dirname "$0")/lib.sh"
start_redis

CT=dev.digestmap.mapping.confirmed.v1
UT=dev.digestmap.mapping.unmatched.v1
ACR_ROUTE='digestmap_requests_total{route="/v1/registry/acr",status="202"}'
BUILD_ROUTE='digestmap_requests_total{route="/v1/builds",status="202"}'

# send JOBFILE OUTFILE: shuffle the jobs, run them 16 at a time, one HTTP status per line.
send() {
    shuf "$1" | xargs -P 16 -n 4 bash -c \
        'curl -s -o /dev/null -w "%{http_code}\n" --max-time 120 -H "Content-Type: application/json" \
             -H "Authorization: Bearer $3" --data-binary "@$4" "http://127.0.0.1:$1$2"' _ > "$2"
}
# digests N: N fresh digests, one a line (one process instead of N).
digests() { head -c $((32 * $1)) /dev/urandom | od -An -tx1 -v | tr -d ' \n' | fold -w 64 | sed 's/^/sha256:/'; echo; }
sum2() { echo $(( $(metric_at "$PORT" "$1") + $(metric_at "$PORT2" "$1") )); }

# ------------------------------------------------------------------------------ (a) joins
CORR='"sweep_interval_ms": 100'
start_daemon "$(default_config "$CORR")"
start_daemon2 "$(default_config "$CORR")"
check "two daemons on two ports" 1 "$([ "$PORT" != "$PORT2" ] && echo 1 || echo 0)"

mkdir -p "$T/a"
: > "$T/a/jobs"
digests 300 | sed '/^$/d' > "$T/a/digests"
tp=$(iso_at -20)
tb=$(iso_at -10)
i=0
while read -r d; do
    i=$((i + 1))
    acr_push "$T/a/p$i.json" "$d" "1.0.$i" "$tp" "evt-a-$i"
    build_event "$T/a/b$i.json" "$d" "$tb" "$((70000 + i))"
    # the two copies of the push and of the build go to different daemons
    printf '%s /v1/registry/acr acr-token %s\n' "$PORT" "$T/a/p$i.json" "$PORT2" "$T/a/p$i.json" >> "$T/a/jobs"
    printf '%s /v1/builds ci-token %s\n' "$PORT2" "$T/a/b$i.json" "$PORT" "$T/a/b$i.json" >> "$T/a/jobs"
done < "$T/a/digests"
check "1200 requests prepared" 1200 "$(wc -l < "$T/a/jobs")"
send "$T/a/jobs" "$T/a/codes"
check "1200 answers" 1200 "$(wc -l < "$T/a/codes")"
check "every answer 202" "1200 202" "$(sort "$T/a/codes" | uniq -c | awk '{$1=$1; print}' | tr '\n' ' ' | sed 's/ $//')"

check "exactly 300 confirmed records" 300 "$(stream_type_count "$CT")"
check "no other records" 300 "$(rcli xlen 'dm:{0}:out')"
check "300 distinct edge ids" 300 "$(stream_events | jq -r .id | sort -u | wc -l)"
check "300 distinct digests" 300 "$(stream_events | jq -r .subject | sort -u | wc -l)"
check "the digests sent" "$(sort "$T/a/digests")" "$(stream_events | jq -r .subject | sort)"
check "edges metric over both daemons" 300 "$(sum2 digestmap_edges_emitted_total)"
check "duplicates metric over both daemons" 600 "$(sum2 digestmap_duplicates_absorbed_total)"
check "daemon 1 accepted 300 pushes" 300 "$(metric_at "$PORT" "$ACR_ROUTE")"
check "daemon 1 accepted 300 builds" 300 "$(metric_at "$PORT" "$BUILD_ROUTE")"
check "daemon 2 accepted 300 pushes" 300 "$(metric_at "$PORT2" "$ACR_ROUTE")"
check "daemon 2 accepted 300 builds" 300 "$(metric_at "$PORT2" "$BUILD_ROUTE")"
check "one mapping per digest" 300 "$(rcli keys 'dm:{0}:m:*' | wc -l)"
echo "# edges emitted by daemon 1: $(metric_at "$PORT" digestmap_edges_emitted_total)," \
    "daemon 2: $(metric_at "$PORT2" digestmap_edges_emitted_total)"
stop_daemon
stop_daemon2

# ------------------------------------------------------------------------------ (b) sweeping
rcli flushall >/dev/null
# sweep_batch 7: each tick claims at most 7 items per instance, so both instances go through
# several back-to-back ticks (the backlog path) and race for the same due entries.
CORR='"window_seconds": 2, "grace_seconds": 1, "mapping_ttl_seconds": 60, "sweep_interval_ms": 100, "sweep_batch": 7'
start_daemon "$(default_config "$CORR")"
start_daemon2 "$(default_config "$CORR")"
mkdir -p "$T/b"
: > "$T/b/jobs"
digests 100 | sed '/^$/d' > "$T/b/digests"
tp=$(iso_at 0)
i=0
while read -r d; do
    i=$((i + 1))
    acr_push "$T/b/p$i.json" "$d" "2.0.$i" "$tp" "evt-b-$i"
    if [ $((i % 2)) -eq 0 ]; then p=$PORT; else p=$PORT2; fi
    printf '%s /v1/registry/acr acr-token %s\n' "$p" "$T/b/p$i.json" >> "$T/b/jobs"
done < "$T/b/digests"
send "$T/b/jobs" "$T/b/codes"
check "(b) every answer 202" "100 202" "$(sort "$T/b/codes" | uniq -c | awk '{$1=$1; print}')"
check "(b) 100 unmatched records" 100 "$(wait_count 100 60 stream_type_count "$UT")"
# once the schedule is empty, every sweep of both instances since the reports could have
# reported something twice
check "(b) schedule swept empty" 0 "$(wait_count 0 60 rcli zcard 'dm:{0}:due')"
check "(b) still 100 unmatched records" 100 "$(stream_type_count "$UT")"
check "(b) nothing else in the stream" 100 "$(rcli xlen 'dm:{0}:out')"
check "(b) 100 distinct digests" 100 "$(stream_events | jq -r .data.digest | sort -u | wc -l)"
check "(b) the digests pushed" "$(sort "$T/b/digests")" "$(stream_events | jq -r .data.digest | sort)"
check "(b) 100 distinct record ids" 100 "$(stream_events | jq -r .id | sort -u | wc -l)"
check "(b) every record is side registry" "100 registry" "$(stream_events | jq -r .data.side | sort | uniq -c | awk '{$1=$1; print}')"
check "(b) unmatched metric over both daemons" 100 "$(sum2 digestmap_unmatched_registry_total)"
check "(b) no build reported" 0 "$(sum2 digestmap_unmatched_build_total)"
check "(b) no parked pushes left" "" "$(rcli keys 'dm:*:r:*')"
check "(b) schedule empty" 0 "$(rcli zcard 'dm:{0}:due')"
check "(b) parked gauge 0 on daemon 1" 0 "$(wait_count 0 60 metric_at "$PORT" digestmap_parked_registry_items)"
check "(b) parked gauge 0 on daemon 2" 0 "$(wait_count 0 60 metric_at "$PORT2" digestmap_parked_registry_items)"
echo "# unmatched reported by daemon 1: $(metric_at "$PORT" digestmap_unmatched_registry_total)," \
    "daemon 2: $(metric_at "$PORT2" digestmap_unmatched_registry_total)"
stop_daemon2
finish
