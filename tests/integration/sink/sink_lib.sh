# sink_lib.sh - helpers for the webhook sink tests (sourced after lib.sh by test_sink_*.sh).
SINK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SINK_PORT=""

# start_sink NAME [sink.py args...]: start sink.py (log $T/NAME.log, answers file
# $T/NAME.answers, connections opened and closed in $T/NAME.conns) and set SINK_PORT. It exits
# by itself when this script ends (and lib.sh's watchdog kills it if this script is killed).
start_sink() {
    local name=$1
    shift
    rm -f "$T/$name.port"
    python3 "$SINK_DIR/sink.py" --port-file "$T/$name.port" --log "$T/$name.log" \
        --answers-file "$T/$name.answers" --conn-log "$T/$name.conns" --watch-pid $$ "$@" \
        2>>"$T/$name.err" &
    poll_until "$DM_WAIT" test -s "$T/$name.port" || die "sink server $name did not start"
    SINK_PORT=$(cat "$T/$name.port")
}

# hold_closed_port: set CLOSED_PORT to a 127.0.0.1 TCP port that refuses connections: a socket
# bound to it without listening is held until this script ends, so that no parallel test can
# take the port meanwhile.
hold_closed_port() {
    rm -f "$T/closed.port"
    python3 -c '
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    try:
        os.kill(int(sys.argv[2]), 0)
    except OSError:
        break
    time.sleep(0.5)
' "$T/closed.port" $$ &
    poll_until "$DM_WAIT" test -s "$T/closed.port" || die "could not hold a closed port"
    CLOSED_PORT=$(cat "$T/closed.port")
}

# sink_answers NAME LIST: the next requests to NAME get these answers (see sink.py).
sink_answers() { printf '%s' "$2" > "$T/$1.answers"; }

# sink_requests NAME: requests NAME received so far.
sink_requests() { grep -c . "$T/$1.log" 2>/dev/null || true; }

# sink_closed NAME N: "closed" once NAME's connection number N is closed, else "open".
sink_closed() {
    if grep -q "^close $2 " "$T/$1.conns" 2>/dev/null; then echo closed; else echo open; fi
}

# sink_check CMD NAME ARGS...: check.py CMD on NAME's log.
sink_check() {
    local cmd=$1 name=$2
    shift 2
    python3 "$SINK_DIR/check.py" "$cmd" "$T/$name.log" "$@"
}

# sink_config HOOKS_JSON [CORRELATION]: default_config plus "outputs": {"webhooks": [HOOKS]}.
sink_config() {
    default_config "${2:-}" | sed '$d'
    printf '  ,"outputs": { "webhooks": [ %s ] }\n}\n' "$1"
}

# wait_sink_started [LOG] [N]: wait until the daemon logged "sink started" N times (default 1).
wait_sink_started() {
    local log=${1:-$T/daemon.log} n=${2:-1}
    _sinks_started() { [ "$(grep -c 'msg="sink started"' "$1" || true)" -ge "$2" ]; }
    poll_until "$DM_WAIT" _sinks_started "$log" "$n" || die "the sink did not start ($log)"
}

# cloudevent ID TYPE DIGEST: a CloudEvents document like the join writes.
cloudevent() {
    printf '{"specversion":"1.0","id":"%s","source":"digestmap","time":"2026-11-28T14:00:00.000Z","type":"%s","subject":"%s","datacontenttype":"application/json","data":{"digest":"%s","relation":"image"}}' \
        "$1" "$2" "$3" "$3"
}

# add_record TYPE [ID] [DIGEST] [SHARD]: XADD a record to dm:{SHARD}:out; prints the entry id.
add_record() {
    local type=$1 id=${2:-ce-$RANDOM$RANDOM} digest=${3:-$(random_digest)} shard=${4:-0}
    rcli XADD "dm:{$shard}:out" '*' type "$type" digest "$digest" \
        event "$(cloudevent "$id" "$type" "$digest")"
}

# pending GROUP [SHARD]: entries of dm:{SHARD}:out pending in the group.
pending() { rcli XPENDING "dm:{${2:-0}}:out" "$1" | head -n 1; }

CONFIRMED=dev.digestmap.mapping.confirmed.v1
UNMATCHED=dev.digestmap.mapping.unmatched.v1
DELETED=dev.digestmap.image.deleted.v1

# dead_field STREAM_ID FIELD [SHARD]: FIELD of the dead-letter entry for output entry STREAM_ID
# in dm:{SHARD}:dead ("" when there is none).
dead_field() {
    rcli -2 --json XRANGE "dm:{${3:-0}}:dead" - + | python3 -c '
import json, sys
want, name = sys.argv[1], sys.argv[2]
for _, fields in json.load(sys.stdin) or []:
    f = dict(zip(fields[::2], fields[1::2]))
    if f.get("stream_id") == want:
        print(f.get(name, ""))
        break
' "$1" "$2"
}

# dead_count [SHARD]: entries in dm:{SHARD}:dead.
dead_count() { rcli XLEN "dm:{${1:-0}}:dead"; }

# out_field STREAM_ID FIELD [SHARD]: FIELD of an entry of dm:{SHARD}:out.
out_field() {
    rcli -2 --json XRANGE "dm:{${3:-0}}:out" "$1" "$1" | python3 -c '
import json, sys
for _, fields in json.load(sys.stdin) or []:
    print(dict(zip(fields[::2], fields[1::2])).get(sys.argv[1], ""))
' "$2"
}

# consumers GROUP [SHARD]: "name pending idle_ms" of each consumer of GROUP on dm:{SHARD}:out,
# one a line (nothing when the group or the stream does not exist).
consumers() {
    rcli -2 --json XINFO CONSUMERS "dm:{${2:-0}}:out" "$1" 2>/dev/null | python3 -c '
import json, sys
try:
    rows = json.load(sys.stdin)
except ValueError:
    rows = None
for row in rows if isinstance(rows, list) else []:
    f = dict(zip(row[::2], row[1::2]))
    print(f["name"], f["pending"], f["idle"])
'
}

# consumer_field GROUP NAME FIELD [SHARD]: FIELD (pending or idle) of consumer NAME of GROUP on
# dm:{SHARD}:out; "gone" when there is no such consumer.
consumer_field() {
    local v
    v=$(consumers "$1" "${4:-0}" | awk -v n="$2" -v f="$3" \
        '$1 == n { print (f == "pending" ? $2 : $3) }')
    echo "${v:-gone}"
}
