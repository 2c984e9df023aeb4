#!/usr/bin/env bash
# Webhook sink connections are kept alive (docs/sink-connections.md): 200 records travel over
# at most max_inflight (4) connections, plain and TLS; a connection is reused only after a
# complete, well-framed HTTP/1.1 answer (not after Connection: close, an HTTP/1.0 answer, a
# body that ends with the connection, or bytes after the answer); a delivery that finds its
# reused connection closed by the receiver before any answer is resent once on a new
# connection, with the same attempt number, counted and logged; nothing is lost or retried.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

TLS=$DM_FIXTURES/tls
N=200
start_redis
start_sink bulk
BULK=$SINK_PORT
start_sink tls --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key"
TLSP=$SINK_PORT
start_sink seq
SEQ=$SINK_PORT
start_daemon "$(sink_config "
    {\"name\": \"bulk\", \"url\": \"http://127.0.0.1:$BULK/bulk\", \"secret\": \"k\",
     \"max_inflight\": 4, \"types\": [\"$CONFIRMED\"]},
    {\"name\": \"tls\", \"url\": \"https://localhost:$TLSP/tls\", \"secret\": \"k\",
     \"ca_file\": \"$TLS/ca.pem\", \"max_inflight\": 4, \"types\": [\"$CONFIRMED\"]},
    {\"name\": \"seq\", \"url\": \"http://127.0.0.1:$SEQ/seq\", \"secret\": \"k\",
     \"max_inflight\": 1, \"types\": [\"$UNMATCHED\"]}")"
wait_sink_started "$T/daemon.log" 3

# --- Many records, plain and TLS: far fewer connections than records.
for i in $(seq 1 $N); do add_record "$CONFIRMED" "ce-bulk-$i" >/dev/null; done
for s in bulk tls; do
    check "$s: every record arrived" $N "$(wait_count $N 60 sink_requests $s)"
    check "$s: each exactly once" $N "$(sink_check ids $s | sort -u | wc -l)"
    check "$s: every delivery verifies" "$N ok" "$(sink_check verify $s k | sort | uniq -c | awk '{print $1, $2}')"
    check "$s: all first attempts" "$N 1" "$(sink_check header $s X-Digestmap-Attempt | sort | uniq -c | awk '{print $1, $2}')"
    nconns=$(sink_check nconns $s)
    check_match "$s: $N records over at most max_inflight (4) connections (got $nconns)" '^[1-4]$' "$nconns"
done

# --- One connection's life, one record at a time (max_inflight 1): what the receiver answers
# decides whether the next record reuses the connection.
# rec:     1    2    3          4    5        6            7    8        9          10   11    (11 again)  12
answers="200, 200, 200+close, 200, 200/1.0, 200+chunked, 200, 200+eof, 200+extra, 200, close"
sink_answers seq "$answers"
ids=()
for i in $(seq 1 12); do ids+=("$(add_record "$UNMATCHED" "ce-seq-$i")"); done
check "seq: 12 records, one of them sent twice" 13 "$(wait_count 13 60 sink_requests seq)"
check "seq: the connection of each request" "A A A B B C C C D E E F F" "$(sink_check conns seq)"
check "seq: the requests' keys (record 11 twice)" \
    "ce-seq-1 ce-seq-2 ce-seq-3 ce-seq-4 ce-seq-5 ce-seq-6 ce-seq-7 ce-seq-8 ce-seq-9 ce-seq-10 ce-seq-11 ce-seq-11 ce-seq-12" \
    "$(sink_check ids seq | tr '\n' ' ' | sed 's/ $//')"
check "seq: the resend is the same attempt (1)" "1 1" \
    "$(sink_check get seq 10 X-Digestmap-Attempt) $(sink_check get seq 11 X-Digestmap-Attempt)"
check "seq: the resend is the same body" "$(sink_check get seq 10 body)" "$(sink_check get seq 11 body)"
check_match "the resend is logged with the record and the reason" \
    "msg=\"sink delivery resent on a new connection\" sink=seq id=${ids[10]} attempt=1 reason=\"connection closed before a response\"\$" \
    "$(await_log 'sink delivery resent on a new connection')"
wait_pending() { pending "$1"; }
for g in bulk tls seq; do
    check "nothing pending for $g" 0 "$(wait_count 0 60 wait_pending "digestmap:$g")"
done
check "delivered counter" $((2 * N + 12)) "$(metric digestmap_sink_delivered_total)"
check "resent counter" 1 "$(metric digestmap_sink_resent_total)"
check "no attempt failed (retries counter)" 0 "$(metric digestmap_sink_retries_total)"
check "no failed delivery logged" 0 "$(grep -c 'msg="sink delivery failed"' "$T/daemon.log" || true)"
check "nothing dead-lettered" 0 "$(dead_count)"
# seq reused its connection for records 2, 3, 5, 7, 8, 11 and 12; bulk and tls for all but
# their first use of each connection.
reused=$(metric digestmap_sink_connections_reused_total)
least=$((2 * (N - 4) + 7))
check "reused-connection counter is at least $least (got $reused)" yes \
    "$([ "$reused" -ge "$least" ] && echo yes || echo no)"

finish
