#!/usr/bin/env bash
# Amazon ECR (EventBridge API destination, and SNS with signed envelopes v1 and v2) and Google
# Artifact Registry (Pub/Sub push with a Google-style OIDC token), each joined with a build
# event into one edge whose image.registry / image.repository are the derived values.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/jwt.sh"
start_redis

TOPIC=arn:aws:sns:eu-west-1:111122223333:ecr-events
CERT_URL=https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/sns.key" -out "$T/sns.pem" -days 2 \
    -subj "/CN=sns.amazonaws.com" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/evil.key" -out "$T/evil.pem" -days 2 \
    -subj "/CN=evil" 2>/dev/null
rsa_key "$T/google.pem"
jwks "$(rsa_jwk "$T/google.pem" g-1)" > "$T/google-jwks.json"
GAR_AUD=https://digestmap.example.com/v1/registry/gar
SA=gar-push@acme-prod.iam.gserviceaccount.com

start_daemon "$(default_config | jq --arg cert "$T/sns.pem" --arg url "$CERT_URL" --arg topic "$TOPIC" \
    --arg jwks "$T/google-jwks.json" --arg aud "$GAR_AUD" --arg sa "$SA" '
  .sources += [
    {"type": "ecr", "auth": [{"type": "header", "name": "x-api-key", "value": "ecr-key"},
                             {"type": "sns", "topic_arns": [$topic], "certs": {($url): $cert}}]},
    {"type": "gar", "auth": [{"type": "oidc", "issuer": "https://accounts.google.com",
                              "audience": $aud, "jwks_file": $jwks,
                              "claims": {"email": [$sa], "email_verified": [true]}}]}]')"

# eb_event DIGEST TAG ID: an EventBridge "ECR Image Action" push, now.
eb_event() {
    jq -nc --arg d "$1" --arg tag "$2" --arg id "$3" --arg t "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
      {version: "0", id: $id, "detail-type": "ECR Image Action", source: "aws.ecr",
       account: "111122223333", time: $t, region: "eu-west-1", resources: [],
       detail: {result: "SUCCESS", "repository-name": "payments/worker", "image-digest": $d,
                "action-type": "PUSH", "image-tag": $tag,
                "manifest-media-type": "application/vnd.oci.image.manifest.v1+json"}}'
}
# build_for DIGEST RUN: a build event naming the ECR image.
build_for() {
    build_event "$T/b.json" "$1" "$(iso_at -1)" "$2"
    jq -c '.images[0].name = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/payments/worker"' \
        "$T/b.json" > "$T/b2.json"
    post_build "$T/b2.json"
}
edge_of() { stream_events | jq -c "select(.subject == \"$1\" and .type == \"dev.digestmap.mapping.confirmed.v1\") | [.data.image.registry, .data.image.repository, .data.image.source, (.data.image.tags|join(\",\"))]"; }

# 1. EventBridge API destination (API-key connection).
d1=$(random_digest)
eb_event "$d1" 2.0.1 "eb-1" > "$T/eb.json"
post /v1/registry/ecr "$T/eb.json" -H 'x-api-key: ecr-key'
check "API destination push: 202" 202 "$STATUS"
post /v1/registry/ecr "$T/eb.json" -H 'x-api-key: wrong'
check "API destination with a wrong key: 401" 401 "$STATUS"
build_for "$d1" 501
check "ECR push joined" '{"status":"accepted","events":1,"edges":1}' "$BODY"
check "ECR edge: derived host and repository" '["111122223333.dkr.ecr.eu-west-1.amazonaws.com","payments/worker","ecr","2.0.1"]' "$(edge_of "$d1")"
post /v1/registry/ecr "$T/eb.json" -H 'x-api-key: ecr-key'
check "redelivered EventBridge event: no second edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"
jq '.detail.result = "FAILURE"' "$T/eb.json" > "$T/fail.json"
post /v1/registry/ecr "$T/fail.json" -H 'x-api-key: ecr-key'
check "FAILURE result: ignored" '{"status":"ignored","reason":"failed action"}' "$BODY"

# 2. SNS: sign the documented string with SHA-256 (v2) or SHA-1 (v1).
# sns_envelope TYPE MESSAGE MSGID VERSION KEY [TOPIC] [CERT_URL] [SECONDS_AGO]
sns_envelope() {
    local ts sts sig topic=${6:-$TOPIC} url=${7:-$CERT_URL} dgst=-sha256
    [ "$4" == 1 ] && dgst=-sha1
    ts=$(date -u -d "@$(( $(date +%s) - ${8:-0} ))" +%Y-%m-%dT%H:%M:%S.000Z)
    if [ "$1" == Notification ]; then
        sts=$(printf 'Message\n%s\nMessageId\n%s\nTimestamp\n%s\nTopicArn\n%s\nType\n%s\n' "$2" "$3" "$ts" "$topic" "$1")
    else
        sts=$(printf 'Message\n%s\nMessageId\n%s\nSubscribeURL\n%s\nTimestamp\n%s\nToken\n%s\nTopicArn\n%s\nType\n%s\n' \
            "$2" "$3" "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok" "$ts" tok "$topic" "$1")
    fi
    sig=$(printf '%s\n' "$sts" | openssl dgst $dgst -sign "$5" -binary | openssl base64 -A)
    jq -nc --arg type "$1" --arg m "$2" --arg id "$3" --arg v "$4" --arg ts "$ts" --arg sig "$sig" \
        --arg topic "$topic" --arg url "$url" '
      {Type: $type, MessageId: $id, TopicArn: $topic, Message: $m, Timestamp: $ts,
       SignatureVersion: $v, Signature: $sig, SigningCertURL: $url}
      + (if $type == "Notification" then {} else {Token: "tok",
         SubscribeURL: "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok"} end)'
}
post_sns() { post /v1/registry/ecr "$1" -H "x-amz-sns-message-type: $2" -H 'Content-Type: text/plain; charset=UTF-8'; }

for v in 2 1; do
    d=$(random_digest)
    sns_envelope Notification "$(eb_event "$d" "v$v" "eb-sns-$v")" "sns-msg-$v" "$v" "$T/sns.key" > "$T/sns.json"
    post_sns "$T/sns.json" Notification
    check "SNS v$v notification: 202" 202 "$STATUS"
    build_for "$d" "60$v"
    check "SNS v$v push joined" '{"status":"accepted","events":1,"edges":1}' "$BODY"
    check "SNS v$v edge: derived host and repository" "[\"111122223333.dkr.ecr.eu-west-1.amazonaws.com\",\"payments/worker\",\"ecr\",\"v$v\"]" "$(edge_of "$d")"
    post_sns "$T/sns.json" Notification
    check "SNS v$v redelivery: no second edge" '{"status":"accepted","events":1,"edges":0}' "$BODY"
done

keys_before=$(rcli dbsize)
d=$(random_digest)
sns_envelope Notification "$(eb_event "$d" x eb-t)" sns-t 2 "$T/sns.key" > "$T/sns.json"
jq -c --arg m "$(eb_event "$(random_digest)" x eb-t)" '.Message = $m' "$T/sns.json" > "$T/tampered.json"
post_sns "$T/tampered.json" Notification
check "SNS Message altered after signing: 401" 401 "$STATUS"
sns_envelope Notification "$(eb_event "$d" x eb-e)" sns-e 2 "$T/evil.key" > "$T/evil.json"
post_sns "$T/evil.json" Notification
check "SNS signed by another key: 401" 401 "$STATUS"
sns_envelope Notification "$(eb_event "$d" x eb-w)" sns-w 2 "$T/sns.key" arn:aws:sns:eu-west-1:111122223333:other > "$T/topic.json"
post_sns "$T/topic.json" Notification
check "SNS from another topic: 403" 403 "$STATUS"
sns_envelope Notification "$(eb_event "$d" x eb-f)" sns-f 2 "$T/sns.key" "$TOPIC" https://evil.example.com/cert.pem > "$T/foreign.json"
post_sns "$T/foreign.json" Notification
check "SNS with a foreign certificate URL: 401" 401 "$STATUS"
check_match "foreign certificate URL logged" 'SigningCertURL is not an SNS certificate URL' "$(cat "$T/daemon.log")"
sns_envelope Notification "$(eb_event "$d" x eb-o)" sns-o 2 "$T/sns.key" "$TOPIC" "$CERT_URL" 10800 > "$T/old.json"
post_sns "$T/old.json" Notification
check "SNS message signed 3 h ago (replay): 401" 401 "$STATUS"
check_match "stale SNS message logged" 'reason="SNS message too old or from the future' "$(cat "$T/daemon.log")"
sns_envelope Notification "$(eb_event "$d" x eb-r)" sns-r 2 "$T/sns.key" "$TOPIC" \
    https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem > "$T/region.json"
post_sns "$T/region.json" Notification
check "SNS certificate URL of another region than the topic: 401" 401 "$STATUS"
check "refused SNS messages parked nothing" "$keys_before" "$(rcli dbsize)"

sns_envelope SubscriptionConfirmation "You have chosen to subscribe" sns-sub 2 "$T/sns.key" > "$T/sub.json"
post_sns "$T/sub.json" SubscriptionConfirmation
check "SNS subscription confirmation: 200" '{"status":"ignored","reason":"subscription confirmation logged"}' "$BODY"
check_match "SubscribeURL logged for the operator" 'msg="sns subscription confirmation: open subscribe_url to confirm".*subscribe_url="https://sns.eu-west-1.amazonaws.com/\?Action=ConfirmSubscription' "$(cat "$T/daemon.log")"

# 3. Artifact Registry via Pub/Sub push with a Google-signed (here: test-key) OIDC token.
now=$(date +%s)
g_token() { # ISS EMAIL JTI
    mint_rs256 "$T/google.pem" g-1 "$(jq -nc --arg iss "$1" --arg aud "$GAR_AUD" --arg email "$2" \
        --arg jti "$3" --argjson now "$now" '{iss: $iss, aud: $aud, azp: "1234", sub: "1234",
        email: $email, email_verified: true, iat: $now, exp: ($now + 3600), jti: $jti}')"
}
dg=$(random_digest)
host=europe-west4-docker.pkg.dev
data=$(jq -nc --arg d "$host/acme-prod/apps/billing@$dg" --arg t "$host/acme-prod/apps/billing:3.2.0" \
    '{action: "INSERT", digest: $d, tag: $t}' | openssl base64 -A)
jq -nc --arg data "$data" --arg t "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" '{message: {attributes: {},
    data: $data, messageId: "177305", message_id: "177305", publishTime: $t, publish_time: $t},
    subscription: "projects/acme-prod/subscriptions/gar-to-digestmap"}' > "$T/gar.json"
post /v1/registry/gar "$T/gar.json" -H "Authorization: Bearer $(g_token https://accounts.google.com "$SA" g-j1)"
check "Pub/Sub push with a valid token: 202" 202 "$STATUS"
post /v1/registry/gar "$T/gar.json" -H "Authorization: Bearer $(g_token accounts.google.com "$SA" g-j2)"
check "redelivery, token with Google's bare issuer: 202, nothing new" '{"status":"accepted","events":1,"edges":0}' "$BODY"
post /v1/registry/gar "$T/gar.json" -H "Authorization: Bearer $(g_token https://accounts.google.com intruder@evil.iam.gserviceaccount.com g-j3)"
check "another service account: 403" 403 "$STATUS"
post /v1/registry/gar "$T/gar.json"
check "no token: 401" 401 "$STATUS"
build_event "$T/gb.json" "$dg" "$(iso_at -1)" 701
post_build "$T/gb.json"
check "GAR push joined" '{"status":"accepted","events":1,"edges":1}' "$BODY"
check "GAR edge: split reference" "[\"$host\",\"acme-prod/apps/billing\",\"gar\",\"3.2.0\"]" "$(edge_of "$dg")"
finish
