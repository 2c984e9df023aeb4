#!/usr/bin/env bash
# Webhook sink over HTTPS: the fixture CA given as ca_file verifies the sink (by IP and by
# name, with SNI); a sink whose certificate does not verify (unknown CA, wrong name) gets
# nothing: its attempts fail with the reason and the record is dead-lettered.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sink/sink_lib.sh"

TLS=$DM_FIXTURES/tls
start_redis
start_sink good --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key"
GOOD=$SINK_PORT
start_sink wrong --tls-cert "$TLS/wrong-host.pem" --tls-key "$TLS/wrong-host.key"
WRONG=$SINK_PORT
common='"max_attempts": 2, "backoff_initial_ms": 50, "timeout_ms": 10000'
start_daemon "$(sink_config "
    {\"name\": \"by-ip\", \"url\": \"https://127.0.0.1:$GOOD/ip\", \"secret\": \"k\",
     \"ca_file\": \"$TLS/ca.pem\", $common},
    {\"name\": \"by-name\", \"url\": \"https://localhost:$GOOD/name\", \"secret\": \"k\",
     \"ca_file\": \"$TLS/ca.pem\", $common},
    {\"name\": \"system-store\", \"url\": \"https://127.0.0.1:$GOOD/system\", \"secret\": \"k\",
     $common},
    {\"name\": \"wrong-name\", \"url\": \"https://127.0.0.1:$WRONG/wrong\", \"secret\": \"k\",
     \"ca_file\": \"$TLS/ca.pem\", $common},
    {\"name\": \"wrong-dns\", \"url\": \"https://localhost:$WRONG/wrong\", \"secret\": \"k\",
     \"ca_file\": \"$TLS/ca.pem\", $common}")"
wait_sink_started "$T/daemon.log" 5

id=$(add_record "$CONFIRMED" ce-tls)
paths() { sink_check get good 0 path >/dev/null 2>&1 || { echo; return; }
          for i in $(seq 0 $(( $(sink_requests good) - 1 ))); do sink_check get good "$i" path; done | sort | tr '\n' ' '; }
check "delivered over https by IP and by name, nothing else" "/ip /name " \
    "$(wait_count "/ip /name " 60 paths)"
check "both deliveries verify" "ok ok " "$(sink_check verify good k | tr '\n' ' ')"
check "the sink with the wrong certificate got no request" 0 "$(sink_requests wrong)"

dead_sinks() { rcli -2 --json XRANGE 'dm:{0}:dead' - + | python3 -c '
import json, sys
print(" ".join(sorted(dict(zip(f[::2], f[1::2]))["sink"] for _, f in json.load(sys.stdin) or [])))'; }
check "the unverified sinks dead-lettered the record" "system-store wrong-dns wrong-name" \
    "$(wait_count "system-store wrong-dns wrong-name" 60 dead_sinks)"
check_match "an unknown CA is the logged reason" \
    'msg="sink delivery failed" sink=system-store .*status=0 error="TLS: .*certificate verify failed \(unable to get local issuer certificate\)"' \
    "$(grep 'msg="sink delivery failed" sink=system-store' "$T/daemon.log" | head -n 1)"
check_match "a host name mismatch is the logged reason" \
    'msg="sink delivery failed" sink=wrong-dns .*status=0 error="TLS: .*certificate verify failed \(hostname mismatch\)"' \
    "$(grep 'msg="sink delivery failed" sink=wrong-dns' "$T/daemon.log" | head -n 1)"
check_match "an IP address mismatch is the logged reason" \
    'msg="sink delivery failed" sink=wrong-name .*status=0 error="TLS: .*certificate verify failed \(.*(mismatch|IP address).*\)"' \
    "$(grep 'msg="sink delivery failed" sink=wrong-name' "$T/daemon.log" | head -n 1)"
check_match "the dead-letter entry keeps the reason" "^TLS: .*certificate verify failed" \
    "$(rcli -2 --json XRANGE 'dm:{0}:dead' - + | python3 -c '
import json, sys
for _, f in json.load(sys.stdin):
    f = dict(zip(f[::2], f[1::2]))
    if f["sink"] == "wrong-name": print(f["error"])')"
wait_pending() { pending "$1"; }
for g in by-ip by-name system-store wrong-name wrong-dns; do
    check "nothing pending for $g" 0 "$(wait_count 0 60 wait_pending "digestmap:$g")"
done
check "delivered counter" 2 "$(metric digestmap_sink_delivered_total)"
check "dead-letter counter" 3 "$(metric digestmap_sink_dead_lettered_total)"

finish
