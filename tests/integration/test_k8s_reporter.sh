#!/usr/bin/env bash
# scripts/digestmap-k8s-report (docs/workloads.md, "The reporter") against a fake kubectl that
# prints the snapshot fixture as a kubectl List, posting to a local receiver (sink.py): the
# body's shape and the bearer token, the trimmed and --full bodies, retries on 503/429 with
# Retry-After, the bound on attempts, refusals and every failure's exit status and message.
# The daemon's POST /v1/workloads is not exercised here: the reporter alone is.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sink/sink_lib.sh"

REPORT="${DM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/scripts/digestmap-k8s-report"
SNAP="$DM_FIXTURES/k8s/snapshot.json"

# The fake kubectl: logs its arguments, fails when $T/kubectl.fail exists, else prints the
# fixture's items as `kubectl get ... -o json` does (a List).
mkdir -p "$T/bin"
cat >"$T/bin/kubectl" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$T/kubectl.args"
if [ -e "$T/kubectl.fail" ]; then
    echo 'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:digestmap:reporter" cannot list resource "pods"' >&2
    exit 1
fi
exec jq '{apiVersion: "v1", kind: "List", items: .items, metadata: {resourceVersion: ""}}' "$SNAP"
EOF
chmod +x "$T/bin/kubectl"
export PATH="$T/bin:$PATH"
printf 'eyJhbGciOiJSUzI1NiJ9.projected.token\n' >"$T/token"

start_sink k8s
URL="http://127.0.0.1:$SINK_PORT"

# report ARGS...: run the reporter; sets RC and ERR (its stderr).
report() {
    "$REPORT" --url "$URL" --cluster prod-weu --token-file "$T/token" --retry-delay 0 "$@" \
        >"$T/out" 2>"$T/err" && RC=0 || RC=$?
    ERR=$(cat "$T/err")
}

# req N FILTER: jq FILTER on the Nth (1-based) logged request.
req() { sed -n "${1}p" "$T/k8s.log" | jq -r "$2"; }

# --- a snapshot is posted once, with the token and the wrapped, trimmed items
report
check "accepted: exit 0" 0 "$RC"
check "one request" 1 "$(sink_requests k8s)"
check "kubectl arguments" "get pods,services,ingresses --all-namespaces -o json" \
    "$(head -n 1 "$T/kubectl.args")"
check "POST" POST "$(req 1 .method)"
check "path" /v1/workloads "$(req 1 .path)"
check "bearer token from the token file" "Bearer eyJhbGciOiJSUzI1NiJ9.projected.token" \
    "$(req 1 '.headers | to_entries[] | select(.key | ascii_downcase == "authorization") | .value')"
check "content type" application/json \
    "$(req 1 '.headers | to_entries[] | select(.key | ascii_downcase == "content-type") | .value')"
req 1 .body >"$T/body1.json"
check "body members" '["cluster","items","taken_at"]' "$(jq -c 'keys' "$T/body1.json")"
check "cluster" prod-weu "$(jq -r .cluster "$T/body1.json")"
check_match "taken_at is RFC 3339 UTC" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' \
    "$(jq -r .taken_at "$T/body1.json")"
check "every item, in kubectl's order" \
    "$(jq -c '[.items[] | [.kind, .metadata.namespace, .metadata.name]]' "$SNAP")" \
    "$(jq -c '[.items[] | [.kind, .metadata.namespace, .metadata.name]]' "$T/body1.json")"
# the trimmed items are exactly what the unit test derives the expected workloads from
check "trimmed items = tests/fixtures/k8s/snapshot-trimmed.json" \
    "$(jq -cS .items "$DM_FIXTURES/k8s/snapshot-trimmed.json")" "$(jq -cS .items "$T/body1.json")"
check "image ids kept" "$(jq -c '[.items[].status.containerStatuses[]?.imageID]' "$SNAP")" \
    "$(jq -c '[.items[].status.containerStatuses[]?.imageID]' "$T/body1.json")"
check "pod annotations dropped" 0 "$(jq '[.items[] | select(.kind == "Pod") |
    .metadata.annotations // empty] | length' "$T/body1.json")"
check "service annotations kept" '{"service.beta.kubernetes.io/azure-load-balancer-internal":"true"}' \
    "$(jq -c '.items[] | select(.kind == "Service" and .metadata.name == "batch-internal") |
    .metadata.annotations' "$T/body1.json")"
check_match "logs the answer" 'POST http://127.0.0.1:[0-9]+/v1/workloads: 200' "$ERR"

# --- --full posts kubectl's items untouched; --path changes the path
report --full --path /v1/k8s-prod
check "--full: exit 0" 0 "$RC"
check "--full: path" /v1/k8s-prod "$(req 2 .path)"
check "--full: the items as kubectl printed them" "$(jq -cS .items "$SNAP")" \
    "$(req 2 .body | jq -cS .items)"

# --- 503 then 429, each with Retry-After: retried, the wait is the server's
sink_answers k8s "503:1,429:1"
report
check "after 503 and 429: exit 0" 0 "$RC"
check "three more requests" 5 "$(sink_requests k8s)"
check_match "503 retried after Retry-After" 'POST [^ ]+: 503 .*attempt 1 of 5, retrying in 1s' "$ERR"
check_match "429 retried after Retry-After" 'POST [^ ]+: 429 .*attempt 2 of 5, retrying in 1s' "$ERR"
check "the token is sent on every attempt" 3 \
    "$(tail -n 3 "$T/k8s.log" | jq -r '.headers | to_entries[] |
        select(.key | ascii_downcase == "authorization") | .value' | grep -c projected)"

# --- a Retry-After longer than --retry-max-delay is capped; attempts are bounded
sink_answers k8s "503:7,503:0,503:0"
report --max-attempts 3 --retry-max-delay 0
check "always 503: exit 1" 1 "$RC"
check "always 503: three attempts" 8 "$(sink_requests k8s)"
check_match "capped wait" 'attempt 1 of 3, retrying in 0s' "$ERR"
check_match "says it gave up" 'error: POST [^ ]+: 503 .*\(after 3 attempts\)' "$ERR"

# --- a refusal is final
sink_answers k8s '400'
report
check "400: exit 1" 1 "$RC"
check "400: one attempt" 9 "$(sink_requests k8s)"
check_match "400: message" 'digestmap refused the snapshot: 400' "$ERR"

# --- failures before any request
touch "$T/kubectl.fail"
report
check "kubectl fails: exit 1" 1 "$RC"
check_match "kubectl fails: its error is shown" 'kubectl get pods,services,ingresses failed: .*forbidden' "$ERR"
rm -f "$T/kubectl.fail"
"$REPORT" --url "$URL" --cluster prod-weu --token-file "$T/no-such-token" >/dev/null 2>"$T/err" &&
    RC=0 || RC=$?
check "no token file: exit 1" 1 "$RC"
check_match "no token file: message" "cannot read the token file $T/no-such-token" "$(cat "$T/err")"
: >"$T/empty-token"
report --token-file "$T/empty-token"
check "empty token file: exit 1" 1 "$RC"
check_match "empty token file: message" 'is empty' "$ERR"
check "no request for any of them" 9 "$(sink_requests k8s)"

hold_closed_port
"$REPORT" --url "http://127.0.0.1:$CLOSED_PORT" --cluster prod-weu --token-file "$T/token" \
    --retry-delay 0 --max-attempts 2 >/dev/null 2>"$T/err" && RC=0 || RC=$?
check "connection refused: exit 1" 1 "$RC"
check_match "connection refused: retried, then gave up" 'failed: .*\(after 2 attempts\)' "$(cat "$T/err")"

# --- usage errors
"$REPORT" --url "$URL" >/dev/null 2>"$T/err" && RC=0 || RC=$?
check "no --cluster: exit 2" 2 "$RC"
check_match "no --cluster: message" '--cluster \(or DIGESTMAP_CLUSTER\) is required' "$(cat "$T/err")"
"$REPORT" --cluster 'prod/weu' --dry-run >/dev/null 2>&1 && RC=0 || RC=$?
check "bad cluster name: exit 2" 2 "$RC"
"$REPORT" --cluster prod-weu >/dev/null 2>"$T/err" && RC=0 || RC=$?
check "no --url: exit 2" 2 "$RC"
DIGESTMAP_URL=$URL DIGESTMAP_CLUSTER=env-cluster DIGESTMAP_TOKEN_FILE=$T/token \
    "$REPORT" --dry-run >"$T/out" 2>/dev/null && RC=0 || RC=$?
check "environment instead of options" "0 env-cluster" "$RC $(jq -r .cluster "$T/out")"
"$REPORT" --help >"$T/out" 2>&1 && RC=0 || RC=$?
check "--help: exit 0" 0 "$RC"
check_match "--help documents the token file" 'DIGESTMAP_TOKEN_FILE' "$(cat "$T/out")"
check "no request from dry runs or usage errors" 9 "$(sink_requests k8s)"

finish
