#!/usr/bin/env bash
# GET /v1/events/stream: Server-Sent Events of the output records. Auth, 400 for bad start
# positions, new records only by default, ids = stream entry ids, resume with Last-Event-ID
# (header or query) exactly after the id, from=start, keepalives past the idle timeout,
# client hang-ups (gauge back to 0, no sanitizer report), the max_stream_clients limit,
# back-pressure (a paused trickle reader is cut off and its connection freed; a client that
# stops reading gets a bounded part), the start position sent before any record (a client
# reconnecting across a daemon restart loses nothing), keepalives carrying the position past
# skipped entries, Redis lost mid-stream and down at connect, SIGTERM with open streams, and
# composite ids with 4 shards (one XREAD per shard).
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
AUTH='Authorization: Bearer api-token'

# config [SHARDS]: the default config with 3 stream clients at most and a 2 s idle timeout
# (so keepalives come every second).
config() {
    default_config | jq --argjson shards "${1:-1}" \
        '.api.max_stream_clients = 3 | .limits.idle_timeout_seconds = 2 | .redis.shards = $shards'
}

# sse_open NAME [QUERY] [curl args...]: read the stream into $T/NAME.sse in the background
# (pid in $T/NAME.pid); waits until the stream has started ("retry:" received).
sse_open() {
    local name=$1 query=${2:-}
    shift 2 || shift $#
    curl -sN --max-time 600 -D "$T/$name.hdr" -H "$AUTH" "$@" \
        "http://127.0.0.1:$PORT/v1/events/stream$query" > "$T/$name.sse" 2>/dev/null &
    echo $! > "$T/$name.pid"
    wait_in "$T/$name.sse" '^retry: 2000$' 5 || fail "stream $name did not start"
}

# sse_kill NAME: the client hangs up.
sse_kill() { kill "$(cat "$T/$1.pid")" 2>/dev/null || true; wait "$(cat "$T/$1.pid")" 2>/dev/null || true; }

# wait_in FILE REGEX SECONDS: poll until FILE has a line matching REGEX (SECONDS is raised to
# DM_WAIT: only a failing test waits that long).
wait_in() {
    _file_has() { grep -qE "$2" "$1" 2>/dev/null; }
    poll_until $(($3 > DM_WAIT ? $3 : DM_WAIT)) _file_has "$1" "$2"
}

# sse_ids NAME: the ids of the events received (blocks with data), one a line.
sse_ids() {
    awk '/^id: /{id=substr($0,5)} /^data: /{if(id!=""){print id; id=""}} /^$/{id=""}' "$T/$1.sse"
}

# sse_last_id NAME: the last id the client got (with or without data): its Last-Event-ID.
sse_last_id() { sed -n 's/^id: //p' "$T/$1.sse" | tail -n 1; }

# xadd SHARD TYPE EVENT: append a record to dm:{SHARD}:out; prints its id.
xadd() {
    rcli xadd "dm:{$1}:out" '*' type "$2" digest "$(random_digest)" event "$3"
}

# stream_ids SHARD [AFTER]: entry ids of dm:{SHARD}:out, after AFTER (exclusive) if given.
stream_ids() {
    rcli xrange "dm:{$1}:out" "${2:+(}${2:--}" + | grep -E '^[0-9]+-[0-9]+$' || true
}

# wait_metric NAME VALUE SECONDS
wait_metric() { wait_count "$2" "$3" metric "$1"; }

join_lines() { paste -sd' ' -; }

start_redis
start_daemon "$(config)"

# --- refusals before any stream
request GET /v1/events/stream
check "no credentials: 401" 401 "$STATUS"
request GET /v1/events/stream -H "$AUTH" -H 'Last-Event-ID: abc'
check "malformed Last-Event-ID: 400" 400 "$STATUS"
check "malformed Last-Event-ID: precise error" \
    '{"error":"Last-Event-ID: id number 1 is not <ms>-<seq> (two decimal numbers, at most 20 digits each, joined by a dash)"}' "$BODY"
request GET /v1/events/stream -H "$AUTH" -H 'Last-Event-ID: 1-0,2-0'
check "two ids with one shard: 400" 400 "$STATUS"
check_match "two ids with one shard: says why" 'more than 1 id' "$BODY"
request GET '/v1/events/stream?last_event_id=99999999999999999999-0' -H "$AUTH"
check "overflowing last_event_id: 400" 400 "$STATUS"
check_match "overflowing last_event_id: names the parameter" '^\{"error":"last_event_id: ' "$BODY"
request GET '/v1/events/stream?from=end' -H "$AUTH"
check "from=end: 400" 400 "$STATUS"
request GET '/v1/events/stream?since=1' -H "$AUTH"
check "unknown parameter: 400" 400 "$STATUS"
check "unknown parameter: named" '{"error":"unknown parameter since (known: last_event_id, from)"}' "$BODY"
request POST /v1/events/stream -H "$AUTH"
check "POST: 405" 405 "$STATUS"
request HEAD /v1/events/stream -H "$AUTH" -I
check "HEAD: 200 without a stream" 200 "$STATUS"
check_match "HEAD: Content-Type" $'\n[Cc]ontent-[Tt]ype: text/event-stream' "$(tr -d '\r' <<<"$HEADERS")"
check "refusals are counted" 1 "$(metric 'digestmap_requests_total{route="/v1/events/stream",status="401"}')"

# --- new records only, ids = entry ids
old1=$(xadd 0 test.old '{"n":0}')
sse_open a
hdr=$(tr -d '\r' < "$T/a.hdr")
check_match "200" '^HTTP/1.1 200 ' "$hdr"
check_match "Content-Type: text/event-stream" $'\nContent-Type: text/event-stream\n' "$hdr"
check_match "Cache-Control: no-cache" $'\nCache-Control: no-cache\n' "$hdr"
check_match "X-Accel-Buffering: no" $'\nX-Accel-Buffering: no\n' "$hdr"
check_match "chunked" $'\nTransfer-Encoding: chunked\n' "$hdr"
id1=$(xadd 0 test.one '{"n":1}')
id2=$(xadd 0 test.two $'{"n":2,\n"multi":"line"}')
id3=$(xadd 0 test.three '{"n":3}')
wait_in "$T/a.sse" "^id: $id3\$" 5 || fail "record 3 did not arrive"
check "records after connect, in order, ids = entry ids" "$id1 $id2 $id3" "$(sse_ids a | join_lines)"
check "event: is the entry type" "test.one test.two test.three" "$(sed -n 's/^event: //p' "$T/a.sse" | join_lines)"
check "a multi-line document is split into data lines" \
    'data: {"n":1} data: {"n":2, data: "multi":"line"} data: {"n":3}' "$(grep '^data: ' "$T/a.sse" | join_lines)"
check "the record from before the connection is not sent" "" "$(grep -F "data: {\"n\":0}" "$T/a.sse" || true)"
check "the start position comes first, as an id-only block" "retry: 2000|id: $old1|" \
    "$(head -n 3 "$T/a.sse" | paste -sd'|' -)"

# --- end to end: a confirmed mapping from a push and a build
dg=$(random_digest)
acr_push "$T/push.json" "$dg" 1.4.0 "$(iso_at -20)"
post_acr "$T/push.json"
build_event "$T/build.json" "$dg" "$(iso_at -10)" 4242
post_build "$T/build.json"
check "build made an edge" '{"status":"accepted","events":1,"edges":1}' "$BODY"
eid=$(stream_ids 0 | tail -n 1)
wait_in "$T/a.sse" "^id: $eid\$" 5 || fail "mapping record did not arrive"
ev=$(grep -A2 "^id: $eid\$" "$T/a.sse")
check "mapping record: event type" "event: dev.digestmap.mapping.confirmed.v1" "$(sed -n 2p <<<"$ev")"
check "mapping record: CloudEvent subject" "$dg" "$(sed -n '3s/^data: //p' <<<"$ev" | jq -r .subject)"
check "mapping record: run id" 4242 "$(sed -n '3s/^data: //p' <<<"$ev" | jq -r .data.build.run_id)"

# --- keepalives keep an idle stream open past the 2 s idle timeout
wait_in "$T/a.sse" '^: keepalive$' 4 || fail "no keepalive"
poll_until "$DM_WAIT" eval '[ "$(grep -c "^: keepalive\$" "$T/a.sse")" -ge 3 ]' || true
check_match "three keepalives (>= 3 s idle)" '^[3-9]' "$(grep -c '^: keepalive$' "$T/a.sse")"
id4=$(xadd 0 test.four '{"n":4}')
wait_in "$T/a.sse" "^id: $id4\$" 5 || fail "record after the idle timeout did not arrive"
check "stream alive after the idle timeout" "$id4" "$(sse_ids a | tail -n 1)"
check "clients gauge" 1 "$(metric digestmap_sse_clients)"
check_match "records counter" '^[5-9]$' "$(metric digestmap_sse_records_total)"

# --- resume
want=$(stream_ids 0 "$id1" | join_lines)
sse_open b '' -H "Last-Event-ID: $id1"
wait_in "$T/b.sse" "^id: $id4\$" 5 || true
check "Last-Event-ID resumes exactly after the id" "$want" "$(sse_ids b | join_lines)"
sse_open c "?last_event_id=$id2"
wait_in "$T/c.sse" "^id: $id4\$" 5 || true
check "last_event_id= resumes exactly after the id" "$(stream_ids 0 "$id2" | join_lines)" "$(sse_ids c | join_lines)"
sse_kill b
sse_kill c
check "clients gauge back to 1 after two hang-ups" 1 "$(wait_metric digestmap_sse_clients 1 5)"
sse_open d '?from=start' -H "Last-Event-ID: $id3"
wait_in "$T/d.sse" "^id: $id4\$" 5 || true
check "Last-Event-ID beats from=start (EventSource reconnects)" "$(stream_ids 0 "$id3" | join_lines)" "$(sse_ids d | join_lines)"
sse_kill d
check "gauge 1" 1 "$(wait_metric digestmap_sse_clients 1 5)"
sse_open e '?from=start'
wait_in "$T/e.sse" "^id: $id4\$" 5 || true
check "from=start replays everything" "$(stream_ids 0 | join_lines)" "$(sse_ids e | join_lines)"

# --- the limit: 3 open streams (a, e, f), the fourth gets 503
sse_open f
request GET /v1/events/stream -H "$AUTH"
check "fourth stream: 503" 503 "$STATUS"
check "fourth stream: error" '{"error":"too many event-stream clients (3 open, api.max_stream_clients)"}' "$BODY"
check_match "fourth stream: Retry-After" $'\n[Rr]etry-[Aa]fter: 2' "$(tr -d '\r' <<<"$HEADERS")"
sse_kill e
sse_kill f
check "gauge back to 1" 1 "$(wait_metric digestmap_sse_clients 1 5)"
check_match "hang-ups are logged" 'msg="event stream closed" peer=127.0.0.1:[0-9]+ records=[0-9]+ reason="client gone"' \
    "$(grep 'event stream closed' "$T/daemon.log" | head -n 1)"

# --- back-pressure, while 20 MB of records arrive: a trickle reader (never a write timeout)
# is paused at DM_SSE_SOFT_BUFFER, then cut off after 2 x idle_timeout with its connection
# freed at once (the socket no longer belongs to the daemon, whatever is still unsent); a
# client that reads nothing is paused too, and only gets a bounded part before it is dropped.
# The fast client "a" gets everything.
nclosed=$(grep -c 'event stream closed' "$T/daemon.log")
python3 "$HERE/sse/slow_client.py" "$PORT" api-token 40 2048 0.1 > "$T/trickle.out" &
trickle_pid=$!
python3 "$HERE/sse/slow_client.py" "$PORT" api-token 40 > "$T/stuck.out" &
stuck_pid=$!
wait_in "$T/trickle.out" '^started' 10 || fail "trickle client did not start"
wait_in "$T/stuck.out" '^started' 10 || fail "stuck client did not start"
tport=$(sed -n 's/^started //p' "$T/trickle.out")
sport=$(sed -n 's/^started //p' "$T/stuck.out")
# owner: the process that holds the daemon's end of the trickle client's connection, if any
owner() { ss -tnpH "( sport = :$PORT and dport = :$tport )" | grep -o 'users:(("[^"]*"' | head -n 1 || true; }
check "the trickle client's connection belongs to the daemon" 'users:(("digestmapd"' "$(owner)"
big=$(head -c 10000 /dev/zero | tr '\0' x)
for i in $(seq 1 2000); do
    echo "XADD dm:{0}:out * type test.big digest d event '{\"n\":$i,\"pad\":\"$big\"}'"
done | rcli > /dev/null
poll_until "$DM_WAIT" eval '[ "$(grep -c "event stream closed" "$T/daemon.log")" -ge $((nclosed + 2)) ]' || true
tline=$(grep "event stream closed\" peer=127.0.0.1:$tport " "$T/daemon.log" || true)
sline=$(grep "event stream closed\" peer=127.0.0.1:$sport " "$T/daemon.log" || true)
check_match "the trickle reader was paused" 'msg="event stream paused"' \
    "$(grep "peer=127.0.0.1:$tport " "$T/daemon.log" | grep paused | head -n 1)"
check_match "the trickle reader is dropped for staying paused" 'reason="slow client: paused too long"' "$tline"
# "At once": within 10 s, where flushing the unsent megabytes at the reader's 20 KB/s would take
# minutes.
gone=""
poll_until 10 eval '[ -z "$(owner)" ]' && gone=yes
check "its connection is freed at once, unsent bytes and all" yes "$gone"
check_match "the stuck client was paused" 'msg="event stream paused"' \
    "$(grep "peer=127.0.0.1:$sport " "$T/daemon.log" | grep paused | head -n 1)"
check_match "the stuck client is dropped (write timeout or paused too long)" \
    'reason="(client stopped reading \(write timeout\)|slow client: paused too long)"' "$sline"
recs=$(sed -n 's/.*records=\([0-9]*\).*/\1/p' <<<"$sline")
# Without the pause it would get all 2000 (20 MB) queued before the write timeout; with it,
# at most ~1 MB queued + one batch (1 MB) + what the kernel buffers (tcp_wmem max, 4 MB).
if [ -n "$recs" ] && [ "$recs" -lt 1000 ]; then
    echo "ok - back-pressure: the stuck client got $recs of 2000 records before it was dropped"
else
    fail "stuck client got ${recs:-?} records: no back-pressure"
fi
kill "$trickle_pid" "$stuck_pid" 2>/dev/null || true
wait "$trickle_pid" "$stuck_pid" 2>/dev/null || true
wait_in "$T/a.sse" 'data: \{"n":2000,' 20 || fail "the fast client did not get all records"
check "the fast client kept up" 2000 "$(grep -c '^event: test.big$' "$T/a.sse")"
check "gauge back to 1" 1 "$(wait_metric digestmap_sse_clients 1 5)"

# --- the position reaches the client before any record: r1 gets only its start id, r2 a
# keepalive with the id of an entry that is skipped (no "event" field). After a daemon
# restart, both resume with their last id and lose nothing.
sse_open r1
start1=$(sse_last_id r1)
check "r1: start position = the stream's last entry" "$(stream_ids 0 | tail -n 1)" "$start1"
junk=$(rcli xadd 'dm:{0}:out' '*' type test.junk digest d)
sse_open r2
wait_in "$T/r1.sse" "^id: $junk\$" 10 || fail "no id after a skipped entry"
check "r1: the skipped entry's id comes with a keepalive" ": keepalive|id: $junk|" \
    "$(grep -B1 -A1 "^id: $junk\$" "$T/r1.sse" | paste -sd'|' -)"
check "r1: no event for the skipped entry" "" "$(sse_ids r1)"
last1=$(sse_last_id r1)
last2=$(sse_last_id r2)
check "r2: start position = the skipped entry" "$junk" "$last2"
# --- SIGTERM with a stream open: the stream ends, the daemon exits 0
stop_daemon
rc=0
wait "$(cat "$T/a.pid")" || rc=$?
check "the open stream was ended by the server (curl exit 0, not its timeout)" 0 "$rc"
check_match "shutdown logged" 'reason="server shutting down"' "$(grep 'event stream closed' "$T/daemon.log" | tail -n 1)"
sse_kill r1
sse_kill r2

# --- reconnect after the restart with the last id received: the record added in between
start_daemon "$(config)"
gap=$(xadd 0 test.gap '{"gap":1}')
sse_open r1b '' -H "Last-Event-ID: $last1"
sse_open r2b '' -H "Last-Event-ID: $last2"
wait_in "$T/r1b.sse" "^id: $gap\$" 10 || true
wait_in "$T/r2b.sse" "^id: $gap\$" 10 || true
check "r1 resumes with its start id: the record added during the restart arrives" "$gap" "$(sse_ids r1b | join_lines)"
check "r2 resumes with the keepalive id: the record arrives" "$gap" "$(sse_ids r2b | join_lines)"
sse_kill r1b
sse_kill r2b
check "gauge 0" 0 "$(wait_metric digestmap_sse_clients 0 5)"

# --- Redis lost mid-stream, then down at connect
sse_open g
stop_redis
rc=0
wait "$(cat "$T/g.pid")" || rc=$?
check "stream ends when Redis goes away" 0 "$rc"
check_match "logged" 'reason="redis unavailable"' "$(grep 'event stream closed' "$T/daemon.log" | tail -n 1)"
request GET /v1/events/stream -H "$AUTH"
check "Redis down at connect: 503" 503 "$STATUS"
check_match "Redis down at connect: Retry-After" $'\n[Rr]etry-[Aa]fter: 2' "$(tr -d '\r' <<<"$HEADERS")"
check "gauge 0" 0 "$(wait_metric digestmap_sse_clients 0 5)"
stop_daemon

# --- max_stream_clients 0: event streams disabled
rm -f "$T/redis.sock"
start_redis
start_daemon "$(config | jq '.api.max_stream_clients = 0')"
request GET /v1/events/stream -H "$AUTH"
check "max_stream_clients 0: 403" 403 "$STATUS"
check "max_stream_clients 0: says why" '{"error":"event streams are disabled on this server (api.max_stream_clients is 0)"}' "$BODY"
stop_daemon
stop_redis

# --- 4 shards: composite ids, exact resume per shard
rm -f "$T/redis.sock"
start_redis
start_daemon "$(config 4)"
request GET /v1/events/stream -H "$AUTH" -H 'Last-Event-ID: 1-0'
check "one id with 4 shards: 400" 400 "$STATUS"
check_match "one id with 4 shards: says why" '1 id given, 4 expected' "$BODY"
s1=$(xadd 1 test.before '{"s":1,"n":0}')
sse_open h
# one at a time, so each XREAD returns one record and the composite ids are known
add_wait() { local id; id=$(xadd "$1" test.s "$2"); wait_in "$T/h.sse" "^data: $2\$" 5 || fail "$2 not received"; echo "$id"; }
p2a=$(add_wait 2 '{"s":2,"n":1}')
p0=$(add_wait 0 '{"s":0,"n":2}')
p3=$(add_wait 3 '{"s":3,"n":3}')
p2b=$(add_wait 2 '{"s":2,"n":4}')
want="0-0,$s1,$p2a,0-0 $p0,$s1,$p2a,0-0 $p0,$s1,$p2a,$p3 $p0,$s1,$p2b,$p3"
check "composite ids: last delivered id of every shard" "$want" "$(sse_ids h | join_lines)"
check "shards' records in arrival order" '{"s":2,"n":1} {"s":0,"n":2} {"s":3,"n":3} {"s":2,"n":4}' \
    "$(sed -n 's/^data: //p' "$T/h.sse" | join_lines)"
sse_open i '' -H "Last-Event-ID: $p0,$s1,$p2a,0-0"
wait_in "$T/i.sse" '"n":4' 5 || true
# one XREAD may return several shards' records: they come in shard order, each shard in order
check "composite resume: exactly the records after it, every shard" '{"s":2,"n":4} {"s":3,"n":3}' \
    "$(sed -n 's/^data: //p' "$T/i.sse" | sort | join_lines)"
sse_kill i
sse_kill h
check "gauge 0" 0 "$(wait_metric digestmap_sse_clients 0 5)"

finish
