#!/usr/bin/env bash
# Attacks on authentication, logs and quotas (docs/internet-auth.md), each performed against the
# real daemon and checked against its bound:
#   1. a JWT kid carrying a forged log line and terminal escapes, and jansson's error text
#      quoting the body: one log line per request, no raw control byte, values quoted;
#   2. a numeric jti replayed (and respelled): 401 as for strings;
#   3. an allowlisted claim sent as an array holding the allowed value: 403 with the reason;
#   4. valid OIDC tokens that name no run (generic provider, Azure service connection) without
#      a body run: 400 naming run.run_id, nothing written to Redis;
#   5. SNS SigningCertURLs under the SNS host with other paths, queries or many names: refused
#      or rate-limited per host, without an outgoing request beyond the host's few;
#   6. a source quota (sources[].rate): 429 with Retry-After, per credential and per source.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/jwt.sh"
start_redis

GH=https://token.actions.githubusercontent.com
GEN=https://ci.example.com
AZ=https://vstoken.dev.azure.com/00000000-0000-0000-0000-0000000000aa
TOPIC=arn:aws:sns:eu-west-1:111122223333:ecr-events
SNS=https://sns.eu-west-1.amazonaws.com
rsa_key "$T/k.pem"
jwks "$(rsa_jwk "$T/k.pem" k1)" > "$T/jwks.json"

# A stand-in for the SNS host, so that any fetch that does happen is seen (and none reaches AWS).
W=$T/www
mkdir -p "$W"
python3 "$(dirname "$0")/sns/serve.py" "$W" "$W/port" >/dev/null 2>>"$T/serve.log" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 1 100); do [ -s "$W/port" ] && break; sleep 0.05; done
[ -s "$W/port" ] || die "serve.py did not start: $(cat "$T/serve.log")"
export DIGESTMAP_TEST_SNS_CERT_BASE="http://127.0.0.1:$(cat "$W/port")"

start_daemon "$(default_config | jq --arg jw "$T/jwks.json" --arg topic "$TOPIC" \
    --arg gh "$GH" --arg gen "$GEN" --arg az "$AZ" '
  .sources[1].auth = [
    {"type": "oidc", "issuer": $gh, "audience": "digestmap", "jwks_file": $jw,
     "claims": {"repository_owner": ["acme"]}},
    {"type": "header", "name": "Authorization", "value": "Bearer ci-token"}]
  | .sources += [
    {"type": "build", "path": "/v1/builds-generic",
     "auth": [{"type": "oidc", "issuer": $gen, "audience": "digestmap", "jwks_file": $jw,
               "provider": "generic"}]},
    {"type": "build", "path": "/v1/builds-azure",
     "auth": [{"type": "oidc", "issuer": $az, "audience": "api://AzureADTokenExchange",
               "jwks_file": $jw}]},
    {"type": "build", "path": "/v1/builds-quota", "rate": {"per_second": 0.001, "burst": 2},
     "auth": [{"type": "header", "name": "Authorization", "value": "Bearer ci-token"},
              {"type": "hmac-sha256", "secret": "ci-secret"}]},
    {"type": "ecr", "auth": [{"type": "sns", "topic_arns": [$topic], "fetch_certs": true}]}]')"

now=$(date +%s)
# claims ISS JTI_JSON [jq filter]: GitHub-shaped claims of issuer ISS, valid now.
claims() {
    jq -c --arg iss "$1" --argjson jti "$2" --argjson now "$now" "{iss: \$iss, aud: \"digestmap\",
        jti: \$jti, iat: \$now, exp: (\$now + 300), sub: \"repo:acme/api:ref:refs/heads/main\",
        repository: \"acme/api\", repository_owner: \"acme\", run_id: \"77\", run_attempt: \"1\",
        sha: \"3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d\", ref: \"refs/heads/main\"} | ${3:-.}" <<<'null'
}
token() { mint_rs256 "$T/k.pem" k1 "$(claims "$@")"; }
post_token() { post "$1" "$2" -H "Authorization: Bearer $3"; }
last_refusal_line() { grep 'msg="request refused"' "$T/daemon.log" | tail -n 1; }
# no_control_bytes: every line of the log is a log line and none holds a control byte.
log_clean() {
    local odd ctl
    odd=$(grep -c -v -E '^ts=[0-9TZ:.-]+ level=(debug|info|warn|error) msg="' "$T/daemon.log" || true)
    ctl=$(LC_ALL=C grep -c '[[:cntrl:]]' "$T/daemon.log" || true)
    echo "$odd $ctl"
}
d=$(random_digest)
build_event "$T/b.json" "$d" "$(iso_at -1)" 5
jq -c 'del(.run)' "$T/b.json" > "$T/norun.json"

# --- 1. Log injection --------------------------------------------------------------------------
# The kid is JSON-escaped in the token header: a newline, a forged line, ESC sequences, a quote.
KID='k1\n ts=2026-01-01T00:00:00.000Z level=error msg=\"forged\" \u001b[2J\u001b]0;owned\u0007'
lines_before=$(grep -c . "$T/daemon.log")
post_token /v1/builds "$T/b.json" "$(mint_rs256 "$T/k.pem" "$KID" "$(claims "$GH" '"kid-1"')")"
check "kid injection: 401" 401 "$STATUS"
check "kid injection: exactly one log line for the request" 1 \
    "$(( $(grep -c . "$T/daemon.log") - lines_before ))"
check "the forged text is inside one refusal line" 1 "$(grep -c 'forged' "$T/daemon.log")"
check_match "the kid is quoted and escaped" \
    'reason="unknown key id" kid="k1\\n ts=2026-01-01T00:00:00\.000Z level=error msg=\\"forged\\" \\x1b\[2J\\x1b\]0;owned\\x07"' \
    "$(last_refusal_line)"
check "no forged line, no raw control byte in the log" "0 0" "$(log_clean)"

# jansson's error text quotes the body ("control character 0x1b near '"z level=error'"): its quote
# used to end the reason, and what followed read as keys of the line.
printf '{"images": "z level=error\033[31m"}' > "$T/broken.json"
post_build "$T/broken.json"
check "malformed body: 400" 400 "$STATUS"
check_match "jansson's text is quoted whole" \
    'msg="request refused" status=400 route=/v1/builds field="" reason="invalid JSON at line 1 column [0-9]+: control character 0x1b near '"'"'\\"z level=error'"'"'" peer=' \
    "$(last_refusal_line)"
check "still no forged line, no raw control byte" "0 0" "$(log_clean)"

# --- 2. Numeric jti replay ---------------------------------------------------------------------
tok=$(token "$GH" 424242)
post_token /v1/builds "$T/b.json" "$tok"
check "numeric jti: first use 202" 202 "$STATUS"
post_token /v1/builds "$T/b.json" "$tok"
check "numeric jti replayed: 401" 401 "$STATUS"
check "its answer" '{"error":"bad credentials: token already used"}' "$BODY"
# Another token (another iat) whose jti is the same number spelled 4.24242e5.
respelled=$(claims "$GH" 424242 '.iat = .iat - 1' | sed 's/"jti":424242,/"jti":4.24242e5,/')
check_match "respelled claims" '"jti":4.24242e5,' "$respelled"
post_token /v1/builds "$T/b.json" "$(mint_rs256 "$T/k.pem" k1 "$respelled")"
check "the same jti spelled 4.24242e5 (another token): 401" 401 "$STATUS"
post_token /v1/builds "$T/b.json" "$(token "$GH" '"424242"')"
check "the string \"424242\" is another jti: 202" 202 "$STATUS"
post_token /v1/builds "$T/b.json" "$(token "$GH" '{"a":1}')"
check "an object jti: 401" 401 "$STATUS"
check_match "its reason" 'reason="jti is not a string or a number"' "$(last_refusal_line)"

# --- 3. Array claim ----------------------------------------------------------------------------
keys_before=$(rcli dbsize)
post_token /v1/builds "$T/b.json" "$(token "$GH" '"arr-1"' '.repository_owner = ["evil", "acme"]')"
check "array claim holding the allowed value: 403" 403 "$STATUS"
check "403 says why" \
    '{"error":"token not allowed: claim repository_owner is an array: an allowlisted claim must be a single value"}' \
    "$BODY"
post_token /v1/builds "$T/b.json" "$(token "$GH" '"arr-2"' '.repository_owner = {"acme": true}')"
check "object claim: 403" 403 "$STATUS"
check "refused claims parked nothing" "$keys_before" "$(rcli dbsize)"

# --- 4. OIDC tokens that name no run -----------------------------------------------------------
keys_before=$(rcli dbsize)
gen=$(jq -nc --arg iss "$GEN" --argjson now "$now" \
    '{iss: $iss, aud: "digestmap", jti: "g-1", iat: $now, exp: ($now + 300), sub: "ci:acme/api"}')
post_token /v1/builds-generic "$T/norun.json" "$(mint_rs256 "$T/k.pem" k1 "$gen")"
check "generic token, no body run: 400" 400 "$STATUS"
check "the answer names run.run_id" \
    '{"error":"run.run_id: is required: the generic token carries no run id, so the body'"'"'s run must give one"}' \
    "$BODY"
az=$(jq -nc --arg iss "$AZ" --argjson now "$now" '{iss: $iss, aud: "api://AzureADTokenExchange",
    jti: "a-1", iat: $now, exp: ($now + 300), sub: "sc://acme/platform/acr-push"}')
post_token /v1/builds-azure "$T/norun.json" "$(mint_rs256 "$T/k.pem" k1 "$az")"
check "Azure service-connection token, no body run: 400" 400 "$STATUS"
check_match "its reason is logged" 'status=400 route=/v1/builds-azure field="run.run_id" reason="is required' \
    "$(last_refusal_line)"
check "nothing reached Redis" "$keys_before" "$(rcli dbsize)"
post_token /v1/builds-azure "$T/b.json" "$(mint_rs256 "$T/k.pem" k1 "$(jq -c '.jti = "a-2"' <<<"$az")")"
check "with the body's run the same token is accepted" 202 "$STATUS"

# --- 5. SNS certificate URLs -------------------------------------------------------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/sns.key" 2>/dev/null
# sns_envelope MSGID CERT_URL: a signed notification naming CERT_URL.
sns_envelope() {
    local ts sts sig
    ts=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
    sts=$(printf 'Message\n{}\nMessageId\n%s\nTimestamp\n%s\nTopicArn\n%s\nType\nNotification\n' \
        "$1" "$ts" "$TOPIC")
    sig=$(printf '%s\n' "$sts" | openssl dgst -sha256 -sign "$T/sns.key" -binary | openssl base64 -A)
    jq -nc --arg id "$1" --arg ts "$ts" --arg sig "$sig" --arg topic "$TOPIC" --arg url "$2" '
      {Type: "Notification", MessageId: $id, TopicArn: $topic, Message: "{}", Timestamp: $ts,
       SignatureVersion: "2", Signature: $sig, SigningCertURL: $url}'
}
post_sns() { post /v1/registry/ecr "$1" -H 'x-amz-sns-message-type: Notification'; }
n=0
for url in "$SNS/SimpleNotificationService-abc.pem?Action=Publish&x=1" "$SNS/admin/secrets.pem" \
           "$SNS/SimpleNotificationService-abc.pem/../../x.pem" "$SNS/SimpleNotificationService-ABC.pem"; do
    n=$((n + 1))
    sns_envelope "odd-$n" "$url" > "$T/odd.json"
    post_sns "$T/odd.json"
    check "SigningCertURL $url: 401" 401 "$STATUS"
    check_match "its reason" 'reason="SigningCertURL is not of the form https://sns.<region>.amazonaws.com/SimpleNotificationService-<hex>.pem: not fetched"' \
        "$(last_refusal_line)"
done
sns_envelope odd-q "$SNS/?Action=ListTopics&.pem" > "$T/odd.json"
post_sns "$T/odd.json"
check "SigningCertURL with no .pem path: 401 (not an SNS certificate URL at all)" 401 "$STATUS"
# Many well-formed names: the host gets DM_SNS_HOST_FETCH_BURST (4) fetches, then one per 15 s
# (allowed for below, however slow this machine is), the rest 503.
limited=0
start=$(date +%s)
for i in $(seq 1 20); do
    sns_envelope "many-$i" "$SNS/SimpleNotificationService-$(printf '%032x' "$i").pem" > "$T/many.json"
    post_sns "$T/many.json"
    [ "$STATUS" == 503 ] || fail "name $i: expected 503, got $STATUS"
    grep -q 'fetches from this host are rate-limited' <<<"$(last_refusal_line)" && limited=$((limited + 1))
done
refills=$(( ($(date +%s) - start + 1) / 15 ))
fetched=$((20 - limited))
within() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ] && echo yes || echo "no: $1 not in $2..$3"; }
check "20 names: 4 fetched (+1 per 15 s elapsed, $refills here), the rest refused" yes \
    "$(within "$fetched" 4 $((4 + refills)))"
# Wait for those fetches to end (404: the stand-in has no such file).
for _ in $(seq 1 100); do
    [ "$(grep -c 'msg="sns certificate fetch failed"' "$T/daemon.log")" -ge "$fetched" ] && break
    sleep 0.1
done
sleep 0.3 # nothing more may come: a late fetch would show up in the count below
check "one well-formed request per fetch reached the stand-in" "$fetched" \
    "$(grep -c -E '^/SimpleNotificationService-[0-9a-f]{32}\.pem 404$' "$W/requests.log" || true)"
check "no other request reached the SNS host" "$fetched" "$(grep -c . "$W/requests.log" || true)"
check "refusals counted (4 of the form, the rest of the rate)" $((4 + limited)) \
    "$(metric digestmap_sns_cert_fetch_refused_total)"

# --- 6. Quota ----------------------------------------------------------------------------------
post_q() { post /v1/builds-quota "$T/b.json" "$@"; }
post_q -H 'Authorization: Bearer ci-token'
check "quota: 1st request 202" 202 "$STATUS"
post_q -H 'Authorization: Bearer ci-token'
check "quota: 2nd request (burst 2) 202" 202 "$STATUS"
post_q -H 'Authorization: Bearer ci-token'
check "quota: 3rd request 429" 429 "$STATUS"
ra=$(sed -n 's/^[Rr]etry-[Aa]fter: \([0-9]*\).*/\1/p' <<<"$HEADERS")
# 0.001 a second: a token every 1000 s, minus the seconds since the burst was spent.
check_match "Retry-After: seconds until a token, rounded up" '^(9[0-9][0-9]|1000)$' "$ra"
check_match "429 answer" '^\{"error":"too many requests for this credential \(sources\[\]\.rate\); retry in [0-9]+ s"\}$' "$BODY"
check_match "429 logged" 'status=429 route=/v1/builds-quota reason="quota exceeded" quota=credential credential="entry 0" retry_after_s=[0-9]+ peer=' \
    "$(last_refusal_line)"
post /v1/builds-quota "$T/b.json" -H "X-Digestmap-Signature: $(hmac_sig "$T/b.json")"
check "another credential of the same source: the source's bucket is empty too: 429" 429 "$STATUS"
check_match "logged as the source's quota" 'quota=source credential="entry 1"' "$(last_refusal_line)"
check "counted" 2 "$(metric digestmap_rate_limited_total)"
check "429 counted per route" 2 \
    "$(metric 'digestmap_requests_total{route="/v1/builds-quota",status="429"}')"
post_build "$T/b.json"
check "other sources are not limited" 202 "$STATUS"

check "the whole log: one line per event, no raw control byte" "0 0" "$(log_clean)"
finish
