#!/usr/bin/env bash
# bench/park-callgrind.sh [DAEMON] [N]: park.lua's cost to Redis in instructions per call
# (docs/park-path.md "What a call costs"), repeatable where CPU time is not. Runs a
# redis-server under valgrind --tool=callgrind, collecting inside processInputBuffer only (the
# command's parsing, the script, its reply), and one digestmapd (1 worker, sweeper and trims
# idle) on it; posts N (200) requests per phase, sequentially, with bench/push.lua's payloads:
#   push    ACR pushes of new digests (the common call)
#   build   builds of other new digests
#   edge-b  builds of the pushed digests (each joins a parked push: an edge)
#   edge-p  pushes of the built digests (each joins a parked build: an edge)
# and prints the instructions per park.lua call of each phase.
#   env: REDIS_SERVER (a redis-server built with symbols; default redis-server on PATH),
#        DAEMON (default build/bin/digestmapd)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
daemon=${1:-${DAEMON:-build/bin/digestmapd}}; n=${2:-200}
rs=${REDIS_SERVER:-$(command -v redis-server)}
BENCH_NAME=park-callgrind
. bench/lib.sh
command -v valgrind >/dev/null || fail "valgrind is not installed"
[ -x "$daemon" ] || fail "no digestmapd at $daemon"
bench_begin park-callgrind
port=$(free_port 18590)
valgrind --tool=callgrind --collect-atstart=no --toggle-collect=processInputBuffer \
    --callgrind-out-file="$tmp/cg.out" "$rs" --port 0 --unixsocket "$tmp/redis.sock" --save "" \
    --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" 2>"$tmp/valgrind.log" & redis_pid=$!
for _ in $(seq 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.2; done
[ "$(rcli ping)" = PONG ] || fail "redis-server did not start under valgrind"
acr_auth="Bearer bench-acr-token"; ci_auth="Bearer bench-ci-token"
daemon=$(cd "$(dirname "$daemon")" && pwd)/$(basename "$daemon")
# the sweeper and the stream trims also run scripts: at most once a minute and an hour here
cat > "$tmp/config.json" <<JSON
{ "listen": "127.0.0.1:$port", "workers": 1, "log_level": "warn", "data_dir": "$tmp",
  "redis": {"url": "unix://$tmp/redis.sock", "command_timeout_ms": 30000},
  "correlation": {"sweep_interval_ms": 60000},
  "outputs": {"trim_interval_ms": 3600000},
  "sources": [
    {"type": "acr", "path": "/v1/registry/acr",
     "auth": [{"type": "header", "name": "Authorization", "value": "$acr_auth"}]},
    {"type": "build", "path": "/v1/builds",
     "auth": [{"type": "header", "name": "Authorization", "value": "$ci_auth"}]}]}
JSON
"$daemon" --config "$tmp/config.json" 2>>"$tmp/digestmapd.log" & dm_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$tmp/digestmapd.log" >&2; fail "digestmapd did not become ready"; }
sleep 1   # the first sweep and trim, outside the phases

phase() { # NAME MODE SALT
    callgrind_control -z "$redis_pid" >/dev/null 2>&1
    python3 - "$port" "$2" "$n" "$3" <<'PY'
import http.client, sys
port, mode, n, salt = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
pad = "0123456789a" * 4
push = ('{"id":"bench-%s","timestamp":"2026-11-28T14:02:11.483920117Z","action":"push","target":{'
        '"mediaType":"application/vnd.oci.image.index.v1+json","size":1609,"digest":"sha256:%s'
        '","length":1609,"repository":"team/api","tag":"1.4.0"},"request":{'
        '"id":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","host":"contoso.azurecr.io","method":"PUT",'
        '"useragent":"buildkit/v0.16"}}')
build = ('{"images":[{"name":"contoso.azurecr.io/team/api","digest":"sha256:%s'
         '","tags":["1.4.0","latest"]}],"built_at":"2026-11-28T14:02:14Z",'
         '"run":{"provider":"github","repository":"acme/api","run_id":"12094877312",'
         '"run_attempt":"1","commit":"3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",'
         '"ref":"refs/heads/main","workflow":"release","actor":"mona"}}')
c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
for k in range(n):
    d = salt + "0000" + "%08x" % k + pad
    if mode == "push":
        c.request("POST", "/v1/registry/acr", push % (d, d),
                  {"Content-Type": "application/json", "Authorization": "Bearer bench-acr-token"})
    else:
        c.request("POST", "/v1/builds", build % d,
                  {"Content-Type": "application/json", "Authorization": "Bearer bench-ci-token"})
    r = c.getresponse(); r.read()
    if r.status // 100 != 2:
        sys.exit("%s %d: answered %d" % (mode, k, r.status))
PY
    callgrind_control -d "$1" "$redis_pid" >/dev/null 2>&1
    local f; f=$(ls -t "$tmp"/cg.out.* | head -1)
    # calls of luaCallFunction (one per EVALSHA that ran a script) and the dump's total
    python3 - "$f" "$1" <<'PY'
import re, sys
names, calls, total, lines = {}, 0, 0, open(sys.argv[1]).read().split('\n')
for i, l in enumerate(lines):
    m = re.match(r'^c?fn=\((\d+)\)(?: (.*))?$', l)
    if m:
        if m.group(2): names[m.group(1)] = m.group(2)
        if l.startswith('cfn=') and names.get(m.group(1)) == 'luaCallFunction' \
                and lines[i + 1].startswith('calls='):
            calls += int(lines[i + 1].split('=')[1].split()[0])
    elif l.startswith('summary:') or l.startswith('totals:'):
        total = int(l.split()[1])
print("%-7s %d scripts, %d instructions per call" % (sys.argv[2], calls, total // max(calls, 1)))
PY
}
phase push push aaaaaaaa
phase build build bbbbbbbb
phase edge-b build aaaaaaaa
phase edge-p push bbbbbbbb
