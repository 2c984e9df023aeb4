#!/usr/bin/env bash
# bench/findings.sh [REPORTS] - the cost of a 2,000-finding Trivy report (docs/findings.md):
# time per report and Redis memory per finding, on a private redis-server (unix socket, the
# listpack sizes of configs/redis.conf) and digestmapd from build/ (DIGESTMAPD overrides it).
# REPORTS (default 20) reports of new digests, each 2,000 distinct findings with Trivy's
# members (title, description, references, CVSS: what a real report carries), severities
# 5 % critical, 20 % high, 40 % medium, 35 % low. Phases, one connection, one report at a time:
#   new      each report names a new digest (nothing routed: no mapping);
#   replace  the same reports again (a snapshot replaces the scanner's field);
#   routed   new digests that have a confirmed edge first: each report routes its 500 critical
#            and high findings in one finding.routed record.
# Per phase: client time per report (mean, p50, max), Redis's script time per report (INFO
# commandstats: every EVALSHA of the phase, the sweeper's few included, over the reports),
# digestmapd's CPU per report (/proc/PID/stat), and for "new" the growth of INFO used_memory
# per finding, MEMORY USAGE of the f and fs keys; for "routed" the record's size on the stream.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
n=${1:-20}
daemon=${DIGESTMAPD:-$top/build/bin/digestmapd}
[ -x "$daemon" ] || { echo "findings: $daemon missing: build first (cmake --build build)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/dm-findings.XXXXXX)
redis_pid=""; dm_pid=""
stop() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
trap 'stop "$dm_pid"; stop "$redis_pid"; rm -rf "$tmp"' EXIT
rcli() { redis-cli -s "$tmp/redis.sock" "$@"; }
used() { rcli info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
eval_usec() { rcli info commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2/p'; }

redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" \
    --hash-max-listpack-value 256 --zset-max-listpack-value 128 & redis_pid=$!
for _ in $(seq 100); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
cat > "$tmp/config.json" <<JSON
{ "listen": "127.0.0.1:0", "workers": 2, "log_level": "info", "data_dir": "$tmp/var",
  "redis": {"url": "unix://$tmp/redis.sock"},
  "limits": {"max_body_bytes": 16777216},
  "sources": [
    {"type": "acr", "auth": [{"type": "header", "name": "Authorization", "value": "Bearer acr-token"}]},
    {"type": "build", "auth": [{"type": "header", "name": "Authorization", "value": "Bearer ci-token"}]},
    {"type": "scan", "auth": [{"type": "header", "name": "Authorization", "value": "Bearer scan-token"}]}] }
JSON
"$daemon" --config "$tmp/config.json" 2>>"$tmp/daemon.log" & dm_pid=$!
port=""
for _ in $(seq 600); do # a loaded machine: up to a minute
    port=$(sed -n 's/.*msg="listening" addr=[^ ]*:\([0-9]*\) .*/\1/p' "$tmp/daemon.log" | tail -n 1)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
done
[ -n "$port" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$tmp/daemon.log" >&2; echo "findings: digestmapd did not start" >&2; exit 1; }

# run PHASE: post the reports of PHASE (new | replace | routed); prints "PHASE key value" lines.
run() {
    python3 - "$1" "$n" "$port" "$tmp" <<'PY'
import http.client, json, os, random, statistics, sys, time
phase, n, port, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = random.Random(7)
state = os.path.join(tmp, "digests.json")
def report(d, k):
    vulns = []
    for i in range(2000):
        sev = "CRITICAL" if i < 100 else "HIGH" if i < 500 else "MEDIUM" if i < 1300 else "LOW"
        cve = "CVE-20%02d-%05d" % (10 + i % 15, 10000 + i)
        vulns.append({"VulnerabilityID": cve, "PkgID": "pkg%d@1.%d.0" % (i % 400, i % 7),
            "PkgName": "pkg%d" % (i % 400), "InstalledVersion": "1.%d.0" % (i % 7),
            "FixedVersion": "1.%d.1" % (i % 7), "Status": "fixed", "Severity": sev,
            "SeveritySource": "nvd", "PrimaryURL": "https://avd.aquasec.com/nvd/" + cve.lower(),
            "Title": "pkg%d: a flaw in the parser allows a crafted input to %s" % (i % 400, "crash"),
            "Description": " ".join(rng.choice(["buffer", "overflow", "remote", "attacker",
                "crafted", "request", "memory", "denial", "service", "parser"]) for _ in range(60)),
            "CweIDs": ["CWE-787"], "References": ["https://nvd.nist.gov/vuln/detail/" + cve,
                "https://github.com/advisories/GHSA-%04x" % i],
            "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                             "V3Score": 9.8}},
            "PublishedDate": "2024-08-19T01:15:00Z", "LastModifiedDate": "2024-08-20T01:15:00Z"})
    return json.dumps({"SchemaVersion": 2, "CreatedAt": "2026-12-01T08:15:41Z",
        "ArtifactName": "contoso.azurecr.io/team/api:1.%d" % k, "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": ["contoso.azurecr.io/team/api@" + d],
                     "RepoTags": ["contoso.azurecr.io/team/api:1.%d" % k]},
        "Results": [{"Target": "app", "Class": "lang-pkgs", "Type": "npm", "Vulnerabilities": vulns}]})
c = http.client.HTTPConnection("127.0.0.1", port)
def post(path, token, body):
    c.request("POST", path, body, {"Authorization": "Bearer " + token,
                                   "Content-Type": "application/json"})
    r = c.getresponse(); text = r.read()
    if r.status != 202:
        sys.exit("findings: %s answered %d %r" % (path, r.status, text[:200]))
    return json.loads(text)
if phase in ("replace", "routed"):
    digests = json.load(open(state))
else:
    digests = ["sha256:" + os.urandom(32).hex() for _ in range(n)]
    json.dump(digests, open(state, "w"))
when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
if phase == "map": # the edges the routed phase's reports find
    for k, d in enumerate(digests):
        post("/v1/registry/acr", "acr-token", json.dumps({"id": os.urandom(8).hex(), "timestamp": when,
            "action": "push", "target": {"mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d, "repository": "team/api", "tag": "1.%d" % k},
            "request": {"id": "r", "host": "contoso.azurecr.io"}}))
        post("/v1/builds", "ci-token", json.dumps({"images": [{"name": "contoso.azurecr.io/team/api",
            "digest": d}], "built_at": when, "run": {"provider": "github", "repository": "acme/api",
            "run_id": str(9000 + k), "commit": os.urandom(20).hex()}}))
    sys.exit(0)
bodies = [report(d, k) for k, d in enumerate(digests)]
print("%s body_bytes %d" % (phase, len(bodies[0])))
times, routed = [], 0
for b in bodies:
    t0 = time.perf_counter()
    a = post("/v1/findings", "scan-token", b)
    times.append(time.perf_counter() - t0)
    routed += a["routed"]
print("%s ms_mean %.1f" % (phase, 1000 * statistics.mean(times)))
print("%s ms_p50 %.1f" % (phase, 1000 * statistics.median(times)))
print("%s ms_max %.1f" % (phase, 1000 * max(times)))
print("%s routed_per_report %d" % (phase, routed // len(bodies)))
PY
}

hz=$(getconf CLK_TCK)
echo "findings: $n reports of 2000 findings per phase, $(redis-server --version | cut -d' ' -f3), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)" >&2
for phase in new replace routed; do
    if [ "$phase" = routed ]; then
        rcli flushall >/dev/null
        run map
    elif [ "$phase" = new ]; then
        rcli flushall >/dev/null
    fi
    rcli config resetstat >/dev/null
    u0=$(used); c0=$(cpu_ticks "$dm_pid")
    run "$phase" | tee "$tmp/$phase.out"
    u1=$(used); c1=$(cpu_ticks "$dm_pid")
    read -r calls usec <<<"$(eval_usec)"
    : "$calls" # with the sweeper's and trimmer's few calls: their microseconds are noise here
    echo "$phase redis_ms_per_report $(awk -v u="$usec" -v c="$n" 'BEGIN{printf "%.1f", u / c / 1000}')"
    echo "$phase daemon_cpu_ms_per_report $(awk -v t=$((c1 - c0)) -v h="$hz" -v c="$n" 'BEGIN{printf "%.1f", t * 1000 / h / c}')"
    if [ "$phase" = new ]; then
        echo "new used_memory_per_finding $(((u1 - u0) / n / 2000))"
        d=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0])' "$tmp/digests.json")
        echo "new f_key_bytes $(rcli memory usage "dm:{0}:f:$d" samples 0)"
        echo "new fs_key_bytes $(rcli memory usage "dm:{0}:fs:$d" samples 0)"
    fi
    if [ "$phase" = routed ]; then
        rec=$(rcli --raw xrevrange 'dm:{0}:out' + - count 1 | awk 'prev=="event"{print} {prev=$0}')
        echo "routed record_bytes ${#rec}"
        d=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0])' "$tmp/digests.json")
        echo "routed fr_key_bytes $(rcli memory usage "dm:{0}:fr:$d" samples 0)"
    fi
done
