#!/usr/bin/env bash
# OIDC tokens while Redis is away (docs/spool.md, "Tokens"): ingest cannot set a token's replay
# marker then, so the process remembers the tokens of the requests it spooled. A second request
# with the same token is refused 401 at once (not spooled: one captured token cannot fill the
# spool); another token is spooled as usual. Once the spool is replayed, the markers are in
# Redis and the token stays refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/jwt.sh"

GH=https://token.actions.githubusercontent.com
rsa_key "$T/gh.pem"
jwks "$(rsa_jwk "$T/gh.pem" gh-1)" > "$T/gh-jwks.json"
start_redis
start_daemon "$(default_config | jq --arg gh "$T/gh-jwks.json" '
  .sources[1].auth = [
    {"type": "oidc", "issuer": "https://token.actions.githubusercontent.com", "audience": "digestmap",
     "jwks_file": $gh}]')"
now=$(date +%s)
gh_claims() {
    jq -c --arg jti "$1" --argjson now "$now" "{iss: \"$GH\", aud: \"digestmap\", jti: \$jti,
        iat: \$now, nbf: (\$now - 5), exp: (\$now + 300), sub: \"repo:acme/api:ref:refs/heads/main\",
        repository: \"acme/api\", repository_owner: \"acme\", repository_id: \"712398456\",
        run_id: \"1209487$2\", run_attempt: \"1\", sha: \"3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d\",
        ref: \"refs/heads/main\", workflow: \"release\", actor: \"mona\", event_name: \"push\",
        workflow_ref: \"acme/api/.github/workflows/release.yml@refs/heads/main\"}" <<<'null'
}
post_token() { post /v1/builds "$1" -H "Authorization: Bearer $2"; }
spooled='{"status":"accepted","events":1,"edges":0,"spooled":true}'

stop_redis
t1=$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-1 1)")
t2=$(mint_rs256 "$T/gh.pem" gh-1 "$(gh_claims j-2 2)")
for i in 1 2 3; do
    D[$i]=$(random_digest)
    build_event "$T/b$i.json" "${D[$i]}" "$(iso_at -10)" "$i"
done
post_token "$T/b1.json" "$t1"
check "Redis down: the first use of a token is spooled" "202 $spooled" "$STATUS $BODY"
post_token "$T/b2.json" "$t1"
check "Redis down: its second use is refused at once" \
    '401 {"error":"bad credentials: token already used"}' "$STATUS $BODY"
check_match "and logged" 'reason="token replayed \(jti of a request spooled meanwhile\)"' \
    "$(await_log 'status=401 route=/v1/builds')"
post_token "$T/b3.json" "$t2"
check "Redis down: another token is spooled" "202 $spooled" "$STATUS $BODY"
check "two events spooled, not three" 2 "$(metric digestmap_spooled_total)"
start_redis
check "Redis back: the spool drains" 0 "$(wait_count 0 60 metric digestmap_spool_events)"
check "both spooled builds parked" 2 \
    "$(( $(rcli exists "dm:{0}:b:${D[1]}") + $(rcli exists "dm:{0}:b:${D[3]}") ))"
check "the refused one did not" 0 "$(rcli exists "dm:{0}:b:${D[2]}")"
check "nothing refused at replay" 0 "$(metric digestmap_spool_replay_refused_total)"
post_token "$T/b2.json" "$t1"
check "after the replay: the token stays used (its marker is in Redis)" 401 "$STATUS"
finish
