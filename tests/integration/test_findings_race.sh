#!/usr/bin/env bash
# Findings routing with two instances racing (docs/findings.md): for each digest, a Trivy report
# on one instance and the push and build on the other, all at once. Whichever arrives last
# routes: exactly one finding.routed record per digest, then one more per digest when the same
# risen-severity report reaches both instances at once, and no finding in two records. A sink
# whose types filter names the record delivers each record once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sink/sink_lib.sh"
start_redis
start_sink routed
ROUTED=dev.digestmap.finding.routed.v1
config=$(sink_config "{\"name\": \"routed\", \"url\": \"http://127.0.0.1:$SINK_PORT/in\",
    \"secret\": \"s\", \"types\": [\"$ROUTED\"]}" | jq '
  .sources += [{"type": "scan", "auth": [{"type": "header", "name": "Authorization", "value": "Bearer scan-token"}]}]')
start_daemon "$config"
start_daemon2 "$config"
wait_sink_started "$T/daemon.log" 1

# send PORT PATH FILE TOKEN: POST in the background (its pid appended to PIDS).
PIDS=()
send() {
    curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $4" \
        --data-binary "@$3" "http://127.0.0.1:$1$2" &
    PIDS+=($!)
}
await_sent() { for p in "${PIDS[@]}"; do wait "$p"; done; PIDS=(); }
trivy_for() {
    jq --arg d "$1" ".Metadata.RepoDigests = [\"contoso.azurecr.io/team/api@\" + \$d] | del(.ReportID) | ${3:-.}" \
        "$DM_FIXTURES/scan/trivy-report.json" > "$2"
}
routed_records() { stream_events | jq -c "select(.type == \"$ROUTED\" and .subject == \"$1\")"; }
routed_count() { routed_records "$1" | grep -c . || true; }

N=12
digests=()
for i in $(seq 1 $N); do
    d=$(random_digest)
    digests+=("$d")
    trivy_for "$d" "$T/trivy$i.json"
    trivy_for "$d" "$T/risen$i.json" '.Results |= map(.Vulnerabilities |= map(
        if .VulnerabilityID == "CVE-2024-6119" then .Severity = "HIGH" else . end))'
    acr_push "$T/push$i.json" "$d" 1.4.0 "$(iso_at -2)"
    build_event "$T/build$i.json" "$d" "$(iso_at -1)" "80$i"
done

# Round 1: the report on one instance, the push and build on the other; alternating sides.
for i in $(seq 1 $N); do
    if [ $((i % 2)) -eq 0 ]; then a=$PORT b=$PORT2; else a=$PORT2 b=$PORT; fi
    send "$a" /v1/findings "$T/trivy$i.json" scan-token
    send "$b" /v1/registry/acr "$T/push$i.json" acr-token
    send "$b" /v1/builds "$T/build$i.json" ci-token
done
await_sent
ones=""
for d in "${digests[@]}"; do ones+="$(routed_count "$d")"; done
check "round 1: one record per digest" "$(printf '1%.0s' $(seq 1 $N))" "$ones"
news=""
for d in "${digests[@]}"; do news+="$(routed_records "$d" | jq '.data.findings.new | length')"; done
check "round 1: each carries the three high and critical findings" "$(printf '3%.0s' $(seq 1 $N))" "$news"

# Round 2: the same risen report on both instances at once: one record more per digest.
for i in $(seq 1 $N); do
    send "$PORT" /v1/findings "$T/risen$i.json" scan-token
    send "$PORT2" /v1/findings "$T/risen$i.json" scan-token
done
await_sent
twos="" repeats=0
for d in "${digests[@]}"; do
    twos+="$(routed_count "$d")"
    keys=$(routed_records "$d" | jq -r '.data.findings.new[] | .id + "|" + .package')
    [ "$(sort <<<"$keys" | uniq -d | grep -c . || true)" -eq 0 ] || repeats=$((repeats + 1))
done
check "round 2: one more record per digest" "$(printf '2%.0s' $(seq 1 $N))" "$twos"
check "no finding routed twice" 0 "$repeats"
check "records counted by the two instances together" $((2 * N)) \
    $(($(metric_at "$PORT" digestmap_findings_routed_records_total) + $(metric_at "$PORT2" digestmap_findings_routed_records_total)))
check "the sink got each record once" $((2 * N)) "$(wait_count $((2 * N)) 60 sink_requests routed)"
check "distinct records delivered" $((2 * N)) "$(sink_check ids routed | sort -u | grep -c .)"
stop_daemon2
finish
