#!/usr/bin/env bash
# Bad input: malformed bodies get a 400 naming the field, oversized bodies 413, wrong methods
# 405 with Allow, unknown paths 404; none of them writes to Redis or hurts the daemon.
. "$(dirname "$0")/lib.sh"
start_redis
start_daemon

A=$DM_FIXTURES/acr
B=$DM_FIXTURES/build
n400=0
bad() { # DESCRIPTION EXPECTED_BODY then request args
    local what=$1 want=$2
    shift 2
    "$@"
    n400=$((n400 + 1))
    check "$what: status" 400 "$STATUS"
    check "$what: body" "$want" "$BODY"
}
err() { jq -cn --arg e "$1" '{error: $e}'; }
DIGEST_ERR="must be sha256: followed by 64 lowercase hex digits"

printf '{"id": "x", "action": "push",' > "$T/truncated.json"
bad "truncated JSON" "$(err "invalid JSON at line 1 column 29: string or '}' expected near end of file")" post_acr "$T/truncated.json"
: > "$T/empty.json"
bad "empty ACR body" '{"error":"body is empty"}' post_acr "$T/empty.json"
bad "empty build body" '{"error":"body is empty"}' post_build "$T/empty.json"
echo '[{"action":"push"}]' > "$T/array.json"
bad "ACR array top level" '{"error":"must be a JSON object"}' post_acr "$T/array.json"
bad "build array top level" '{"error":"must be a JSON object"}' post_build "$T/array.json"

good_digest=$(random_digest)
declare -A digests=(
    [uppercase]="\"sha256:$(tr a-f A-F <<<"${good_digest#sha256:}")\""
    [short]="\"${good_digest:0:40}\""
    [long]="\"${good_digest}0\""
    [no-prefix]="\"${good_digest#sha256:}\""
    [sha512-prefix]="\"sha512:${good_digest#sha256:}\""
    [number]=42
)
for k in "${!digests[@]}"; do
    acr_push "$T/p.json" "$good_digest" 1.0.0 "$(iso_at -5)"
    jq ".target.digest = ${digests[$k]}" "$T/p.json" > "$T/x.json"
    bad "ACR digest $k" "$(err "target.digest: $DIGEST_ERR")" post_acr "$T/x.json"
    build_event "$T/b.json" "$good_digest" "$(iso_at -5)" 1
    jq ".images[0].digest = ${digests[$k]}" "$T/b.json" > "$T/x.json"
    bad "build digest $k" "$(err "images[0].digest: $DIGEST_ERR")" post_build "$T/x.json"
done
jq 'del(.target.digest)' "$T/p.json" > "$T/x.json"
bad "ACR digest missing" '{"error":"target.digest: is required"}' post_acr "$T/x.json"
jq 'del(.run)' "$T/b.json" > "$T/x.json"
bad "build without run" '{"error":"run: is required"}' post_build "$T/x.json"
jq 'del(.run)' "$T/b.json" > "$T/x.json"
bad "build without run (HMAC auth)" '{"error":"run: is required"}' post_build_hmac "$T/x.json"
jq 'del(.run.run_id)' "$T/b.json" > "$T/x.json"
bad "build without run.run_id" '{"error":"run.run_id: is required"}' post_build "$T/x.json"

# every fixture in tests/fixtures/*/invalid, with the exact error of its expected.tsv
# (file TAB field TAB text; field may be empty, so no "read" with IFS=tab, which merges tabs)
split_tsv() {
    local rest=${1#*$'\t'}
    file=${1%%$'\t'*}
    want=${rest#*$'\t'}
    [ -n "${rest%%$'\t'*}" ] && want="${rest%%$'\t'*}: $want"
    return 0
}
while IFS= read -r line; do
    case $line in '#'*|'') continue ;; esac
    split_tsv "$line"
    bad "acr/invalid/$file" "$(err "$want")" post_acr "$A/invalid/$file"
done < "$A/invalid/expected.tsv"
while IFS= read -r line; do
    case $line in '#'*|'') continue ;; esac
    split_tsv "$line"
    bad "build/invalid/$file" "$(err "$want")" post_build "$B/invalid/$file"
done < "$B/invalid/expected.tsv"

# body over limits.max_body_bytes (65536)
head -c 65600 /dev/zero | tr '\0' ' ' > "$T/big.json"
post_acr "$T/big.json"
check "oversized ACR body: 413" 413 "$STATUS"
check_match "oversized ACR body: error" '^\{"error":".*"\}$' "$BODY"
python3 -c "import json; print(json.dumps({'images': [], 'pad': 'a' * 70000}))" > "$T/big.json"
post_build "$T/big.json"
check "oversized build body: 413" 413 "$STATUS"
post_build "$T/big.json" -H 'Transfer-Encoding: chunked'
check "oversized chunked build body: 413" 413 "$STATUS"
# exactly at the limit is not too large (it is 400 for other reasons)
python3 -c "import sys; s = '{\"pad\":\"' ; sys.stdout.write(s + 'a' * (65536 - len(s) - 2) + '\"}')" > "$T/limit.json"
check "limit file size" 65536 "$(stat -c %s "$T/limit.json")"
bad "body of exactly max_body_bytes is parsed" '{"error":"images: is required"}' post_build "$T/limit.json"

# methods and routes
request GET /v1/registry/acr -H 'Authorization: Bearer acr-token'
check "GET on the ACR route: 405" 405 "$STATUS"
check_match "GET on the ACR route: Allow: POST" $'(^|\n)Allow: POST\r?(\n|$)' "$HEADERS"
request GET /v1/builds
check "GET on the build route: 405" 405 "$STATUS"
check_match "GET on the build route: Allow: POST" $'(^|\n)Allow: POST\r?(\n|$)' "$HEADERS"
request POST /healthz
check "POST /healthz: 405" 405 "$STATUS"
check_match "POST /healthz: Allow names GET" $'(^|\n)Allow: [^\r\n]*GET' "$HEADERS"
request GET /no/such/path
check "unknown path: 404" 404 "$STATUS"
check "unknown path: body" '{"error":"no such route"}' "$BODY"
request POST /v1/registry/acrx -H 'Authorization: Bearer acr-token' --data-binary '{}'
check "near-miss path: 404" 404 "$STATUS"

check "nothing in Redis" 0 "$(rcli dbsize)"
check "invalid metric counts every 400" "$n400" "$(metric digestmap_invalid_requests_total)"
check "no 5xx answered" "" "$(curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^digestmap_requests_total\{.*status="5' || true)"
check "no event parked" 0 "$(metric 'digestmap_events_parked_total{source="acr"}')"

# still healthy and working
request GET /healthz
check "healthz after bad input" 200 "$STATUS"
request GET /readyz
check "readyz after bad input" 200 "$STATUS"
acr_push "$T/p.json" "$good_digest" 1.0.0 "$(iso_at -5)"
post_acr "$T/p.json"
check "a good push is still accepted" '{"status":"accepted","events":1,"edges":0}' "$BODY"
finish
