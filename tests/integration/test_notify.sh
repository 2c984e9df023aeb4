#!/usr/bin/env bash
# The CI side: scripts/digestmap-notify and the templates of configs/ci/ (run as their platform
# would run them) against the real daemon, with a fake OIDC token endpoint
# (notify/fake_token_server.py: GitHub- and Azure-style) and tokens minted here with openssl
# (RS256, a test key whose JWKS the daemon's oidc auth entries load). For GitHub Actions, GitLab
# CI and Azure Pipelines: the event is accepted (202), parked, and joins an ACR push of the same
# digest (one confirmed record, plus its platform manifest), with the identity verified from the
# token; the token endpoint saw the right audience and authorization. Then retries (5xx, network:
# a fresh token per attempt), no retry on 4xx, warn-only vs --fail, --dry-run.
. "$(dirname "$0")/lib.sh"

N=$(cd "$(dirname "$0")/notify" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NOTIFY=$ROOT/scripts/digestmap-notify
GH_ACTION=$ROOT/configs/ci/github/action.yml
AZ_STEP=$ROOT/configs/ci/azure-pipelines/digestmap-step.yml
GL_INCLUDE=$ROOT/configs/ci/gitlab/digestmap.gitlab-ci.yml
GH_ISS=https://token.actions.githubusercontent.com
GL_ISS=https://gitlab.example.com
AZ_ORG=6f1c9d2e-5a4b-4c3d-9e8f-0a1b2c3d4e5f
AZ_ISS=https://vstoken.dev.azure.com/$AZ_ORG
AZ_AUD=api://AzureADTokenExchange
AZ_SC=3c2b1a09-8f7e-4d6c-b5a4-0123456789ab
KID=notify-test-key
NAME=contoso.azurecr.io/team/api

for tool in python3 openssl jq curl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
python3 -c 'import yaml' 2>/dev/null || die "python3 yaml is needed (Debian: python3-yaml)"

# --- The templates parse and have the shape the docs promise -------------------------------------
python3 -c 'import sys, json, yaml
for f in sys.argv[1:]:
    print(json.dumps(yaml.safe_load(open(f))))' "$GH_ACTION" "$AZ_STEP" "$GL_INCLUDE" >"$T/templates.jsonl" ||
    die "a template does not parse as YAML"
gh=$(sed -n 1p "$T/templates.jsonl") az=$(sed -n 2p "$T/templates.jsonl") gl=$(sed -n 3p "$T/templates.jsonl")
check "action.yml is a composite action" composite "$(jq -r .runs.using <<<"$gh")"
check "action.yml inputs" "audience digest fail image manifests tags url" \
    "$(jq -r '.inputs | keys | join(" ")' <<<"$gh")"
check "action.yml: url, image and digest are required" "digest image url" \
    "$(jq -r '[.inputs | to_entries[] | select(.value.required) | .key] | sort | join(" ")' <<<"$gh")"
check "azure step template parameters" \
    "url audience serviceConnectionId image digest tags fail notifyScript notifyScriptUrl displayName" \
    "$(jq -r '[.parameters[].name] | join(" ")' <<<"$az")"
check "azure step maps System.AccessToken" '$(System.AccessToken)' \
    "$(jq -r '.steps[0].env.SYSTEM_ACCESSTOKEN' <<<"$az")"
check "gitlab hidden job asks for the DIGESTMAP_ID_TOKEN id token, aud digestmap" digestmap \
    "$(jq -r '.[".digestmap-notify"].id_tokens.DIGESTMAP_ID_TOKEN.aud' <<<"$gl")"
if [ -f "$ROOT/docs/ci.md" ]; then
    check_match "docs/ci.md documents permissions: id-token: write" 'id-token: write' "$(cat "$ROOT/docs/ci.md")"
else
    fail "docs/ci.md is missing"
fi

# --- Keys, the token endpoint, the fake docker ----------------------------------------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/ci.key" 2>/dev/null ||
    die "openssl genpkey failed"
"$N/jwks.sh" "$T/ci.key" "$KID" >"$T/jwks.json" || die "jwks.sh failed"
echo '{}' >"$T/gh-claims.json"
echo '{"sub": "sc://contoso/Team API/digestmap"}' >"$T/az-claims.json"
: >"$T/tp.log"
python3 "$N/fake_token_server.py" --port-file "$T/tp.port" --log "$T/tp.log" \
    --mint "$N/mint-jwt.sh" --key "$T/ci.key" --kid "$KID" \
    --github-issuer "$GH_ISS" --github-claims "$T/gh-claims.json" --github-request-token gh-request-token \
    --azure-issuer "$AZ_ISS" --azure-claims "$T/az-claims.json" --azure-access-token az-access-token \
    --files "$ROOT/scripts" 2>"$T/tp.err" &
TP_PID=$!
at_exit 'kill "$TP_PID" 2>/dev/null'
poll_until "$DM_WAIT" test -s "$T/tp.port" || die "the fake token endpoint did not start: $(cat "$T/tp.err")"
TP="http://127.0.0.1:$(cat "$T/tp.port")"

FD=$T/fakedocker
mkdir -p "$FD/tags" "$T/bin"
: >"$FD/calls"
cp "$N/docker" "$T/bin/docker"

# index_of IDX M1 M2 ATT: the fake registry's raw index IDX (two platforms and an attestation)
index_of() {
    jq -n --arg m1 "$2" --arg m2 "$3" --arg att "$4" '{schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m1, size: 1054,
         platform: {architecture: "amd64", os: "linux"}},
        {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m2, size: 1054,
         platform: {architecture: "arm64", os: "linux", variant: "v8"}},
        {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $att, size: 840,
         annotations: {"vnd.docker.reference.digest": $m1,
                       "vnd.docker.reference.type": "attestation-manifest"},
         platform: {architecture: "unknown", os: "unknown"}}]}' >"$FD/${1#sha256:}.json"
}

# mint CLAIMS_JSON: a token signed with the test key (for GitLab, whose runner hands it over)
mint() { jq -c . <<<"$1" | bash "$N/mint-jwt.sh" "$T/ci.key" "$KID"; }
uuid() { cat /proc/sys/kernel/random/uuid; }

# --- Does the daemon verify OIDC tokens yet? ------------------------------------------------------
oidc_entries=$(jq -cn --arg jwks "$T/jwks.json" --arg gh "$GH_ISS" --arg gl "$GL_ISS" \
    --arg az "$AZ_ISS" --arg azaud "$AZ_AUD" '[
    {type: "oidc", issuer: $gh, audience: "digestmap", jwks_file: $jwks, provider: "github"},
    {type: "oidc", issuer: $gl, audience: "digestmap", jwks_file: $jwks, provider: "gitlab"},
    {type: "oidc", issuer: $az, audience: $azaud, jwks_file: $jwks, provider: "azure-devops"}]')
oidc_config=$(default_config | jq --argjson e "$oidc_entries" \
    '.sources[1].auth = ([.sources[1].auth[] | select(.type == "hmac-sha256")] + $e)')
printf '%s\n' "$oidc_config" >"$T/oidc-check.json"
OIDC=1
if ! oidc_why=$("$DIGESTMAPD" --config "$T/oidc-check.json" --check-config 2>&1); then
    OIDC=0
    fail "the daemon does not accept oidc auth entries yet: $oidc_why"
    echo "# (the notify checks below use the HMAC fallback; the OIDC assertions will fail)"
fi

start_redis
# A small spool (docs/spool.md), so that a Redis outage can be made to answer 503 below.
small_spool() { jq '.spool.max_bytes = 1024'; }
if [ "$OIDC" = 1 ]; then start_daemon "$(small_spool <<<"$oidc_config")"; else start_daemon "$(default_config | small_spool)"; fi
DM="http://127.0.0.1:$PORT"

# With OIDC the runs below carry the token only; without it they also sign with the HMAC secret.
AUTH_ENV=()
[ "$OIDC" = 1 ] || AUTH_ENV=(DIGESTMAP_HMAC_SECRET_ENV=DM_SECRET DM_SECRET=ci-secret)
BASE_ENV=(PATH="$T/bin:$PATH" HOME="$T" TMPDIR="$T" LANG=C FAKE_DOCKER_DIR="$FD"
          DIGESTMAP_RETRY_DELAY=0.05 DIGESTMAP_RETRY_MAX_DELAY=0.3)

# run_env VAR=VALUE... -- CMD...: CMD in a clean environment (BASE_ENV, AUTH_ENV and the given
# variables only: the CI variables of whatever runs this test do not leak in). Sets OUT and RC.
run_env() {
    local vars=()
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    RC=0
    OUT=$(env -i "${BASE_ENV[@]}" "${AUTH_ENV[@]}" "${vars[@]}" "$@" 2>&1) || RC=$?
}

tp_count() { wc -l <"$T/tp.log" | tr -d ' '; }
tp_last() { tail -n 1 "$T/tp.log"; }
builds_metric() { metric "digestmap_requests_total{route=\"/v1/builds\",status=\"$1\"}"; }

# record SUBJECT: the confirmed record of that digest (one line per record)
record() {
    stream_events | jq -c --arg d "$1" 'select(.type == "dev.digestmap.mapping.confirmed.v1" and .subject == $d)'
}

# joined LABEL IDX M1 M2 ATT TAG: the parked build of IDX (and M1, M2, not ATT) joins an ACR push
# of IDX and an untagged push of M1.
joined() {
    local label=$1 idx=$2 m1=$3 m2=$4 att=$5 tag=$6
    query_image "$idx"
    check "$label: the build is parked" "200 1" "$STATUS $(jq '.pending.build | length' <<<"$BODY")"
    query_image "$m2"
    check "$label: its second platform manifest is parked" "200 1" "$STATUS $(jq '.pending.build | length' <<<"$BODY")"
    query_image "$att"
    check "$label: the attestation manifest is not reported" 404 "$STATUS"
    acr_push "$T/push.json" "$idx" "$tag" "$(iso_at -2)"
    post_acr "$T/push.json"
    check "$label: the ACR push joins it" '{"status":"accepted","events":1,"edges":1}' "$BODY"
    jq --arg d "$m1" --arg t "$(iso_at -2)" --arg id "evt-$RANDOM$RANDOM" \
        '.target.digest = $d | .timestamp = $t | .id = $id' \
        "$DM_FIXTURES/acr/push-platform-manifest.json" >"$T/pm.json"
    post_acr "$T/pm.json"
    check "$label: the platform manifest push joins it" '{"status":"accepted","events":1,"edges":1}' "$BODY"
    check "$label: one confirmed record of the index" 1 "$(record "$idx" | wc -l | tr -d ' ')"
    check "$label: index record relation and tag" "image $tag" \
        "$(record "$idx" | jq -r '"\(.data.relation) \(.data.image.tags | join(","))"')"
    check "$label: platform manifest record" "platform-manifest $idx" \
        "$(record "$m1" | jq -r '"\(.data.relation) \(.data.index)"')"
    EDGE=$(record "$idx" | jq -c .data.build)
    echo "#   $label edge: $EDGE"
}

# ==================================================================================================
# GitHub Actions: configs/ci/github/action.yml after docker/build-push-action
idx=$(random_digest) m1=$(random_digest) m2=$(random_digest) att=$(random_digest)
index_of "$idx" "$m1" "$m2" "$att"
sha=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
run_id=$((RANDOM * 100000 + RANDOM))
jq -n --arg run "$run_id" --arg sha "$sha" '{sub: "repo:acme/api:ref:refs/heads/main",
    repository: "acme/api", repository_id: "123456789", repository_owner: "acme",
    repository_owner_id: "4242", run_id: $run, run_number: "311", run_attempt: "1", sha: $sha,
    ref: "refs/heads/main", ref_type: "branch", workflow: "release",
    workflow_ref: "acme/api/.github/workflows/release.yml@refs/heads/main",
    job_workflow_ref: "acme/api/.github/workflows/release.yml@refs/heads/main",
    actor: "mona", event_name: "push", runner_environment: "github-hosted"}' >"$T/gh-claims.json"
GH_ENV=(GITHUB_ACTIONS=true CI=true
        ACTIONS_ID_TOKEN_REQUEST_URL="$TP/github/token?api-version=2.0"
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=gh-request-token
        GITHUB_SERVER_URL=https://github.com GITHUB_REPOSITORY=acme/api GITHUB_RUN_ID="$run_id"
        GITHUB_RUN_ATTEMPT=1 GITHUB_SHA="$sha" GITHUB_REF=refs/heads/main GITHUB_WORKFLOW=release
        GITHUB_ACTOR=mona GITHUB_WORKFLOW_REF=acme/api/.github/workflows/release.yml@refs/heads/main)
inputs=$(jq -cn --arg url "$DM" --arg d "$idx" --arg n "$NAME" \
    '{url: $url, image: $n, digest: $d, tags: "\($n):1.4.0\n\($n):latest"}')
python3 "$N/render_step.py" github "$GH_ACTION" "$inputs" >"$T/gh.sh" || die "cannot render action.yml"
before=$(tp_count)
run_env "${GH_ENV[@]}" -- sh "$T/gh.sh"
echo "$OUT" | sed 's/^/#   /'
check "github: the action step succeeds" 0 "$RC"
check_match "github: the daemon answered 202, index + 2 platform manifests" \
    '202 \{"status":"accepted","events":3,"edges":0\}' "$OUT"
check "github: one token request" $((before + 1)) "$(tp_count)"
req=$(tp_last)
check "github: token request is a GET of the request URL" "GET /github/token 2.0" \
    "$(jq -r '"\(.method) \(.path) \(.query["api-version"])"' <<<"$req")"
check "github: token requested for audience digestmap" digestmap "$(jq -r .query.audience <<<"$req")"
check "github: token request authorized by ACTIONS_ID_TOKEN_REQUEST_TOKEN" "bearer gh-request-token" \
    "$(jq -r .headers.Authorization <<<"$req")"
check "github: the index was inspected" 1 \
    "$(grep -cxF "buildx imagetools inspect --raw $NAME@$idx" "$FD/calls" || true)"
joined github "$idx" "$m1" "$m2" "$att" 1.4.0
check "github: edge provider, repository, run and commit" "github acme/api $run_id 1 $sha" \
    "$(jq -r '"\(.provider) \(.repository) \(.run_id) \(.run_attempt) \(.commit)"' <<<"$EDGE")"
check "github [oidc]: edge verified" true "$(jq -r .verified <<<"$EDGE")"
check "github [oidc]: edge issuer" "$GH_ISS" "$(jq -r .issuer <<<"$EDGE")"
check "github [oidc]: edge run_url from the claims" \
    "https://github.com/acme/api/actions/runs/$run_id/attempts/1" "$(jq -r .run_url <<<"$EDGE")"

# ==================================================================================================
# GitLab CI: the hidden job .digestmap-notify of configs/ci/gitlab/digestmap.gitlab-ci.yml, its
# notify script downloaded from DIGESTMAP_NOTIFY_SCRIPT_URL
idx=$(random_digest) m1=$(random_digest) m2=$(random_digest) att=$(random_digest)
index_of "$idx" "$m1" "$m2" "$att"
pipeline=$((RANDOM * 100000 + RANDOM))
aud=$(python3 "$N/render_step.py" gitlab-aud "$GL_INCLUDE" .digestmap-notify)
check "gitlab: the job's id token" "DIGESTMAP_ID_TOKEN digestmap" "$aud"
now=$(date +%s)
gl_claims() {
    jq -cn --arg iss "$GL_ISS" --arg aud "${aud#* }" --arg p "$pipeline" --arg sha "$sha" \
        --argjson now "$now" --arg jti "$(uuid)" '{iss: $iss, aud: $aud,
        sub: "project_path:acme/api:ref_type:branch:ref:main", iat: $now, nbf: ($now - 5),
        exp: ($now + 300), jti: $jti, namespace_id: "17", namespace_path: "acme",
        project_id: "4242", project_path: "acme/api", user_id: "9", user_login: "mona",
        pipeline_id: $p, pipeline_source: "push", job_id: "777", ref: "main", ref_type: "branch",
        ref_path: "refs/heads/main", ref_protected: "true", sha: $sha,
        runner_environment: "gitlab-hosted",
        ci_config_ref_uri: "gitlab.example.com/acme/api//.gitlab-ci.yml@refs/heads/main"}'
}
gl_token=$(mint "$(gl_claims)")
gl_vars=$(jq -cn --arg url "$DM" --arg n "$NAME" --arg d "$idx" --arg src "$TP/files/digestmap-notify" \
    '{DIGESTMAP_URL: $url, DIGESTMAP_NAME: $n, DIGESTMAP_DIGEST: $d, DIGESTMAP_TAGS: "1.4.0",
      DIGESTMAP_NOTIFY_SCRIPT: "", DIGESTMAP_NOTIFY_SCRIPT_URL: $src}')
python3 "$N/render_step.py" gitlab "$GL_INCLUDE" .digestmap-notify "$gl_vars" >"$T/gl.sh" ||
    die "cannot render the gitlab include"
GL_ENV=(GITLAB_CI=true CI=true CI_PROJECT_PATH=acme/api CI_PIPELINE_ID="$pipeline"
        CI_COMMIT_SHA="$sha" CI_COMMIT_REF_NAME=main GITLAB_USER_LOGIN=mona
        CI_PIPELINE_URL="$GL_ISS/acme/api/-/pipelines/$pipeline" CI_PROJECT_URL="$GL_ISS/acme/api"
        CI_API_V4_URL="$GL_ISS/api/v4" DIGESTMAP_ID_TOKEN="$gl_token")
before=$(tp_count)
run_env "${GL_ENV[@]}" -- sh "$T/gl.sh"
echo "$OUT" | sed 's/^/#   /'
check "gitlab: the job succeeds" 0 "$RC"
check_match "gitlab: the daemon answered 202" '202 \{"status":"accepted","events":3,"edges":0\}' "$OUT"
check "gitlab: the script was downloaded" "GET /files/digestmap-notify 200" \
    "$(sed -n "$((before + 1))p" "$T/tp.log" | jq -r '"\(.method) \(.path) \(.status)"')"
check "gitlab: no token endpoint (the token is the job's variable)" $((before + 1)) "$(tp_count)"
joined gitlab "$idx" "$m1" "$m2" "$att" 1.4.0
check "gitlab: edge provider, repository, run and commit" "gitlab acme/api $pipeline $sha" \
    "$(jq -r '"\(.provider) \(.repository) \(.run_id) \(.commit)"' <<<"$EDGE")"
check "gitlab [oidc]: edge verified" true "$(jq -r .verified <<<"$EDGE")"
check "gitlab [oidc]: edge issuer" "$GL_ISS" "$(jq -r .issuer <<<"$EDGE")"

# ==================================================================================================
# Azure Pipelines: configs/ci/azure-pipelines/digestmap-step.yml, image given as name:tag (its
# digest looked up with docker buildx imagetools), script at $(Build.SourcesDirectory)/scripts
idx=$(random_digest) m1=$(random_digest) m2=$(random_digest) att=$(random_digest)
index_of "$idx" "$m1" "$m2" "$att"
echo "$idx" >"$FD/tags/$(printf '%s' "$NAME:2.0.0" | tr '/:' '__')"
build_id=$((RANDOM * 1000 + RANDOM))
params=$(jq -cn --arg url "$DM" --arg sc "$AZ_SC" --arg img "$NAME:2.0.0" \
    '{url: $url, serviceConnectionId: $sc, image: $img, tags: "latest"}')
# the agent expands $(System.AccessToken) and $(Build.SourcesDirectory) when it runs the step
SYSTEM_ACCESSTOKEN=az-access-token BUILD_SOURCESDIRECTORY="$ROOT" \
    python3 "$N/render_step.py" azure "$AZ_STEP" "$params" >"$T/az.sh" || die "cannot render the azure step"
AZ_ENV=(TF_BUILD=True
        SYSTEM_OIDCREQUESTURI="$TP/azure/$AZ_ORG/_apis/distributedtask/hubs/build/plans/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6/jobs/12ab34cd-56ef-78ab-90cd-ef1234567890/oidctoken"
        BUILD_REPOSITORY_NAME=acme/api BUILD_REPOSITORY_URI=https://dev.azure.com/contoso/Team%20API/_git/api
        BUILD_BUILDID="$build_id" SYSTEM_JOBATTEMPT=1 BUILD_SOURCEVERSION="$sha"
        BUILD_SOURCEBRANCH=refs/heads/main BUILD_DEFINITIONNAME=api-ci BUILD_REQUESTEDFOR="Mona Lisa"
        SYSTEM_COLLECTIONURI=https://dev.azure.com/contoso/ SYSTEM_TEAMPROJECT="Team API"
        AGENT_TEMPDIRECTORY="$T")
before=$(tp_count)
run_env "${AZ_ENV[@]}" -- bash "$T/az.sh"
echo "$OUT" | sed 's/^/#   /'
check "azure: the step succeeds" 0 "$RC"
check_match "azure: the daemon answered 202" '202 \{"status":"accepted","events":3,"edges":0\}' "$OUT"
check "azure: one token request" $((before + 1)) "$(tp_count)"
req=$(tp_last)
check "azure: token request is a POST of SYSTEM_OIDCREQUESTURI" "POST /oidctoken" \
    "$(jq -r '"\(.method) /\(.path | split("/") | last)"' <<<"$req")"
check "azure: api-version 7.1 and the service connection" "7.1 $AZ_SC" \
    "$(jq -r '"\(.query["api-version"]) \(.query.serviceConnectionId)"' <<<"$req")"
check "azure: token request authorized by System.AccessToken" "Bearer az-access-token" \
    "$(jq -r .headers.Authorization <<<"$req")"
check "azure: X-TFS-FedAuthRedirect: Suppress" Suppress "$(jq -r '.headers["X-TFS-FedAuthRedirect"]' <<<"$req")"
check "azure: the tag was resolved to its digest" 1 \
    "$(grep -cxF "buildx imagetools inspect $NAME:2.0.0 --format {{json .Manifest}}" "$FD/calls" || true)"
joined azure "$idx" "$m1" "$m2" "$att" 2.0.0
check "azure: edge provider, run (from the body) and commit" "azure-devops $build_id 1 $sha" \
    "$(jq -r '"\(.provider) \(.run_id) \(.run_attempt) \(.commit)"' <<<"$EDGE")"
check "azure: run_url" "https://dev.azure.com/contoso/Team%20API/_build/results?buildId=$build_id" \
    "$(jq -r .run_url <<<"$EDGE")"
check "azure [oidc]: edge verified" true "$(jq -r .verified <<<"$EDGE")"
check "azure [oidc]: edge issuer" "$AZ_ISS" "$(jq -r .issuer <<<"$EDGE")"
check "azure [oidc]: the token proved the issuer, not the run" "true false" \
    "$(jq -r '"\(.verified_fields | index("issuer") != null) \(.verified_fields | index("run_id") != null)"' <<<"$EDGE")"

# ==================================================================================================
# Delivery: retries with a fresh token per attempt, no retry on 4xx, warn-only unless --fail
d=$(random_digest)
gh_notify() { run_env "${GH_ENV[@]}" -- sh "$NOTIFY" --url "$DM" --name "$NAME" --digest "$d" "$@"; }

# the token endpoint fails once (503): retried
curl -s -X POST "$TP/_fail?n=1" >/dev/null
before=$(tp_count) posts=$(builds_metric 202)
gh_notify --no-resolve --fail
check "token endpoint 503 once: delivered" 0 "$RC"
check "token endpoint 503 once: two token requests" "503 200" \
    "$(tail -n +$((before + 1)) "$T/tp.log" | jq -r .status | tr '\n' ' ' | sed 's/ $//')"
check "token endpoint 503 once: one POST" $((posts + 1)) "$(builds_metric 202)"

# the daemon answers 503 (Redis down) until Redis is back: retried, a fresh token each time
d=$(random_digest)
before=$(tp_count) p503=$(builds_metric 503) p202=$(builds_metric 202)
stop_redis
# With Redis down the daemon spools; fill its spool, so that builds get 503 until Redis is back.
fill_spool() {
    acr_push "$T/fill.json" "$(random_digest)" fill "$(iso_at -5)"
    post_acr "$T/fill.json"
    [ "$STATUS" == 503 ]
}
poll_until "$DM_WAIT" fill_spool || fail "the spool never filled up"
# Redis comes back once the daemon has refused a build with 503 (not after a fixed delay, which
# a slow machine could outlast before the script's first attempt).
(poll_until "$DM_WAIT" eval '[ "$(builds_metric 503)" -gt "$p503" ]'; start_redis >/dev/null 2>&1) &
restarter=$!
gh_notify --no-resolve --fail --max-attempts 60
wait "$restarter" || true
echo "$OUT" | tail -n 3 | sed 's/^/#   /'
check "daemon 503 until Redis is back: delivered" 0 "$RC"
n503=$(($(builds_metric 503) - p503))
check_match "daemon 503 until Redis is back: retried ($n503 x 503)" '^[1-9][0-9]*$' "$n503"
check "daemon 503 until Redis is back: one accepted POST" $((p202 + 1)) "$(builds_metric 202)"
tokens=$(tail -n +$((before + 1)) "$T/tp.log" | jq -r 'select(.status == 200) | .jti')
check "a token per POST" $((n503 + 1)) "$(wc -l <<<"$tokens" | tr -d ' ')"
check "every token is a new one (jti)" $((n503 + 1)) "$(sort -u <<<"$tokens" | wc -l | tr -d ' ')"
check_match "the script says it retries" 'retrying in' "$OUT"

# outside CI, with the HMAC fallback (--hmac-secret-env): accepted, not verified
d=$(random_digest)
run_env DIGESTMAP_RUN_ID=local-1 DIGESTMAP_REPOSITORY=acme/api DM_SECRET=ci-secret -- \
    sh "$NOTIFY" --url "$DM/" --name "$NAME" --digest "$d" --no-resolve --hmac-secret-env DM_SECRET --fail
check "hmac fallback: exit 0" 0 "$RC"
check_match "hmac fallback: says it has no token" 'authenticating with the HMAC signature only' "$OUT"
query_image "$d"
check "hmac fallback: parked as generic, unverified" "generic local-1 false" \
    "$(jq -r '.pending.build[0].build | "\(.provider) \(.run_id) \(.verified)"' <<<"$BODY")"

# 4xx: not retried; warn and exit 0, or exit 1 with --fail
d=$(random_digest)
p401=$(builds_metric 401)
run_env DIGESTMAP_RUN_ID=77 DIGESTMAP_HMAC_SECRET_ENV=BAD BAD=not-the-secret -- \
    sh "$NOTIFY" --url "$DM" --name "$NAME" --digest "$d" --no-resolve
check "401: exit 0 without --fail" 0 "$RC"
check_match "401: the answer is shown" '401 \{"error":' "$OUT"
check_match "401: a warning" 'warning: .*not delivered' "$OUT"
check "401: one request, no retry" $((p401 + 1)) "$(builds_metric 401)"
run_env DIGESTMAP_RUN_ID=77 DIGESTMAP_HMAC_SECRET_ENV=BAD BAD=not-the-secret -- \
    sh "$NOTIFY" --url "$DM" --name "$NAME" --digest "$d" --no-resolve --fail
check "401: exit 1 with --fail" 1 "$RC"
check "401 with --fail: one request, no retry" $((p401 + 2)) "$(builds_metric 401)"

# a refused token request (bad ACTIONS_ID_TOKEN_REQUEST_TOKEN) is not retried and posts nothing
before=$(tp_count) p401=$(builds_metric 401)
run_env "${GH_ENV[@]}" ACTIONS_ID_TOKEN_REQUEST_TOKEN=wrong -- \
    sh "$NOTIFY" --url "$DM" --name "$NAME" --digest "$d" --no-resolve --fail
check "refused token request: exit 1 with --fail" 1 "$RC"
check "refused token request: asked once" $((before + 1)) "$(tp_count)"
check "refused token request: nothing posted" "$p401" "$(builds_metric 401)"

# network errors: retried up to --max-attempts, a fresh token each time
before=$(tp_count)
run_env "${GH_ENV[@]}" -- sh "$NOTIFY" --url http://127.0.0.1:1 --name "$NAME" --digest "$d" \
    --no-resolve --max-attempts 3 --fail
check "unreachable daemon: exit 1 with --fail" 1 "$RC"
check_match "unreachable daemon: gave up after 3 attempts" 'after 3 attempts' "$OUT"
check "unreachable daemon: a token per attempt" $((before + 3)) "$(tp_count)"
run_env "${GH_ENV[@]}" -- sh "$NOTIFY" --url http://127.0.0.1:1 --name "$NAME" --digest "$d" \
    --no-resolve --max-attempts 2
check "unreachable daemon: exit 0 without --fail" 0 "$RC"
check_match "unreachable daemon: a GitHub warning annotation" '::warning title=digestmap-notify::' "$OUT"

# no credentials at all (not on a CI platform, no HMAC secret)
run_env DIGESTMAP_RUN_ID=77 -- env -u DIGESTMAP_HMAC_SECRET_ENV sh "$NOTIFY" --url "$DM" --digest "$d" --no-resolve --fail
check "no credentials: exit 1 with --fail" 1 "$RC"
check_match "no credentials: says so" 'no credentials' "$OUT"
run_env "${GH_ENV[@]}" ACTIONS_ID_TOKEN_REQUEST_URL= -- env -u DIGESTMAP_HMAC_SECRET_ENV \
    sh "$NOTIFY" --url "$DM" --digest "$d" --no-resolve --fail
check_match "github without id-token: write: says what to add" "permissions: id-token: write" "$OUT"

# --dry-run: the body, no token request, no POST
idx=$(random_digest) m1=$(random_digest) m2=$(random_digest) att=$(random_digest)
index_of "$idx" "$m1" "$m2" "$att"
before=$(tp_count)
RC=0
body=$(env -i "${BASE_ENV[@]}" "${GH_ENV[@]}" sh "$NOTIFY" --dry-run --image "$NAME:1.0@$idx" \
    --image "$NAME@$d" --built-at 2026-11-28T14:00:00Z 2>"$T/dry.err") || RC=$?
check "dry run: exit 0" 0 "$RC"
check "dry run: the index, its tag and its platform manifests (not the attestation)" \
    "$idx 1.0 $(jq -rn --arg a "$m1" --arg b "$m2" '[$a, $b] | sort | join(",")')" \
    "$(jq -r '.images[0] | "\(.digest) \(.tags | join(",")) \(.manifests | join(","))"' <<<"$body")"
check "dry run: the second image, not found in the registry: as given" "$d null null" \
    "$(jq -r '.images[1] | "\(.digest) \(.tags) \(.manifests)"' <<<"$body")"
check "dry run: run from the GitHub environment" "github $run_id release mona" \
    "$(jq -r '"\(.run.provider) \(.run.run_id) \(.run.workflow) \(.run.actor)"' <<<"$body")"
check "dry run: built_at" 2026-11-28T14:00:00Z "$(jq -r .built_at <<<"$body")"
check "dry run: no token request" "$before" "$(tp_count)"

# an empty digest (an earlier step's output missing) is a warning, not a broken build
inputs=$(jq -cn --arg url "$DM" --arg n "$NAME" '{url: $url, image: $n, digest: ""}')
python3 "$N/render_step.py" github "$GH_ACTION" "$inputs" >"$T/gh-empty.sh" 2>"$T/render.err" || true
check "action.yml refuses to render without the required digest" "required input missing: digest" \
    "$(sed 's/^render_step.py: //' "$T/render.err")"
run_env "${GH_ENV[@]}" -- sh "$NOTIFY" --url "$DM" --name "$NAME" --digest ""
check "empty digest: exit 0" 0 "$RC"
check_match "empty digest: a warning" 'warning.*no digest for' "$OUT"

# usage errors are the only ones that exit 2
run_env -- sh "$NOTIFY" --bogus
check "unknown option: exit 2" 2 "$RC"

finish
