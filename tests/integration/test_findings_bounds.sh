#!/usr/bin/env bash
# Findings bounds (docs/findings.md "Bounds"): the routed set fr:<digest> stays within
# 4 x limits.max_findings_per_digest however many fresh ids the scanners report, and routing
# reads only the candidates, never the whole set; a report naming more digests than a report may
# is refused with a 413, one naming a few is stored on each.
. "$(dirname "$0")/lib.sh"
start_redis
SCAN="$DM_FIXTURES/scan"
start_daemon "$(default_config | jq '.limits.max_body_bytes = 4194304 | .limits.max_findings_per_digest = 5
  | .sources += [{"type": "scan", "auth": [{"type": "header", "name": "Authorization", "value": "Bearer scan-token"}]}]')"
post_scan() { post /v1/findings "$1" -H 'Authorization: Bearer scan-token'; }
# trivy DIGESTS_JSON N TAG: a Trivy report naming DIGESTS with N critical findings CVE-TAG-i.
trivy() {
    printf '%s' "$1" > "$T/ds.json"
    jq -c --slurpfile dss "$T/ds.json" --argjson n "$2" --arg tag "$3" '
      $dss[0] as $ds | .Metadata.RepoDigests = [$ds[] | "r.io/x@" + .] | del(.ReportID)
      | .Results = [.Results[0] | .Vulnerabilities = [range($n) as $i |
          {VulnerabilityID: ("CVE-" + $tag + "-" + ($i|tostring)), PkgName: "p",
           InstalledVersion: "1", Severity: "CRITICAL"}]]' "$SCAN/trivy-report.json" > "$T/t.json"
}
map_digest() {
    acr_push "$T/push.json" "$1" 1.0 "$(iso_at -2)"
    post_acr "$T/push.json"
    build_event "$T/build.json" "$1" "$(iso_at -1)" "$2"
    post_build "$T/build.json"
    check "edge for $1" '{"status":"accepted","events":1,"edges":1}' "$BODY"
}
cmdstat() { rcli info commandstats | sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p"; }

# 1. Ten reports of five fresh ids each on a mapped digest: each routes its five, and fr keeps
# the newest 20 (4 x 5).
D=$(random_digest)
map_digest "$D" 8001
FR="dm:{0}:fr:$D"
for r in $(seq 1 10); do
    trivy "[\"$D\"]" 5 "r$r"
    post_scan "$T/t.json"
    check "report $r routes its five" '{"status":"accepted","findings":5,"routed":5}' "$BODY"
done
check "fr is a sorted set" zset "$(rcli type "$FR")"
check "fr keeps 4 x max_findings_per_digest" 20 "$(rcli zcard "$FR")"
check "the current findings are kept" 5 "$(for i in 0 1 2 3 4; do rcli zscore "$FR" "CVE-r10-$i|p"; done | grep -c .)"
check "the oldest are dropped" "" "$(rcli zscore "$FR" 'CVE-r1-0|p')"
check "fr expires" 1 "$(rcli pttl "$FR" | awk '{print ($1 > 0)}')"
post_scan "$T/t.json"
check "the same report again routes nothing" '{"status":"accepted","findings":5,"routed":0}' "$BODY"

# 2. A one-finding report looks up its candidate only: no command reads the whole set.
rcli config resetstat >/dev/null
trivy "[\"$D\"]" 1 "tiny"
post_scan "$T/t.json"
check "one-finding report routes it" '{"status":"accepted","findings":1,"routed":1}' "$BODY"
check "no SMEMBERS" "" "$(cmdstat smembers)"
check "no ZRANGE" "" "$(cmdstat zrange)"
check "one ZMSCORE" 1 "$(cmdstat zmscore)"
check "still bounded" 20 "$(rcli zcard "$FR")"

# 3. A routed set left by an earlier version (a plain set) is taken over: its members are not
# routed again.
D2=$(random_digest)
rcli sadd "dm:{0}:fr:$D2" 'CVE-old-0|p' >/dev/null
map_digest "$D2" 8002
trivy "[\"$D2\"]" 2 "old"
post_scan "$T/t.json"
check "a member of the old set is not routed again" '{"status":"accepted","findings":2,"routed":1}' "$BODY"
check "old set taken over as a sorted set" "zset 2" "$(rcli type "dm:{0}:fr:$D2") $(rcli zcard "dm:{0}:fr:$D2")"

# 4. park.lua routes with the same bound: findings first (no mapping), a full routed set, then
# the edge.
D3=$(random_digest)
for i in $(seq 1 30); do rcli zadd "dm:{0}:fr:$D3" 0 "CVE-gone-$i|p" >/dev/null; done
trivy "[\"$D3\"]" 5 "p"
post_scan "$T/t.json"
check "no mapping: nothing routed" '{"status":"accepted","findings":5,"routed":0}' "$BODY"
map_digest "$D3" 8003
check "the edge routed the five and trimmed fr" 20 "$(rcli zcard "dm:{0}:fr:$D3")"
check "the five are kept" 5 "$(for i in 0 1 2 3 4; do rcli zscore "dm:{0}:fr:$D3" "CVE-p-$i|p"; done | grep -c .)"

# 5. A report naming more digests than a report may (Trivy through a daemon lists every
# registry's RepoDigests): 413 naming the field, logged, counted; nothing stored.
many=$(for i in $(seq 1 17); do random_digest; done | jq -R . | jq -sc .)
too_large=$(metric digestmap_body_too_large_total)
trivy "$many" 3 "many"
post_scan "$T/t.json"
check "17 digests: 413" 413 "$STATUS"
check "the error names the field and the bound" \
    '{"error":"Metadata.RepoDigests: names more than 16 distinct digests (at most 16 a report)"}' "$BODY"
check "counted" "$((too_large + 1))" "$(metric digestmap_body_too_large_total)"
check_match "logged" 'status=413 .*field="?Metadata.RepoDigests' "$(await_log 'status=413 route=/v1/findings')"
check "nothing stored" 0 "$(rcli exists "dm:{0}:f:$(jq -r '.[0]' <<<"$many")")"
# 2,000 digests: refused before anything is stored.
huge=$(for i in $(seq 1 2000); do random_digest; done | jq -R . | jq -sc .)
received=$(metric digestmap_findings_received_total)
trivy "$huge" 200 "huge"
post_scan "$T/t.json"
check "2,000 digests: 413" 413 "$STATUS"
check "no findings taken" "$received" "$(metric digestmap_findings_received_total)"
check "none stored on the first or the last" "0 0" \
    "$(rcli exists "dm:{0}:f:$(jq -r '.[0]' <<<"$huge")") $(rcli exists "dm:{0}:f:$(jq -r '.[-1]' <<<"$huge")")"

# 6. A report naming a few digests is stored on each.
few=$(for i in $(seq 1 3); do random_digest; done | jq -R . | jq -sc .)
trivy "$few" 2 "few"
post_scan "$T/t.json"
check "3 digests: stored" '{"status":"accepted","findings":2,"routed":0}' "$BODY"
for d in $(jq -r '.[]' <<<"$few"); do
    check "stored on $d" '{"trivy":{"critical":2,"high":0,"medium":0,"low":0,"unknown":0}}' \
        "$(rcli get "dm:{0}:fs:$d" | jq -c .by_scanner)"
done

finish
