#!/usr/bin/env bash
# OIDC-authenticated build events: the build identity comes from the verified token, never from
# the body; every bad token is refused before anything is parked.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/jwt.sh"
start_redis

GH=https://token.actions.githubusercontent.com
GL=https://gitlab.example.com
rsa_key "$T/gh.pem"; rsa_key "$T/other.pem"; ec_key "$T/gl.pem"
openssl pkey -in "$T/gh.pem" -pubout -out "$T/gh.pub.pem" 2>/dev/null
jwks "$(rsa_jwk "$T/gh.pem" gh-1)" > "$T/gh-jwks.json"
jwks "$(ec_jwk "$T/gl.pem" gl-1)" > "$T/gl-jwks.json"

start_daemon "$(default_config | jq --arg gh "$T/gh-jwks.json" --arg gl "$T/gl-jwks.json" '
  .sources[1].auth = [
    {"type": "oidc", "issuer": "https://token.actions.githubusercontent.com", "audience": "digestmap",
     "jwks_file": $gh, "claims": {"repository_owner": ["acme"], "sub": ["repo:acme/*"]}},
    {"type": "oidc", "issuer": "https://gitlab.example.com", "audience": "digestmap", "jwks_file": $gl},
    {"type": "hmac-sha256", "secret": "ci-secret"}]')"

now=$(date +%s)
# gh_claims JTI [jq filter]: GitHub Actions claims (values as in tests/fixtures/build).
gh_claims() {
    jq -c --arg jti "$1" --argjson now "$now" "{iss: \"$GH\", aud: \"digestmap\", jti: \$jti,
        iat: \$now, nbf: (\$now - 5), exp: (\$now + 300), sub: \"repo:acme/api:ref:refs/heads/main\",
        repository: \"acme/api\", repository_owner: \"acme\", repository_id: \"712398456\",
        run_id: \"12094877312\", run_attempt: \"2\", sha: \"3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d\",
        ref: \"refs/heads/main\", workflow: \"release\", actor: \"mona\", event_name: \"push\",
        workflow_ref: \"acme/api/.github/workflows/release.yml@refs/heads/main\"} | ${2:-.}" <<<'null'
}
post_token() { post /v1/builds "$1" -H "Authorization: Bearer $2"; }

# The body lies about who built it; the token's claims win.
d=$(random_digest)
acr_push "$T/push.json" "$d" 1.4.0 "$(iso_at -5)"
post_acr "$T/push.json"
jq -c '.run = {provider: "generic", repository: "evil/repo", run_id: "1", commit: "bad"}' \
    <(build_event /dev/stdout "$d" "$(iso_at -1)" 1) > "$T/lying.json"
tok=$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-1)")
post_token "$T/lying.json" "$tok"
check "valid GitHub token: accepted" 202 "$STATUS"
check "valid GitHub token: joined" '{"status":"accepted","events":1,"edges":1}' "$BODY"
ev=$(stream_events | head -n 1)
check "identity from claims: repository" acme/api "$(jq -r .data.build.repository <<<"$ev")"
check "identity from claims: run id" 12094877312 "$(jq -r .data.build.run_id <<<"$ev")"
check "identity from claims: attempt" 2 "$(jq -r .data.build.run_attempt <<<"$ev")"
check "identity from claims: commit" 3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d "$(jq -r .data.build.commit <<<"$ev")"
check "identity from claims: provider" github "$(jq -r .data.build.provider <<<"$ev")"
check "identity from claims: verified" true "$(jq -r .data.build.verified <<<"$ev")"
check "identity from claims: issuer" "$GH" "$(jq -r .data.build.issuer <<<"$ev")"
check "run url built from the claims" https://github.com/acme/api/actions/runs/12094877312/attempts/2 \
    "$(jq -r .data.build.run_url <<<"$ev")"

post_token "$T/lying.json" "$tok"
check "replayed token (same jti): 401" 401 "$STATUS"
check "replayed token: reason" '{"error":"bad credentials: token already used"}' "$BODY"

# Refusals: nothing may be parked by any of them.
keys_before=$(rcli dbsize)
d2=$(random_digest)
build_event "$T/b2.json" "$d2" "$(iso_at -1)" 5
refuse() { # DESCRIPTION STATUS TOKEN LOGGED_REASON
    post_token "$T/b2.json" "$3"
    check "$1: $2" "$2" "$STATUS"
    check "$1: logged reason" "$4" \
        "$(grep 'msg="request refused"' "$T/daemon.log" | tail -n 1 | sed -n 's/.* reason="\([^"]*\)".*/\1/p')"
}
refuse "claims not allowed (owner)" 403 "$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-2 '.repository_owner = "evil"')")" "claims not allowed"
check "403 names the claim" '{"error":"token not allowed: claim repository_owner"}' "$BODY"
refuse "claims not allowed (sub prefix)" 403 "$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-3 '.sub = "repo:evil/api:ref:x"')")" "claims not allowed"
refuse "wrong audience" 401 "$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-4 '.aud = "someone-else"')")" "audience mismatch"
refuse "wrong issuer" 401 "$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-5 '.iss = "https://evil.example.com"')")" "issuer not allowed"
now=$(date +%s) # the time bounds below are 60 s (the leeway) from it: taken afresh, not at start
refuse "expired" 401 "$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-6 ".exp = $((now - 61))")")" "token expired"
refuse "not yet valid (nbf)" 401 "$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-7 ".nbf = $((now + 120))")")" "token not yet valid"
refuse "lifetime longer than a day" 401 "$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-12 '.exp = 1e300')")" "token lifetime too long"
refuse "unknown kid" 401 "$(mint_rs256 "$T/gh.pem" gh-9 "$(gh_claims j-8)")" "unknown key id"
refuse "signed by another key" 401 "$(mint_rs256 "$T/other.pem" gh-1 "$(gh_claims j-9)")" "bad signature"
refuse "alg none" 401 "$(mint_none gh-1 "$(gh_claims j-10)")" "algorithm not allowed"
refuse "HS256 keyed with the public key" 401 "$(mint_hs256 "$T/gh.pub.pem" gh-1 "$(gh_claims j-11)")" "algorithm not allowed"
refuse "not a JWT" 401 "not.a.jwt" "malformed token"
check "refused tokens parked nothing" "$keys_before" "$(rcli dbsize)"
check_match "auth failures counted" 'digestmap_auth_failures_total [1-9][0-9]' "$(curl -s "http://127.0.0.1:$PORT/metrics")"

# GitLab (ES256) and a multi-arch build: the index and its platform manifests join.
idx=$(random_digest); m1=$(random_digest); m2=$(random_digest)
acr_push "$T/i.json" "$idx" 2.0.0 "$(iso_at -3)"; post_acr "$T/i.json"
for m in "$m1" "$m2"; do
    acr_push "$T/m.json" "$m" "" "$(iso_at -3)"; post_acr "$T/m.json"
done
jq -c --arg m1 "$m1" --arg m2 "$m2" '.images[0].manifests = [$m1, $m2] | del(.run)' \
    <(build_event /dev/stdout "$idx" "$(iso_at -1)" 0) > "$T/multi.json"
gl=$(jq -nc --argjson now "$now" "{iss: \"$GL\", aud: \"digestmap\", jti: \"gl-1\", iat: \$now,
    exp: (\$now + 300), sub: \"project_path:acme/api:ref_type:branch:ref:main\",
    project_path: \"acme/api\", project_id: \"42\", pipeline_id: \"9001\", job_id: \"77\",
    ref: \"main\", ref_type: \"branch\", sha: \"abcdef0123456789abcdef0123456789abcdef01\",
    user_login: \"mona\", ci_config_ref_uri: \"gitlab.example.com/acme/api//.gitlab-ci.yml@refs/heads/main\"}")
post_token "$T/multi.json" "$(mint_es256 "$T/gl.pem" gl-1 "$gl")"
check "GitLab ES256 token, multi-arch build: three edges" '{"status":"accepted","events":3,"edges":3}' "$BODY"
rel() { stream_events | jq -r "select(.subject == \"$1\") | .data.relation + \" \" + (.data.index // \"-\") + \" \" + .data.build.provider + \" \" + .data.build.repository + \" \" + .data.build.run_id"; }
check "index edge" "image - gitlab acme/api 9001" "$(rel "$idx")"
check "platform manifest 1 edge" "platform-manifest $idx gitlab acme/api 9001" "$(rel "$m1")"
check "platform manifest 2 edge" "platform-manifest $idx gitlab acme/api 9001" "$(rel "$m2")"

# The HMAC fallback still works, unverified.
d3=$(random_digest)
build_event "$T/b3.json" "$d3" "$(iso_at -1)" 77
post_build_hmac "$T/b3.json"
check "HMAC fallback accepted" 202 "$STATUS"
finish
