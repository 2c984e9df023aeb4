#!/usr/bin/env bash
# The workloads of a dev.digestmap.finding.routed.v1 record (docs/findings.md, docs/workloads.md):
# every workload whose cluster's inventory still lists it, each with its images (kept in the
# inventory, not in w:), and none of a cluster that stopped reporting (its inventory expired).
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon "$(default_config | jq '.sources += [
  {type: "k8s", auth: [{type: "header", name: "Authorization", value: "Bearer k8s-token"}]},
  {type: "scan", auth: [{type: "header", name: "Authorization", value: "Bearer scan-token"}]}]')"
post_k8s() { post /v1/workloads "$1" -H 'Authorization: Bearer k8s-token'; }
post_scan() { post /v1/findings "$1" -H 'Authorization: Bearer scan-token'; }
pod() { # NAME DIGEST...: a bare pod running the digests
    local n=$1
    shift
    jq -nc --arg n "$n" --args '{kind: "Pod", apiVersion: "v1", metadata: {name: $n, namespace: "ns"},
        status: {containerStatuses: [$ARGS.positional | to_entries[] | {name: "c\(.key)", imageID: ("r.io/x@" + .value)}]}}' "$@"
}
snap() { # CLUSTER ITEMS_JSON
    jq -nc --arg c "$1" --arg t "$(iso_at -30)" --argjson i "$2" '{cluster: $c, taken_at: $t, items: $i}' >"$T/s.json"
    post_k8s "$T/s.json"
    check "snapshot of $1: 202" 202 "$STATUS"
}
trivy_for() { # DIGEST: the Trivy fixture naming DIGEST, with a fresh critical id
    jq --arg d "$1" --arg id "$2" '.Metadata.RepoDigests = ["contoso.azurecr.io/team/api@" + $d] | del(.ReportID)
        | .Results[0].Vulnerabilities[0].VulnerabilityID = $id | .Results[0].Vulnerabilities[0].Severity = "CRITICAL"' \
        "$DM_FIXTURES/scan/trivy-report.json" > "$T/trivy.json"
}
routed_workloads() { # DIGEST: the workloads of its newest routed record
    stream_events | jq -c "select(.type == \"dev.digestmap.finding.routed.v1\" and .subject == \"$1\")
        | [.data.workloads[] | \"\(.cluster)/\(.name):\(.images | sort | join(\",\"))\"]" | tail -n 1
}

D=$(random_digest)
E=$(random_digest)
snap A "[$(pod a1 "$D" "$E")]"
snap B "[$(pod b1 "$D")]"
acr_push "$T/push.json" "$D" 1.4.0 "$(iso_at -2)"
post_acr "$T/push.json"
build_event "$T/build.json" "$D" "$(iso_at -1)" 4242
post_build "$T/build.json"
check "edge" '{"status":"accepted","events":1,"edges":1}' "$BODY"
trivy_for "$D" CVE-2099-0001
post_scan "$T/trivy.json"
check "routed" 202 "$STATUS"
want=$(jq -nc --arg d "$D" --arg e "$E" '["A/a1:" + ([$d, $e] | sort | join(",")), "B/b1:" + $d]')
check "the record lists both workloads, each with its images" "$want" "$(routed_workloads "$D")"

# A stops reporting: its inventory expires, its w: entry stays (B keeps the key alive)
no_wc_a() { [ "$(rcli --scan --pattern 'dm:*:wc:A' | wc -l)" == 0 ]; }
for k in $(rcli --scan --pattern 'dm:*:wc:A'); do rcli pexpire "$k" 50 >/dev/null; done
poll_until "$DM_WAIT" no_wc_a || fail "wc:A did not expire"
trivy_for "$D" CVE-2099-0002
post_scan "$T/trivy.json"
check "routed again (a new finding)" 202 "$STATUS"
check "two routed records" 2 "$(stream_events | jq -c "select(.type == \"dev.digestmap.finding.routed.v1\")" | grep -c .)"
check "a cluster that stopped reporting is not listed" "[\"B/b1:$D\"]" "$(routed_workloads "$D")"
finish
