#!/usr/bin/env bash
# SNS with "fetch_certs" and "confirm_subscriptions": an unknown (valid) SigningCertURL is
# answered 503 + Retry-After while its certificate is fetched, and the retry verifies; a
# foreign URL is refused 401 and never fetched; a failed fetch keeps answering 503 (rate-limited
# refetches); a verified SubscriptionConfirmation is answered 200 and its SubscribeURL fetched.
# AWS is stood in for by tests/integration/sns/serve.py through DIGESTMAP_TEST_SNS_CERT_BASE.
# "Never fetched" is checked after a later fetch was seen to complete: the daemon starts its
# fetches in order and serve.py answers one request at a time, so an earlier one would be logged.
. "$(dirname "$0")/lib.sh"
start_redis

TOPIC=arn:aws:sns:eu-west-1:111122223333:ecr-events
SNS=https://sns.eu-west-1.amazonaws.com
CERT_URL=$SNS/SimpleNotificationService-7e57.pem
SUB_URL="$SNS/?Action=ConfirmSubscription&TopicArn=$TOPIC&Token=tok"
W=$T/www
mkdir -p "$W"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/sns.key" -out "$W/SimpleNotificationService-7e57.pem" \
    -days 2 -subj "/CN=sns.amazonaws.com" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ec.key" \
    -out "$W/SimpleNotificationService-ec.pem" -days 2 -subj "/CN=ec" 2>/dev/null
printf 'not a certificate\n' > "$W/SimpleNotificationService-ba0.pem"
# Names are AWS's form (SimpleNotificationService-<hex>.pem), the only one fetched.
kind_hex() { case $1 in junk) echo ba0 ;; ec) echo ec ;; esac; }

python3 "$(dirname "$0")/sns/serve.py" "$W" "$W/port" >/dev/null 2>>"$T/serve.log" &
SERVER=$!
at_exit 'kill "$SERVER" 2>/dev/null'
poll_until "$DM_WAIT" test -s "$W/port" || die "serve.py did not start: $(cat "$T/serve.log")"
export DIGESTMAP_TEST_SNS_CERT_BASE="http://127.0.0.1:$(cat "$W/port")"

start_daemon "$(default_config | jq --arg topic "$TOPIC" '
  .sources += [{"type": "ecr", "auth": [{"type": "sns", "topic_arns": [$topic],
                "fetch_certs": true, "confirm_subscriptions": true}]}]')"
check_match "startup warns about the test-only variable" \
    'level=warn msg="test-only setting: SNS certificates .*variable=DIGESTMAP_TEST_SNS_CERT_BASE' \
    "$(cat "$T/daemon.log")"

eb_event() { # DIGEST ID: an EventBridge "ECR Image Action" push, now.
    jq -nc --arg d "$1" --arg id "$2" --arg t "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
      {version: "0", id: $id, "detail-type": "ECR Image Action", source: "aws.ecr",
       account: "111122223333", time: $t, region: "eu-west-1", resources: [],
       detail: {result: "SUCCESS", "repository-name": "payments/worker", "image-digest": $d,
                "action-type": "PUSH", "image-tag": "3.0.0",
                "manifest-media-type": "application/vnd.oci.image.manifest.v1+json"}}'
}
# sns_envelope TYPE MESSAGE MSGID KEY CERT_URL [TOPIC]: a SignatureVersion 2 envelope.
sns_envelope() {
    local ts sts sig topic=${6:-$TOPIC}
    ts=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
    if [ "$1" == Notification ]; then
        sts=$(printf 'Message\n%s\nMessageId\n%s\nTimestamp\n%s\nTopicArn\n%s\nType\n%s\n' "$2" "$3" "$ts" "$topic" "$1")
    else
        sts=$(printf 'Message\n%s\nMessageId\n%s\nSubscribeURL\n%s\nTimestamp\n%s\nToken\n%s\nTopicArn\n%s\nType\n%s\n' \
            "$2" "$3" "$SUB_URL" "$ts" tok "$topic" "$1")
    fi
    sig=$(printf '%s\n' "$sts" | openssl dgst -sha256 -sign "$4" -binary | openssl base64 -A)
    jq -nc --arg type "$1" --arg m "$2" --arg id "$3" --arg ts "$ts" --arg sig "$sig" \
        --arg topic "$topic" --arg url "$5" --arg sub "$SUB_URL" '
      {Type: $type, MessageId: $id, TopicArn: $topic, Message: $m, Timestamp: $ts,
       SignatureVersion: "2", Signature: $sig, SigningCertURL: $url}
      + (if $type == "Notification" then {} else {Token: "tok", SubscribeURL: $sub} end)'
}
post_sns() { post /v1/registry/ecr "$1" -H "x-amz-sns-message-type: $2" -H 'Content-Type: text/plain; charset=UTF-8'; }
requests_for() { grep -c -F -- "$1 " "$W/requests.log" 2>/dev/null || true; }
last_refusal() {
    grep 'msg="request refused"' "$T/daemon.log" | tail -n 1 | sed -n 's/.* reason="\([^"]*\)".*/\1/p'
}
wait_log() { # FIXED_STRING: wait (DM_WAIT) for a daemon log line containing it; prints the line.
    _logged() { grep -qF -- "$1" "$T/daemon.log"; }
    poll_until "$DM_WAIT" _logged "$1" || { echo "(no log line with: $1)"; return 0; }
    grep -F -- "$1" "$T/daemon.log" | tail -n 1
}

# 1. Unknown certificate: 503 + Retry-After, fetched in the background; the retry is accepted.
d=$(random_digest)
sns_envelope Notification "$(eb_event "$d" eb-f1)" sns-f1 "$T/sns.key" "$CERT_URL" > "$T/n1.json"
post_sns "$T/n1.json" Notification
check "unknown certificate: 503" 503 "$STATUS"
check_match "503 carries Retry-After" $'[Rr]etry-[Aa]fter: [0-9]+' "$HEADERS"
check "reason logged" "SNS signing certificate not cached: fetch requested" "$(last_refusal)"
check_match "certificate fetched" 'level=info msg="sns certificate fetched" url="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-7e57.pem"' \
    "$(wait_log 'msg="sns certificate fetched"')"
post_sns "$T/n1.json" Notification
check "retry with the fetched certificate: 202" 202 "$STATUS"
build_event "$T/b.json" "$d" "$(iso_at -1)" 901
jq -c '.images[0].name = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/payments/worker"' "$T/b.json" > "$T/b2.json"
post_build "$T/b2.json"
check "the build joins the SNS push" '{"status":"accepted","events":1,"edges":1}' "$BODY"
edge=$(rcli --raw xrange 'dm:{0}:out' - + | grep -F "\"subject\":\"$d\"" | grep -F mapping.confirmed | \
    jq -c '[.data.image.registry, .data.image.repository, .data.image.source]' 2>/dev/null || true)
check "one edge with the derived registry" '["111122223333.dkr.ecr.eu-west-1.amazonaws.com","payments/worker","ecr"]' "$edge"
check "the certificate was fetched once" 1 "$(requests_for /SimpleNotificationService-7e57.pem)"
d2=$(random_digest)
sns_envelope Notification "$(eb_event "$d2" eb-f2)" sns-f2 "$T/sns.key" "$CERT_URL" > "$T/n2.json"
post_sns "$T/n2.json" Notification
check "next message, cached certificate: 202 at once" 202 "$STATUS"
check "no second fetch" 1 "$(requests_for /SimpleNotificationService-7e57.pem)"

# 2. Refusals that never fetch: a foreign certificate URL, an unlisted topic.
keys_before=$(rcli dbsize)
sns_envelope Notification "$(eb_event "$d2" eb-x)" sns-x "$T/sns.key" https://evil.example.com/SimpleNotificationService-evil.pem > "$T/x.json"
post_sns "$T/x.json" Notification
check "foreign certificate URL: 401" 401 "$STATUS"
check "its reason" "SigningCertURL is not an SNS certificate URL of the topic's region" "$(last_refusal)"
sns_envelope Notification "$(eb_event "$d2" eb-p)" sns-p "$T/sns.key" "https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-evil.pem" > "$T/p.json"
post_sns "$T/p.json" Notification
check "SNS host with a port: 401" 401 "$STATUS"
sns_envelope Notification "$(eb_event "$d2" eb-t)" sns-t "$T/sns.key" "$SNS/SimpleNotificationService-0e.pem" arn:aws:sns:eu-west-1:111122223333:other > "$T/t.json"
post_sns "$T/t.json" Notification
check "unknown certificate of an unlisted topic: 401" 401 "$STATUS"
check "refused messages parked nothing" "$keys_before" "$(rcli dbsize)"

# 3. A failed fetch (404) keeps answering 503, logged; no refetch within the retry interval.
MISSING=$SNS/SimpleNotificationService-404.pem
sns_envelope Notification "$(eb_event "$d2" eb-m)" sns-m "$T/sns.key" "$MISSING" > "$T/m.json"
post_sns "$T/m.json" Notification
check "certificate the server does not have: 503" 503 "$STATUS"
check_match "404 logged as a failed fetch" 'level=warn msg="sns certificate fetch failed" url="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-404.pem" reason="HTTP 404"' \
    "$(wait_log 'msg="sns certificate fetch failed" url="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-404.pem"')"
post_sns "$T/m.json" Notification
check "retry after the failed fetch: still 503" 503 "$STATUS"
check "its reason" "SNS signing certificate fetch failed: retried later" "$(last_refusal)"
check_match "the last failure is logged with the refusal" 'last fetch: HTTP 404' \
    "$(grep 'msg="request refused"' "$T/daemon.log" | tail -n 1)"
# (section 2, once a later fetch completed)
check "the server saw no request for the refused messages" 0 "$(grep -c -E 'evil|-0e\.pem' "$W/requests.log" || true)"

# 4. What is fetched must be a PEM certificate with an RSA key.
for kind in junk ec; do
    sns_envelope Notification "$(eb_event "$d2" "eb-$kind")" "sns-$kind" "$T/sns.key" "$SNS/SimpleNotificationService-$(kind_hex "$kind").pem" > "$T/$kind.json"
    post_sns "$T/$kind.json" Notification
    check "$kind certificate: 503" 503 "$STATUS"
done
check_match "garbage refused" 'reason="not a PEM X.509 certificate"' \
    "$(wait_log 'msg="sns certificate fetch failed" url="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-ba0.pem"')"
check_match "EC key refused" "reason=\"the certificate's key is not RSA\"" \
    "$(wait_log 'msg="sns certificate fetch failed" url="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-ec.pem"')"
# (section 3, once later fetches completed)
check "one fetch within the retry interval" 1 "$(requests_for /SimpleNotificationService-404.pem)"

# 5. SubscriptionConfirmation: 200 at once, and the SubscribeURL is fetched.
sns_envelope SubscriptionConfirmation "You have chosen to subscribe" sns-sub "$T/sns.key" "$CERT_URL" > "$T/sub.json"
post_sns "$T/sub.json" SubscriptionConfirmation
check "subscription confirmation: 200" '{"status":"ignored","reason":"subscription being confirmed"}' "$BODY"
check_match "confirmation GET logged" 'level=info msg="sns subscription confirmed" url="https://sns.eu-west-1.amazonaws.com/\?Action=ConfirmSubscription&TopicArn=arn:aws:sns:eu-west-1:111122223333:ecr-events&Token=tok"' \
    "$(wait_log 'msg="sns subscription confirmed"')"
check "the server received the confirmation" "/?Action=ConfirmSubscription&TopicArn=$TOPIC&Token=tok 200" \
    "$(grep -F 'Action=ConfirmSubscription' "$W/requests.log" | tail -n 1)"
sns_envelope SubscriptionConfirmation "You have chosen to subscribe" sns-sub2 "$T/sns.key" "$CERT_URL" arn:aws:sns:eu-west-1:111122223333:other > "$T/sub2.json"
post_sns "$T/sub2.json" SubscriptionConfirmation
check "confirmation for an unlisted topic: 403" 403 "$STATUS"
# a later fetch (a certificate the server does not have), seen to complete
# (the fetches of one SNS host are rate-limited, docs/internet-auth.md: until the host's next
# fetch is due the message is refused 503 without a fetch, so it is posted again until one
# starts; each post is one observable step, no margin of time is assumed)
sns_envelope Notification "$(eb_event "$d2" eb-z)" sns-z "$T/sns.key" "$SNS/SimpleNotificationService-1a7e.pem" > "$T/z.json"
_later_fetched() {
    post_sns "$T/z.json" Notification
    grep -qF 'msg="sns certificate fetch failed" url="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1a7e.pem"' "$T/daemon.log"
}
poll_until "$DM_WAIT" _later_fetched || true
check_match "a later fetch completes" 'reason="HTTP 404"' \
    "$(wait_log 'msg="sns certificate fetch failed" url="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1a7e.pem"')"
check "and it was not confirmed" 1 "$(grep -c -F 'Action=ConfirmSubscription' "$W/requests.log")"
finish
