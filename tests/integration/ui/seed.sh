# seed.sh - the data the explorer page test (test_ui.sh) looks at, posted through the real
# routes of the daemon lib.sh started: pushes, builds, scanner reports and a cluster snapshot.
# Sourced after lib.sh; ui_config is the daemon's configuration, ui_seed posts the data.
#
# The digests are those the k8s fixture's workloads run (tests/fixtures/k8s/snapshot.json,
# cluster prod-weu), chosen so that sorting the exposure table by severity and by exposure
# gives two different orders:
#   D_API  shop/api, internet:             pushed, built by run 4242 and its second attempt,
#                                          1 critical, 2 high, 1 medium, 2 low (the Trivy fixture)
#   D_NODE monitoring/node-exporter, node: pushed, never built (pending), 2 critical
#   D_DBG  default/debug-shell, cluster:   pushed and built by acme/tools, 1 high
#   D_EVIL no workload:                    pushed and built with fields a page must never
#                                          interpret (markup in the actor, a javascript: run URL)
# and, for the pages a row at a time (the address's limit=1) and the answers the API cuts early:
#   D_MIR  no workload: pushed to team/mir and mirror/mir, built by run 88 and its second
#          attempt: four mappings (each attempt joins both pushes), each build on two of them;
#          a delete at old/mir; the Trivy fixture's 6 findings
#   D_LOW  internet, cluster a-clean, Pods low/low-1 and low/low-2 (a LoadBalancer): 1 low finding
#   D_CLEAN cluster a-clean, 900 Pods clean/c-0000…c-0899 at exposure cluster: no finding. Their
#          index entries come before prod-weu's, so the first page of exposure "cluster" is
#          empty with a cursor: GET /v1/exposure examines a bounded number per call (8 × limit,
#          at least 256)
#   index entries of mappings whose hash is gone (ui_dead_mappings: as when it expired or was
#          evicted), newer than the real ones: 250 in acme/tools's (the first page of 50 is
#          empty: GET /v1/mappings examines 4 × limit per call), 2100 in run github/77's (more
#          than the page's 10 empty pages followed)
D_API=sha256:49e792bdff5945f156179f8c232376481f60fe38e63f96dd5a376b030c3c9600
D_NODE=sha256:d26c0533fdee1aa3404179b1df9765e1e3540c131e99bfae83258107c7dcb41b
D_DBG=sha256:966c8cf3fa9e0f5bf25af89cc24e6ed244b366b75596b83df98843574c907a90
D_EVIL=sha256:e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7
D_MIR=sha256:3131313131313131313131313131313131313131313131313131313131313131
D_LOW=sha256:1010101010101010101010101010101010101010101010101010101010101010
D_CLEAN=sha256:c1ea2c1ea2c1ea2c1ea2c1ea2c1ea2c1ea2c1ea2c1ea2c1ea2c1ea2c1ea2c1ea
UI_COMMIT=3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d
UI_RUN_URL=https://github.com/acme/api/actions/runs/4242/attempts/1

ui_config() {
    default_config | jq '.limits.max_body_bytes = 1048576 | .sources += [
      {type: "k8s", auth: [{type: "header", name: "Authorization", value: "Bearer k8s-token"}]},
      {type: "scan", auth: [{type: "header", name: "Authorization", value: "Bearer scan-token"}]}]'
}

# _ui_post WHAT WANT_STATUS ROUTE FILE TOKEN
_ui_post() {
    post "$3" "$4" -H "Authorization: Bearer $5"
    [ "$STATUS" == "$2" ] || die "seeding $1: $3 answered $STATUS $BODY"
}

# _ui_build FILE DIGEST RUN_ID REPOSITORY ACTOR RUN_URL COMMIT [IMAGE_REPOSITORY [ATTEMPT]]
_ui_build() {
    jq -n --arg d "$2" --arg t "$(iso_at -1)" --arg id "$3" --arg repo "$4" --arg actor "$5" \
        --arg url "$6" --arg commit "$7" --arg name "contoso.azurecr.io/${8:-team/api}" --arg att "${9:-1}" '{
        images: [{name: $name, digest: $d, tags: ["1.4.0"]}],
        built_at: $t,
        run: {provider: "github", repository: $repo, run_id: $id, run_attempt: $att,
              commit: $commit, ref: "refs/heads/main", workflow: "release", actor: $actor,
              run_url: $url, repository_url: ("https://github.com/" + $repo)}}' >"$1"
}

# ui_dead_mappings KEY N: N members in query index KEY whose mapping hash does not exist (what an
# expired or evicted hash leaves until a read removes them), all newer than anything indexed so far.
ui_dead_mappings() {
    local inv i m members=()
    inv=$((9999999999999 - $(date +%s%3N) - 60000))
    for ((i = 1; i <= $2; i++)); do
        printf -v m '%013d|sha256:%064x|%040x' "$inv" "$i" "$i"
        members+=(0 "$m")
    done
    [ "$(rcli zadd "$1" "${members[@]}")" == "$2" ] || die "seeding $1: ZADD did not add $2 members"
}

# _ui_snapshot FILE: the a-clean cluster (D_CLEAN's 900 Pods, D_LOW's two behind a LoadBalancer).
_ui_snapshot() {
    jq -n --arg clean "$D_CLEAN" --arg low "$D_LOW" --arg t "$(iso_at -1)" '
      def pod(ns; name; labels; digest): {apiVersion: "v1", kind: "Pod",
        metadata: {name: name, namespace: ns, labels: labels},
        spec: {containers: [{name: "c", image: "contoso.azurecr.io/x:1"}]},
        status: {phase: "Running", containerStatuses: [{name: "c", image: "contoso.azurecr.io/x:1",
                                                         imageID: ("contoso.azurecr.io/x@" + digest)}]}};
      {cluster: "a-clean", taken_at: $t,
       items: ([range(900) | pod("clean"; "c-" + ("000" + tostring)[-4:]; {}; $clean)]
               + [pod("low"; "low-1"; {app: "low"}; $low), pod("low"; "low-2"; {app: "low"}; $low),
                  {apiVersion: "v1", kind: "Service", metadata: {name: "low", namespace: "low"},
                   spec: {type: "LoadBalancer", selector: {app: "low"}, ports: [{port: 80}]}}])}' >"$1"
}

# _ui_trivy FILE DIGEST JQ_FILTER: the Trivy fixture naming DIGEST, its results set by JQ_FILTER.
_ui_trivy() {
    jq --arg d "$2" ".Metadata.RepoDigests = [\"contoso.azurecr.io/team/api@\" + \$d] | del(.ReportID) | $3" \
        "$DM_FIXTURES/scan/trivy-report.json" >"$1"
}

ui_seed() {
    local d repo
    for d in "$D_API:team/api" "$D_NODE:platform/node-exporter" "$D_DBG:tools/debug" "$D_EVIL:team/evil"; do
        repo=${d##*:}
        d=${d%:*}
        acr_push "$T/push.json" "$d" 1.4.0 "$(iso_at -2)"
        jq --arg r "$repo" '.target.repository = $r' "$T/push.json" >"$T/push2.json"
        _ui_post "push of $d" 202 /v1/registry/acr "$T/push2.json" acr-token
    done
    _ui_build "$T/build.json" "$D_API" 4242 acme/api mona "$UI_RUN_URL" "$UI_COMMIT"
    _ui_post "build 4242" 202 /v1/builds "$T/build.json" ci-token
    _ui_build "$T/build.json" "$D_API" 4242 acme/api mona "${UI_RUN_URL%/1}/2" "$UI_COMMIT" team/api 2
    _ui_post "build 4242, attempt 2" 202 /v1/builds "$T/build.json" ci-token
    _ui_build "$T/build.json" "$D_EVIL" 666 acme/api '<img src=x id=pwned>' 'javascript:alert(1)' \
        "$UI_COMMIT" team/evil
    _ui_post "build 666" 202 /v1/builds "$T/build.json" ci-token
    _ui_build "$T/build.json" "$D_DBG" 77 acme/tools hubot https://github.com/acme/tools/actions/runs/77 \
        0123456789abcdef0123456789abcdef01234567 tools/debug
    _ui_post "build 77" 202 /v1/builds "$T/build.json" ci-token

    _ui_trivy "$T/scan.json" "$D_API" .
    _ui_post "findings of D_API" 202 /v1/findings "$T/scan.json" scan-token
    _ui_trivy "$T/scan.json" "$D_NODE" '.Results = [.Results[0] | .Vulnerabilities = [.Vulnerabilities[2],
        (.Vulnerabilities[2] | .VulnerabilityID = "CVE-2099-1111")]]'
    _ui_post "findings of D_NODE" 202 /v1/findings "$T/scan.json" scan-token
    _ui_trivy "$T/scan.json" "$D_DBG" '.Results = [.Results[1] | .Vulnerabilities = [.Vulnerabilities[0]]]'
    _ui_post "findings of D_DBG" 202 /v1/findings "$T/scan.json" scan-token

    _ui_post "the cluster snapshot" 202 /v1/workloads "$DM_FIXTURES/k8s/snapshot.json" k8s-token

    for repo in team/mir mirror/mir; do
        acr_push "$T/push.json" "$D_MIR" 2.0.0 "$(iso_at -2)"
        jq --arg r "$repo" '.target.repository = $r' "$T/push.json" >"$T/push2.json"
        _ui_post "push of D_MIR to $repo" 202 /v1/registry/acr "$T/push2.json" acr-token
    done
    jq --arg d "$D_MIR" '.target.digest = $d | .target.repository = "old/mir"' \
        "$DM_FIXTURES/acr/delete.json" >"$T/delete.json"
    _ui_post "delete of D_MIR at old/mir" 202 /v1/registry/acr "$T/delete.json" acr-token
    _ui_build "$T/build.json" "$D_MIR" 88 acme/mir octo https://github.com/acme/mir/actions/runs/88 \
        "$UI_COMMIT" team/mir
    jq '.images += [.images[0] | .name = "contoso.azurecr.io/mirror/mir"]' "$T/build.json" >"$T/build2.json"
    _ui_post "build 88" 202 /v1/builds "$T/build2.json" ci-token
    _ui_build "$T/build.json" "$D_MIR" 88 acme/mir octo https://github.com/acme/mir/actions/runs/88/attempts/2 \
        "$UI_COMMIT" team/mir 2
    _ui_post "build 88, attempt 2" 202 /v1/builds "$T/build.json" ci-token
    _ui_trivy "$T/scan.json" "$D_MIR" .
    _ui_post "findings of D_MIR" 202 /v1/findings "$T/scan.json" scan-token
    _ui_trivy "$T/scan.json" "$D_LOW" '.Results = [.Results[0] | .Vulnerabilities = [.Vulnerabilities[1]]]'
    _ui_post "findings of D_LOW" 202 /v1/findings "$T/scan.json" scan-token
    _ui_snapshot "$T/snapshot.json"
    _ui_post "the a-clean snapshot" 202 /v1/workloads "$T/snapshot.json" k8s-token

    ui_dead_mappings 'dm:{0}:ix:repo:acme/tools' 250
    ui_dead_mappings 'dm:{0}:ix:run:github/77' 2100
}
