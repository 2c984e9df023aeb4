#!/usr/bin/env bash
# Findings (docs/findings.md): a `scan` source's Trivy and Grype reports and an `ecr` source's
# scan events stored per digest, the summary, the per-digest bound, and the
# dev.digestmap.finding.routed.v1 record: in both orders, exactly once, above the threshold
# only, again for a severity that rises to it, never again for a finding that left and came
# back. Bad reports: precise 400s.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/jwt.sh"
start_redis
rsa_key "$T/ci.pem"
jwks "$(rsa_jwk "$T/ci.pem" ci-1)" > "$T/ci-jwks.json"

SCAN="$DM_FIXTURES/scan"
ECRF="$DM_FIXTURES/ecr/findings"
start_daemon "$(default_config | jq --arg jwks "$T/ci-jwks.json" '
  .limits.max_body_bytes = 4194304
  | .sources += [
    {"type": "scan", "auth": [{"type": "header", "name": "Authorization", "value": "Bearer scan-token"},
                              {"type": "oidc", "issuer": "https://token.actions.githubusercontent.com",
                               "audience": "digestmap", "jwks_file": $jwks}]},
    {"type": "ecr", "auth": [{"type": "header", "name": "x-api-key", "value": "ecr-key"}]}]')"

ROUTED=dev.digestmap.finding.routed.v1
post_scan() { post /v1/findings "$1" -H 'Authorization: Bearer scan-token'; }
post_ecr() { post /v1/registry/ecr "$1" -H 'x-api-key: ecr-key'; }
# trivy_for DIGEST [JQ_FILTER]: the Trivy fixture naming DIGEST (then JQ_FILTER) in $T/trivy.json.
trivy_for() {
    jq --arg d "$1" ".Metadata.RepoDigests = [\"contoso.azurecr.io/team/api@\" + \$d] | del(.ReportID) | ${2:-.}" \
        "$SCAN/trivy-report.json" > "$T/trivy.json"
}
# grype_for DIGEST MANIFEST [JQ_FILTER]: the Grype fixture naming DIGEST and MANIFEST.
grype_for() {
    jq --arg d "$1" --arg m "$2" ".source.target.repoDigests = [\"contoso.azurecr.io/team/api@\" + \$d]
        | .source.target.manifestDigest = \$m | ${3:-.}" "$SCAN/grype-report.json" > "$T/grype.json"
}
# map_digest DIGEST RUN: a push and a build of DIGEST: one confirmed edge.
map_digest() {
    acr_push "$T/push.json" "$1" 1.4.0 "$(iso_at -2)"
    post_acr "$T/push.json"
    build_event "$T/build.json" "$1" "$(iso_at -1)" "$2"
    post_build "$T/build.json"
    check "edge for $1" '{"status":"accepted","events":1,"edges":1}' "$BODY"
}
summary() { rcli get "dm:{0}:fs:$1"; }
counts() { summary "$1" | jq -c '[.critical, .high, .medium, .low, .unknown]'; }
routed_records() { stream_events | jq -c "select(.type == \"$ROUTED\" and .subject == \"$1\")"; }
routed_count() { routed_records "$1" | grep -c . || true; }
routed_new() { routed_records "$1" | jq -c '[.data.findings.new[] | .id + "|" + .package]'; }

# 1. The finding first, then the mapping: the edge routes it.
d1=$(random_digest)
trivy_for "$d1"
post_scan "$T/trivy.json"
check "trivy report: 202, nothing routed without a mapping" \
    '{"status":"accepted","findings":6,"routed":0}' "$BODY"
check "summary: distinct findings by severity" '[1,2,1,2,0]' "$(counts "$d1")"
check "by_scanner" '{"trivy":{"critical":1,"high":2,"medium":1,"low":2,"unknown":0}}' \
    "$(summary "$d1" | jq -c .by_scanner)"
check "stored: one field per scanner" "6" "$(rcli hget "dm:{0}:f:$d1" trivy | jq length)"
check "findings keys expire" "1" "$(rcli pttl "dm:{0}:f:$d1" | awk '{print ($1 > 0)}')"
check "no record yet" 0 "$(routed_count "$d1")"
map_digest "$d1" 7001
check "finding then mapping: one record" 1 "$(wait_count 1 60 routed_count "$d1")"
check "findings.new: critical and high, most severe first" \
    '["CVE-2023-45853|zlib1g","CVE-2024-45296|path-to-regexp","CVE-2024-45590|body-parser"]' \
    "$(routed_new "$d1")"
rec=$(routed_records "$d1")
check "record: owner from the newest edge" '["acme/api","3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d","mona","release",false]' \
    "$(jq -c '.data.build | [.repository, .commit, .actor, .workflow, .verified]' <<<"$rec")"
check "record: image, mappings, summary, workloads" '["team/api",1,1,[]]' \
    "$(jq -c '.data | [.image.repository, (.mappings|length), .findings.summary.critical, .workloads]' <<<"$rec")"
check "record: CloudEvents envelope" '["dev.digestmap.finding.routed.v1","digestmap"]' \
    "$(jq -c '[.type, .source]' <<<"$rec")"
check "a new finding carries its scanner and versions" '{"id":"CVE-2023-45853","package":"zlib1g","severity":"critical","installed":"1:1.2.13.dfsg-1","status":"will_not_fix","scanner":"trivy"}' \
    "$(jq -c '.data.findings.new[0] | del(.fixed, .path)' <<<"$rec")"
check "routed set" 3 "$(rcli zcard "dm:{0}:fr:$d1")"
post_scan "$T/trivy.json"
check "the same report again: nothing new" '{"status":"accepted","findings":6,"routed":0}' "$BODY"
build_event "$T/build.json" "$d1" "$(iso_at -1)" 7002
post_build "$T/build.json"
check "a second edge: no record for findings already routed" 1 "$(routed_count "$d1")"

# 2. The mapping first, then the finding: the report routes it.
d2=$(random_digest)
map_digest "$d2" 7003
trivy_for "$d2"
post_scan "$T/trivy.json"
check "mapping then finding: routed in the answer" '{"status":"accepted","findings":6,"routed":3}' "$BODY"
check "mapping then finding: one record" 1 "$(routed_count "$d2")"

# 3. Below the threshold: nothing; 4. a severity rising to it routes; 5. a finding that leaves
# and comes back is not new.
d3=$(random_digest)
map_digest "$d3" 7004
trivy_for "$d3" '.Results |= map(.Vulnerabilities |= map(select(.Severity == "MEDIUM" or .Severity == "LOW")))'
post_scan "$T/trivy.json"
check "medium and low only: nothing routed" '{"status":"accepted","findings":3,"routed":0}' "$BODY"
check "below the threshold: no record" 0 "$(routed_count "$d3")"
trivy_for "$d3" '.Results |= map(.Vulnerabilities |= map(select(.Severity == "MEDIUM" or .Severity == "LOW")
    | if .VulnerabilityID == "CVE-2024-6119" then .Severity = "HIGH" else . end))'
post_scan "$T/trivy.json"
check "a severity rising to high: routed" '{"status":"accepted","findings":3,"routed":1}' "$BODY"
check "the risen finding alone" '["CVE-2024-6119|libssl3"]' "$(routed_new "$d3")"
trivy_for "$d3" '.Results |= map(.Vulnerabilities = [])'
post_scan "$T/trivy.json"
check "a clean report: 202" '{"status":"accepted","findings":0,"routed":0}' "$BODY"
check "a clean report: no summary" "" "$(summary "$d3")"
trivy_for "$d3" '.Results |= map(.Vulnerabilities |= map(select(.Severity == "MEDIUM" or .Severity == "LOW")
    | if .VulnerabilityID == "CVE-2024-6119" then .Severity = "HIGH" else . end))'
post_scan "$T/trivy.json"
check "the finding comes back: not routed again" '{"status":"accepted","findings":3,"routed":0}' "$BODY"
check "still one record" 1 "$(routed_count "$d3")"

# 6. Trivy and Grype of one digest: the union by (id, package), at the highest severity.
d4=$(random_digest)
m4=$(random_digest)
trivy_for "$d4"
post_scan "$T/trivy.json"
grype_for "$d4" "$m4" '.matches |= map(if .vulnerability.id == "CVE-2024-6119" then .vulnerability.severity = "High" else . end)'
post_scan "$T/grype.json"
check "grype report: 202" '{"status":"accepted","findings":5,"routed":0}' "$BODY"
# trivy 6 + grype's GHSA path-to-regexp (high), GHSA cookie (low), coreutils (negligible: low);
# libssl3 CVE-2024-6119 is medium in trivy, high in grype: high.
check "union at the highest severity" '[1,4,0,4,0]' "$(counts "$d4")"
check "by_scanner of both" '{"grype":{"critical":1,"high":2,"medium":0,"low":2,"unknown":0},"trivy":{"critical":1,"high":2,"medium":1,"low":2,"unknown":0}}' \
    "$(summary "$d4" | jq -c .by_scanner)"
check "the platform manifest has grype's findings" '[1,2,0,2,0]' "$(counts "$m4")"
map_digest "$d4" 7005
check "union routed once, each finding once" \
    '["CVE-2023-45853|zlib1g","CVE-2024-45296|path-to-regexp","CVE-2024-45590|body-parser","CVE-2024-6119|libssl3","GHSA-9wv6-86v2-598j|path-to-regexp"]' \
    "$(routed_new "$d4")"
check "the union's finding names the scanner rating it highest" 'grype' \
    "$(routed_records "$d4" | jq -r '.data.findings.new[] | select(.id == "CVE-2024-6119") | .scanner')"

# 7. The bound: at most limits.max_findings_per_digest (2000) per digest, most severe kept.
d5=$(random_digest)
dropped0=$(metric digestmap_findings_dropped_total)
trivy_for "$d5" '.Results = [{"Target": "big", "Class": "lang-pkgs", "Type": "npm",
  "Vulnerabilities": ([range(2100)] | map({"VulnerabilityID": ("CVE-2099-" + tostring), "PkgName": "p",
    "InstalledVersion": "1", "Severity": (if . < 100 then "CRITICAL" else "LOW" end)}))}]'
post_scan "$T/trivy.json"
check "2100 findings: 202" '{"status":"accepted","findings":2100,"routed":0}' "$BODY"
check "2000 kept, the criticals among them" '[100,0,0,1900,0]' "$(counts "$d5")"
check "stored list bounded" 2000 "$(rcli hget "dm:{0}:f:$d5" trivy | jq length)"
grype_for "$d5" "$(random_digest)" '.matches = ([range(50)] | map({"vulnerability": {"id": ("GHSA-x-" + tostring),
    "severity": "High", "fix": {"versions": [], "state": "unknown"}}, "artifact": {"name": "q", "version": "1",
    "type": "npm", "locations": []}}))'
post_scan "$T/grype.json"
check "a second scanner's highs push lows out" '[100,50,0,1850,0]' "$(counts "$d5")"
check "trivy's field lost its least severe" 1950 "$(rcli hget "dm:{0}:f:$d5" trivy | jq length)"
check "dropped counted: 100 by the report, 50 by the digest" "$((dropped0 + 150))" \
    "$(metric digestmap_findings_dropped_total)"

# 8. ECR basic scanning and Inspector2 Scan: counts, in by_scanner only.
d6=$(random_digest)
jq --arg d "$d6" '.detail["image-digest"] = $d' "$ECRF/eventbridge-scan-basic.json" > "$T/basic.json"
post_ecr "$T/basic.json"
check "ECR Image Scan: 202" '{"status":"accepted","findings":0,"routed":0}' "$BODY"
jq --arg d "$d6" '.detail["image-digest"] = $d' "$ECRF/eventbridge-inspector2-scan.json" > "$T/iscan.json"
post_ecr "$T/iscan.json"
check "Inspector2 Scan: 202" '{"status":"accepted","findings":0,"routed":0}' "$BODY"
check "counts in by_scanner, none itemized" '{"critical":0,"high":0,"medium":0,"low":0,"unknown":0,"by_scanner":{"ecr-basic":{"critical":0,"high":2,"medium":6,"low":15,"unknown":1},"inspector":{"critical":0,"high":3,"medium":7,"low":9,"unknown":0}}}' \
    "$(summary "$d6")"
jq '.detail["scan-status"] = "FAILED"' "$T/basic.json" > "$T/basic-failed.json"
post_ecr "$T/basic-failed.json"
check "a scan not complete: ignored" '{"status":"ignored","reason":"scan not complete"}' "$BODY"
# An ECR push on the same source is still parked (dm_ecr_parse after dm_ecr_parse_finding).
jq -nc --arg d "$d6" --arg t "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
  {version: "0", id: "push-1", "detail-type": "ECR Image Action", source: "aws.ecr",
   account: "111122223333", time: $t, region: "eu-west-1", resources: [],
   detail: {result: "SUCCESS", "repository-name": "payments/worker", "image-digest": $d,
            "action-type": "PUSH", "image-tag": "2.1.0"}}' > "$T/push-ecr.json"
post_ecr "$T/push-ecr.json"
check "an ECR push beside the scan events: parked" '{"status":"accepted","events":1,"edges":0}' "$BODY"

# 9. Inspector2 Finding: ACTIVE upserts into "inspector", CLOSED leaves the summary.
d7=$(random_digest)
map_digest "$d7" 7006
jq --arg d "$d7" '.detail.resources[0].details.awsEcrContainerImage.imageHash = $d' \
    "$ECRF/eventbridge-inspector2-finding.json" > "$T/ifind.json"
post_ecr "$T/ifind.json"
check "Inspector finding ACTIVE, high, mapped: routed" '{"status":"accepted","findings":1,"routed":1}' "$BODY"
check "summary with the inspector finding" '[0,1,0,0,0]' "$(counts "$d7")"
jq '.detail.status = "CLOSED"' "$T/ifind.json" > "$T/ifind-closed.json"
post_ecr "$T/ifind-closed.json"
check "Inspector finding CLOSED: 202" '{"status":"accepted","findings":1,"routed":0}' "$BODY"
check "CLOSED leaves the summary" "" "$(summary "$d7")"
post_ecr "$T/ifind.json"
check "reopened: not routed again" '{"status":"accepted","findings":1,"routed":0}' "$BODY"
check "one record for the inspector finding" 1 "$(routed_count "$d7")"

# 10. Bad reports: precise 400s, logged and counted; credentials as for every source.
invalid0=$(metric digestmap_invalid_requests_total)
while IFS=$'\t' read -r file field text; do
    [[ "$file" == \#* || -z "$file" ]] && continue
    post_scan "$SCAN/invalid/$file"
    check "$file: 400" 400 "$STATUS"
    check "$file: names the field" "{\"error\":\"$field: $text\"}" "$BODY"
done < "$SCAN/invalid/expected.tsv"
printf 'not json' > "$T/junk.json"
post_scan "$T/junk.json"
check "not JSON: 400" 400 "$STATUS"
check "bad reports counted" "$((invalid0 + 6))" "$(metric digestmap_invalid_requests_total)"
check "bad report logged with its reason" 1 \
    "$(grep -c 'route=/v1/findings field="ArtifactType" reason="must be container_image"' "$T/daemon.log")"
post /v1/findings "$T/trivy.json" -H 'Authorization: Bearer wrong'
check "wrong credentials: 401" 401 "$STATUS"
now=$(date +%s)
tok=$(mint_rs256 "$T/ci.pem" ci-1 "$(jq -nc --argjson now "$now" '{iss: "https://token.actions.githubusercontent.com",
    aud: "digestmap", jti: "scan-1", iat: $now, exp: ($now + 300), sub: "repo:acme/api:ref:refs/heads/main",
    repository: "acme/api", run_id: "1", run_attempt: "1"}')")
trivy_for "$(random_digest)"
post /v1/findings "$T/trivy.json" -H "Authorization: Bearer $tok"
check "an OIDC token: 202" 202 "$STATUS"
post /v1/findings "$T/trivy.json" -H "Authorization: Bearer $tok"
check "the same token again (jti seen): 401" '401 {"error":"bad credentials: token already used"}' "$STATUS $BODY"
head -c 4194305 /dev/zero | tr '\0' ' ' > "$T/huge.json"
post_scan "$T/huge.json"
check "over limits.max_body_bytes: 413" 413 "$STATUS"

# 10b. The summary counts distinct ids (each at its highest severity over its packages and
# scanners); the items stay per (id, package).
d9=$(random_digest)
trivy_for "$d9" '.Results = [.Results[0] | .Vulnerabilities = [
  {VulnerabilityID: "CVE-2024-5535", PkgName: "libssl3", InstalledVersion: "3.0.13-1", Severity: "HIGH"},
  {VulnerabilityID: "CVE-2024-5535", PkgName: "libcrypto3", InstalledVersion: "3.0.13-1", Severity: "CRITICAL"},
  {VulnerabilityID: "CVE-2023-0001", PkgName: "zlib1g", InstalledVersion: "1", Severity: "LOW"}]]'
post_scan "$T/trivy.json"
check "one CVE in two packages: 202" '{"status":"accepted","findings":3,"routed":0}' "$BODY"
check "summary: one id at its highest severity" '[1,0,0,1,0]' "$(counts "$d9")"
check "by_scanner: ids too" '{"trivy":{"critical":1,"high":0,"medium":0,"low":1,"unknown":0}}' \
    "$(summary "$d9" | jq -c .by_scanner)"
check "items stay per (id, package)" 3 "$(rcli hget "dm:{0}:f:$d9" trivy | jq length)"
grype_for "$d9" "$d9" '.matches = [
  {vulnerability: {id: "CVE-2024-5535", severity: "Medium"}, artifact: {name: "libssl3", version: "3.0.13-1"}},
  {vulnerability: {id: "CVE-2023-0001", severity: "Critical"}, artifact: {name: "zlib1g", version: "1"}}]'
post_scan "$T/grype.json"
check "grype on the same digest: 202" '{"status":"accepted","findings":2,"routed":0}' "$BODY"
check "summary over scanners: each id once, at the highest any scanner gives" '[2,0,0,0,0]' "$(counts "$d9")"
check "by_scanner grype" '{"critical":1,"high":0,"medium":1,"low":0,"unknown":0}' \
    "$(summary "$d9" | jq -c .by_scanner.grype)"

# Metrics.
check "records counted" "$(stream_type_count $ROUTED)" "$(metric digestmap_findings_routed_records_total)"
check_match "findings received counted" '^[1-9][0-9]+$' "$(metric digestmap_findings_received_total)"
check_match "findings stored counted" '^[1-9][0-9]+$' "$(metric digestmap_findings_stored_total)"

# 11. Redis cannot take it: 503 + Retry-After (findings are not spooled).
stop_redis
trivy_for "$(random_digest)"
post_scan "$T/trivy.json"
check "Redis down: 503" 503 "$STATUS"
check_match "Redis down: Retry-After" 'Retry-After: [0-9]+' "$HEADERS"
start_redis
finish
