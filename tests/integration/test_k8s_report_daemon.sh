#!/usr/bin/env bash
# scripts/digestmap-k8s-report against the real daemon: a fake kubectl prints the snapshot
# fixture, the reporter posts it with a projected service-account token (an OIDC JWT minted
# here) to a k8s source whose oidc entry says "replay": false, so the same token (same jti) is
# accepted on every run, as the kubelet hands it out; the workloads are then in GET
# /v1/images. On a source whose entry keeps the default replay check the second run with that
# token is refused 401; a token for another service account is refused 403 (claims on sub).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/jwt.sh"

REPORT="${DM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/scripts/digestmap-k8s-report"
SNAP="$DM_FIXTURES/k8s/snapshot.json"
ISS=https://kubernetes.default.svc.cluster.local
SA=system:serviceaccount:digestmap:digestmap-reporter

mkdir -p "$T/bin"
cat >"$T/bin/kubectl" <<EOF
#!/bin/sh
exec jq '{apiVersion: "v1", kind: "List", items: .items, metadata: {resourceVersion: ""}}' "$SNAP"
EOF
chmod +x "$T/bin/kubectl"
export PATH="$T/bin:$PATH"

rsa_key "$T/sa.pem"
jwks "$(rsa_jwk "$T/sa.pem" sa-1)" >"$T/jwks.json"
start_redis
start_daemon "$(default_config | jq --arg j "$T/jwks.json" --arg iss "$ISS" --arg sa "$SA" '
  .limits.max_body_bytes = 262144 | .redis.shards = 2 |
  .sources += [
    {type: "k8s", auth: [{type: "oidc", issuer: $iss, audience: "digestmap", jwks_file: $j,
                          claims: {sub: [$sa]}, replay: false}]},
    {type: "k8s", path: "/v1/workloads-strict",
     auth: [{type: "oidc", issuer: $iss, audience: "digestmap", jwks_file: $j, claims: {sub: [$sa]}}]}]')"

now=$(date +%s)
# token SUB JTI: a projected token as the kubelet mints it (audience list, kubernetes.io claims).
token() {
    mint_rs256 "$T/sa.pem" sa-1 "$(jq -nc --arg iss "$ISS" --arg sub "$1" --arg jti "$2" \
        --argjson now "$now" '{aud: ["digestmap"], exp: ($now + 600), iat: $now, nbf: $now,
        iss: $iss, jti: $jti, sub: $sub, "kubernetes.io": {namespace: "digestmap",
        serviceaccount: {name: "digestmap-reporter", uid: "0b5c"}}}')"
}
token "$SA" jti-1 >"$T/token"

# report [ARGS...]: run the reporter against the daemon; sets RC and ERR.
report() {
    "$REPORT" --url "http://127.0.0.1:$PORT" --cluster prod-weu --token-file "$T/token" \
        --retry-delay 0 --max-attempts 1 "$@" >/dev/null 2>"$T/err" && RC=0 || RC=$?
    ERR=$(cat "$T/err")
}

report
check "reporter: exit 0" 0 "$RC"
check_match "reporter: 202 with the workloads" 'POST http://127.0.0.1:[0-9]+/v1/workloads: 202 .*"workloads":7' "$ERR"
query_image sha256:ef753fa4375575b7fbfbd1baf8830903c6da5e3da67f54dfed25aae2bcb8185c
check "the reported workloads are stored" '["prod-weu/shop/Deployment/api/internet"]' \
    "$(jq -c '[.workloads[] | "\(.cluster)/\(.namespace)/\(.kind)/\(.name)/\(.exposure)"]' <<<"$BODY")"

report
check "same token again (replay: false): exit 0" 0 "$RC"
check_match "same token again: 202" ': 202 ' "$ERR"

report --path /v1/workloads-strict
check "strict source, first use of jti-1 there: exit 0" 0 "$RC"
token "$SA" jti-2 >"$T/token"
report --path /v1/workloads-strict
check "strict source, new token: exit 0" 0 "$RC"
report --path /v1/workloads-strict
check "strict source, the token again: exit 1" 1 "$RC"
check_match "strict source, the token again: 401 token already used" '401 .*token already used' "$ERR"
check_match "replay refusal logged" 'status=401 route=/v1/workloads-strict reason="token replayed' \
    "$(await_log 'status=401 route=/v1/workloads-strict')"

token system:serviceaccount:default:intruder jti-3 >"$T/token"
report
check "another service account: exit 1" 1 "$RC"
check_match "another service account: 403" 'refused the snapshot: 403' "$ERR"

finish
