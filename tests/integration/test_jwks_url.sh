#!/usr/bin/env bash
# OIDC keys from jwks_url: fetched at startup from a local server, re-fetched when a token names
# an unknown kid (rate-limited), kept when a fetch fails or brings no usable key, merged with
# jwks_file keys, and fetched over https only from a server whose certificate verifies.
# "No new fetch" is checked after a later fetch from the same server (which answers one request
# at a time) was seen to complete, not after a sleep.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/jwt.sh"
start_redis

GH=https://token.actions.githubusercontent.com
W=$T/www    # served over http
TW=$T/tlsw  # served over https
mkdir -p "$W" "$TW" "$T/tls"
SERVERS=()
at_exit 'for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null; done'

# put FILE CONTENT: replace a served file atomically.
put() { printf '%s' "$2" > "$1.tmp" && mv "$1.tmp" "$1"; }

# serve DIR [CERT KEY]: start tests/integration/jwks/serve.py on DIR; sets SERVED_PORT.
serve() {
    local dir=$1
    shift
    python3 "$(dirname "$0")/jwks/serve.py" "$dir" "$dir/port" "$@" >/dev/null 2>>"$T/serve.log" &
    SERVERS+=($!)
    poll_until "$DM_WAIT" test -s "$dir/port" || die "serve.py did not start: $(cat "$T/serve.log")"
    SERVED_PORT=$(cat "$dir/port")
}

# Keys: A is served from the start, B appears with the rotation, F is only in the jwks_file.
rsa_key "$T/a.pem"; rsa_key "$T/b.pem"; ec_key "$T/f.pem"
JWK_A=$(rsa_jwk "$T/a.pem" a-1); JWK_B=$(rsa_jwk "$T/b.pem" b-1)
jwks "$(ec_jwk "$T/f.pem" f-1)" > "$T/file-jwks.json"
for e in e1 e2 e3 e4; do put "$W/$e.json" "$(jwks "$JWK_A")"; done
put "$TW/t.json" "$(jwks "$JWK_A")"

# A test CA (trusted through SSL_CERT_FILE, as OpenSSL allows for any client) and a server
# certificate for "localhost" only: https://localhost verifies, https://127.0.0.1 must not.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=digestmap-test-ca -keyout "$T/tls/ca.key" -out "$T/tls/ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$T/tls/srv.key" -out "$T/tls/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    > "$T/tls/ext.cnf"
openssl x509 -req -in "$T/tls/srv.csr" -CA "$T/tls/ca.pem" -CAkey "$T/tls/ca.key" -set_serial 2 \
    -days 2 -extfile "$T/tls/ext.cnf" -out "$T/tls/srv.pem" 2>/dev/null || die "cannot make certificates"

serve "$W"; HP=$SERVED_PORT
serve "$TW" "$T/tls/srv.pem" "$T/tls/srv.key"; TP=$SERVED_PORT
U="http://127.0.0.1:$HP"
export SSL_CERT_FILE=$T/tls/ca.pem

oidc() { # JWKS_URL [JWKS_FILE]: an oidc auth entry
    jq -nc --arg gh "$GH" --arg url "$1" --arg file "${2:-}" \
        '{type: "oidc", issuer: $gh, audience: "digestmap", jwks_url: $url,
          jwks_refresh_seconds: 60} + (if $file == "" then {} else {jwks_file: $file} end)'
}
src() { jq -nc --arg p "$1" --argjson a "$2" '{type: "build", path: $p, auth: [$a]}'; }
sources=$(jq -sc . <(src /v1/builds "$(oidc "$U/e1.json")") \
    <(src /v1/builds/e2 "$(oidc "$U/e2.json")") <(src /v1/builds/e3 "$(oidc "$U/e3.json")") \
    <(src /v1/builds/e4 "$(oidc "$U/e4.json")") \
    <(src /v1/builds/file "$(oidc "$U/missing.json" "$T/file-jwks.json")") \
    <(src /v1/builds/tls "$(oidc "https://localhost:$TP/t.json")") \
    <(src /v1/builds/tls-ip "$(oidc "https://127.0.0.1:$TP/t.json")"))
start_daemon "$(default_config | jq --argjson s "$sources" '.sources = $s')"

# post_as PATH KEYFILE KID [MINT]: a fresh build event with a fresh token (new jti), signed by
# MINT (default mint_rs256); sets STATUS.
JTI=0
post_as() {
    local now
    now=$(date +%s)
    JTI=$((JTI + 1))
    build_event "$T/b.json" "$(random_digest)" "$(iso_at -1)" "$JTI"
    local claims
    claims=$(jq -nc --arg gh "$GH" --arg jti "jwks-$JTI-$RANDOM" --argjson now "$now" '{iss: $gh,
        aud: "digestmap", jti: $jti, iat: $now, nbf: ($now - 5), exp: ($now + 300),
        sub: "repo:acme/api:ref:refs/heads/main", repository: "acme/api",
        repository_owner: "acme", repository_id: "712398456", run_id: "1209487", run_attempt: "1",
        sha: "3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d", ref: "refs/heads/main",
        workflow: "release", actor: "mona", event_name: "push",
        workflow_ref: "acme/api/.github/workflows/release.yml@refs/heads/main"}')
    post "$1" "$T/b.json" -H "Authorization: Bearer $("${4:-mint_rs256}" "$2" "$3" "$claims")"
}
# post_until WANT PATH KEYFILE KID: retry with fresh tokens (DM_WAIT at most) until STATUS is WANT.
post_until() {
    local deadline=$((SECONDS + DM_WAIT))
    while :; do
        post_as "$2" "$3" "$4"
        [ "$STATUS" == "$1" ] || [ "$SECONDS" -ge "$deadline" ] && return 0
        sleep 0.2
    done
}
last_refusal() {
    grep 'msg="request refused"' "$T/daemon.log" | tail -n 1 | sed -n 's/.* reason="\([^"]*\)".*/\1/p'
}
# wait_log FIXED_STRING: wait (DM_WAIT) for the daemon to log a line containing it; prints it.
wait_log() {
    _logged() { grep -qF -- "$1" "$T/daemon.log"; }
    poll_until "$DM_WAIT" _logged "$1" || { echo "(no log line with: $1)"; return 0; }
    grep -F -- "$1" "$T/daemon.log" | tail -n 1
}
fetches() { grep -c "^$1 " "$W/requests.log" || true; }

# 1. Startup: keys pending, then fetched; a token signed by A is accepted.
check_match "startup says the keys are pending" 'level=info msg="jwks keys pending' \
    "$(grep -F "url=\"$U/e1.json\"" "$T/daemon.log" | head -n 1)"
post_until 202 /v1/builds "$T/a.pem" a-1
check "key A from jwks_url: accepted" 202 "$STATUS"
check_match "fetch logged with its key count" 'level=info msg="jwks fetched" .* keys=1 total=1' \
    "$(wait_log "msg=\"jwks fetched\" url=\"$U/e1.json\"")"

# 2. Rotation: the server now serves A and B. The first kid-B token is refused (unknown kid)
#    and triggers a refresh; a fresh kid-B token is then accepted.
put "$W/e1.json" "$(jwks "$JWK_A" "$JWK_B")"
post_as /v1/builds "$T/b.pem" b-1
check "kid B before the refresh: 401" 401 "$STATUS"
check "kid B before the refresh: reason" "unknown key id" "$(last_refusal)"
post_until 202 /v1/builds "$T/b.pem" b-1
check "kid B after the triggered refresh: accepted" 202 "$STATUS"
check_match "refresh logged" 'msg="jwks refresh: a token named an unknown kid"' \
    "$(wait_log "msg=\"jwks refresh: a token named an unknown kid\" url=\"$U/e1.json\"")"
check_match "rotated set fetched" 'keys=2 total=2' \
    "$(grep -F "msg=\"jwks fetched\" url=\"$U/e1.json\"" "$T/daemon.log" | tail -n 1)"
post_as /v1/builds "$T/a.pem" a-1
check "key A still accepted after the rotation" 202 "$STATUS"
check "two fetches so far (startup, unknown kid)" 2 "$(fetches e1.json)"

# 3. Rate limit: another unknown kid within 60 s does not fetch again.
post_as /v1/builds "$T/a.pem" zz-unknown
check "unknown kid: 401" 401 "$STATUS"

# 4. A server answering 500 keeps the old keys.
put "$W/e2.json.status" 500
post_as /v1/builds/e2 "$T/a.pem" zz-unknown
check "e2: unknown kid refused" 401 "$STATUS"
check_match "e2: 500 logged as a failed fetch" 'level=warn msg="jwks fetch failed" .*reason="HTTP 500"' \
    "$(wait_log "msg=\"jwks fetch failed\" url=\"$U/e2.json\"")"
# (section 3, now that a later fetch from the same server completed)
check "unknown kid within 60 s: no new fetch" 2 "$(fetches e1.json)"
post_as /v1/builds/e2 "$T/a.pem" a-1
check "e2: key A still accepted after the 500" 202 "$STATUS"

# 5. Garbage keeps the old keys.
put "$W/e3.json" 'this is not a JWKS'
post_as /v1/builds/e3 "$T/a.pem" zz-unknown
check_match "e3: garbage logged as a failed fetch" 'level=warn msg="jwks fetch failed" .*reason="invalid JWKS: invalid JSON' \
    "$(wait_log "msg=\"jwks fetch failed\" url=\"$U/e3.json\"")"
post_as /v1/builds/e3 "$T/a.pem" a-1
check "e3: key A still accepted after garbage" 202 "$STATUS"

# 6. A JWKS without a usable key (an HMAC secret) keeps the old keys too.
put "$W/e4.json" '{"keys":[{"kty":"oct","kid":"a-1","k":"c2VjcmV0"}]}'
post_as /v1/builds/e4 "$T/a.pem" zz-unknown
check_match "e4: no usable key logged" 'reason="invalid JWKS: keys: no usable key' \
    "$(wait_log "msg=\"jwks fetch failed\" url=\"$U/e4.json\"")"
post_as /v1/builds/e4 "$T/a.pem" a-1
check "e4: key A still accepted" 202 "$STATUS"

# 7. jwks_file + jwks_url: the file's keys work while the url fails.
check_match "file entry: 404 logged" 'reason="HTTP 404"' \
    "$(wait_log "msg=\"jwks fetch failed\" url=\"$U/missing.json\"")"
post_as /v1/builds/file "$T/f.pem" f-1 mint_es256
check "file entry: jwks_file key accepted" 202 "$STATUS"
post_as /v1/builds/file "$T/a.pem" a-1
check "file entry: key A unknown there" 401 "$STATUS"

# 8. https: a certificate that verifies for the url's host is used; one that does not is not.
post_until 202 /v1/builds/tls "$T/a.pem" a-1
check "https://localhost with a trusted certificate: accepted" 202 "$STATUS"
check_match "https fetch logged" 'msg="jwks fetched" .* keys=1' \
    "$(wait_log "msg=\"jwks fetched\" url=\"https://localhost:$TP/t.json\"")"
check_match "https://127.0.0.1, certificate for localhost only: refused" \
    'msg="jwks fetch failed" .*reason="TLS: .*certificate verify failed' \
    "$(wait_log "msg=\"jwks fetch failed\" url=\"https://127.0.0.1:$TP/t.json\"")"
post_as /v1/builds/tls-ip "$T/a.pem" a-1
check "no keys from a server that failed verification: 401" 401 "$STATUS"
check "its reason" "unknown key id" "$(last_refusal)"
finish
