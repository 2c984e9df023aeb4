#!/usr/bin/env bash
# Idle kept-alive sink connections (docs/sink-connections.md): a receiver that closes an idle
# connection (plain or TLS) costs nothing: the next record goes on a new connection, first
# attempt, no failure (a TLS one resumes the session); and the daemon closes a connection idle
# for 30 s itself (never sooner).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

TLS=$DM_FIXTURES/tls
start_redis
start_sink idle --idle-close 0.3
IDLE=$SINK_PORT
start_sink tlsidle --idle-close 0.3 --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key"
TLSIDLE=$SINK_PORT
start_sink quiet
QUIET=$SINK_PORT
start_daemon "$(sink_config "
    {\"name\": \"idle\", \"url\": \"http://127.0.0.1:$IDLE/idle\", \"secret\": \"k\",
     \"max_inflight\": 1, \"types\": [\"$DELETED\"]},
    {\"name\": \"tlsidle\", \"url\": \"https://localhost:$TLSIDLE/tlsidle\", \"secret\": \"k\",
     \"ca_file\": \"$TLS/ca.pem\", \"max_inflight\": 1, \"types\": [\"$DELETED\"]},
    {\"name\": \"quiet\", \"url\": \"http://127.0.0.1:$QUIET/quiet\", \"secret\": \"k\",
     \"types\": [\"$UNMATCHED\"]}")"
wait_sink_started "$T/daemon.log" 3

# --- The receivers close idle connections after 0.3 s.
add_record "$DELETED" ce-idle-1 >/dev/null
for s in idle tlsidle; do
    check "$s: the first record arrived" 1 "$(wait_count 1 60 sink_requests $s)"
    check "$s: the receiver closed the idle connection" closed "$(wait_count closed 60 sink_closed $s 1)"
done
add_record "$DELETED" ce-idle-2 >/dev/null
for s in idle tlsidle; do
    check "$s: the second record arrived once" 2 "$(wait_count 2 60 sink_requests $s)"
    check "$s: on a new connection" "A B" "$(sink_check conns $s)"
    check "$s: both first attempts" "1 1" "$(sink_check header $s X-Digestmap-Attempt | tr '\n' ' ' | sed 's/ $//')"
    check "$s: both verify" "ok ok" "$(sink_check verify $s k | tr '\n' ' ' | sed 's/ $//')"
done
check "tlsidle: the new connection resumed the TLS session" "False True" \
    "$(sink_check get tlsidle 0 resumed) $(sink_check get tlsidle 1 resumed)"
wait_pending() { pending "$1"; }
for g in idle tlsidle; do
    check "nothing pending for $g" 0 "$(wait_count 0 60 wait_pending "digestmap:$g")"
done
check "no failed delivery logged" 0 "$(grep -c 'msg="sink delivery failed"' "$T/daemon.log" || true)"
check "no attempt failed (retries counter)" 0 "$(metric digestmap_sink_retries_total)"

# --- The daemon closes a connection idle for 30 s (DM_HCLIENT_IDLE_MS), and not before.
add_record "$UNMATCHED" ce-quiet >/dev/null
check "quiet: the record arrived" 1 "$(wait_count 1 60 sink_requests quiet)"
check "quiet: the daemon closed the idle connection" closed \
    "$(DM_WAIT=120 wait_count closed 120 sink_closed quiet 1)"
sent=$(sink_check get quiet 0 t)
closed=$(awk '$1 == "close" && $2 == 1 {print $3}' "$T/quiet.conns")
idle=$(awk -v a="$sent" -v b="$closed" 'BEGIN {printf "%.1f", b - a}')
check "quiet: closed after its 30 s idle timeout, not sooner (after ${idle} s)" yes \
    "$(awk -v d="$idle" 'BEGIN {print (d >= 29.9) ? "yes" : "no"}')"

finish
